//! vttiro-cloud owns the cloud recognisers — OpenAI, Google Gemini, AssemblyAI and
//! Deepgram — as [`vttiro_asr::Engine`]s: each speaks its provider's documented HTTP API and
//! turns the answer into the same transcript (words, times, speakers) the local engines
//! produce, with the provider, billed audio and an estimated cost in [`vttiro_asr::Usage`].
//!
//! Every request goes through [`http::HttpClient`], which owns timeouts, retries with
//! exponential backoff and jitter (honouring `Retry-After`), the per-provider circuit
//! breaker, failure classes from the error-code table, and key redaction. Audio reaches a
//! provider as vttiro decoded it (16 kHz mono), as WAV, as Opus when WAV is over the
//! provider's limit, or in pieces cut at VAD pauses ([`audio`]).
//!
//! It depends on vttiro-core, vttiro-asr (the trait) and vttiro-media (encoding uploads),
//! uses a blocking HTTP client, and must not know about subtitles, the pipeline, servers,
//! databases or async runtimes.

mod assemblyai;
pub mod audio;
pub mod breaker;
mod deepgram;
mod gemini;
pub mod http;
pub mod key;
pub mod multipart;
mod openai;
pub mod provider;
pub mod retry;
pub mod words;

use std::time::Duration;

use vttiro_asr::{AsrError, Engine, Usage};
use vttiro_core::ErrorCode;

pub use assemblyai::AssemblyAiEngine;
pub use deepgram::{DeepgramEngine, ListenResult, ListenSource};
pub use gemini::{parse_gemini_segments, GeminiEngine, GeminiSegment};
pub use key::ApiKey;
pub use openai::OpenAiEngine;
pub use provider::{ModelInfo, PriceTable, Provider, Timing};
pub use retry::RetryPolicy;

/// Everything a cloud engine needs; [`CloudConfig::from_lookup`] fills it from the
/// environment and callers override what their configuration sets.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    pub provider: Provider,
    pub model: String,
    /// Without a trailing slash; the provider's paths are appended.
    pub base_url: String,
    pub key: Option<ApiKey>,
    pub retry: RetryPolicy,
    /// Upload limit planned against; the provider's documented limit unless lowered.
    pub max_upload_bytes: usize,
    pub prices: PriceTable,
    /// First wait between status polls (AssemblyAI jobs, Gemini file processing); grows
    /// by half each poll up to `poll_max_interval`.
    pub poll_interval: Duration,
    pub poll_max_interval: Duration,
    /// Give up on a job that has not finished after this long.
    pub poll_timeout: Duration,
    /// AssemblyAI calls this URL when the job ends (the service's webhook receiver).
    pub webhook_url: Option<String>,
    /// Gemini: pieces whose request would exceed this go through the Files API.
    pub gemini_inline_max_bytes: usize,
    /// Gemini: longest piece per request, so the transcript fits the output token limit.
    pub gemini_piece_ms: i64,
    /// Opus bitrate used when WAV is over the upload limit.
    pub opus_kbps: u32,
}

impl CloudConfig {
    /// Everything in one upload unless the size limit forces pieces: for providers that
    /// handle silence well and label speakers per request.
    pub(crate) fn whole_upload_plan(&self) -> audio::PiecePlan {
        audio::PiecePlan {
            max_bytes: self.max_upload_bytes,
            max_piece_ms: None,
            split_gaps_over_ms: None,
            opus_kbps: self.opus_kbps,
        }
    }
}

impl CloudConfig {
    pub fn new(provider: Provider) -> CloudConfig {
        CloudConfig {
            provider,
            model: provider.default_model().to_string(),
            base_url: provider.default_base_url().to_string(),
            key: None,
            retry: RetryPolicy::default(),
            max_upload_bytes: provider.max_upload_bytes(),
            prices: PriceTable::default(),
            poll_interval: Duration::from_secs(1),
            poll_max_interval: Duration::from_secs(10),
            poll_timeout: Duration::from_secs(3 * 3600),
            webhook_url: None,
            // 20 MB for the whole request; base64 inflates the audio by a third.
            gemini_inline_max_bytes: 14 * 1024 * 1024,
            gemini_piece_ms: 10 * 60 * 1000,
            opus_kbps: 24,
        }
    }

    /// Key and endpoint from `lookup` (normally the process environment).
    pub fn from_lookup(
        provider: Provider,
        model: Option<&str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> CloudConfig {
        let mut config = CloudConfig::new(provider);
        if let Some(model) = model.filter(|m| !m.trim().is_empty()) {
            config.model = model.trim().to_string();
        }
        config.key = key_from(provider, &lookup).map(|(_, key)| key);
        if let Some(url) = lookup(provider.base_url_variable()).filter(|u| !u.trim().is_empty()) {
            config.base_url = url.trim().trim_end_matches('/').to_string();
        }
        config
    }

    fn require_key(&self) -> Result<ApiKey, AsrError> {
        self.key.clone().ok_or_else(|| AsrError::Provider {
            provider: self.provider.name(),
            code: ErrorCode::ProviderAuth,
            message: format!(
                "no API key: set {}",
                self.provider.key_variables().join(" or ")
            ),
        })
    }
}

/// The first of the provider's key variables that holds a key, and the key.
pub fn key_from(
    provider: Provider,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Option<(&'static str, ApiKey)> {
    provider
        .key_variables()
        .iter()
        .find_map(|var| lookup(var).and_then(ApiKey::new).map(|key| (*var, key)))
}

/// The engine for `config.provider`; fails only when no key is configured.
pub fn build_engine(config: CloudConfig) -> Result<Box<dyn Engine + Send>, AsrError> {
    let key = config.require_key()?;
    if config.provider.model_info(&config.model).is_none() {
        tracing::warn!(provider = config.provider.name(), model = %config.model, "model not in vttiro's table; reading it like the provider's default family, and its cost is unknown");
    }
    Ok(match config.provider {
        Provider::OpenAi => Box::new(OpenAiEngine::new(config, key)),
        Provider::Gemini => Box::new(GeminiEngine::new(config, key)),
        Provider::AssemblyAi => Box::new(AssemblyAiEngine::new(config, key)),
        Provider::Deepgram => Box::new(DeepgramEngine::new(config, key)),
    })
}

/// The usage record all cloud engines produce.
pub(crate) fn usage_record(
    config: &CloudConfig,
    billed_seconds: f64,
    stats: http::CallStats,
) -> Usage {
    Usage {
        provider: config.provider.name().to_string(),
        model: config.model.clone(),
        billed_seconds: (billed_seconds * 1000.0).round() / 1000.0,
        estimated_cost_usd: config
            .prices
            .estimate(config.provider, &config.model, billed_seconds),
        requests: stats.requests,
        retries: stats.retries,
        fell_back_from: Vec::new(),
    }
}

/// Reads a JSON body, naming what was wrong in one line.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON ({e})"))
}

/// What one upload gave back, already on the input's timeline.
pub(crate) struct PieceOutput {
    pub words: Vec<words::RawWord>,
    pub language: Option<String>,
    pub language_probability: f32,
    pub billed_seconds: f64,
}

/// The loop every cloud engine runs: plan the uploads, send each through `send`, report
/// progress, and join the pieces into one transcript plus its usage record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transcribe_pieces(
    config: &CloudConfig,
    http: &http::HttpClient,
    audio: &[f32],
    windows: &[vttiro_asr::AudioWindow],
    options: &vttiro_asr::TranscribeOptions,
    plan: &audio::PiecePlan,
    progress: &mut dyn FnMut(vttiro_asr::EngineProgress),
    mut send: impl FnMut(&audio::Piece) -> Result<PieceOutput, AsrError>,
) -> Result<(vttiro_core::Transcript, Usage), AsrError> {
    http.take_stats();
    let pieces = audio::plan_pieces(config.provider.name(), audio, windows, plan)?;
    let total_ms = vttiro_core::samples_to_ms(audio.len());
    let mut words = Vec::new();
    let mut language = None;
    let mut language_probability = 0.0;
    let mut billed_seconds = 0.0;
    for piece in &pieces {
        vttiro_asr::check_cancel(&options.cancel)?;
        let output = send(piece)?;
        words.extend(output.words);
        if language.is_none() {
            language = output.language;
            language_probability = output.language_probability;
        }
        billed_seconds += output.billed_seconds;
        progress(vttiro_asr::EngineProgress {
            done_ms: vttiro_core::samples_to_ms(piece.end),
            total_ms,
        });
    }
    tracing::info!(provider = config.provider.name(), model = %config.model, pieces = pieces.len(), billed_seconds, "transcribed");
    let usage = usage_record(config, billed_seconds, http.take_stats());
    let transcript = vttiro_core::Transcript {
        language: language
            .or_else(|| options.language.clone())
            .unwrap_or_else(|| "und".into()),
        language_probability,
        duration_ms: total_ms,
        model: config.model.clone(),
        segments: words::segments_from_words(words),
    };
    Ok((transcript, usage))
}

/// The struct, constructor and `Engine` impl every cloud engine shares. Each engine adds
/// `upload_plan(&self) -> PiecePlan` and `send(&self, audio, piece, options) ->
/// Result<PieceOutput, AsrError>`; [`transcribe_pieces`] does the rest.
macro_rules! cloud_engine {
    ($engine:ident, $name:literal) => {
        pub struct $engine {
            config: $crate::CloudConfig,
            key: $crate::ApiKey,
            http: $crate::http::HttpClient,
            usage: Option<vttiro_asr::Usage>,
        }

        impl $engine {
            pub fn new(config: $crate::CloudConfig, key: $crate::ApiKey) -> $engine {
                let http = $crate::http::HttpClient::new(
                    $name,
                    &config.base_url,
                    Some(key.clone()),
                    config.retry.clone(),
                );
                $engine {
                    config,
                    key,
                    http,
                    usage: None,
                }
            }
        }

        impl vttiro_asr::Engine for $engine {
            fn backend(&self) -> &'static str {
                $name
            }

            fn model_name(&self) -> &str {
                &self.config.model
            }

            fn transcribe(
                &mut self,
                audio: &[f32],
                windows: &[vttiro_asr::AudioWindow],
                options: &vttiro_asr::TranscribeOptions,
                progress: &mut dyn FnMut(vttiro_asr::EngineProgress),
            ) -> Result<vttiro_core::Transcript, vttiro_asr::AsrError> {
                self.usage = None;
                let plan = self.upload_plan();
                let (transcript, usage) = $crate::transcribe_pieces(
                    &self.config,
                    &self.http,
                    audio,
                    windows,
                    options,
                    &plan,
                    progress,
                    |piece| self.send(audio, piece, options),
                )?;
                self.usage = Some(usage);
                Ok(transcript)
            }

            fn usage(&self) -> Option<vttiro_asr::Usage> {
                self.usage.clone()
            }
        }
    };
}
pub(crate) use cloud_engine;
