//! What a transcription cost: the provider's billed audio and an estimate in US dollars.

use serde::Serialize;

/// Recorded by an engine for its most recent [`crate::Engine::transcribe`] call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// "openai", "gemini", "assemblyai", "deepgram", or the local backend's name.
    pub provider: String,
    pub model: String,
    /// Audio seconds the provider bills (its own figure when it reports one, else what
    /// was uploaded); 0 for local engines.
    pub billed_seconds: f64,
    /// From the price table; `None` when the table has no price for this provider/model.
    pub estimated_cost_usd: Option<f64>,
    /// HTTP requests sent, retries included.
    pub requests: u32,
    /// Requests that were repeated after a retryable failure.
    pub retries: u32,
    /// Engines of a fallback chain that failed before this one succeeded, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fell_back_from: Vec<FallbackAttempt>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FallbackAttempt {
    pub engine: String,
    pub code: &'static str,
    pub message: String,
}

impl Usage {
    /// A local engine's record: nothing billed.
    pub fn local(backend: &str, model: &str) -> Usage {
        Usage {
            provider: backend.to_string(),
            model: model.to_string(),
            billed_seconds: 0.0,
            estimated_cost_usd: Some(0.0),
            requests: 0,
            retries: 0,
            fell_back_from: Vec::new(),
        }
    }
}
