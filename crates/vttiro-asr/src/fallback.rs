//! A chain of engines tried in order (`--engine deepgram,openai,local`): when one fails,
//! the next gets the same audio. Engines are built only when reached, so a chain ending in
//! `local` loads no model while the cloud answers.

use vttiro_core::{ErrorCode, Transcript};

use crate::usage::FallbackAttempt;
use crate::{AsrError, AudioWindow, Engine, EngineProgress, TranscribeOptions, Usage};

pub type EngineFactory = Box<dyn FnMut() -> Result<Box<dyn Engine>, AsrError> + Send>;

struct Link {
    name: String,
    factory: EngineFactory,
    engine: Option<Box<dyn Engine>>,
}

pub struct FallbackEngine {
    links: Vec<Link>,
    /// Index of the engine that produced the last transcript.
    last: Option<usize>,
    usage: Option<Usage>,
}

impl FallbackEngine {
    pub fn new() -> FallbackEngine {
        FallbackEngine {
            links: Vec::new(),
            last: None,
            usage: None,
        }
    }

    /// Appends `name` to the chain; `factory` runs the first time the chain reaches it.
    pub fn push(&mut self, name: impl Into<String>, factory: EngineFactory) {
        self.links.push(Link {
            name: name.into(),
            factory,
            engine: None,
        });
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    fn try_link(
        link: &mut Link,
        audio: &[f32],
        windows: &[AudioWindow],
        options: &TranscribeOptions,
        progress: &mut dyn FnMut(EngineProgress),
    ) -> Result<Transcript, AsrError> {
        if link.engine.is_none() {
            link.engine = Some((link.factory)()?);
        }
        let engine = link.engine.as_mut().expect("built above");
        engine.transcribe(audio, windows, options, progress)
    }
}

impl Default for FallbackEngine {
    fn default() -> Self {
        FallbackEngine::new()
    }
}

impl Engine for FallbackEngine {
    fn backend(&self) -> &'static str {
        self.last
            .and_then(|i| self.links[i].engine.as_ref())
            .map(|e| e.backend())
            .unwrap_or("fallback")
    }

    fn model_name(&self) -> &str {
        self.last
            .and_then(|i| self.links[i].engine.as_ref())
            .map(|e| e.model_name())
            .unwrap_or("")
    }

    fn transcribe(
        &mut self,
        audio: &[f32],
        windows: &[AudioWindow],
        options: &TranscribeOptions,
        progress: &mut dyn FnMut(EngineProgress),
    ) -> Result<Transcript, AsrError> {
        let mut failed: Vec<(String, AsrError)> = Vec::new();
        let count = self.links.len();
        for index in 0..count {
            let link = &mut self.links[index];
            match Self::try_link(link, audio, windows, options, progress) {
                Ok(transcript) => {
                    self.last = Some(index);
                    let engine = link.engine.as_ref().expect("succeeded");
                    let mut usage = engine
                        .usage()
                        .unwrap_or_else(|| Usage::local(engine.backend(), engine.model_name()));
                    usage.fell_back_from = failed
                        .iter()
                        .map(|(name, e)| FallbackAttempt {
                            engine: name.clone(),
                            code: e.code().as_str(),
                            message: e.to_string(),
                        })
                        .collect();
                    for (name, e) in &failed {
                        tracing::warn!(engine = %name, code = %e.code(), error = %e, "engine failed; fell back");
                    }
                    self.usage = Some(usage);
                    return Ok(transcript);
                }
                // A stop the caller asked for ends the chain; the next engine is no
                // answer to it.
                Err(AsrError::Cancelled) => {
                    self.usage = None;
                    return Err(AsrError::Cancelled);
                }
                Err(e) => {
                    let last_link = index + 1 == count;
                    if !last_link {
                        tracing::warn!(engine = %link.name, code = %e.code(), error = %e, "engine failed; trying the next one");
                    }
                    failed.push((link.name.clone(), e));
                }
            }
        }
        self.usage = None;
        Err(chain_failure(failed))
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.clone()
    }
}

/// One error for a chain where every engine failed: alone, the engine's own error; else a
/// summary naming each engine, coded by the shared failure class when there is one.
fn chain_failure(mut failed: Vec<(String, AsrError)>) -> AsrError {
    if failed.len() == 1 {
        return failed.pop().expect("one").1;
    }
    let first = failed.first().map(|(_, e)| e.code());
    let code = if failed.iter().all(|(_, e)| Some(e.code()) == first) {
        first.unwrap_or(ErrorCode::EngineFailed)
    } else {
        ErrorCode::EngineFailed
    };
    let summary = failed
        .iter()
        .map(|(name, e)| format!("{name}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    AsrError::Coded {
        code,
        message: format!("every engine failed ({summary})"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A link that answers like a local engine whose caller cancelled it.
    struct Stopped;

    impl Engine for Stopped {
        fn backend(&self) -> &'static str {
            "stopped"
        }

        fn model_name(&self) -> &str {
            "none"
        }

        fn transcribe(
            &mut self,
            _audio: &[f32],
            _windows: &[AudioWindow],
            options: &TranscribeOptions,
            _progress: &mut dyn FnMut(EngineProgress),
        ) -> Result<Transcript, AsrError> {
            crate::check_cancel(&options.cancel)?;
            Err(AsrError::Failed {
                backend: "stopped",
                reason: "only cancelled runs are expected here".into(),
            })
        }
    }

    #[test]
    fn a_cancelled_link_ends_the_chain_instead_of_falling_back() {
        let built = Arc::new(AtomicUsize::new(0));
        let mut chain = FallbackEngine::new();
        chain.push(
            "local",
            Box::new(|| Ok(Box::new(Stopped) as Box<dyn Engine>)),
        );
        let counter = built.clone();
        chain.push(
            "next",
            Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(Box::new(Stopped) as Box<dyn Engine>)
            }),
        );
        let options = TranscribeOptions::default();
        options.cancel.cancel();
        let result = chain.transcribe(&[0.0; 16], &[], &options, &mut |_| {});
        assert!(matches!(result, Err(AsrError::Cancelled)), "{result:?}");
        assert_eq!(built.load(Ordering::SeqCst), 0, "the next link was built");
        assert!(chain.usage().is_none());
    }

    #[test]
    fn the_cancel_flag_is_not_part_of_what_options_mean() {
        // Checkpoint fingerprints hash the options' Debug text.
        let fresh = TranscribeOptions::default();
        let cancelled = TranscribeOptions::default();
        cancelled.cancel.cancel();
        assert_eq!(format!("{fresh:?}"), format!("{cancelled:?}"));
        // Clones share the flag: the caller's copy stops the engine's.
        let engine_copy = fresh.clone();
        fresh.cancel.cancel();
        assert!(engine_copy.cancel.is_cancelled());
    }
}
