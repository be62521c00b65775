//! The CTranslate2 backend: model loading and vttiro's long-form decoding loop over the
//! low-level encode / generate / align calls.

use ct2rs::sys::{self, ComputeType, Config, StorageView, Whisper, WhisperOptions};
use std::time::Instant;

use tracing::debug;
use vttiro_core::{seconds_to_ms, Segment, Transcript, Word, SAMPLE_RATE};

use crate::decode::{
    compression_ratio, refine_segment_words, refine_word_edges, skips_speech, split_segments,
    words_from_alignment, RawSegment, TimedWord, FRAME_SECONDS,
};
use crate::mel::{LogMel, MelExtractor, HOP_LENGTH, WINDOW_FRAMES, WINDOW_SAMPLES};
use crate::tokenizer::WhisperTokenizer;
use crate::{
    AsrError, AudioWindow, Device, Engine, EngineProgress, LocalEngineConfig, Task,
    TranscribeOptions,
};

const BACKEND: &str = "ct2";
/// The decoder's positional limit; prompts and output share it.
const MAX_TEXT_POSITIONS: usize = 448;
const ALIGN_MEDIAN_FILTER: i64 = 7;
/// No word lasts this long, and the VAD removes pauses over 2 s, so a word (or a silence
/// between segments) this long in the speech stream means the model skipped speech there
/// (seen with tiny.en when the previous text primes a different topic).
const SKIPPED_SPEECH_S: f64 = 3.0;

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

impl Ct2Timings {
    /// Sums another stream's timings into these (stage times add up across streams).
    fn add(&mut self, other: &Ct2Timings) {
        self.mel_ms += other.mel_ms;
        self.encode_ms += other.encode_ms;
        self.generate_ms += other.generate_ms;
        self.align_ms += other.align_ms;
        self.windows += other.windows;
        self.fallbacks += other.fallbacks;
    }
}

pub struct Ct2Engine {
    timings: Ct2Timings,
    model: Whisper,
    /// Independent decoding streams run at once, one CTranslate2 replica each.
    streams: usize,
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
        // The same rules (and messages) the CLI's backend selection applies.
        let gpu = crate::select_backend(
            Some(crate::BackendKind::Ct2),
            config.device,
            &crate::Capabilities::detect(),
        )?
        .device
            == Device::Gpu;
        let dir = &config.model_dir;
        let streams = if gpu {
            1
        } else {
            cpu_streams(config.threads, config.parallel_streams, model_bytes(dir))
        };
        let ct2_config = Config {
            device: if gpu {
                sys::Device::CUDA
            } else {
                sys::Device::CPU
            },
            compute_type: parse_compute_type(&config.compute_type, gpu)?,
            // One replica per stream, each on its share of the threads.
            device_indices: vec![0; streams],
            num_threads_per_replica: (config.threads / streams).max(1),
            ..Config::default()
        };
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
        debug!(streams, threads = config.threads, "CTranslate2 replicas");
        Ok(Ct2Engine {
            timings: Ct2Timings::default(),
            model,
            streams,
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

    /// How many windows groups this engine decodes at once.
    pub fn parallel_streams(&self) -> usize {
        self.streams
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
        &self,
        encoder_output: &StorageView,
        prompt: &[usize],
        options: &TranscribeOptions,
        timings: &mut Ct2Timings,
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
            timings.generate_ms += started.elapsed().as_millis() as u64;
            if temperature > 0.0 {
                timings.fallbacks += 1;
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
        &self,
        encoder_output: &StorageView,
        sot_sequence: &[usize],
        text_tokens: &[usize],
        num_frames: usize,
        timings: &mut Ct2Timings,
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
        timings.align_ms += started.elapsed().as_millis() as u64;
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

    /// Samples in the stream.
    fn len(&self) -> usize {
        self.pieces.last().map_or(0, |&(at, _, len)| at + len)
    }

    /// Copies the stream from sample `start` into `buf`, zeros past its end. The stream is
    /// never built whole: for a 2-hour input that copy alone would be 460 MB.
    fn read(&self, audio: &[f32], start: usize, buf: &mut [f32]) {
        buf.fill(0.0);
        let end = start + buf.len();
        let first = self
            .pieces
            .partition_point(|&(at, _, len)| at + len <= start);
        for &(at, input_start, len) in &self.pieces[first..] {
            if at >= end {
                break;
            }
            let from = start.max(at);
            let to = end.min(at + len);
            buf[from - start..to - start]
                .copy_from_slice(&audio[input_start + (from - at)..input_start + (to - at)]);
        }
    }

    /// The piece holding a stream sample. A sample exactly on a seam belongs to the
    /// earlier piece when it ends something (`is_end`) and to the later one otherwise.
    fn piece_at(&self, sample: usize, is_end: bool) -> Option<usize> {
        self.pieces
            .iter()
            .position(|&(at, _, len)| {
                if is_end {
                    sample > at && sample <= at + len
                } else {
                    sample >= at && sample < at + len
                }
            })
            .or_else(|| self.pieces.len().checked_sub(1))
    }

    fn piece_to_input(&self, piece: usize, sample: usize) -> i64 {
        let (at, start, len) = self.pieces[piece];
        vttiro_core::samples_to_ms(start + sample.saturating_sub(at).min(len))
    }

    /// Maps a stream time to the input timeline.
    fn to_input_ms(&self, stream_ms: i64, is_end: bool) -> i64 {
        let sample = vttiro_core::ms_to_samples(stream_ms);
        match self.piece_at(sample, is_end) {
            Some(piece) => self.piece_to_input(piece, sample),
            None => stream_ms,
        }
    }

    /// Maps a word's stream span to the input. A word cannot straddle a removed pause,
    /// so one that reaches across a seam is kept on the side holding most of it.
    fn word_to_input_ms(&self, start_ms: i64, end_ms: i64) -> (i64, i64) {
        let (start, end) = (
            vttiro_core::ms_to_samples(start_ms),
            vttiro_core::ms_to_samples(end_ms),
        );
        match (self.piece_at(start, false), self.piece_at(end, true)) {
            (Some(first), Some(last)) if first < last => {
                let (at, _, len) = self.pieces[first];
                let seam = at + len;
                if seam - start >= end.saturating_sub(seam) {
                    (
                        self.piece_to_input(first, start),
                        self.piece_to_input(first, seam),
                    )
                } else {
                    let (next_at, _, _) = self.pieces[last];
                    (
                        self.piece_to_input(last, next_at.max(start)),
                        self.piece_to_input(last, end),
                    )
                }
            }
            _ => (
                self.to_input_ms(start_ms, false),
                self.to_input_ms(end_ms, true),
            ),
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
        let requested = crate::requested_language(
            options.language.as_deref(),
            self.multilingual,
            &self.model_name,
            |code| self.tokenizer.language_token(code).is_some(),
        )?;
        let groups = partition_windows(windows, self.streams, MIN_STREAM_SAMPLES);
        // Every stream must decode in the same language, so detect it once up front.
        let language = match requested {
            Some(code) => Some((code, 1.0)),
            None if groups.len() > 1 => Some(self.detect_language_of(audio, windows)?),
            None => None,
        };
        let speech_samples: usize = windows.iter().map(|w| w.end.saturating_sub(w.start)).sum();
        let report = |done_samples: usize| EngineProgress {
            done_ms: (input_total_ms as f64 * done_samples as f64 / speech_samples.max(1) as f64)
                as i64,
            total_ms: input_total_ms,
        };

        let outputs: Vec<Result<StreamOutput, AsrError>> = if groups.len() == 1 {
            let mut on_window = |done: usize| progress(report(done));
            vec![self.decode_stream(audio, windows, language.clone(), options, &mut on_window)]
        } else {
            let (sender, receiver) = std::sync::mpsc::channel::<(usize, usize)>();
            let this = &*self;
            std::thread::scope(|scope| {
                let handles: Vec<_> = groups
                    .iter()
                    .enumerate()
                    .map(|(index, range)| {
                        let sender = sender.clone();
                        let language = language.clone();
                        let group = &windows[range.clone()];
                        scope.spawn(move || {
                            let mut on_window = |done: usize| {
                                let _ = sender.send((index, done));
                            };
                            this.decode_stream(audio, group, language, options, &mut on_window)
                        })
                    })
                    .collect();
                drop(sender);
                let mut done = vec![0usize; groups.len()];
                for (index, group_done) in receiver {
                    done[index] = group_done;
                    progress(report(done.iter().sum()));
                }
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(failed("a decoding stream panicked")))
                    })
                    .collect()
            })
        };

        let mut segments: Vec<Segment> = Vec::new();
        let mut detected = language;
        for output in outputs {
            let output = output?;
            self.timings.add(&output.timings);
            if detected.is_none() {
                detected = output.language;
            }
            for mut seg in output.segments {
                seg.id = segments.len() as u32;
                segments.push(seg);
            }
        }
        let (language, language_probability) = detected.unwrap_or_else(|| ("en".into(), 1.0));
        Ok(Transcript {
            language,
            language_probability,
            duration_ms: input_total_ms,
            model: self.model_name.clone(),
            segments,
        })
    }
}

/// Below this much speech a group is not split further: the replica start-up and the
/// lost text context would cost more than the parallelism gains.
const MIN_STREAM_SAMPLES: usize = 60 * SAMPLE_RATE as usize;

/// One 30-s decoding window within a stream.
#[derive(Debug, Clone, Copy)]
struct WindowSpan {
    start_s: f64,
    frames: usize,
    /// Whether more audio follows this window in the stream.
    more_follows: bool,
}

/// A decoded window: its best attempt, complete segments, where the next window starts
/// (frames from this one's start) and each segment's aligned words.
struct WindowResult {
    decoded: WindowDecode,
    raw: Vec<RawSegment>,
    advance: usize,
    words: Vec<Vec<TimedWord>>,
}

/// What one stream of windows decoded to, with times already on the input timeline.
struct StreamOutput {
    segments: Vec<Segment>,
    timings: Ct2Timings,
    /// The language detected on the stream's first window, when none was given.
    language: Option<(String, f32)>,
}

/// Splits `windows` into at most `max_groups` contiguous runs of similar speech length,
/// none shorter than `min_samples` of speech. Windows end at pauses, so every cut falls
/// in a pause and costs only the text context across it.
fn partition_windows(
    windows: &[AudioWindow],
    max_groups: usize,
    min_samples: usize,
) -> Vec<std::ops::Range<usize>> {
    let lengths: Vec<usize> = windows
        .iter()
        .map(|w| w.end.saturating_sub(w.start))
        .collect();
    let total: usize = lengths.iter().sum();
    let groups = (total / min_samples.max(1))
        .clamp(1, max_groups.max(1))
        .min(windows.len().max(1));
    if groups <= 1 {
        return std::iter::once(0..windows.len()).collect();
    }
    let mut ranges = Vec::with_capacity(groups);
    let mut start = 0;
    let mut covered = 0usize;
    for cut in 1..groups {
        let target = total * cut / groups;
        // The window boundary whose cumulative speech is nearest the target, leaving at
        // least one window for every group still to come.
        let mut end = start + 1;
        covered += lengths[start];
        while end < windows.len() - (groups - cut) {
            let next = covered + lengths[end];
            if next.abs_diff(target) > covered.abs_diff(target) {
                break;
            }
            covered = next;
            end += 1;
        }
        ranges.push(start..end);
        start = end;
    }
    ranges.push(start..windows.len());
    ranges
}

impl Ct2Engine {
    /// Detects the language on the first 30 s of speech.
    fn detect_language_of(
        &self,
        audio: &[f32],
        windows: &[AudioWindow],
    ) -> Result<(String, f32), AsrError> {
        let stream_map = StreamMap::new(windows, audio.len());
        let mut first = vec![0.0f32; stream_map.len().min(WINDOW_SAMPLES)];
        stream_map.read(audio, 0, &mut first);
        let mel = self.mel.compute(&first, WINDOW_SAMPLES);
        self.detect_language(&self.encode_window(&mel, 0)?)
    }

    /// Runs the encoder on the 30-s window of `mel` starting at frame `seek`.
    fn encode_window(&self, mel: &LogMel, seek: usize) -> Result<StorageView<'static>, AsrError> {
        let mut features = mel.window(seek);
        let view = StorageView::new(
            &[1, self.mel.n_mels(), WINDOW_FRAMES],
            &mut features,
            sys::Device::CPU,
        )
        .map_err(failed)?;
        self.model.encode(&view, false).map_err(failed)
    }

    /// Generates one window (with temperature fallback), splits it into segments and
    /// aligns their words (times in stream seconds, unrefined). `None` when the window
    /// is judged to hold no speech.
    fn decode_window(
        &self,
        encoder_output: &StorageView,
        sot_sequence: &[usize],
        prompt: &[usize],
        options: &TranscribeOptions,
        window: WindowSpan,
        timings: &mut Ct2Timings,
    ) -> Result<Option<WindowResult>, AsrError> {
        let decoded = self.generate_with_fallback(encoder_output, prompt, options, timings)?;
        let unsure = options
            .log_prob_threshold
            .is_some_and(|t| decoded.avg_logprob < t);
        let no_speech = options
            .no_speech_threshold
            .is_some_and(|t| decoded.no_speech_prob > t);
        if no_speech && unsure {
            return Ok(None);
        }
        let (mut raw, advance) = split_segments(
            &decoded.tokens,
            &self.tokenizer,
            window.start_s,
            window.frames,
            window.more_follows,
        );
        // Never let a segment end past the audio this window actually has.
        let window_end_s = window.start_s + window.frames as f64 * FRAME_SECONDS;
        for seg in raw.iter_mut() {
            seg.end = seg.end.min(window_end_s);
            seg.start = seg.start.min(seg.end);
        }
        raw.retain(|s| !self.tokenizer.decode(&s.tokens).trim().is_empty());

        let mut words: Vec<Vec<TimedWord>> = vec![Vec::new(); raw.len()];
        if options.word_timestamps && !raw.is_empty() {
            let text_tokens: Vec<usize> = raw
                .iter()
                .flat_map(|s| s.tokens.iter().copied().filter(|&t| t < self.tokenizer.eot))
                .collect();
            let mut aligned = self
                .align_words(
                    encoder_output,
                    sot_sequence,
                    &text_tokens,
                    window.frames,
                    timings,
                )?
                .into_iter();
            for (seg, bucket) in raw.iter().zip(words.iter_mut()) {
                let mut remaining = seg
                    .tokens
                    .iter()
                    .filter(|&&t| t < self.tokenizer.eot)
                    .count();
                while remaining > 0 {
                    let Some(mut w) = aligned.next() else { break };
                    remaining = remaining.saturating_sub(w.token_count);
                    w.start = (w.start + window.start_s).min(window_end_s);
                    w.end = (w.end + window.start_s).min(window_end_s);
                    bucket.push(w);
                }
            }
        }
        Ok(Some(WindowResult {
            decoded,
            raw,
            advance,
            words,
        }))
    }

    /// vttiro's long-form loop over one run of windows. `language` `None` detects it on the
    /// first window; `on_window` hears how many speech samples are done.
    fn decode_stream(
        &self,
        audio: &[f32],
        windows: &[AudioWindow],
        mut language: Option<(String, f32)>,
        options: &TranscribeOptions,
        on_window: &mut dyn FnMut(usize),
    ) -> Result<StreamOutput, AsrError> {
        let mut timings = Ct2Timings::default();
        let translate = options.task == Task::Translate;
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
        let stream_len = stream_map.len();
        let started = Instant::now();
        let mel = self
            .mel
            .compute_from(stream_len, WINDOW_SAMPLES, &mut |start, buf| {
                stream_map.read(audio, start, buf)
            });
        timings.mel_ms += started.elapsed().as_millis() as u64;
        let content_frames = stream_len / HOP_LENGTH;
        let mut window_audio = Vec::with_capacity(WINDOW_SAMPLES);
        let mut seek = 0usize;
        while seek < content_frames {
            crate::check_cancel(&options.cancel)?;
            let segment_frames = (content_frames - seek).min(WINDOW_FRAMES);
            let window_start_s = seek as f64 * FRAME_SECONDS;
            let started = Instant::now();
            let encoder_output = self.encode_window(&mel, seek)?;
            timings.encode_ms += started.elapsed().as_millis() as u64;
            timings.windows += 1;

            if language.is_none() {
                language = Some(self.detect_language(&encoder_output)?);
            }
            let lang = language.as_ref().map_or("en", |(code, _)| code.as_str());
            let sot_sequence = self.tokenizer.sot_sequence(lang, translate);
            let mut prompt = Vec::new();
            if !previous_tokens.is_empty() {
                prompt.push(self.tokenizer.sot_prev);
                let keep = MAX_TEXT_POSITIONS / 2 - 1;
                let from = previous_tokens.len().saturating_sub(keep);
                prompt.extend_from_slice(&previous_tokens[from..]);
            }
            prompt.extend_from_slice(&sot_sequence);

            let more_follows = seek + segment_frames < content_frames;
            let window = WindowSpan {
                start_s: window_start_s,
                frames: segment_frames,
                more_follows,
            };
            let mut result = self.decode_window(
                &encoder_output,
                &sot_sequence,
                &prompt,
                options,
                window,
                &mut timings,
            )?;
            // Primed by the previous text, the model sometimes skips speech on a new topic
            // and stretches its words over it; without the prime it usually does not.
            if prompt.len() > sot_sequence.len()
                && result
                    .as_ref()
                    .is_some_and(|r| skips_speech(&r.words, SKIPPED_SPEECH_S))
            {
                debug!(
                    window_start_s,
                    "window skipped speech; decoding it again without the previous text"
                );
                let retry = self.decode_window(
                    &encoder_output,
                    &sot_sequence,
                    &sot_sequence,
                    options,
                    window,
                    &mut timings,
                )?;
                if retry
                    .as_ref()
                    .is_some_and(|r| !skips_speech(&r.words, SKIPPED_SPEECH_S))
                {
                    result = retry;
                }
            }
            let Some(WindowResult {
                decoded,
                mut raw,
                advance,
                words: mut per_segment_words,
            }) = result
            else {
                debug!(window_start_s, "skipping window judged as no speech");
                seek += segment_frames;
                on_window((seek * HOP_LENGTH).min(stream_len));
                continue;
            };
            if options.word_timestamps {
                // The edges are refined against this window's samples, so word times
                // shift into the window and back.
                window_audio.resize(segment_frames * HOP_LENGTH, 0.0);
                stream_map.read(audio, seek * HOP_LENGTH, &mut window_audio);
                for (seg, words) in raw.iter_mut().zip(per_segment_words.iter_mut()) {
                    refine_segment_words(seg, words, &mut last_speech_end);
                    for w in words.iter_mut() {
                        w.start -= window_start_s;
                        w.end -= window_start_s;
                    }
                    refine_word_edges(&window_audio, f64::from(SAMPLE_RATE), words);
                    for w in words.iter_mut() {
                        w.start += window_start_s;
                        w.end += window_start_s;
                    }
                    if let (Some(first), Some(last)) = (words.first(), words.last()) {
                        seg.start = first.start;
                        seg.end = last.end;
                    }
                }
            }

            seek += advance;
            let kept_tokens: Vec<usize> =
                raw.iter().flat_map(|s| s.tokens.iter().copied()).collect();
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
                // Only what was kept: text about to be decoded again must not prompt itself.
                previous_tokens.extend(kept_tokens);
            } else {
                previous_tokens.clear();
            }
            on_window((seek * HOP_LENGTH).min(stream_len));
        }
        for seg in segments.iter_mut() {
            seg.start_ms = stream_map.to_input_ms(seg.start_ms, false);
            seg.end_ms = stream_map.to_input_ms(seg.end_ms, true);
            for w in seg.words.iter_mut() {
                let (start, end) = stream_map.word_to_input_ms(w.start_ms, w.end_ms);
                w.start_ms = start;
                w.end_ms = end.max(start);
            }
        }
        Ok(StreamOutput {
            segments,
            timings,
            language,
        })
    }
}

/// Parallel decoding streams for a CPU run. One stream per thread: measured on 2 cores,
/// tiny.en's beam-5 decoder gains nothing from a second thread (2 threads: 7.2 s for
/// 120 s of speech; 1 thread: 6.4 s; two 1-thread streams side by side: 3.6 s), because
/// its matrices are too small to split. Capped at 4 streams, and by memory: every stream
/// holds its own copy of the weights.
fn cpu_streams(threads: usize, requested: usize, model_bytes: u64) -> usize {
    if requested > 0 {
        return requested.min(threads.max(1));
    }
    const WEIGHT_BUDGET: u64 = 3 << 30;
    let by_memory = (WEIGHT_BUDGET / model_bytes.max(1)).max(1) as usize;
    threads.clamp(1, 4).min(by_memory)
}

fn model_bytes(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("model.bin")).map_or(0, |m| m.len())
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
        // A word from 1.7 s to 2.2 s of the stream is mostly before the seam: it ends
        // where the first piece does instead of jumping 7 s into the second.
        assert_eq!(map.word_to_input_ms(1_700, 2_200), (2_700, 3_000));
        // Mostly after the seam: it starts where the second piece does.
        assert_eq!(map.word_to_input_ms(1_900, 2_600), (10_000, 10_600));
        assert_eq!(map.word_to_input_ms(2_100, 2_600), (10_100, 10_600));
        let audio: Vec<f32> = (0..200_000).map(|i| i as f32).collect();
        assert_eq!(map.len(), 64_000);
        // A read across the seam and past the end of the stream.
        let mut buf = vec![-1.0f32; 6];
        map.read(&audio, 31_998, &mut buf);
        assert_eq!(
            buf,
            [47_998.0, 47_999.0, 160_000.0, 160_001.0, 160_002.0, 160_003.0]
        );
        map.read(&audio, 63_998, &mut buf);
        assert_eq!(buf, [191_998.0, 191_999.0, 0.0, 0.0, 0.0, 0.0]);
    }

    fn window(start_s: usize, end_s: usize) -> AudioWindow {
        AudioWindow {
            start: start_s * 16_000,
            end: end_s * 16_000,
        }
    }

    #[test]
    fn windows_split_into_balanced_contiguous_streams() {
        // Ten 30-s windows: two streams of five.
        let windows: Vec<AudioWindow> = (0..10).map(|i| window(i * 40, i * 40 + 30)).collect();
        let min = 60 * 16_000;
        assert_eq!(partition_windows(&windows, 2, min), vec![0..5, 5..10]);
        assert_eq!(partition_windows(&windows, 4, min).len(), 4);
        let four = partition_windows(&windows, 4, min);
        assert_eq!(four.first().unwrap().start, 0);
        assert_eq!(four.last().unwrap().end, 10);
        assert!(four
            .windows(2)
            .all(|p| p[0].end == p[1].start && p[0].start < p[0].end));
        // Uneven windows: the cut lands nearest half the speech (20+20+30 | 30+10).
        let uneven = [
            window(0, 20),
            window(30, 50),
            window(60, 90),
            window(100, 130),
            window(140, 150),
        ];
        assert_eq!(partition_windows(&uneven, 2, 30 * 16_000), vec![0..3, 3..5]);
    }

    #[test]
    fn short_inputs_stay_one_stream() {
        let windows = [window(0, 11)];
        assert_eq!(partition_windows(&windows, 4, 60 * 16_000), vec![0..1]);
        let two_minutes: Vec<AudioWindow> = (0..4).map(|i| window(i * 30, i * 30 + 30)).collect();
        // 120 s of speech makes at most two 60-s streams, whatever the thread count.
        assert_eq!(partition_windows(&two_minutes, 4, 60 * 16_000).len(), 2);
        assert_eq!(partition_windows(&[], 4, 60 * 16_000), vec![0..0]);
    }

    #[test]
    fn stream_count_follows_threads_and_memory() {
        let tiny = 75 << 20;
        assert_eq!(cpu_streams(2, 0, tiny), 2);
        assert_eq!(cpu_streams(1, 0, tiny), 1);
        assert_eq!(cpu_streams(16, 0, tiny), 4);
        // large-v3 (3 GB of float16 weights) gets one copy only.
        assert_eq!(cpu_streams(16, 0, 3_087_284_237), 1);
        assert_eq!(cpu_streams(8, 3, tiny), 3);
        assert_eq!(cpu_streams(2, 3, tiny), 2);
    }

    #[test]
    fn detection_debug_output_is_parsed() {
        let parsed =
            parse_detection(r#"DetectionResult { language: "<|de|>", probability: 0.8734 }"#);
        assert_eq!(parsed, Some(("de".to_string(), 0.8734)));
        assert_eq!(parse_detection("garbage"), None);
    }
}
