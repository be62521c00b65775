//! Turning the decoded signal and its speech windows into uploads that fit a provider's
//! limits: WAV when it fits, else Opus in Ogg, else several pieces cut at VAD pauses, each
//! carrying the offset that puts its timestamps back on the input's timeline.

use vttiro_asr::{AsrError, AudioWindow};
use vttiro_core::{samples_to_ms, ErrorCode, SAMPLE_RATE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFormat {
    Wav,
    OggOpus,
}

impl UploadFormat {
    pub fn mime(self) -> &'static str {
        match self {
            UploadFormat::Wav => "audio/wav",
            UploadFormat::OggOpus => "audio/ogg",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            UploadFormat::Wav => "audio.wav",
            UploadFormat::OggOpus => "audio.ogg",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Piece {
    /// Span of the input, in 16 kHz samples.
    pub start: usize,
    pub end: usize,
    pub format: UploadFormat,
    pub bytes: Vec<u8>,
}

impl Piece {
    pub fn offset_ms(&self) -> i64 {
        samples_to_ms(self.start)
    }

    pub fn duration_ms(&self) -> i64 {
        samples_to_ms(self.end - self.start)
    }
}

#[derive(Debug, Clone)]
pub struct PiecePlan {
    /// The provider's upload limit (for inline uploads, after base64).
    pub max_bytes: usize,
    /// Longest piece, when the provider's output (not its input) is the limit.
    pub max_piece_ms: Option<i64>,
    /// Silences longer than this are left out and split the upload, so a recogniser that
    /// invents words on silence never hears it. `None` keeps one piece (diarizing
    /// providers need the whole conversation to keep speaker labels consistent).
    pub split_gaps_over_ms: Option<i64>,
    pub opus_kbps: u32,
}

/// Plans and encodes the uploads for `windows` of `samples`.
pub fn plan_pieces(
    provider: &'static str,
    samples: &[f32],
    windows: &[AudioWindow],
    plan: &PiecePlan,
) -> Result<Vec<Piece>, AsrError> {
    let mut spans: Vec<Vec<AudioWindow>> = Vec::new();
    for window in windows.iter().filter(|w| w.end > w.start) {
        let joins = spans
            .last()
            .and_then(|span| span.last())
            .is_some_and(|last| {
                let gap_ms = samples_to_ms(window.start.saturating_sub(last.end));
                let span_ms = samples_to_ms(window.end - spans.last().expect("nonempty")[0].start);
                plan.split_gaps_over_ms.is_none_or(|limit| gap_ms <= limit)
                    && plan.max_piece_ms.is_none_or(|limit| span_ms <= limit)
            });
        if joins {
            spans.last_mut().expect("nonempty").push(*window);
        } else {
            spans.push(vec![*window]);
        }
    }
    let mut pieces = Vec::new();
    for span in &spans {
        fit(provider, samples, span, plan, &mut pieces)?;
    }
    Ok(pieces)
}

fn fit(
    provider: &'static str,
    samples: &[f32],
    windows: &[AudioWindow],
    plan: &PiecePlan,
    out: &mut Vec<Piece>,
) -> Result<(), AsrError> {
    let start = windows[0].start;
    let end = windows[windows.len() - 1].end.min(samples.len());
    let audio = &samples[start..end];
    if 44 + audio.len() * 2 <= plan.max_bytes {
        out.push(Piece {
            start,
            end,
            format: UploadFormat::Wav,
            bytes: vttiro_media::encode_wav(audio),
        });
        return Ok(());
    }
    // Only worth encoding when the expected size could fit (bitrate x duration, +5 %).
    let expected = audio.len() as f64 / SAMPLE_RATE as f64 * plan.opus_kbps as f64 * 125.0 * 1.05;
    if expected <= plan.max_bytes as f64 || windows.len() == 1 {
        let bytes = vttiro_media::encode_ogg_opus(audio, plan.opus_kbps).map_err(|e| {
            AsrError::Provider {
                provider,
                code: ErrorCode::ProviderInputTooLarge,
                message: format!(
                    "{} s of audio is over the {}-byte upload limit as WAV, and {e}",
                    audio.len() / SAMPLE_RATE as usize,
                    plan.max_bytes
                ),
            }
        })?;
        if bytes.len() <= plan.max_bytes {
            tracing::debug!(
                provider,
                start,
                end,
                bytes = bytes.len(),
                "re-encoded as Opus to fit"
            );
            out.push(Piece {
                start,
                end,
                format: UploadFormat::OggOpus,
                bytes,
            });
            return Ok(());
        }
        if windows.len() == 1 {
            return Err(AsrError::Provider {
                provider,
                code: ErrorCode::ProviderInputTooLarge,
                message: format!(
                    "one speech window of {} ms encodes to {} bytes as Opus, over the {}-byte upload limit",
                    samples_to_ms(end - start),
                    bytes.len(),
                    plan.max_bytes
                ),
            });
        }
    }
    // Split at the pause between windows nearest the middle of the span.
    let middle = (start + end) / 2;
    let cut = (1..windows.len())
        .min_by_key(|&i| windows[i].start.abs_diff(middle))
        .expect("at least two windows");
    fit(provider, samples, &windows[..cut], plan, out)?;
    fit(provider, samples, &windows[cut..], plan, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speechy(seconds: usize) -> Vec<f32> {
        // A warbling tone: Opus spends on it about what it spends on speech.
        (0..seconds * 16_000)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.2 * (t * 2.0 * std::f32::consts::PI * (220.0 + 80.0 * (t * 3.0).sin())).sin()
            })
            .collect()
    }

    fn windows(spans_s: &[(f32, f32)]) -> Vec<AudioWindow> {
        spans_s
            .iter()
            .map(|(a, b)| AudioWindow {
                start: (a * 16_000.0) as usize,
                end: (b * 16_000.0) as usize,
            })
            .collect()
    }

    fn plan(max_bytes: usize) -> PiecePlan {
        PiecePlan {
            max_bytes,
            max_piece_ms: None,
            split_gaps_over_ms: None,
            opus_kbps: 24,
        }
    }

    #[test]
    fn small_inputs_go_as_one_wav_from_first_to_last_speech() {
        let samples = speechy(20);
        let w = windows(&[(1.0, 6.0), (8.0, 15.0)]);
        let pieces = plan_pieces("test", &samples, &w, &plan(25 * 1024 * 1024)).unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].format, UploadFormat::Wav);
        assert_eq!(
            (pieces[0].offset_ms(), pieces[0].duration_ms()),
            (1000, 14000)
        );
        assert_eq!(&pieces[0].bytes[..4], b"RIFF");
    }

    #[test]
    fn over_the_limit_becomes_opus_then_pieces_cut_at_pauses() {
        let samples = speechy(40);
        let w = windows(&[(0.0, 9.0), (10.0, 19.0), (20.0, 29.0), (30.0, 39.0)]);
        // 39 s of WAV is 1.2 MB; as Opus about 120 kB.
        let pieces = plan_pieces("test", &samples, &w, &plan(200_000)).unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].format, UploadFormat::OggOpus);
        assert!(pieces[0].bytes.len() <= 200_000);

        let pieces = plan_pieces("test", &samples, &w, &plan(70_000)).unwrap();
        assert_eq!(
            pieces.len(),
            2,
            "{:?}",
            pieces.iter().map(|p| (p.start, p.end)).collect::<Vec<_>>()
        );
        assert_eq!(pieces[0].offset_ms(), 0);
        assert_eq!(pieces[1].offset_ms(), 20_000);
        assert!(pieces
            .iter()
            .all(|p| p.bytes.len() <= 70_000 && p.format == UploadFormat::OggOpus));

        let err = plan_pieces("test", &samples, &w, &plan(10_000)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ProviderInputTooLarge);
    }

    #[test]
    fn long_silences_split_when_asked() {
        let samples = speechy(60);
        let w = windows(&[(0.0, 5.0), (6.0, 10.0), (30.0, 35.0)]);
        let mut p = plan(25 * 1024 * 1024);
        p.split_gaps_over_ms = Some(3000);
        let pieces = plan_pieces("test", &samples, &w, &p).unwrap();
        let spans: Vec<(i64, i64)> = pieces
            .iter()
            .map(|p| (p.offset_ms(), p.duration_ms()))
            .collect();
        assert_eq!(spans, vec![(0, 10_000), (30_000, 5_000)]);
    }
}
