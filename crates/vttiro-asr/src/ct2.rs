//! The CTranslate2 backend: model loading and vttiro's long-form decoding loop over the
//! low-level encode / generate / align calls.

use ct2rs::sys::{self, ComputeType, Config, StorageView, Whisper, WhisperOptions};
use std::time::Instant;

use tracing::debug;
use vttiro_core::{seconds_to_ms, Segment, Transcript, Word, SAMPLE_RATE};

use crate::decode::{
    compression_ratio, refine_segment_words, refine_word_edges, split_segments,
    words_from_alignment, RawSegment, TimedWord, FRAME_SECONDS,
};
use crate::mel::{MelExtractor, HOP_LENGTH, WINDOW_FRAMES, WINDOW_SAMPLES};
use crate::tokenizer::WhisperTokenizer;
use crate::{
    AsrError, AudioWindow, Device, Engine, EngineProgress, LocalEngineConfig, Task,
    TranscribeOptions,
};

const BACKEND: &str = "ct2";
/// The decoder's positional limit; prompts and output share it.
const MAX_TEXT_POSITIONS: usize = 448;
const ALIGN_MEDIAN_FILTER: i64 = 7;

/// Where decoding time went, for JSON output and benchmarks.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Ct2Timings {
    pub mel_ms: u64,
    pub encode_ms: u64,
    pub generate_ms: u64,
    pub align_ms: u64,
    pub windows: u32,
    pub fallbacks: u32,
}

pub struct Ct2Engine {
    timings: Ct2Timings,
    model: Whisper,
    tokenizer: WhisperTokenizer,
    mel: MelExtractor,
    model_name: String,
    multilingual: bool,
}

fn failed(reason: impl std::fmt::Display) -> AsrError {
    AsrError::Failed {
        backend: BACKEND,
        reason: reason.to_string(),
    }
}

fn parse_compute_type(name: &str, gpu: bool) -> Result<ComputeType, AsrError> {
    Ok(match name {
        "auto" if gpu => ComputeType::FLOAT16,
        "auto" | "int8" => ComputeType::INT8,
        "int8_float32" => ComputeType::INT8_FLOAT32,
        "int8_float16" => ComputeType::INT8_FLOAT16,
        "float16" => ComputeType::FLOAT16,
        "float32" => ComputeType::FLOAT32,
        other => {
            return Err(AsrError::InvalidOption(format!(
                "unknown compute type '{other}' (expected auto, int8, int8_float32, int8_float16, float16 or float32)"
            )))
        }
    })
}

impl Ct2Engine {
    pub fn load(config: &LocalEngineConfig) -> Result<Self, AsrError> {
        let gpu = match config.device {
            Device::Gpu if !crate::gpu_support() => {
                return Err(AsrError::Unavailable(
                    "--device gpu: this vttiro build has no NVIDIA support; rebuild with `--features cuda` (CTranslate2 + CUDA) or use --device cpu".into(),
                ))
            }
            Device::Gpu => true,
            Device::Auto => crate::gpu_support() && cuda_device_present(),
            Device::Cpu => false,
        };
        let ct2_config = Config {
            device: if gpu {
                sys::Device::CUDA
            } else {
                sys::Device::CPU
            },
            compute_type: parse_compute_type(&config.compute_type, gpu)?,
            num_threads_per_replica: config.threads.max(1),
            ..Config::default()
        };
        let dir = &config.model_dir;
        for required in ["model.bin", "config.json"] {
            if !dir.join(required).exists() {
                return Err(AsrError::ModelInvalid {
                    model: dir.display().to_string(),
                    reason: format!("missing {required}; not a CTranslate2 Whisper model"),
                });
            }
        }
        let model = Whisper::new(dir, ct2_config).map_err(|e| AsrError::ModelInvalid {
            model: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let multilingual = model.is_multilingual();
        let tokenizer = WhisperTokenizer::load(dir, !multilingual)?;
        let mel = MelExtractor::new(model.n_mels());
        Ok(Ct2Engine {
            timings: Ct2Timings::default(),
            model,
            tokenizer,
            mel,
            model_name: config.model_name.clone(),
            multilingual,
        })
    }

    /// Stage timings of the last `transcribe` call.
    pub fn timings(&self) -> Ct2Timings {
        self.timings
    }

    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    fn detect_language(&self, encoder_output: &StorageView) -> Result<(String, f32), AsrError> {
        let results = self.model.detect_language(encoder_output).map_err(failed)?;
        let best = results
            .first()
            .and_then(|r| r.first())
            .ok_or_else(|| failed("language detection returned nothing"))?;
        parse_detection(&format!("{best:?}"))
            .ok_or_else(|| failed(format!("unexpected language detection result {best:?}")))
    }

    /// Decodes one 30-s window, retrying at higher temperatures while the output looks
    /// like a loop or the model is unsure, and returns the best attempt.
    fn generate_with_fallback(
        &mut self,
        encoder_output: &StorageView,
        prompt: &[usize],
        options: &TranscribeOptions,
    ) -> Result<WindowDecode, AsrError> {
        let prompt_tokens: Vec<&str> = prompt
            .iter()
            .map(|&id| self.tokenizer.token_str(id))
            .collect();
        // CTranslate2 counts max_length over prompt and output together (it decodes at
        // most min(total/2, total - prompt) new tokens), so pass the full decoder limit; a
        // value below the prompt length would underflow inside CTranslate2.
        let max_length = MAX_TEXT_POSITIONS;
        let mut best: Option<WindowDecode> = None;
        for &temperature in &options.temperatures {
            let mut gen = WhisperOptions {
                length_penalty: options.length_penalty,
                repetition_penalty: options.repetition_penalty,
                no_repeat_ngram_size: options.no_repeat_ngram_size,
                max_length,
                return_scores: true,
                return_no_speech_prob: true,
                suppress_blank: options.suppress_blank,
                max_initial_timestamp_index: (options.max_initial_timestamp as f64
                    / crate::decode::TIMESTAMP_SECONDS)
                    .round() as usize,
                ..WhisperOptions::default()
            };
            if temperature > 0.0 {
                gen.beam_size = 1;
                gen.num_hypotheses = options.best_of.max(1);
                gen.sampling_topk = 0;
                gen.sampling_temperature = temperature;
            } else {
                gen.beam_size = options.beam_size.max(1);
                gen.patience = options.patience;
                gen.num_hypotheses = 1;
            }
            let started = Instant::now();
            let results = self
                .model
                .generate(encoder_output, std::slice::from_ref(&prompt_tokens), &gen)
                .map_err(failed)?;
            self.timings.generate_ms += started.elapsed().as_millis() as u64;
            if temperature > 0.0 {
                self.timings.fallbacks += 1;
            }
            let result = results
                .into_iter()
                .next()
                .ok_or_else(|| failed("no result"))?;
            let no_speech_prob = result.no_speech_prob;
            let candidate = result
                .sequences_ids
                .iter()
                .zip(result.scores.iter())
                .map(|(ids, &score)| {
                    let len = ids.len() as f32;
                    let cumulative = score * len.powf(options.length_penalty);
                    let text = self.tokenizer.decode(ids);
                    WindowDecode {
                        tokens: ids.clone(),
                        avg_logprob: cumulative / (len + 1.0),
                        no_speech_prob,
                        temperature,
                        compression_ratio: compression_ratio(&text),
                    }
                })
                .max_by(|a, b| a.avg_logprob.total_cmp(&b.avg_logprob))
                .ok_or_else(|| failed("no hypothesis"))?;
            let too_repetitive = options
                .compression_ratio_threshold
                .is_some_and(|t| candidate.compression_ratio > t);
            let too_unsure = options
                .log_prob_threshold
                .is_some_and(|t| candidate.avg_logprob < t);
            let silent = options
                .no_speech_threshold
                .is_some_and(|t| no_speech_prob > t)
                && too_unsure;
            debug!(
                temperature,
                avg_logprob = candidate.avg_logprob,
                compression_ratio = candidate.compression_ratio,
                no_speech_prob,
                "window decoded"
            );
            let pass = silent || (!too_repetitive && !too_unsure);
            let better = match &best {
                None => true,
                // Among failures prefer non-looping output, then the most confident.
                Some(b) => {
                    let b_rep = options
                        .compression_ratio_threshold
                        .is_some_and(|t| b.compression_ratio > t);
                    (b_rep && !too_repetitive)
                        || (b_rep == too_repetitive && candidate.avg_logprob > b.avg_logprob)
                }
            };
            if pass {
                return Ok(candidate);
            }
            if better {
                best = Some(candidate);
            }
        }
        best.ok_or_else(|| failed("no temperature configured"))
    }

    fn align_words(
        &mut self,
        encoder_output: &StorageView,
        sot_sequence: &[usize],
        text_tokens: &[usize],
        num_frames: usize,
    ) -> Result<Vec<TimedWord>, AsrError> {
        if text_tokens.is_empty() {
            return Ok(Vec::new());
        }
        let words = self.tokenizer.split_words(text_tokens);
        let started = Instant::now();
        let aligned = self
            .model
            .align(
                encoder_output,
                sot_sequence,
                &[text_tokens.to_vec()],
                &[num_frames],
                ALIGN_MEDIAN_FILTER,
            )
            .map_err(failed)?;
        self.timings.align_ms += started.elapsed().as_millis() as u64;
        let Some(first) = aligned.first() else {
            return Ok(Vec::new());
        };
        let path: Vec<(i64, i64)> = first
            .alignments
            .iter()
            .map(|a| (a.token_x, a.frame_x))
            .collect();
        Ok(words_from_alignment(&words, &path, &first.text_token_probs))
    }
}

/// Where each speech window sits in the gathered stream and in the input.
struct StreamMap {
    /// (stream start sample, input start sample, length) per window, in order.
    pieces: Vec<(usize, usize, usize)>,
}

impl StreamMap {
    fn new(windows: &[AudioWindow], input_len: usize) -> Self {
        let mut pieces = Vec::with_capacity(windows.len());
        let mut at = 0;
        for w in windows {
            let (start, end) = (w.start.min(input_len), w.end.min(input_len));
            if end > start {
                pieces.push((at, start, end - start));
                at += end - start;
            }
        }
        StreamMap { pieces }
    }

    fn gather(&self, audio: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.pieces.iter().map(|p| p.2).sum());
        for &(_, start, len) in &self.pieces {
            out.extend_from_slice(&audio[start..start + len]);
        }
        out
    }

    /// Maps a stream time to the input timeline. A time exactly on a seam belongs to the
    /// earlier piece when it ends something (`is_end`) and to the later one otherwise.
    fn to_input_ms(&self, stream_ms: i64, is_end: bool) -> i64 {
        let sample = vttiro_core::ms_to_samples(stream_ms);
        let piece = self
            .pieces
            .iter()
            .find(|&&(at, _, len)| {
                if is_end {
                    sample > at && sample <= at + len
                } else {
                    sample >= at && sample < at + len
                }
            })
            .or_else(|| self.pieces.last());
        match piece {
            Some(&(at, start, len)) => {
                let within = sample.saturating_sub(at).min(len);
                vttiro_core::samples_to_ms(start + within)
            }
            None => stream_ms,
        }
    }
}

struct WindowDecode {
    tokens: Vec<usize>,
    avg_logprob: f32,
    no_speech_prob: f32,
    temperature: f32,
    compression_ratio: f32,
}

/// ct2rs exposes detection results only through `Debug`; read the language token and
/// probability from it rather than patching the bindings.
fn parse_detection(debug: &str) -> Option<(String, f32)> {
    let lang_start = debug.find("<|")? + 2;
    let lang_end = lang_start + debug[lang_start..].find("|>")?;
    let language = debug[lang_start..lang_end].to_string();
    let prob_start = debug.find("probability:")? + "probability:".len();
    let prob_text: String = debug[prob_start..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-'))
        .collect();
    Some((language, prob_text.parse().ok()?))
}

fn cuda_device_present() -> bool {
    std::path::Path::new("/dev/nvidiactl").exists()
}

impl Engine for Ct2Engine {
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
        self.timings = Ct2Timings::default();
        let input_total_ms = vttiro_core::samples_to_ms(audio.len());
        let translate = options.task == Task::Translate;
        let mut language = options.language.clone();
        let mut language_probability = 1.0f32;
        if !self.multilingual {
            if let Some(l) = &language {
                if l != "en" {
                    return Err(AsrError::InvalidOption(format!(
                        "--language {l}: model {} is English-only; use a multilingual model such as base or small",
                        self.model_name
                    )));
                }
            }
            language = Some("en".into());
        } else if let Some(l) = &language {
            if self.tokenizer.language_token(l).is_none() {
                return Err(AsrError::InvalidOption(format!(
                    "--language {l}: not a language this model knows (use an ISO 639-1 code such as en, de, fr)"
                )));
            }
        }

        let mut previous_tokens: Vec<usize> = options
            .prompt
            .as_deref()
            .map(|p| self.tokenizer.encode(p))
            .unwrap_or_default();
        let mut segments: Vec<Segment> = Vec::new();
        let mut last_speech_end = 0.0f64;

        // Decode the speech windows as one continuous stream with the pauses between them
        // removed, then map times back. Treating each window separately would cost a
        // second, mostly empty 30-s window whenever a window's last segment is cut off;
        // on a continuous stream every window is filled with new speech.
        let stream_map = StreamMap::new(windows, audio.len());
        let stream = stream_map.gather(audio);
        let audio = stream.as_slice();
        let total_ms = vttiro_core::samples_to_ms(audio.len());
        let started = Instant::now();
        let mel = self.mel.compute(audio, WINDOW_SAMPLES);
        self.timings.mel_ms += started.elapsed().as_millis() as u64;
        let content_frames = audio.len() / HOP_LENGTH;
        let mut seek = 0usize;
        while seek < content_frames {
            let segment_frames = (content_frames - seek).min(WINDOW_FRAMES);
            let window_start_s = seek as f64 * FRAME_SECONDS;
            let mut features = mel.window(seek);
            let view = StorageView::new(
                &[1, self.mel.n_mels(), WINDOW_FRAMES],
                &mut features,
                sys::Device::CPU,
            )
            .map_err(failed)?;
            let started = Instant::now();
            let encoder_output = self.model.encode(&view, false).map_err(failed)?;
            self.timings.encode_ms += started.elapsed().as_millis() as u64;
            self.timings.windows += 1;

            if language.is_none() {
                let (lang, prob) = self.detect_language(&encoder_output)?;
                language = Some(lang);
                language_probability = prob;
            }
            let lang = language.clone().unwrap_or_else(|| "en".into());
            let sot_sequence = self.tokenizer.sot_sequence(&lang, translate);
            let mut prompt = Vec::new();
            if !previous_tokens.is_empty() {
                prompt.push(self.tokenizer.sot_prev);
                let keep = MAX_TEXT_POSITIONS / 2 - 1;
                let from = previous_tokens.len().saturating_sub(keep);
                prompt.extend_from_slice(&previous_tokens[from..]);
            }
            prompt.extend_from_slice(&sot_sequence);

            let decoded = self.generate_with_fallback(&encoder_output, &prompt, options)?;
            let unsure = options
                .log_prob_threshold
                .is_some_and(|t| decoded.avg_logprob < t);
            let no_speech = options
                .no_speech_threshold
                .is_some_and(|t| decoded.no_speech_prob > t);
            if no_speech && unsure {
                debug!(window_start_s, "skipping window judged as no speech");
                seek += segment_frames;
                continue;
            }

            let (mut raw, advance) = split_segments(
                &decoded.tokens,
                &self.tokenizer,
                window_start_s,
                segment_frames,
            );
            seek += advance;
            // Never let a segment end past the audio this window actually has.
            let window_end_s = window_start_s + segment_frames as f64 * FRAME_SECONDS;
            for seg in raw.iter_mut() {
                seg.end = seg.end.min(window_end_s);
                seg.start = seg.start.min(seg.end);
            }
            raw.retain(|s| !self.tokenizer.decode(&s.tokens).trim().is_empty());

            let mut per_segment_words: Vec<Vec<TimedWord>> = vec![Vec::new(); raw.len()];
            if options.word_timestamps && !raw.is_empty() {
                let text_tokens: Vec<usize> = raw
                    .iter()
                    .flat_map(|s| s.tokens.iter().copied().filter(|&t| t < self.tokenizer.eot))
                    .collect();
                let mut words = self
                    .align_words(&encoder_output, &sot_sequence, &text_tokens, segment_frames)?
                    .into_iter();
                for (seg, bucket) in raw.iter().zip(per_segment_words.iter_mut()) {
                    let mut remaining = seg
                        .tokens
                        .iter()
                        .filter(|&&t| t < self.tokenizer.eot)
                        .count();
                    while remaining > 0 {
                        let Some(mut w) = words.next() else { break };
                        remaining = remaining.saturating_sub(w.token_count);
                        w.start = (w.start + window_start_s).min(window_end_s);
                        w.end = (w.end + window_start_s).min(window_end_s);
                        bucket.push(w);
                    }
                }
                for (seg, words) in raw.iter_mut().zip(per_segment_words.iter_mut()) {
                    refine_segment_words(seg, words, &mut last_speech_end);
                    refine_word_edges(audio, f64::from(SAMPLE_RATE), words);
                    if let (Some(first), Some(last)) = (words.first(), words.last()) {
                        seg.start = first.start;
                        seg.end = last.end;
                    }
                }
            }

            for (seg, words) in raw.into_iter().zip(per_segment_words) {
                segments.push(to_segment(
                    &self.tokenizer,
                    segments.len() as u32,
                    seg,
                    words,
                    &decoded,
                ));
            }

            if options.condition_on_previous_text
                && decoded.temperature <= options.prompt_reset_on_temperature
            {
                previous_tokens.extend(decoded.tokens.iter().copied());
            } else {
                previous_tokens.clear();
            }
            let stream_done_ms =
                seconds_to_ms(window_start_s + segment_frames as f64 * FRAME_SECONDS).min(total_ms);
            progress(EngineProgress {
                done_ms: stream_map.to_input_ms(stream_done_ms, true),
                total_ms: input_total_ms,
            });
        }
        for seg in segments.iter_mut() {
            seg.start_ms = stream_map.to_input_ms(seg.start_ms, false);
            seg.end_ms = stream_map.to_input_ms(seg.end_ms, true);
            for w in seg.words.iter_mut() {
                w.start_ms = stream_map.to_input_ms(w.start_ms, false);
                w.end_ms = stream_map.to_input_ms(w.end_ms, true).max(w.start_ms);
            }
        }
        Ok(Transcript {
            language: language.unwrap_or_else(|| "en".into()),
            language_probability,
            duration_ms: input_total_ms,
            model: self.model_name.clone(),
            segments,
        })
    }
}

fn to_segment(
    tok: &WhisperTokenizer,
    id: u32,
    seg: RawSegment,
    words: Vec<TimedWord>,
    decoded: &WindowDecode,
) -> Segment {
    Segment {
        id,
        start_ms: seconds_to_ms(seg.start),
        end_ms: seconds_to_ms(seg.end),
        text: tok.decode(&seg.tokens),
        words: words
            .into_iter()
            .map(|w| Word {
                text: w.text,
                start_ms: seconds_to_ms(w.start),
                end_ms: seconds_to_ms(w.end),
                probability: w.probability,
                speaker: None,
            })
            .collect(),
        avg_logprob: decoded.avg_logprob,
        no_speech_prob: decoded.no_speech_prob,
        compression_ratio: decoded.compression_ratio,
        temperature: decoded.temperature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_times_map_back_across_removed_pauses() {
        // Speech at 1-3 s and 10-12 s of the input; 2 s into the stream is the seam.
        let map = StreamMap::new(
            &[
                AudioWindow {
                    start: 16_000,
                    end: 48_000,
                },
                AudioWindow {
                    start: 160_000,
                    end: 192_000,
                },
            ],
            200_000,
        );
        assert_eq!(map.to_input_ms(500, false), 1_500);
        assert_eq!(map.to_input_ms(2_000, true), 3_000);
        assert_eq!(map.to_input_ms(2_000, false), 10_000);
        assert_eq!(map.to_input_ms(3_500, false), 11_500);
        assert_eq!(map.to_input_ms(9_000, true), 12_000);
        let audio: Vec<f32> = (0..200_000).map(|i| i as f32).collect();
        let stream = map.gather(&audio);
        assert_eq!(stream.len(), 64_000);
        assert_eq!(stream[32_000], 160_000.0);
    }

    #[test]
    fn detection_debug_output_is_parsed() {
        let parsed =
            parse_detection(r#"DetectionResult { language: "<|de|>", probability: 0.8734 }"#);
        assert_eq!(parsed, Some(("de".to_string(), 0.8734)));
        assert_eq!(parse_detection("garbage"), None);
    }
}
