//! Backend-independent parts of Whisper long-form decoding: turning a window's token
//! stream into timed segments and the next seek position, the repetition guard, and the
//! conversion of cross-attention alignments into word times with the clamps that keep a
//! word from swallowing the pause before it.

use std::io::Write;

use crate::tokenizer::WhisperTokenizer;

/// One encoder frame covers 10 ms of input; timestamp tokens step by two frames.
pub(crate) const FRAME_SECONDS: f64 = 0.01;
pub(crate) const TIMESTAMP_SECONDS: f64 = 0.02;
const ALIGN_TOKENS_PER_SECOND: f64 = 50.0;

/// A segment as the decoder delimited it, times in seconds from the start of the input.
#[derive(Debug, Clone)]
pub(crate) struct RawSegment {
    pub start: f64,
    pub end: f64,
    /// Tokens including the bracketing timestamp tokens.
    pub tokens: Vec<usize>,
}

/// Un-transcribed audio longer than this after a window's last segment is decoded again.
const TRAILING_SPEECH_FRAMES: usize = 100;

/// Splits one window's output at pairs of consecutive timestamp tokens and decides where
/// the next window starts. When the output ends mid-segment, the next window starts at
/// the last complete segment so the cut-off words are decoded again with full context.
///
/// When the output ends complete but well before the window does and more audio follows
/// (`more_follows`), the next window also starts at the last timestamp. Whisper's own
/// loop skips the rest of the window there, on the theory that it is silence; vttiro's
/// windows hold speech with the pauses cut out, so that tail is usually speech the model
/// left for later (a sentence starting 4 s before the window ends is dropped whole).
pub(crate) fn split_segments(
    tokens: &[usize],
    tok: &WhisperTokenizer,
    window_start_s: f64,
    segment_frames: usize,
    more_follows: bool,
) -> (Vec<RawSegment>, usize) {
    let ts = |id: usize| (id - tok.timestamp_begin) as f64 * TIMESTAMP_SECONDS;
    let is_ts: Vec<bool> = tokens.iter().map(|&t| tok.is_timestamp(t)).collect();
    let single_timestamp_ending =
        is_ts.len() >= 2 && !is_ts[is_ts.len() - 2] && is_ts[is_ts.len() - 1];
    let mut boundaries: Vec<usize> = (1..tokens.len())
        .filter(|&i| is_ts[i - 1] && is_ts[i])
        .collect();
    let mut segments = Vec::new();
    if !boundaries.is_empty() {
        if single_timestamp_ending {
            boundaries.push(tokens.len());
        }
        let mut last = 0;
        for &b in &boundaries {
            let slice = &tokens[last..b];
            if slice.len() >= 2 && tok.is_timestamp(slice[0]) {
                let end_tok = *slice
                    .iter()
                    .rev()
                    .find(|&&t| tok.is_timestamp(t))
                    .unwrap_or(&slice[0]);
                segments.push(RawSegment {
                    start: window_start_s + ts(slice[0]),
                    end: window_start_s + ts(end_tok),
                    tokens: slice.to_vec(),
                });
            }
            last = b;
        }
        let advance = if single_timestamp_ending {
            let end_frames = (tokens[tokens.len() - 1] - tok.timestamp_begin) * 2;
            if more_follows
                && end_frames > 0
                && end_frames + TRAILING_SPEECH_FRAMES < segment_frames
            {
                end_frames
            } else {
                segment_frames
            }
        } else {
            let last_ts = tokens[last - 1];
            // Timestamp units are two frames.
            ((last_ts - tok.timestamp_begin) * 2).max(1)
        };
        (segments, advance)
    } else {
        let mut duration = segment_frames as f64 * FRAME_SECONDS;
        if let Some(&last_ts) = tokens.iter().rev().find(|&&t| tok.is_timestamp(t)) {
            if last_ts != tok.timestamp_begin {
                duration = ts(last_ts);
            }
        }
        segments.push(RawSegment {
            start: window_start_s,
            end: window_start_s + duration,
            tokens: tokens.to_vec(),
        });
        (segments, segment_frames)
    }
}

/// Whether one window's aligned words show speech the model did not transcribe: DTW has
/// to put every frame somewhere, so skipped speech shows up as a word, or a silence
/// between segments, longer than `max_s` seconds.
pub(crate) fn skips_speech(per_segment_words: &[Vec<TimedWord>], max_s: f64) -> bool {
    let mut spoken_until: Option<f64> = None;
    for words in per_segment_words {
        let (Some(first), Some(last)) = (words.first(), words.last()) else {
            continue;
        };
        if spoken_until.is_some_and(|end| first.start - end > max_s) {
            return true;
        }
        if words.iter().any(|w| w.end - w.start > max_s) {
            return true;
        }
        spoken_until = Some(last.end);
    }
    false
}

/// Ratio of text length to its zlib-compressed length; looping hallucinations compress
/// far better than real speech (Whisper's threshold is 2.4).
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(text.as_bytes())
        .expect("write to Vec cannot fail");
    let compressed = enc.finish().expect("finishing a Vec writer cannot fail");
    text.len() as f32 / compressed.len() as f32
}

/// A word with times in seconds relative to the window start.
#[derive(Debug, Clone)]
pub(crate) struct TimedWord {
    pub text: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
    pub token_count: usize,
}

/// Converts a DTW path over (text token, encoder frame) into per-word times: a word starts
/// where the path first reaches its first token and ends where it reaches the next word.
pub(crate) fn words_from_alignment(
    words: &[(String, Vec<usize>)],
    path: &[(i64, i64)],
    token_probs: &[f32],
) -> Vec<TimedWord> {
    if words.is_empty() || path.is_empty() {
        return Vec::new();
    }
    let mut jump_times = Vec::with_capacity(path.len());
    for (i, &(text_idx, time_idx)) in path.iter().enumerate() {
        if i == 0 || text_idx != path[i - 1].0 {
            jump_times.push(time_idx as f64 / ALIGN_TOKENS_PER_SECOND);
        }
    }
    let mut out = Vec::with_capacity(words.len());
    let mut boundary = 0usize;
    for (text, ids) in words {
        let next = boundary + ids.len();
        let (Some(&start), Some(&end)) = (jump_times.get(boundary), jump_times.get(next)) else {
            break;
        };
        let probs = &token_probs[boundary.min(token_probs.len())..next.min(token_probs.len())];
        let probability = if probs.is_empty() {
            0.0
        } else {
            probs.iter().sum::<f32>() / probs.len() as f32
        };
        out.push(TimedWord {
            text: text.clone(),
            start,
            end,
            probability,
            token_count: ids.len(),
        });
        boundary = next;
    }
    out
}

fn ends_sentence(word: &str) -> bool {
    matches!(
        word.trim_end().chars().last(),
        Some('.' | '!' | '?' | '。' | '！' | '？')
    )
}

/// Tames the two ways cross-attention timing goes wrong: a word stretched across a pause
/// (start pulled early or end pushed late) and a segment boundary that disagrees with its
/// words. Durations are capped at twice the median word length, and the decoder's own
/// segment timestamps win when a word overhangs them by more than half a second.
pub(crate) fn refine_segment_words(
    segment: &mut RawSegment,
    words: &mut [TimedWord],
    last_speech_end: &mut f64,
) {
    if words.is_empty() {
        return;
    }
    let mut durations: Vec<f64> = words
        .iter()
        .map(|w| w.end - w.start)
        .filter(|d| *d > 0.0)
        .collect();
    durations.sort_by(f64::total_cmp);
    let median = durations
        .get(durations.len() / 2)
        .copied()
        .unwrap_or(0.0)
        .min(0.7);
    let max_duration = median * 2.0;
    if max_duration > 0.0 {
        for i in 1..words.len() {
            if words[i].end - words[i].start > max_duration {
                if ends_sentence(&words[i].text) {
                    words[i].end = words[i].start + max_duration;
                } else if ends_sentence(&words[i - 1].text) {
                    words[i].start = words[i].end - max_duration;
                }
            }
        }
        let first_too_long = words[0].end - words[0].start > max_duration
            || (words.len() > 1 && words[1].end - words[0].start > max_duration * 2.0);
        if words[0].end - *last_speech_end > median * 4.0 && first_too_long {
            if words.len() > 1 && words[1].end - words[1].start > max_duration {
                let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
                words[0].end = boundary;
                words[1].start = boundary;
            }
            words[0].start = (words[0].end - max_duration).max(0.0);
        }
    }
    if segment.start < words[0].end && segment.start - 0.5 > words[0].start {
        words[0].start = (words[0].end - median).min(segment.start).max(0.0);
    } else {
        segment.start = words[0].start;
    }
    let last = words.len() - 1;
    if segment.end > words[last].start && segment.end + 0.5 < words[last].end {
        words[last].end = (words[last].start + median).max(segment.end);
    } else {
        segment.end = words[last].end;
    }
    // Keep words ordered and non-overlapping after the clamps.
    for i in 1..words.len() {
        if words[i].start < words[i - 1].end {
            words[i].start = words[i - 1].end.min(words[i].end);
        }
    }
    *last_speech_end = segment.end;
}

/// Quiet stretches shorter than this sit inside continuous speech (stop closures, soft
/// consonants); longer ones are pauses.
const MIN_PAUSE_S: f64 = 0.12;
/// [`MIN_PAUSE_S`] in 10 ms envelope frames.
const MIN_PAUSE_FRAMES: usize = 12;
/// Sound kept on the speech side of a pause edge: consonant onsets and releases are
/// quieter than the vowels around them.
const EDGE_KEEP_FRAMES: usize = 2;

/// RMS of 10 ms frames over `[start, end)` seconds, and the frame length in samples.
fn frame_rms(audio: &[f32], sample_rate: f64, start: f64, end: f64) -> (Vec<f32>, usize) {
    let frame = (sample_rate * 0.01) as usize;
    let from = ((start * sample_rate).max(0.0) as usize).min(audio.len());
    let to = ((end * sample_rate).max(0.0) as usize).min(audio.len());
    if to <= from {
        return (Vec::new(), frame);
    }
    let rms = audio[from..to]
        .chunks(frame)
        .map(|c| (c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32).sqrt())
        .collect();
    (rms, frame)
}

/// Frames below this are quiet: a fraction of the loudest frame or of the surrounding
/// speech level (so a soft word in background noise is not all "sound"), with a floor
/// for digital silence.
fn quiet_threshold(rms: &[f32], speech_level: f32) -> f32 {
    let peak = rms.iter().copied().fold(0.0f32, f32::max);
    (peak.max(speech_level) * 0.12).max(0.003)
}

/// The loudness of a stretch of speech: the 90th percentile of its frame RMS, robust to
/// a single click and to the pauses inside it.
fn speech_level(audio: &[f32], sample_rate: f64, start: f64, end: f64) -> f32 {
    let (mut rms, _) = frame_rms(audio, sample_rate, start, end);
    if rms.is_empty() {
        return 0.0;
    }
    rms.sort_by(f32::total_cmp);
    rms[(rms.len() * 9 / 10).min(rms.len() - 1)]
}

/// Runs of at least `min_frames` quiet frames, as `(first, end)` frame ranges.
fn quiet_runs(rms: &[f32], threshold: f32, min_frames: usize) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut run_start = None;
    for (i, &r) in rms
        .iter()
        .chain(std::iter::once(&f32::INFINITY))
        .enumerate()
    {
        match (r < threshold, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(first)) => {
                if i - first >= min_frames {
                    runs.push((first, i));
                }
                run_start = None;
            }
            _ => {}
        }
    }
    runs
}

/// A word's 10 ms envelope with its quiet threshold and landmarks.
struct WordEnvelope {
    rms: Vec<f32>,
    frame: usize,
    threshold: f32,
    first_loud: usize,
    last_loud: usize,
    /// The loudest frame.
    peak: usize,
}

impl WordEnvelope {
    /// `None` for a word under 30 ms, or one whose loudest frame is under a quarter of
    /// the speech level around it: the aligner put that word over background noise, and
    /// the envelope there says nothing about where the word really is.
    fn new(
        audio: &[f32],
        sample_rate: f64,
        start: f64,
        end: f64,
        speech_level: f32,
    ) -> Option<WordEnvelope> {
        let (rms, frame) = frame_rms(audio, sample_rate, start, end);
        if rms.len() < 3 {
            return None;
        }
        let threshold = quiet_threshold(&rms, speech_level);
        let first_loud = rms.iter().position(|&r| r >= threshold)?;
        let last_loud = rms.iter().rposition(|&r| r >= threshold)?;
        let peak = (first_loud..=last_loud)
            .max_by(|&a, &b| rms[a].total_cmp(&rms[b]))
            .unwrap_or(first_loud);
        if rms[peak] < speech_level * 0.25 {
            return None;
        }
        Some(WordEnvelope {
            rms,
            frame,
            threshold,
            first_loud,
            last_loud,
            peak,
        })
    }
}

/// Moves a word's start forward to where its sound begins: past the last pause-length
/// quiet stretch before its loudest frame. Cross-attention cannot see where, inside a
/// leading stretch of silence or VAD padding, a word really starts; the signal envelope
/// can. Only ever moves the start later and leaves at least 50 ms of word.
pub(crate) fn refine_onset(
    audio: &[f32],
    sample_rate: f64,
    start: f64,
    end: f64,
    speech_level: f32,
) -> f64 {
    let Some(w) = WordEnvelope::new(audio, sample_rate, start, end, speech_level) else {
        return start;
    };
    // Leading quiet frames, however few, plus any pause before the peak.
    let sound_from = quiet_runs(&w.rms[..w.peak], w.threshold, MIN_PAUSE_FRAMES)
        .last()
        .map_or(w.first_loud, |&(_, run_end)| w.first_loud.max(run_end));
    let onset =
        start + (sound_from.saturating_sub(EDGE_KEEP_FRAMES) * w.frame) as f64 / sample_rate;
    onset.min(end - 0.05).max(start)
}

/// The mirror of [`refine_onset`]: pulls a word's end back to where its sound stops (the
/// first pause-length quiet stretch after its loudest frame), so a pause after it stays a
/// gap instead of being absorbed into the word, even when the aligner let the word run
/// on into the start of the next one.
pub(crate) fn refine_offset(
    audio: &[f32],
    sample_rate: f64,
    start: f64,
    end: f64,
    speech_level: f32,
) -> f64 {
    let Some(w) = WordEnvelope::new(audio, sample_rate, start, end, speech_level) else {
        return end;
    };
    let sound_until = quiet_runs(&w.rms[w.peak..], w.threshold, MIN_PAUSE_FRAMES)
        .first()
        .map_or(w.last_loud + 1, |&(first, _)| w.peak + first);
    let offset = start + ((sound_until + EDGE_KEEP_FRAMES) * w.frame) as f64 / sample_rate;
    offset.max(start + 0.05).min(end)
}

/// Moves the boundary between two touching words into the pause between them when the
/// signal has one: the aligner often lets a word run on through a pause into the next
/// word's first syllable, so the pause ends up inside a word and the next word starts
/// late. Returns the new `(first_end, second_start)`.
pub(crate) fn refine_boundary(
    audio: &[f32],
    sample_rate: f64,
    first: (f64, f64),
    second: (f64, f64),
    speech_level: f32,
) -> Option<(f64, f64)> {
    let (rms, frame) = frame_rms(audio, sample_rate, first.0, second.1);
    if rms.len() < 10 {
        return None;
    }
    let threshold = quiet_threshold(&rms, speech_level);
    let to_s = |f: usize| first.0 + (f * frame) as f64 / sample_rate;
    let boundary = first.1;
    // Only a pause with sound on both sides that starts before the aligner's boundary
    // (or within 50 ms after it): the aligner lets a word run on into a pause, it does
    // not end one early, and a pause further on belongs between later words. The latest
    // such pause is the one nearest the boundary.
    let (run_first, run_end) = quiet_runs(&rms, threshold, MIN_PAUSE_FRAMES)
        .into_iter()
        .rfind(|&(a, b)| a > 0 && b < rms.len() && to_s(a) <= boundary + 0.05)?;
    let first_end = to_s(run_first + EDGE_KEEP_FRAMES);
    let second_start = to_s(run_end.saturating_sub(EDGE_KEEP_FRAMES));
    // Each word keeps at least 50 ms, and a pause must not move further than the
    // length of the words around it.
    if first_end < first.0 + 0.05 || second_start > second.1 - 0.05 {
        return None;
    }
    Some((first_end, second_start))
}

/// Trims silence off word edges and moves boundaries between touching words into the
/// pause between them. Quiet stretches under 120 ms are left alone (stop closures and
/// soft consonants sit inside continuous speech).
pub(crate) fn refine_word_edges(audio: &[f32], sample_rate: f64, words: &mut [TimedWord]) {
    let (Some(first), Some(last)) = (words.first(), words.last()) else {
        return;
    };
    let level = speech_level(audio, sample_rate, first.start, last.end);
    for i in 1..words.len() {
        if words[i].start - words[i - 1].end < MIN_PAUSE_S {
            if let Some((end, start)) = refine_boundary(
                audio,
                sample_rate,
                (words[i - 1].start, words[i - 1].end),
                (words[i].start, words[i].end),
                level,
            ) {
                words[i - 1].end = end;
                words[i].start = start;
            }
        }
    }
    for w in words.iter_mut() {
        let onset = refine_onset(audio, sample_rate, w.start, w.end, level);
        if onset - w.start >= MIN_PAUSE_S {
            w.start = onset;
        }
        let offset = refine_offset(audio, sample_rate, w.start, w.end, level);
        if w.end - offset >= MIN_PAUSE_S {
            w.end = offset;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_moves_back_to_where_the_sound_stops() {
        let sr = 16_000.0;
        let mut audio = vec![0.0f32; 16_000];
        for (i, x) in audio.iter_mut().enumerate().take(6_400) {
            *x = (i as f32 * 0.2).sin() * 0.3;
        }
        let end = refine_offset(&audio, sr, 0.1, 0.9, 0.0);
        assert!((end - 0.42).abs() < 0.011, "{end}");
        assert_eq!(refine_offset(&audio, sr, 0.0, 0.3, 0.0), 0.3);
    }

    #[test]
    fn onset_moves_to_where_the_sound_starts() {
        let sr = 16_000.0;
        let mut audio = vec![0.0f32; 16_000];
        for (i, x) in audio.iter_mut().enumerate().skip(6_400) {
            *x = (i as f32 * 0.2).sin() * 0.3;
        }
        // Word claimed to start at 0.1 s; sound starts at 0.4 s.
        let start = refine_onset(&audio, sr, 0.1, 0.8, 0.0);
        assert!((start - 0.38).abs() < 0.011, "{start}");
        // Never moves earlier, never past end - 50 ms.
        assert_eq!(refine_onset(&audio, sr, 0.5, 0.9, 0.0), 0.5);
        assert_eq!(refine_onset(&vec![0.0; 16_000], sr, 0.1, 0.8, 0.0), 0.1);
    }

    #[test]
    fn a_boundary_inside_the_next_word_moves_into_the_pause() {
        let sr = 16_000.0;
        // Sound 0.0-0.5 s, pause 0.5-1.1 s, sound 1.1-1.6 s; the aligner ended the first
        // word at 1.25 s, 150 ms into the second word's sound.
        let mut audio = vec![0.0f32; 32_000];
        for (i, x) in audio.iter_mut().enumerate() {
            let t = i as f64 / sr;
            if t < 0.5 || (1.1..1.6).contains(&t) {
                *x = (i as f32 * 0.2).sin() * 0.3;
            } else {
                *x = (i as f32 * 0.7).sin() * 0.004;
            }
        }
        let (end, start) = refine_boundary(&audio, sr, (0.1, 1.25), (1.25, 1.6), 0.2).unwrap();
        assert!((end - 0.52).abs() < 0.011, "{end}");
        assert!((start - 1.08).abs() < 0.011, "{start}");
        // A pause after the next word's start belongs to a later boundary.
        assert_eq!(
            refine_boundary(&audio, sr, (0.0, 0.3), (0.3, 1.5), 0.2),
            None
        );
        // Continuous sound: nothing to move.
        let tone: Vec<f32> = (0..32_000).map(|i| (i as f32 * 0.2).sin() * 0.3).collect();
        assert_eq!(
            refine_boundary(&tone, sr, (0.1, 0.6), (0.6, 1.2), 0.2),
            None
        );
        // A word that ran on into the next word's start ends where its own sound does.
        assert!((refine_offset(&audio, sr, 0.1, 1.25, 0.2) - 0.52).abs() < 0.011);
        // A soft word trailing into background noise: judged against the speech around
        // it, the noise is quiet and the word ends where its own sound does.
        let mut soft = vec![0.0f32; 16_000];
        for (i, x) in soft.iter_mut().enumerate() {
            let t = i as f64 / sr;
            let amplitude = if t < 0.3 { 0.1 } else { 0.03 };
            *x = (i as f32 * 0.2).sin() * amplitude;
        }
        assert!((refine_offset(&soft, sr, 0.0, 0.9, 0.25) - 0.32).abs() < 0.011);
        assert_eq!(refine_offset(&soft, sr, 0.0, 0.9, 0.0), 0.9);
        // A "word" that is only noise next to speech ten times louder is left alone.
        assert_eq!(refine_offset(&soft, sr, 0.35, 0.9, 0.5), 0.9);
        assert_eq!(refine_onset(&soft, sr, 0.35, 0.9, 0.5), 0.35);
    }

    #[test]
    fn repetitive_text_compresses_far_better_than_speech() {
        let normal = "And so my fellow Americans, ask not what your country can do for you.";
        let looped = "Thank you. ".repeat(30);
        assert!(compression_ratio(normal) < 2.0);
        assert!(compression_ratio(&looped) > 2.4);
    }

    #[test]
    fn alignment_jumps_become_word_boundaries() {
        let words = vec![
            (" Hello".to_string(), vec![1, 2]),
            (" world".to_string(), vec![3]),
        ];
        // Token 0 reached at frame 10, token 1 at 20, token 2 at 40, eot at 55.
        let path = vec![(0, 10), (0, 11), (1, 20), (2, 40), (2, 41), (3, 55)];
        let timed = words_from_alignment(&words, &path, &[0.9, 0.7, 0.5]);
        assert_eq!(timed.len(), 2);
        assert!((timed[0].start - 0.2).abs() < 1e-9 && (timed[0].end - 0.8).abs() < 1e-9);
        assert!((timed[1].start - 0.8).abs() < 1e-9 && (timed[1].end - 1.1).abs() < 1e-9);
        assert!((timed[0].probability - 0.8).abs() < 1e-6);
    }

    #[test]
    fn a_word_stretched_over_a_pause_is_clamped() {
        let w = |text: &str, start: f64, end: f64| TimedWord {
            text: text.into(),
            start,
            end,
            probability: 1.0,
            token_count: 1,
        };
        let mut words = vec![
            w(" So.", 0.0, 0.3),
            w(" Then", 0.3, 4.0), // pulled back across a 3 s pause
            w(" we", 4.0, 4.3),
            w(" go.", 4.3, 4.6),
        ];
        let mut seg = RawSegment {
            start: 0.0,
            end: 4.6,
            tokens: vec![],
        };
        let mut last = 0.0;
        refine_segment_words(&mut seg, &mut words, &mut last);
        assert!(words[1].start > 3.0, "start {}", words[1].start);
        assert!((last - 4.6).abs() < 1e-9);
    }

    #[test]
    fn stretched_words_or_long_silences_mark_skipped_speech() {
        let w = |start: f64, end: f64| TimedWord {
            text: " w".into(),
            start,
            end,
            probability: 1.0,
            token_count: 1,
        };
        // Words stop at 2.5 s, then nothing until 14 s.
        let words = vec![vec![w(0.0, 1.0), w(1.2, 2.5)], vec![], vec![w(14.0, 15.0)]];
        assert!(skips_speech(&words, 3.0));
        // What DTW usually makes of it: the last words swallow the skipped stretch.
        let words = vec![vec![w(1.0, 1.8), w(1.8, 6.0)], vec![w(6.0, 9.4)]];
        assert!(skips_speech(&words, 3.0));
        // Pauses the VAD keeps inside a chunk (up to 2 s) are fine, and so is a late
        // first word.
        let words = vec![vec![w(5.0, 6.0)], vec![w(8.0, 9.0)], vec![w(11.5, 12.0)]];
        assert!(!skips_speech(&words, 3.0));
    }
}
