//! What vttiro knows about each provider before calling it: names, key variables, default
//! endpoints and models, limits, and list prices. `vttiro providers` prints this table.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    OpenAi,
    Gemini,
    AssemblyAi,
    Deepgram,
}

/// How precisely a model times what it hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Each word has its own start and end.
    Words,
    /// Phrases are timed; words are spread over them by length.
    Segments,
    /// Text only; vttiro sends each VAD chunk on its own and spreads words over it.
    Chunks,
}

impl Timing {
    pub fn as_str(self) -> &'static str {
        match self {
            Timing::Words => "words",
            Timing::Segments => "segments",
            Timing::Chunks => "chunks",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ModelInfo {
    pub name: &'static str,
    pub timing: Timing,
    pub speakers: bool,
    /// List price in US dollars per audio minute, as published when this table was written.
    pub usd_per_minute: f64,
}

const fn m(name: &'static str, timing: Timing, speakers: bool, usd: f64) -> ModelInfo {
    ModelInfo {
        name,
        timing,
        speakers,
        usd_per_minute: usd,
    }
}

const OPENAI_MODELS: &[ModelInfo] = &[
    m("whisper-1", Timing::Words, false, 0.006),
    m("gpt-4o-transcribe", Timing::Chunks, false, 0.006),
    m("gpt-4o-mini-transcribe", Timing::Chunks, false, 0.003),
    m("gpt-4o-transcribe-diarize", Timing::Segments, true, 0.006),
];
// Audio is 32 tokens a second: $1.00 per million input tokens for 2.5 Flash.
const GEMINI_MODELS: &[ModelInfo] = &[
    m("gemini-2.5-flash", Timing::Segments, true, 0.00192),
    m("gemini-2.5-pro", Timing::Segments, true, 0.0024),
    m("gemini-2.0-flash", Timing::Segments, true, 0.001344),
];
const ASSEMBLYAI_MODELS: &[ModelInfo] = &[
    m("universal-2", Timing::Words, true, 0.0025),
    m("universal-3-pro", Timing::Words, true, 0.0045),
    m("slam-1", Timing::Words, true, 0.0045),
    m("best", Timing::Words, true, 0.0062),
    m("nano", Timing::Words, true, 0.002),
];
const DEEPGRAM_MODELS: &[ModelInfo] = &[
    m("nova-3", Timing::Words, true, 0.0043),
    m("nova-2", Timing::Words, true, 0.0043),
];

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::OpenAi,
        Provider::Gemini,
        Provider::AssemblyAi,
        Provider::Deepgram,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Gemini => "gemini",
            Provider::AssemblyAi => "assemblyai",
            Provider::Deepgram => "deepgram",
        }
    }

    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Where the key is looked up, vttiro's own variable first, then the provider's usual one.
    pub fn key_variables(self) -> &'static [&'static str] {
        match self {
            Provider::OpenAi => &["VTTIRO_OPENAI_API_KEY", "OPENAI_API_KEY"],
            Provider::Gemini => &["VTTIRO_GEMINI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"],
            Provider::AssemblyAi => &["VTTIRO_ASSEMBLYAI_API_KEY", "ASSEMBLYAI_API_KEY"],
            Provider::Deepgram => &["VTTIRO_DEEPGRAM_API_KEY", "DEEPGRAM_API_KEY"],
        }
    }

    /// Overrides the endpoint: a proxy, a regional host, or a local stand-in.
    pub fn base_url_variable(self) -> &'static str {
        match self {
            Provider::OpenAi => "VTTIRO_OPENAI_BASE_URL",
            Provider::Gemini => "VTTIRO_GEMINI_BASE_URL",
            Provider::AssemblyAi => "VTTIRO_ASSEMBLYAI_BASE_URL",
            Provider::Deepgram => "VTTIRO_DEEPGRAM_BASE_URL",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com",
            Provider::Gemini => "https://generativelanguage.googleapis.com",
            Provider::AssemblyAi => "https://api.assemblyai.com",
            Provider::Deepgram => "https://api.deepgram.com",
        }
    }

    pub fn default_model(self) -> &'static str {
        match self {
            Provider::OpenAi => "whisper-1",
            Provider::Gemini => "gemini-2.5-flash",
            Provider::AssemblyAi => "universal-2",
            Provider::Deepgram => "nova-3",
        }
    }

    /// Models vttiro knows how to read; others are passed through and read like the
    /// provider's default family.
    pub fn models(self) -> &'static [ModelInfo] {
        match self {
            Provider::OpenAi => OPENAI_MODELS,
            Provider::Gemini => GEMINI_MODELS,
            Provider::AssemblyAi => ASSEMBLYAI_MODELS,
            Provider::Deepgram => DEEPGRAM_MODELS,
        }
    }

    pub fn model_info(self, model: &str) -> Option<&'static ModelInfo> {
        self.models().iter().find(|m| m.name == model)
    }

    /// The upload limit vttiro plans against, in bytes.
    pub fn max_upload_bytes(self) -> usize {
        match self {
            // 25 MB: the API enforces 26 214 400 bytes on the whole request.
            Provider::OpenAi => 25 * 1024 * 1024 - 64 * 1024,
            // Files API objects; inline requests are limited separately (see gemini.rs).
            Provider::Gemini => 2_000_000_000,
            Provider::AssemblyAi => 2_200_000_000,
            Provider::Deepgram => 2_000_000_000,
        }
    }

    /// One line on limits for `vttiro providers`.
    pub fn limits(self) -> &'static str {
        match self {
            Provider::OpenAi => "25 MB per request: re-encoded to Opus, then split at pauses",
            Provider::Gemini => {
                "20 MB inline, else Files API (2 GB); sent in pieces of at most 10 min"
            }
            Provider::AssemblyAi => "2.2 GB upload, 10 h per file",
            Provider::Deepgram => "2 GB per request",
        }
    }
}

/// US dollars per audio minute by `provider/model`; `provider/*` prices any model of the
/// provider. Built from the list prices above and overridden from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable(BTreeMap<String, f64>);

impl Default for PriceTable {
    fn default() -> Self {
        let mut table = BTreeMap::new();
        for provider in Provider::ALL {
            for model in provider.models() {
                table.insert(
                    format!("{}/{}", provider.name(), model.name),
                    model.usd_per_minute,
                );
            }
        }
        PriceTable(table)
    }
}

impl PriceTable {
    pub fn set(&mut self, key: &str, usd_per_minute: f64) {
        self.0.insert(key.to_string(), usd_per_minute);
    }

    pub fn per_minute(&self, provider: Provider, model: &str) -> Option<f64> {
        self.0
            .get(&format!("{}/{model}", provider.name()))
            .or_else(|| self.0.get(&format!("{}/*", provider.name())))
            .copied()
    }

    pub fn estimate(&self, provider: Provider, model: &str, billed_seconds: f64) -> Option<f64> {
        self.per_minute(provider, model)
            .map(|price| (price * billed_seconds / 60.0 * 1e6).round() / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_come_from_the_table_and_config_overrides_them() {
        let mut table = PriceTable::default();
        assert_eq!(
            table.estimate(Provider::Deepgram, "nova-3", 600.0),
            Some(0.043)
        );
        assert_eq!(
            table.estimate(Provider::Deepgram, "custom-model", 60.0),
            None
        );
        table.set("deepgram/*", 0.01);
        assert_eq!(
            table.estimate(Provider::Deepgram, "custom-model", 60.0),
            Some(0.01)
        );
        table.set("openai/whisper-1", 0.012);
        assert_eq!(
            table.estimate(Provider::OpenAi, "whisper-1", 30.0),
            Some(0.006)
        );
    }

    #[test]
    fn every_provider_has_a_default_model_in_its_table() {
        for p in Provider::ALL {
            assert!(p.model_info(p.default_model()).is_some(), "{}", p.name());
            assert_eq!(Provider::parse(&p.name().to_uppercase()), Some(p));
        }
    }
}
