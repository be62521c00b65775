//! Configuration in two stages. [`RawConfig`] is what each layer may say (every field
//! optional); layers merge in order defaults < user file < project file < `VTTIRO_*`
//! environment < flags, remembering where each value came from. [`Settings::validate`]
//! then turns the merged raw values into types that cannot be wrong, so the rest of the
//! binary never re-checks a string.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use vttiro_asr::Device;
use vttiro_cloud::{PriceTable, Provider};
use vttiro_diarize::SpeakerCount;
use vttiro_subtitles::OutputFormat;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub model: Option<String>,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub threads: Option<usize>,
    pub device: Option<String>,
    pub backend: Option<String>,
    pub engine: Option<String>,
    pub compute_type: Option<String>,
    pub beam_size: Option<usize>,
    pub format: Option<String>,
    pub vad: Option<bool>,
    pub output_dir: Option<PathBuf>,
    pub log_format: Option<String>,
    /// Log levels per module, as `tracing` filter directives
    /// (`warn,vttiro_server=info`); `VTTIRO_LOG` sets it from the environment.
    pub log: Option<String>,
    pub download: Option<bool>,
    pub diarize: Option<bool>,
    pub speakers: Option<usize>,
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    pub speaker_model: Option<String>,
    /// Comma-separated words and names cloud engines should favour.
    pub vocabulary: Option<String>,
    /// Cloud request timeout: seconds to wait for a provider to start answering.
    pub cloud_timeout: Option<u64>,
    /// Cloud attempts per request, the first included.
    pub cloud_attempts: Option<u32>,
    /// US dollars per audio minute by "provider/model" (or "provider/*"), overriding the
    /// built-in list prices.
    pub prices: Option<BTreeMap<String, f64>>,
}

macro_rules! for_each_field {
    ($m:ident) => {
        $m!(model);
        $m!(language);
        $m!(prompt);
        $m!(threads);
        $m!(device);
        $m!(backend);
        $m!(engine);
        $m!(compute_type);
        $m!(beam_size);
        $m!(format);
        $m!(vad);
        $m!(output_dir);
        $m!(log_format);
        $m!(log);
        $m!(download);
        $m!(diarize);
        $m!(speakers);
        $m!(min_speakers);
        $m!(max_speakers);
        $m!(speaker_model);
        $m!(vocabulary);
        $m!(cloud_timeout);
        $m!(cloud_attempts);
        $m!(prices);
    };
}

/// The merged configuration plus, for each key, the layer that set it.
#[derive(Debug, Default)]
pub struct Layered {
    pub raw: RawConfig,
    pub origin: BTreeMap<&'static str, String>,
}

impl Layered {
    pub fn apply(&mut self, layer: &RawConfig, origin: &str) {
        macro_rules! take {
            ($f:ident) => {
                if let Some(v) = &layer.$f {
                    self.raw.$f = Some(v.clone());
                    self.origin.insert(stringify!($f), origin.to_string());
                }
            };
        }
        for_each_field!(take);
    }

    /// Renders the effective configuration as TOML with each value's origin as a comment.
    pub fn render(&self) -> Result<String> {
        let table = toml::Value::try_from(&self.raw).context("serialising configuration")?;
        let mut out = String::new();
        if let toml::Value::Table(t) = table {
            for (k, v) in t {
                let origin = self
                    .origin
                    .get(k.as_str())
                    .map(String::as_str)
                    .unwrap_or("default");
                out.push_str(&format!("{k} = {v}  # from {origin}\n"));
            }
        }
        Ok(out)
    }
}

pub fn defaults() -> RawConfig {
    RawConfig {
        // No default model here: whether `model` was set decides if it names the model of
        // a cloud engine (see `EngineChoice`); the local default is applied in `validate`.
        threads: Some(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        ),
        device: Some("auto".into()),
        backend: Some("auto".into()),
        engine: Some("local".into()),
        compute_type: Some("auto".into()),
        beam_size: Some(5),
        format: Some("vtt".into()),
        vad: Some(true),
        log_format: Some("text".into()),
        download: Some(true),
        diarize: Some(false),
        speaker_model: Some("ge2e".into()),
        ..Default::default()
    }
}

pub fn user_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("vttiro").join("config.toml"))
}

pub fn read_file_layer(path: &Path) -> Result<Option<RawConfig>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let raw: RawConfig = toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{}: invalid configuration: {}", path.display(), e.message())
            })?;
            Ok(Some(raw))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read configuration", path.display())),
    }
}

pub fn env_layer(lookup: impl Fn(&str) -> Option<String>) -> Result<RawConfig> {
    let parse_usize = |key: &str| -> Result<Option<usize>> {
        lookup(key)
            .map(|v| {
                v.parse()
                    .with_context(|| format!("{key}={v}: expected a whole number"))
            })
            .transpose()
    };
    let parse_bool = |key: &str| -> Result<Option<bool>> {
        lookup(key)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => bail!("{key}={v}: expected true or false"),
            })
            .transpose()
    };
    Ok(RawConfig {
        model: lookup("VTTIRO_MODEL"),
        language: lookup("VTTIRO_LANGUAGE"),
        prompt: lookup("VTTIRO_PROMPT"),
        threads: parse_usize("VTTIRO_THREADS")?,
        device: lookup("VTTIRO_DEVICE"),
        backend: lookup("VTTIRO_BACKEND"),
        engine: lookup("VTTIRO_ENGINE"),
        compute_type: lookup("VTTIRO_COMPUTE_TYPE"),
        beam_size: parse_usize("VTTIRO_BEAM_SIZE")?,
        format: lookup("VTTIRO_FORMAT"),
        vad: parse_bool("VTTIRO_VAD")?,
        output_dir: lookup("VTTIRO_OUTPUT_DIR").map(PathBuf::from),
        log_format: lookup("VTTIRO_LOG_FORMAT"),
        log: lookup("VTTIRO_LOG"),
        download: parse_bool("VTTIRO_DOWNLOAD")?,
        diarize: parse_bool("VTTIRO_DIARIZE")?,
        speakers: parse_usize("VTTIRO_SPEAKERS")?,
        min_speakers: parse_usize("VTTIRO_MIN_SPEAKERS")?,
        max_speakers: parse_usize("VTTIRO_MAX_SPEAKERS")?,
        speaker_model: lookup("VTTIRO_SPEAKER_MODEL"),
        vocabulary: lookup("VTTIRO_VOCABULARY"),
        cloud_timeout: lookup("VTTIRO_CLOUD_TIMEOUT")
            .map(|v| {
                v.parse()
                    .with_context(|| format!("VTTIRO_CLOUD_TIMEOUT={v}: expected whole seconds"))
            })
            .transpose()?,
        cloud_attempts: lookup("VTTIRO_CLOUD_ATTEMPTS")
            .map(|v| {
                v.parse()
                    .with_context(|| format!("VTTIRO_CLOUD_ATTEMPTS={v}: expected a whole number"))
            })
            .transpose()?,
        prices: None,
    })
}

/// Loads every layer below the flags.
pub fn load_layers() -> Result<Layered> {
    let mut layered = Layered::default();
    layered.apply(&defaults(), "default");
    if let Some(path) = user_config_path() {
        if let Some(layer) = read_file_layer(&path)? {
            layered.apply(&layer, &path.display().to_string());
        }
    }
    let project = PathBuf::from("vttiro.toml");
    if let Some(layer) = read_file_layer(&project)? {
        layered.apply(&layer, "./vttiro.toml");
    }
    layered.apply(&env_layer(|k| std::env::var(k).ok())?, "environment");
    Ok(layered)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Auto,
    Ct2,
    WhisperCpp,
}

/// One link of `--engine`: the local backends or a cloud provider, with its model when the
/// entry names one (`openai:gpt-4o-transcribe`, `local:small.en`).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineChoice {
    pub provider: Option<Provider>,
    pub model: Option<String>,
}

impl EngineChoice {
    pub fn name(&self) -> &'static str {
        self.provider.map(Provider::name).unwrap_or("local")
    }

    pub fn is_local(&self) -> bool {
        self.provider.is_none()
    }
}

fn engine_chain(text: &str, model: Option<&str>) -> Result<Vec<EngineChoice>> {
    let mut chain = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, entry_model) = match entry.split_once(':') {
            Some((n, m)) if !m.trim().is_empty() => (n.trim(), Some(m.trim().to_string())),
            _ => (entry.trim_end_matches(':'), None),
        };
        let provider = if name.eq_ignore_ascii_case("local") {
            None
        } else {
            Some(Provider::parse(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "--engine {name}: expected local, openai, gemini, assemblyai or deepgram (comma-separated for a fallback chain)"
                )
            })?)
        };
        let choice = EngineChoice {
            provider,
            model: entry_model,
        };
        if chain.iter().any(|c: &EngineChoice| c == &choice) {
            bail!("--engine {text}: {entry} is listed twice");
        }
        chain.push(choice);
    }
    if chain.is_empty() {
        bail!("--engine: no engine given");
    }
    // `--model` names the first engine's model unless that entry names its own.
    if let (Some(model), Some(first)) = (model, chain.first_mut()) {
        if first.model.is_none() {
            first.model = Some(model.to_string());
        }
    }
    for choice in &chain {
        if let (Some(provider), Some(model)) = (choice.provider, &choice.model) {
            if vttiro_models::lookup(model).is_some() {
                bail!(
                    "--model {model} is a local Whisper model, not a {} model; use e.g. --engine {}:{} (or put local first in the chain)",
                    provider.name(),
                    provider.name(),
                    provider.default_model()
                );
            }
        }
    }
    Ok(chain)
}

/// Validated settings: every value here has been checked once.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: String,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub threads: usize,
    pub device: Device,
    pub backend: Backend,
    pub compute_type: String,
    pub beam_size: usize,
    pub formats: Vec<OutputFormat>,
    pub vad: bool,
    pub output_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Validated filter directives; `None` keeps the built-in levels.
    pub log: Option<String>,
    pub download: bool,
    pub diarize: bool,
    pub speaker_count: SpeakerCount,
    pub speaker_model: String,
    /// `--engine`, in fallback order.
    pub engines: Vec<EngineChoice>,
    pub vocabulary: Vec<String>,
    pub cloud_timeout: Duration,
    pub cloud_attempts: u32,
    pub prices: PriceTable,
}

/// More speakers than this in one recording is a typo, not a conversation.
const MAX_SPEAKERS: usize = 50;

fn speaker_count(raw: &RawConfig) -> Result<SpeakerCount> {
    let check = |flag: &str, n: Option<usize>| -> Result<()> {
        match n {
            Some(n) if n == 0 || n > MAX_SPEAKERS => {
                bail!("--{flag} {n}: expected 1..={MAX_SPEAKERS}")
            }
            _ => Ok(()),
        }
    };
    check("speakers", raw.speakers)?;
    check("min-speakers", raw.min_speakers)?;
    check("max-speakers", raw.max_speakers)?;
    let default = SpeakerCount::default();
    let min = raw.min_speakers.unwrap_or(default.min);
    let max = raw.max_speakers.unwrap_or(default.max.max(min));
    if min > max {
        bail!("--min-speakers {min} is more than --max-speakers {max}");
    }
    if let Some(n) = raw.speakers {
        if raw.min_speakers.is_some_and(|m| m > n) || raw.max_speakers.is_some_and(|m| m < n) {
            bail!("--speakers {n} contradicts --min-speakers/--max-speakers");
        }
    }
    Ok(SpeakerCount {
        exact: raw.speakers,
        min,
        max,
    })
}

impl Settings {
    pub fn validate(raw: &RawConfig) -> Result<Settings> {
        let engines = engine_chain(
            raw.engine.as_deref().unwrap_or("local"),
            raw.model.as_deref(),
        )?;
        let cloud_timeout = raw.cloud_timeout.unwrap_or(600);
        if cloud_timeout == 0 || cloud_timeout > 24 * 3600 {
            bail!("--cloud-timeout {cloud_timeout}: expected 1..=86400 seconds");
        }
        let cloud_attempts = raw.cloud_attempts.unwrap_or(5);
        if cloud_attempts == 0 || cloud_attempts > 20 {
            bail!("--cloud-attempts {cloud_attempts}: expected 1..=20");
        }
        let mut prices = PriceTable::default();
        for (key, price) in raw.prices.iter().flatten() {
            let provider = key.split_once('/').and_then(|(p, _)| Provider::parse(p));
            if provider.is_none() || !price.is_finite() || *price < 0.0 {
                bail!("prices.\"{key}\" = {price}: expected \"provider/model\" (or \"provider/*\") = US dollars per minute");
            }
            prices.set(key, *price);
        }
        let threads = raw.threads.unwrap_or(1);
        if threads == 0 || threads > 256 {
            bail!("--threads {threads}: expected 1..=256");
        }
        let beam_size = raw.beam_size.unwrap_or(5);
        if beam_size == 0 || beam_size > 16 {
            bail!("--beam-size {beam_size}: expected 1..=16");
        }
        let device: Device = raw
            .device
            .as_deref()
            .unwrap_or("auto")
            .parse()
            .map_err(|e: vttiro_asr::AsrError| anyhow::anyhow!("--device: {e}"))?;
        let backend = match raw.backend.as_deref().unwrap_or("auto") {
            "auto" => Backend::Auto,
            "ct2" | "ctranslate2" => Backend::Ct2,
            "whispercpp" | "whisper.cpp" => Backend::WhisperCpp,
            other => bail!("--backend {other}: expected auto, ct2 or whispercpp"),
        };
        let mut formats = Vec::new();
        for part in raw.format.as_deref().unwrap_or("vtt").split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let f: OutputFormat = part.parse().map_err(|_| {
                anyhow::anyhow!("--format {part}: expected vtt, srt, json, txt or rttm")
            })?;
            if !formats.contains(&f) {
                formats.push(f);
            }
        }
        if formats.is_empty() {
            bail!("--format: no output format given");
        }
        let log_format = match raw.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("--log-format {other}: expected text or json"),
        };
        let log = raw.log.clone().filter(|l| !l.trim().is_empty());
        if let Some(directives) = &log {
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(directives) {
                bail!("log {directives:?}: not a log filter such as \"warn,vttiro_server=info\" ({e})");
            }
        }
        let language = raw
            .language
            .as_ref()
            .map(|l| l.trim().to_ascii_lowercase())
            .filter(|l| !l.is_empty() && l != "auto");
        if let Some(l) = &language {
            if !(2..=3).contains(&l.len()) || !l.chars().all(|c| c.is_ascii_lowercase()) {
                bail!("--language {l}: expected an ISO 639-1 code such as en, de or fr, or auto");
            }
        }
        Ok(Settings {
            // The local engine's model: its chain entry's, else the built-in default.
            model: engines
                .iter()
                .find(|c| c.is_local())
                .and_then(|c| c.model.clone())
                .unwrap_or_else(|| "tiny.en".into()),
            language,
            prompt: raw.prompt.clone().filter(|p| !p.trim().is_empty()),
            threads,
            device,
            backend,
            compute_type: raw.compute_type.clone().unwrap_or_else(|| "auto".into()),
            beam_size,
            formats,
            vad: raw.vad.unwrap_or(true),
            output_dir: raw.output_dir.clone(),
            log_format,
            log,
            download: raw.download.unwrap_or(true),
            // Asking for a speaker count is asking for speakers.
            diarize: raw.diarize.unwrap_or(false)
                || raw.speakers.is_some()
                || raw.min_speakers.is_some()
                || raw.max_speakers.is_some(),
            speaker_count: speaker_count(raw)?,
            speaker_model: raw.speaker_model.clone().unwrap_or_else(|| "ge2e".into()),
            engines,
            vocabulary: raw
                .vocabulary
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            cloud_timeout: Duration::from_secs(cloud_timeout),
            cloud_attempts,
            prices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win_and_origins_are_tracked() {
        let mut l = Layered::default();
        l.apply(&defaults(), "default");
        l.apply(
            &RawConfig {
                model: Some("base".into()),
                beam_size: Some(2),
                ..Default::default()
            },
            "user file",
        );
        let env = env_layer(|k| (k == "VTTIRO_MODEL").then(|| "small.en".to_string())).unwrap();
        l.apply(&env, "environment");
        assert_eq!(l.raw.model.as_deref(), Some("small.en"));
        assert_eq!(l.raw.beam_size, Some(2));
        assert_eq!(l.origin["model"], "environment");
        assert_eq!(l.origin["beam_size"], "user file");
        let shown = l.render().unwrap();
        assert!(
            shown.contains("model = \"small.en\"  # from environment"),
            "{shown}"
        );
    }

    #[test]
    fn bad_values_are_rejected_with_the_flag_named() {
        let bad = |raw: RawConfig| Settings::validate(&raw).unwrap_err().to_string();
        assert!(bad(RawConfig {
            threads: Some(0),
            ..defaults()
        })
        .starts_with("--threads 0"));
        assert!(bad(RawConfig {
            format: Some("vtt,doc".into()),
            ..defaults()
        })
        .starts_with("--format doc"));
        assert!(bad(RawConfig {
            device: Some("tpu".into()),
            ..defaults()
        })
        .contains("tpu"));
        assert!(bad(RawConfig {
            language: Some("english".into()),
            ..defaults()
        })
        .starts_with("--language"));
        let ok = Settings::validate(&RawConfig {
            format: Some("vtt, json,vtt".into()),
            ..defaults()
        })
        .unwrap();
        assert_eq!(ok.formats, vec![OutputFormat::Vtt, OutputFormat::Json]);
    }

    #[test]
    fn speaker_counts_are_checked_and_imply_diarization() {
        let bad = |raw: RawConfig| Settings::validate(&raw).unwrap_err().to_string();
        assert!(bad(RawConfig {
            speakers: Some(0),
            ..defaults()
        })
        .starts_with("--speakers 0"));
        assert!(bad(RawConfig {
            min_speakers: Some(4),
            max_speakers: Some(2),
            ..defaults()
        })
        .starts_with("--min-speakers 4"));
        assert!(bad(RawConfig {
            speakers: Some(5),
            max_speakers: Some(3),
            ..defaults()
        })
        .contains("contradicts"));
        let plain = Settings::validate(&defaults()).unwrap();
        assert!(!plain.diarize);
        let two = Settings::validate(&RawConfig {
            speakers: Some(2),
            ..defaults()
        })
        .unwrap();
        assert!(two.diarize);
        assert_eq!(two.speaker_count.exact, Some(2));
        let bounded = Settings::validate(&RawConfig {
            min_speakers: Some(2),
            max_speakers: Some(4),
            ..defaults()
        })
        .unwrap();
        assert_eq!(
            (bounded.speaker_count.min, bounded.speaker_count.max),
            (2, 4)
        );
    }

    #[test]
    fn engine_chains_take_models_per_entry_and_from_model() {
        let chain = |engine: &str, model: Option<&str>| {
            Settings::validate(&RawConfig {
                engine: Some(engine.into()),
                model: model.map(Into::into),
                ..defaults()
            })
            .map(|s| {
                s.engines
                    .iter()
                    .map(|c| format!("{}={}", c.name(), c.model.as_deref().unwrap_or("-")))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .map_err(|e| e.to_string())
        };
        assert_eq!(chain("local", None).unwrap(), "local=-");
        assert_eq!(
            chain("deepgram, openai:gpt-4o-transcribe ,local", Some("nova-2")).unwrap(),
            "deepgram=nova-2 openai=gpt-4o-transcribe local=-"
        );
        assert_eq!(
            chain("local:small.en,deepgram", Some("base")).unwrap(),
            "local=small.en deepgram=-"
        );
        assert!(chain("azure", None)
            .unwrap_err()
            .starts_with("--engine azure"));
        assert!(chain("openai,openai", None).unwrap_err().contains("twice"));
        assert!(chain("openai", Some("tiny.en"))
            .unwrap_err()
            .contains("local Whisper model"));
        let plain = Settings::validate(&defaults()).unwrap();
        assert_eq!(plain.model, "tiny.en");
    }

    #[test]
    fn prices_from_configuration_override_the_table() {
        let mut prices = BTreeMap::new();
        prices.insert("deepgram/nova-3".to_string(), 0.01);
        let settings = Settings::validate(&RawConfig {
            prices: Some(prices.clone()),
            ..defaults()
        })
        .unwrap();
        assert_eq!(
            settings
                .prices
                .estimate(Provider::Deepgram, "nova-3", 120.0),
            Some(0.02)
        );
        prices.insert("azure/whisper".to_string(), 0.01);
        let err = Settings::validate(&RawConfig {
            prices: Some(prices),
            ..defaults()
        })
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("prices.\"azure/whisper\""), "{err}");
    }

    #[test]
    fn env_values_are_parsed_strictly() {
        assert!(env_layer(|k| (k == "VTTIRO_THREADS").then(|| "many".to_string())).is_err());
        let vad_off = env_layer(|k| (k == "VTTIRO_VAD").then(|| "off".to_string())).unwrap();
        assert_eq!(vad_off.vad, Some(false));
    }

    #[test]
    fn unknown_keys_in_files_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("vttiro-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vttiro.toml");
        std::fs::write(&path, "modle = \"base\"\n").unwrap();
        let err = read_file_layer(&path).unwrap_err().to_string();
        assert!(
            err.contains("vttiro.toml") && err.contains("modle"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
