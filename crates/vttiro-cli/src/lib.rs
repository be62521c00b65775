//! The `vttiro` command as a library: argument parsing, configuration layering, progress
//! display, exit codes, and the orchestration around the pipeline that `vttiro
//! transcribe`, the service's workers and the Python package share.
//!
//! It is a library so that the Python wheel can carry the very same command
//! ([`run_cli`]) and the same transcription path ([`embedded`]) instead of a second copy.
//! All real work lives in the other crates; this crate is glue and may depend on all of
//! them, but nothing may depend on it except the two front ends (`src/main.rs` and the
//! `vttiro-python` bindings).

mod admin_cmd;
mod backup_cmd;
mod config;
pub mod embedded;
mod eval_cmd;
mod job_runner;
mod models_cmd;
mod providers_cmd;
mod serve_cmd;
mod subtitles_cmd;
mod telemetry;
mod transcribe;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use config::LogFormat;
pub use config::RawConfig;
pub use vttiro_core::ErrorCode;

#[derive(Parser)]
#[command(
    name = "vttiro",
    version,
    about = "Video and audio to broadcast-quality WebVTT subtitles, offline or with a cloud engine.",
    propagate_version = true
)]
struct Cli {
    /// Log format on stderr: text (default) or json.
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transcribe media files into subtitles.
    Transcribe(Box<TranscribeArgs>),
    /// List, download, import, verify and remove models.
    Models {
        #[command(subcommand)]
        command: models_cmd::ModelsCommand,
    },
    /// Show the effective configuration and where each value came from.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check WebVTT/SRT files: syntax errors and readability warnings, with line numbers.
    Validate(subtitles_cmd::ValidateArgs),
    /// Convert subtitles between WebVTT and SRT.
    Convert(subtitles_cmd::ConvertArgs),
    /// WER of a transcript, DER of speaker turns: `eval --ref REF --hyp HYP`.
    Eval(eval_cmd::EvalArgs),
    /// Run the transcription service: HTTP API plus workers, on a local data directory.
    Serve(Box<serve_cmd::ServeArgs>),
    /// Run workers only (scale-out): they take jobs from the same data directory.
    Worker(serve_cmd::WorkerArgs),
    /// Create, list and revoke the service's API keys.
    Keys {
        #[command(subcommand)]
        command: admin_cmd::KeysCommand,
    },
    /// Check the service's hash-chained audit log, or export it as JSON lines.
    Audit {
        #[command(subcommand)]
        command: admin_cmd::AuditCommand,
    },
    /// Copy a data directory (databases snapshotted live, objects, secrets) with a
    /// checksummed manifest.
    Backup(backup_cmd::BackupArgs),
    /// Bring a backup back into a new or empty data directory, after checking every file.
    Restore(backup_cmd::RestoreArgs),
    /// Encryption at rest: make master keys, rotate stored objects to a new one.
    Storage {
        #[command(subcommand)]
        command: admin_cmd::StorageCommand,
    },
    /// List cloud engines: models, limits, prices and whether a key is set.
    Providers(providers_cmd::ProvidersArgs),
    /// Print version, compiled-in backends and GPU support.
    Version,
}

#[derive(Subcommand)]
enum ConfigCommand {
    Show,
}

#[derive(Args, Debug)]
pub struct TranscribeArgs {
    /// Media files (video or audio) to transcribe.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file (one input only); its extension picks the format unless --format is given.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Directory for outputs, named after each input.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Comma-separated formats: vtt, srt, json, txt, rttm.
    #[arg(long)]
    pub format: Option<String>,
    /// Model: a local model name (see `vttiro models list`) or CTranslate2 directory, or the
    /// cloud model of the first --engine (see `vttiro providers`).
    #[arg(long)]
    pub model: Option<String>,
    /// Spoken language (ISO 639-1), or auto to detect.
    #[arg(long)]
    pub language: Option<String>,
    /// Vocabulary or style hint given to the decoder.
    #[arg(long)]
    pub prompt: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// auto, cpu or gpu.
    #[arg(long)]
    pub device: Option<String>,
    /// Engine: local (default), openai, gemini, assemblyai or deepgram; a comma-separated
    /// list is a fallback chain (`deepgram,openai,local`). An entry may name its model
    /// (`openai:gpt-4o-transcribe`); --model names the first engine's.
    #[arg(long)]
    pub engine: Option<String>,
    /// Comma-separated words and names cloud engines should favour (Deepgram `keyterm`,
    /// AssemblyAI `keyterms_prompt`, the OpenAI and Gemini prompts); local engines take
    /// such hints through --prompt.
    #[arg(long)]
    pub vocabulary: Option<String>,
    /// Seconds a cloud provider may take to start answering (default 600).
    #[arg(long)]
    pub cloud_timeout: Option<u64>,
    /// Attempts per cloud request, the first included (default 5).
    #[arg(long)]
    pub cloud_attempts: Option<u32>,
    /// Local backend: auto, ct2 or whispercpp.
    #[arg(long)]
    pub backend: Option<String>,
    /// CTranslate2 compute type: auto, int8, int8_float16, float16, float32.
    #[arg(long)]
    pub compute_type: Option<String>,
    #[arg(long)]
    pub beam_size: Option<usize>,
    /// Audio track to use (0-based among audio tracks); default: the container's default.
    #[arg(long)]
    pub audio_track: Option<usize>,
    /// Transcribe everything, skipping voice activity detection.
    #[arg(long)]
    pub no_vad: bool,
    /// Never download a missing model.
    #[arg(long)]
    pub no_download: bool,
    /// Decode and plan, print what would be done, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Label every cue with its speaker (offline GE2E speaker model by default).
    #[arg(long)]
    pub diarize: bool,
    /// Exact number of speakers, when known (implies --diarize).
    #[arg(long)]
    pub speakers: Option<usize>,
    /// Fewest speakers to find (implies --diarize).
    #[arg(long)]
    pub min_speakers: Option<usize>,
    /// Most speakers to find (implies --diarize).
    #[arg(long)]
    pub max_speakers: Option<usize>,
    /// Names for the speakers in order of first appearance, e.g. "Ana,Ben" (implies
    /// --diarize); speakers beyond the list are "Speaker N".
    #[arg(long)]
    pub speaker_names: Option<String>,
    /// Speaker embedding model: ge2e (default, offline), an installed ONNX model such as
    /// wespeaker-resnet34, or a path to a .safetensors/.onnx file.
    #[arg(long)]
    pub speaker_model: Option<String>,
}

impl TranscribeArgs {
    /// The arguments a service job runs with: one input, every output in `output_dir`.
    pub fn for_job(input: PathBuf, output_dir: PathBuf) -> TranscribeArgs {
        TranscribeArgs {
            inputs: vec![input],
            output: None,
            output_dir: Some(output_dir),
            format: None,
            model: None,
            language: None,
            prompt: None,
            threads: None,
            device: None,
            engine: None,
            vocabulary: None,
            cloud_timeout: None,
            cloud_attempts: None,
            backend: None,
            compute_type: None,
            beam_size: None,
            audio_track: None,
            no_vad: false,
            no_download: false,
            dry_run: false,
            diarize: false,
            speakers: None,
            min_speakers: None,
            max_speakers: None,
            speaker_names: None,
            speaker_model: None,
        }
    }

    fn as_layer(&self) -> RawConfig {
        RawConfig {
            model: self.model.clone(),
            language: self.language.clone(),
            prompt: self.prompt.clone(),
            threads: self.threads,
            device: self.device.clone(),
            backend: self.backend.clone(),
            engine: self.engine.clone(),
            compute_type: self.compute_type.clone(),
            beam_size: self.beam_size,
            format: self.format.clone(),
            vad: self.no_vad.then_some(false),
            output_dir: self.output_dir.clone(),
            log_format: None,
            log: None,
            download: self.no_download.then_some(false),
            diarize: (self.diarize || self.speaker_names.is_some()).then_some(true),
            speakers: self.speakers,
            min_speakers: self.min_speakers,
            max_speakers: self.max_speakers,
            speaker_model: self.speaker_model.clone(),
            vocabulary: self.vocabulary.clone(),
            cloud_timeout: self.cloud_timeout,
            cloud_attempts: self.cloud_attempts,
            prices: None,
        }
    }
}

/// Logs on stderr, plus OpenTelemetry trace export when the environment asks for it; the
/// returned guard flushes the exporter when dropped.
fn init_logging(
    format: LogFormat,
    levels: Option<&str>,
) -> Result<Option<telemetry::Telemetry>, String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    // `levels` is VTTIRO_LOG or the config file's `log`, already validated. Without it only
    // our own crates speak: decoder libraries log recoverable oddities that would break the
    // one-line-per-error contract.
    let mut filter = tracing_subscriber::EnvFilter::new(levels.unwrap_or(
        "off,vttiro=warn,vttiro_cli=warn,vttiro_pipeline=warn,vttiro_asr=warn,vttiro_cloud=warn,vttiro_server=warn,vttiro_jobs=warn,vttiro_storage=warn,vttiro_media=warn,vttiro_models=warn,vttiro_vad=warn,vttiro_diarize=warn,vttiro_subtitles=warn",
    ));
    // At trace level the HTTP client hex-dumps every request, Authorization header and
    // uploaded audio included; no log level may show provider keys or users' media.
    // Added after the user's directives, these win over them for the same targets.
    for cap in ["ureq_proto=debug", "ureq=debug"] {
        if let Ok(directive) = cap.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // The log filter is the log layer's alone, so it cannot hide spans from the exporter.
    let fmt = match format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Text => fmt
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
    };
    let (guard, tracer) = telemetry::from_env()?.unzip();
    // A host process (Python) may already have a subscriber; the command then logs
    // through it instead of failing.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(tracer.map(telemetry::layer))
        .try_init();
    Ok(guard)
}

/// Runs the `vttiro` command on `args` (the program name first, as in `std::env::args_os`)
/// and returns its exit status.
pub fn run_cli<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // --help and --version end here too, with status 0.
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let mut layered = match config::load_layers() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    if let Some(f) = &cli.log_format {
        layered.apply(
            &RawConfig {
                log_format: Some(f.clone()),
                ..Default::default()
            },
            "flag",
        );
    }
    if let Command::Transcribe(args) = &cli.command {
        layered.apply(&args.as_layer(), "flag");
    }
    let settings = match config::Settings::validate(&layered.raw) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    let telemetry = match init_logging(settings.log_format, settings.log.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let code = match cli.command {
        Command::Transcribe(args) => transcribe::run(&args, &settings),
        Command::Models { command } => models_cmd::run(command, &settings),
        Command::Validate(args) => subtitles_cmd::validate(&args),
        Command::Convert(args) => subtitles_cmd::convert(&args),
        Command::Config {
            command: ConfigCommand::Show,
        } => match layered.render() {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                70
            }
        },
        Command::Eval(args) => eval_cmd::run(&args),
        Command::Providers(args) => providers_cmd::run(&args, &settings),
        Command::Serve(args) => serve_cmd::serve(&args, &layered.raw),
        Command::Worker(args) => serve_cmd::worker(&args, &layered.raw),
        Command::Keys { command } => admin_cmd::keys(&command),
        Command::Audit { command } => admin_cmd::audit_cmd(&command),
        Command::Storage { command } => admin_cmd::storage(&command),
        Command::Backup(args) => backup_cmd::backup(&args),
        Command::Restore(args) => backup_cmd::restore(&args),
        Command::Version => {
            println!("vttiro {}", env!("CARGO_PKG_VERSION"));
            println!("backends: {}", vttiro_asr::available_backends().join(", "));
            #[cfg(feature = "whispercpp")]
            println!(
                "whisper.cpp: {} ({})",
                vttiro_asr::whispercpp_version(),
                if vttiro_asr::whispercpp_gpu_support() {
                    "GPU backend compiled in"
                } else {
                    "CPU"
                }
            );
            match vttiro_asr::select_backend(
                None,
                vttiro_asr::Device::Auto,
                &vttiro_asr::Capabilities::detect(),
            ) {
                Ok(s) => println!("default: {} on {:?}", s.backend, s.device),
                Err(e) => println!("default: none ({e})"),
            }
            println!(
                "gpu: {}",
                if vttiro_asr::gpu_support() {
                    "nvidia (CTranslate2 + CUDA)"
                } else {
                    "none (CPU build; rebuild with --features cuda for NVIDIA)"
                }
            );
            0
        }
    };
    // Sends the spans still batched; `serve` and `worker` return here after SIGTERM.
    drop(telemetry);
    code
}
