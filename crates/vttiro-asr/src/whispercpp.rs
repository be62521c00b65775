//! The whisper.cpp backend (feature `whispercpp`): ggml models, decoded by whisper.cpp's
//! own long-form loop, for the GPUs CTranslate2 does not drive (Metal, ROCm, Vulkan, with
//! the matching cargo feature) and for q8_0/q5_0 models on small CPUs.
//!
//! Each [`AudioWindow`] is one `whisper_full` call on a decoding state created for the
//! transcription, so the text context carries from window to window as it does inside
//! one call. Word times come from whisper.cpp's DTW over the cross-attention alignment
//! heads, the same method the CTranslate2 backend uses, and go through the same
//! refinements.
//!
//! What whisper.cpp does not expose, and how [`TranscribeOptions`] maps onto it:
//! - the temperature schedule is `temperatures[0]` stepped by `temperatures[1] -
//!   temperatures[0]` up to 1.0 (the default schedule is exactly that);
//! - `compression_ratio_threshold` becomes whisper.cpp's token-entropy threshold, its
//!   stand-in for the gzip ratio (same default, 2.4; `None` disables it);
//! - past text is dropped from the prompt at temperatures of 0.5 and above, whisper.cpp's
//!   fixed version of `prompt_reset_on_temperature`;
//! - with beam search, fallback temperatures sample a single candidate (whisper-rs cannot
//!   set `best_of` alongside a beam size); with greedy decoding `best_of` applies;
//! - per-segment temperature is not reported and reads 0.0;
//! - `repetition_penalty`, `no_repeat_ngram_size` and `patience` have no whisper.cpp
//!   equivalent: values other than their neutral defaults are refused rather than ignored.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use tracing::debug;
use vttiro_core::{samples_to_ms, seconds_to_ms, Segment, Transcript, Word, SAMPLE_RATE};
use whisper_rs::{
    DtwAhead, DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext,
    WhisperContextParameters, WhisperState,
};

use crate::decode::{refine_segment_words, RawSegment, TimedWord};
use crate::{
    compression_ratio, AsrError, AudioWindow, Device, Engine, EngineProgress, LocalEngineConfig,
    Task, TranscribeOptions,
};

const BACKEND: &str = "whispercpp";
const GGML_MAGIC: u32 = 0x6767_6d6c;
/// Languages written without spaces between words: every character-complete token run
/// is a word of its own, as in OpenAI's word splitting.
const SPACELESS_LANGUAGES: &[&str] = &["zh", "ja", "th", "lo", "my", "yue"];

/// Whether this build's whisper.cpp was compiled with a GPU backend.
pub fn whispercpp_gpu_support() -> bool {
    crate::Capabilities::detect().whispercpp_gpu
}

/// The version of the bundled whisper.cpp.
pub fn whispercpp_version() -> &'static str {
    whisper_rs::WHISPER_CPP_VERSION
}

pub struct WhisperCppEngine {
    context: WhisperContext,
    /// whisper.cpp keeps a pointer to the alignment heads and reads them whenever a
    /// decoding state is created, so they must outlive `context` (fields drop in
    /// declaration order, and the boxed slice never moves).
    _alignment_heads: Box<[DtwAhead]>,
    model_name: String,
    model_path: PathBuf,
    threads: usize,
    multilingual: bool,
}

/// The header fields the engine needs before whisper.cpp loads the file.
#[derive(Debug, Clone, Copy)]
struct GgmlHeader {
    n_text_head: i32,
    n_text_layer: i32,
}

fn failed(reason: impl std::fmt::Display) -> AsrError {
    AsrError::Failed {
        backend: BACKEND,
        reason: reason.to_string(),
    }
}

fn invalid_model(path: &Path, reason: impl Into<String>) -> AsrError {
    AsrError::ModelInvalid {
        model: path.display().to_string(),
        reason: reason.into(),
    }
}

fn read_header(path: &Path) -> Result<GgmlHeader, AsrError> {
    let mut bytes = [0u8; 48];
    File::open(path)
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|e| invalid_model(path, format!("cannot read the ggml header: {e}")))?;
    let field = |index: usize| {
        let at = index * 4;
        i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    };
    if field(0) as u32 != GGML_MAGIC {
        return Err(invalid_model(
            path,
            "not a whisper.cpp ggml model (bad magic); convert the CTranslate2 model with `vttiro models convert`",
        ));
    }
    Ok(GgmlHeader {
        n_text_head: field(8),
        n_text_layer: field(9),
    })
}

/// The ggml file to load: `model_dir` itself if it is a file, else the file in it that
/// `compute_type` names (`auto` takes the most precise one present).
fn model_file(model_dir: &Path, compute_type: &str) -> Result<PathBuf, AsrError> {
    if model_dir.is_file() {
        return Ok(model_dir.to_path_buf());
    }
    let candidates: &[&str] = match compute_type {
        "auto" | "default" | "" => &[
            "ggml-model.bin",
            "ggml-model-q8_0.bin",
            "ggml-model-q5_0.bin",
        ],
        "float16" | "f16" => &["ggml-model.bin"],
        "q8_0" | "int8" | "int8_float16" | "int8_float32" => &["ggml-model-q8_0.bin"],
        "q5_0" => &["ggml-model-q5_0.bin"],
        other => {
            return Err(AsrError::InvalidOption(format!(
                "compute type '{other}' is not available with the whispercpp backend (expected auto, float16, q8_0 or q5_0)"
            )))
        }
    };
    candidates
        .iter()
        .map(|name| model_dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            invalid_model(
                model_dir,
                format!(
                    "no ggml model file ({}); create one with `vttiro models convert <model>`",
                    candidates.join(" or ")
                ),
            )
        })
}

/// Alignment heads from the CTranslate2 `config.json` next to a converted file: the exact
/// heads the model was published with.
fn heads_from_ct2_config(dir: &Path, header: &GgmlHeader) -> Option<Vec<DtwAhead>> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let heads: Vec<DtwAhead> = config
        .get("alignment_heads")?
        .as_array()?
        .iter()
        .map(|pair| {
            let layer = pair.get(0)?.as_i64()?;
            let head = pair.get(1)?.as_i64()?;
            let fits = (0..i64::from(header.n_text_layer)).contains(&layer)
                && (0..i64::from(header.n_text_head)).contains(&head);
            fits.then_some(DtwAhead {
                n_text_layer: layer as i32,
                n_head: head as i32,
            })
        })
        .collect::<Option<_>>()?;
    (!heads.is_empty()).then_some(heads)
}

/// whisper.cpp's built-in heads for the published checkpoints, by registry name.
fn preset_for(model_name: &str) -> Option<DtwModelPreset> {
    Some(match model_name {
        "tiny.en" => DtwModelPreset::TinyEn,
        "tiny" => DtwModelPreset::Tiny,
        "base.en" => DtwModelPreset::BaseEn,
        "base" => DtwModelPreset::Base,
        "small.en" => DtwModelPreset::SmallEn,
        "small" => DtwModelPreset::Small,
        "medium.en" => DtwModelPreset::MediumEn,
        "medium" => DtwModelPreset::Medium,
        "large-v1" => DtwModelPreset::LargeV1,
        "large-v2" => DtwModelPreset::LargeV2,
        "large-v3" => DtwModelPreset::LargeV3,
        "large-v3-turbo" => DtwModelPreset::LargeV3Turbo,
        _ => return None,
    })
}

impl WhisperCppEngine {
    /// Loads a ggml model. `config.model_dir` is a ggml file or a directory holding
    /// `ggml-model[-q8_0|-q5_0].bin` (as `vttiro models convert` writes them), chosen by
    /// `config.compute_type`.
    pub fn load(config: &LocalEngineConfig) -> Result<Self, AsrError> {
        // The same rules (and messages) the CLI's backend selection applies.
        let use_gpu = crate::select_backend(
            Some(crate::BackendKind::WhisperCpp),
            config.device,
            &crate::Capabilities::detect(),
        )?
        .device
            == Device::Gpu;
        let model_path = model_file(&config.model_dir, &config.compute_type)?;
        let header = read_header(&model_path)?;
        whisper_rs::install_logging_hooks();

        let model_dir = model_path.parent().unwrap_or(Path::new("."));
        let heads: Box<[DtwAhead]> = heads_from_ct2_config(model_dir, &header)
            .unwrap_or_default()
            .into_boxed_slice();
        let mode = if !heads.is_empty() {
            DtwMode::Custom { aheads: &heads }
        } else if let Some(model_preset) = preset_for(&config.model_name) {
            DtwMode::ModelPreset { model_preset }
        } else {
            // OpenAI's fallback for models without published heads: every head of the
            // upper half of the decoder.
            DtwMode::TopMost {
                n_top: (header.n_text_layer / 2).max(1),
            }
        };
        let mut params = WhisperContextParameters::default();
        params
            .use_gpu(use_gpu)
            .flash_attn(false)
            .dtw_parameters(DtwParameters {
                mode,
                ..DtwParameters::default()
            });
        let path_text = model_path
            .to_str()
            .ok_or_else(|| invalid_model(&model_path, "the path is not valid UTF-8"))?;
        let context = WhisperContext::new_with_params(path_text, params).map_err(|e| {
            invalid_model(
                &model_path,
                format!("whisper.cpp could not load it ({e}); see the log for the reason"),
            )
        })?;
        Ok(WhisperCppEngine {
            multilingual: context.is_multilingual(),
            context,
            _alignment_heads: heads,
            model_name: config.model_name.clone(),
            model_path,
            threads: config.threads.max(1),
        })
    }

    /// The ggml file that was loaded.
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    fn check_options(&self, options: &TranscribeOptions) -> Result<(), AsrError> {
        let unsupported = |flag: &str| {
            Err(AsrError::InvalidOption(format!(
                "{flag} is not supported by the whispercpp backend; use the ct2 backend or leave it at its default"
            )))
        };
        if options.repetition_penalty != 1.0 {
            return unsupported("--repetition-penalty");
        }
        if options.no_repeat_ngram_size != 0 {
            return unsupported("--no-repeat-ngram-size");
        }
        if options.patience != 1.0 {
            return unsupported("--patience");
        }
        if options.temperatures.is_empty() {
            return Err(AsrError::InvalidOption(
                "at least one decoding temperature is required".into(),
            ));
        }
        Ok(())
    }

    /// The language to decode in, validated against the model; `None` means detect.
    fn requested_language(&self, options: &TranscribeOptions) -> Result<Option<String>, AsrError> {
        crate::requested_language(
            options.language.as_deref(),
            self.multilingual,
            &self.model_name,
            |code| whisper_rs::get_lang_id(code).is_some(),
        )
    }

    fn detect_language(
        &self,
        state: &mut WhisperState,
        chunk: &[f32],
    ) -> Result<(String, f32), AsrError> {
        state.pcm_to_mel(chunk, self.threads).map_err(failed)?;
        let (id, probabilities) = state.lang_detect(0, self.threads).map_err(failed)?;
        let language = whisper_rs::get_lang_str(id)
            .ok_or_else(|| failed(format!("language detection returned unknown id {id}")))?;
        let probability = probabilities.get(id as usize).copied().unwrap_or(0.0);
        debug!(language, probability, "detected language");
        Ok((language.to_owned(), probability))
    }

    fn full_params<'a>(
        &self,
        options: &TranscribeOptions,
        language: &'a str,
        first_window: bool,
    ) -> FullParams<'a, 'a> {
        let strategy = if options.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: options.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy {
                best_of: options.best_of.max(1) as i32,
            }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(self.threads as i32);
        params.set_language(Some(language));
        params.set_translate(options.task == Task::Translate);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_token_timestamps(options.word_timestamps);
        params.set_suppress_blank(options.suppress_blank);
        // OpenAI's and CTranslate2's default suppress list (`suppress_tokens = -1`) bans the
        // non-speech symbols (music notes, brackets, speaker dashes); whisper.cpp only does
        // when asked.
        params.set_suppress_nst(true);
        params.set_max_initial_ts(options.max_initial_timestamp);

        let first = options.temperatures[0];
        params.set_temperature(first);
        let step = options
            .temperatures
            .get(1)
            .map_or(0.0, |second| second - first);
        params.set_temperature_inc(step.max(0.0));
        params.set_entropy_thold(options.compression_ratio_threshold.unwrap_or(0.0));
        params.set_logprob_thold(options.log_prob_threshold.unwrap_or(f32::NEG_INFINITY));
        params.set_no_speech_thold(options.no_speech_threshold.unwrap_or(1.0));

        // The state is fresh for every transcription, so the first window starts without
        // history either way; later windows keep the state's rolling context unless
        // conditioning is off, in which case no text history is used at all.
        params.set_no_context(first_window || !options.condition_on_previous_text);
        if first_window {
            if let Some(prompt) = options.prompt.as_deref().filter(|p| !p.trim().is_empty()) {
                params.set_initial_prompt(prompt);
            }
        } else if !options.condition_on_previous_text {
            params.set_n_max_text_ctx(0);
        }
        params
    }

    /// The segments and words of the last `full` call on `state`, in seconds from the
    /// start of the input.
    fn read_window(
        &self,
        state: &WhisperState,
        offset_s: f64,
        spaceless: bool,
    ) -> Result<Vec<DraftSegment>, AsrError> {
        let eot = self.context.token_eot();
        let seconds = |centiseconds: i64| offset_s + centiseconds.max(0) as f64 / 100.0;
        let mut drafts = Vec::new();
        for segment in state.as_iter() {
            let text = segment.to_str_lossy().map_err(failed)?.into_owned();
            let mut logprob_sum = 0.0f32;
            let mut token_count = 0usize;
            let mut words: Vec<DraftWord> = Vec::new();
            for index in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(index) else {
                    continue;
                };
                let data = token.token_data();
                logprob_sum += data.plog;
                token_count += 1;
                if data.id >= eot {
                    continue;
                }
                let bytes = token.to_bytes().map_err(failed)?;
                let starts_word = match words.last() {
                    None => true,
                    // Without spaces, every run of tokens that completes characters is a word.
                    Some(word) if spaceless => std::str::from_utf8(&word.bytes).is_ok(),
                    Some(_) => bytes.first() == Some(&b' '),
                };
                if starts_word {
                    words.push(DraftWord {
                        bytes: Vec::new(),
                        end_s: 0.0,
                        probability_sum: 0.0,
                        tokens: 0,
                    });
                }
                let word = words.last_mut().expect("a word was just ensured");
                word.bytes.extend_from_slice(bytes);
                word.probability_sum += data.p;
                word.tokens += 1;
                // whisper.cpp stamps each text token with the DTW step into the next row of
                // the alignment, i.e. the moment the following token starts: this token's
                // end. A token DTW could not place keeps -1; whisper.cpp's
                // timestamp-probability estimate stands in.
                let end = if data.t_dtw >= 0 { data.t_dtw } else { data.t1 };
                word.end_s = seconds(end);
            }
            if text.trim().is_empty() {
                continue;
            }
            drafts.push(DraftSegment {
                text,
                start_s: seconds(segment.start_timestamp()),
                end_s: seconds(segment.end_timestamp()),
                no_speech_prob: segment.no_speech_probability(),
                avg_logprob: if token_count > 0 {
                    logprob_sum / token_count as f32
                } else {
                    0.0
                },
                words,
            });
        }
        Ok(drafts)
    }
}

struct DraftWord {
    bytes: Vec<u8>,
    /// When the word's last token ends.
    end_s: f64,
    probability_sum: f32,
    tokens: usize,
}

struct DraftSegment {
    text: String,
    start_s: f64,
    end_s: f64,
    no_speech_prob: f32,
    avg_logprob: f32,
    words: Vec<DraftWord>,
}

/// Turns one window's token end times into segments with word spans. As in OpenAI's
/// alignment, a word runs from the end of the word before it to the end of its own last
/// token; the window's first word starts with its segment. The CTranslate2 backend's
/// refinements then cap words stretched over pauses and reconcile segment bounds, and
/// everything is kept inside the window, ordered and non-overlapping.
fn finish_window(
    drafts: Vec<DraftSegment>,
    window: (f64, f64),
    want_words: bool,
    last_speech_end: &mut f64,
    first_id: u32,
) -> Vec<Segment> {
    let (window_start, window_end) = window;
    let clamp = |t: f64| t.clamp(window_start, window_end);
    let mut previous_end = drafts
        .first()
        .map_or(window_start, |first| clamp(first.start_s));
    let mut segments = Vec::with_capacity(drafts.len());
    for (offset, draft) in drafts.into_iter().enumerate() {
        let mut raw = RawSegment {
            start: clamp(draft.start_s),
            end: clamp(draft.end_s),
            tokens: Vec::new(),
        };
        raw.start = raw.start.min(raw.end);
        let mut words: Vec<TimedWord> = Vec::with_capacity(draft.words.len());
        for word in draft.words {
            let start = previous_end;
            let end = clamp(word.end_s).max(start);
            previous_end = end;
            words.push(TimedWord {
                text: String::from_utf8_lossy(&word.bytes).into_owned(),
                start,
                end,
                probability: word.probability_sum / word.tokens.max(1) as f32,
                token_count: word.tokens,
            });
        }
        if want_words {
            refine_segment_words(&mut raw, &mut words, last_speech_end);
            for word in &mut words {
                word.start = clamp(word.start);
                word.end = clamp(word.end).max(word.start);
            }
            raw.start = clamp(raw.start);
            raw.end = clamp(raw.end).max(raw.start);
        } else {
            words.clear();
        }
        segments.push(Segment {
            id: first_id + offset as u32,
            start_ms: seconds_to_ms(raw.start),
            end_ms: seconds_to_ms(raw.end),
            compression_ratio: compression_ratio(&draft.text),
            text: draft.text,
            words: words
                .into_iter()
                .map(|word| Word {
                    text: word.text,
                    start_ms: seconds_to_ms(word.start),
                    end_ms: seconds_to_ms(word.end),
                    probability: word.probability,
                    speaker: None,
                })
                .collect(),
            avg_logprob: draft.avg_logprob,
            no_speech_prob: draft.no_speech_prob,
            temperature: 0.0,
        });
    }
    segments
}

impl Engine for WhisperCppEngine {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn transcribe(
        &mut self,
        audio: &[f32],
        windows: &[AudioWindow],
        options: &TranscribeOptions,
        progress: &mut dyn FnMut(EngineProgress),
    ) -> Result<Transcript, AsrError> {
        self.check_options(options)?;
        let total_ms = samples_to_ms(audio.len());
        let mut language = self.requested_language(options)?;
        let mut language_probability = 1.0f32;
        let mut state = self.context.create_state().map_err(failed)?;
        let mut segments: Vec<Segment> = Vec::new();
        let mut first_window = true;
        let mut last_speech_end = 0.0f64;

        for window in windows {
            crate::check_cancel(&options.cancel)?;
            let start = window.start.min(audio.len());
            let end = window.end.min(audio.len());
            if end <= start {
                continue;
            }
            let chunk = &audio[start..end];
            let lang = match &language {
                Some(lang) => lang.clone(),
                None => {
                    let (lang, probability) = self.detect_language(&mut state, chunk)?;
                    language_probability = probability;
                    language = Some(lang.clone());
                    lang
                }
            };
            let params = self.full_params(options, &lang, first_window);
            first_window = false;
            state.full(params, chunk).map_err(failed)?;

            let rate = f64::from(SAMPLE_RATE);
            let window_s = (start as f64 / rate, end as f64 / rate);
            let spaceless = SPACELESS_LANGUAGES.contains(&lang.as_str());
            let drafts = self.read_window(&state, window_s.0, spaceless)?;
            let window_segments = finish_window(
                drafts,
                window_s,
                options.word_timestamps,
                &mut last_speech_end,
                segments.len() as u32,
            );
            debug!(
                window_start_s = window_s.0,
                segments = window_segments.len(),
                "window decoded"
            );
            segments.extend(window_segments);
            progress(EngineProgress {
                done_ms: samples_to_ms(end).min(total_ms),
                total_ms,
            });
        }

        Ok(Transcript {
            language: language.unwrap_or_else(|| "en".into()),
            language_probability,
            duration_ms: total_ms,
            model: self.model_name.clone(),
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft_word(text: &str, end_s: f64) -> DraftWord {
        DraftWord {
            bytes: text.as_bytes().to_vec(),
            end_s,
            probability_sum: 0.9,
            tokens: 1,
        }
    }

    fn segment(text: &str, start_s: f64, end_s: f64, words: Vec<DraftWord>) -> DraftSegment {
        DraftSegment {
            text: text.into(),
            start_s,
            end_s,
            no_speech_prob: 0.0,
            avg_logprob: -0.2,
            words,
        }
    }

    fn spans(segments: &[Segment]) -> Vec<(i64, i64)> {
        segments
            .iter()
            .flat_map(|s| s.words.iter().map(|w| (w.start_ms, w.end_ms)))
            .collect()
    }

    #[test]
    fn words_run_from_the_previous_end_to_their_own() {
        let drafts = vec![
            segment(
                " Ask not what",
                1.0,
                1.9,
                vec![
                    draft_word(" Ask", 1.3),
                    draft_word(" not", 1.5),
                    draft_word(" what", 1.8),
                ],
            ),
            // An end before the previous one must not make time run backwards.
            segment(" your", 2.0, 2.4, vec![draft_word(" your", 1.7)]),
        ];
        let mut last_speech_end = 0.0;
        let segments = finish_window(drafts, (0.5, 3.0), true, &mut last_speech_end, 7);
        assert_eq!(segments.iter().map(|s| s.id).collect::<Vec<_>>(), [7, 8]);
        assert_eq!(
            spans(&segments),
            [
                (1_000, 1_300),
                (1_300, 1_500),
                (1_500, 1_800),
                (1_800, 1_800)
            ]
        );
        assert_eq!(segments[0].words[0].text, " Ask");
        assert!((segments[0].words[0].probability - 0.9).abs() < 1e-6);
        assert_eq!(segments[0].start_ms, 1_000);
    }

    #[test]
    fn times_outside_the_window_are_clamped_and_words_can_be_left_out() {
        let drafts = vec![segment(
            " Hello there.",
            4.9,
            9.0,
            vec![draft_word(" Hello", 5.3), draft_word(" there.", 6.5)],
        )];
        let mut last_speech_end = 0.0;
        let timed = finish_window(drafts, (5.0, 6.0), true, &mut last_speech_end, 0);
        assert_eq!(timed[0].start_ms, 5_000);
        assert!(timed[0].end_ms <= 6_000);
        assert_eq!(spans(&timed), [(5_000, 5_300), (5_300, 6_000)]);
        let drafts = vec![segment(
            " Hello.",
            5.0,
            5.5,
            vec![draft_word(" Hello.", 5.4)],
        )];
        let untimed = finish_window(drafts, (5.0, 6.0), false, &mut last_speech_end, 0);
        assert!(untimed[0].words.is_empty());
        assert_eq!((untimed[0].start_ms, untimed[0].end_ms), (5_000, 5_500));
    }

    #[test]
    fn compute_types_pick_the_matching_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ggml-model-q5_0.bin"), b"x").unwrap();
        assert_eq!(
            model_file(dir.path(), "auto").unwrap(),
            dir.path().join("ggml-model-q5_0.bin")
        );
        assert!(matches!(
            model_file(dir.path(), "float16"),
            Err(AsrError::ModelInvalid { .. })
        ));
        assert!(matches!(
            model_file(dir.path(), "bfloat16"),
            Err(AsrError::InvalidOption(_))
        ));
        let file = dir.path().join("ggml-model-q5_0.bin");
        assert_eq!(model_file(&file, "float16").unwrap(), file);
    }

    #[test]
    fn foreign_files_are_refused_before_whisper_cpp_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        std::fs::write(&path, [0u8; 64]).unwrap();
        let error = read_header(&path).unwrap_err();
        assert!(error.to_string().contains("bad magic"), "{error}");
        assert_eq!(error.code(), vttiro_core::ErrorCode::ModelInvalid);
    }
}
