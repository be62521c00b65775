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

/// Splits one window's output at pairs of consecutive timestamp tokens and decides where
/// the next window starts. When the output ends mid-segment, the next window starts at
/// the last complete segment so the cut-off words are decoded again with full context.
pub(crate) fn split_segments(
    tokens: &[usize],
    tok: &WhisperTokenizer,
    window_start_s: f64,
    segment_frames: usize,
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
            segment_frames
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

/// Moves a word's start forward to where its sound begins. Cross-attention cannot see
/// where, inside a leading stretch of silence or VAD padding, a word really starts, so
/// the first word of a segment tends to snap to the window start; the signal envelope
/// can. Only ever moves the start later and leaves at least 50 ms of word.
pub(crate) fn refine_onset(audio: &[f32], sample_rate: f64, start: f64, end: f64) -> f64 {
    let frame = (sample_rate * 0.01) as usize;
    let from = (start * sample_rate).max(0.0) as usize;
    let to = ((end * sample_rate) as usize).min(audio.len());
    if to <= from + frame * 3 {
        return start;
    }
    let rms: Vec<f32> = audio[from..to]
        .chunks(frame)
        .map(|c| (c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32).sqrt())
        .collect();
    let peak = rms.iter().copied().fold(0.0f32, f32::max);
    let threshold = (peak * 0.15).max(0.003);
    let Some(first_loud) = rms.iter().position(|&r| r >= threshold) else {
        return start;
    };
    // Keep 20 ms of lead-in: consonant onsets are quieter than the vowel that follows.
    let onset = start + (first_loud.saturating_sub(2) * frame) as f64 / sample_rate;
    onset.min(end - 0.05).max(start)
}

/// The mirror of [`refine_onset`]: pulls a word's end back to where its sound stops, so
/// a pause after it stays a gap instead of being absorbed into the word.
pub(crate) fn refine_offset(audio: &[f32], sample_rate: f64, start: f64, end: f64) -> f64 {
    let frame = (sample_rate * 0.01) as usize;
    let from = (start * sample_rate).max(0.0) as usize;
    let to = ((end * sample_rate) as usize).min(audio.len());
    if to <= from + frame * 3 {
        return end;
    }
    let rms: Vec<f32> = audio[from..to]
        .chunks(frame)
        .map(|c| (c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32).sqrt())
        .collect();
    let peak = rms.iter().copied().fold(0.0f32, f32::max);
    let threshold = (peak * 0.1).max(0.003);
    let Some(last_loud) = rms.iter().rposition(|&r| r >= threshold) else {
        return end;
    };
    let offset = start + ((last_loud + 3) * frame) as f64 / sample_rate;
    offset.max(start + 0.05).min(end)
}

/// Trims silence off word edges: where a word's first or last 120 ms or more is quiet,
/// that stretch is a pause the aligner attached to the word. Shorter quiet edges are
/// left alone (stop closures and soft consonants sit inside continuous speech).
pub(crate) fn refine_word_edges(audio: &[f32], sample_rate: f64, words: &mut [TimedWord]) {
    const MIN_PAUSE: f64 = 0.12;
    for w in words.iter_mut() {
        let onset = refine_onset(audio, sample_rate, w.start, w.end);
        if onset - w.start >= MIN_PAUSE {
            w.start = onset;
        }
        let offset = refine_offset(audio, sample_rate, w.start, w.end);
        if w.end - offset >= MIN_PAUSE {
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
        let end = refine_offset(&audio, sr, 0.1, 0.9);
        assert!((end - 0.42).abs() < 0.011, "{end}");
        assert_eq!(refine_offset(&audio, sr, 0.0, 0.3), 0.3);
    }

    #[test]
    fn onset_moves_to_where_the_sound_starts() {
        let sr = 16_000.0;
        let mut audio = vec![0.0f32; 16_000];
        for (i, x) in audio.iter_mut().enumerate().skip(6_400) {
            *x = (i as f32 * 0.2).sin() * 0.3;
        }
        // Word claimed to start at 0.1 s; sound starts at 0.4 s.
        let start = refine_onset(&audio, sr, 0.1, 0.8);
        assert!((start - 0.38).abs() < 0.011, "{start}");
        // Never moves earlier, never past end - 50 ms.
        assert_eq!(refine_onset(&audio, sr, 0.5, 0.9), 0.5);
        assert_eq!(refine_onset(&vec![0.0; 16_000], sr, 0.1, 0.8), 0.1);
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
}
