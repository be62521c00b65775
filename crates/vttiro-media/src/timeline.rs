//! Turns decoded mono audio at any source rate into the 16 kHz output, placing each block at
//! its presentation time.
//!
//! Blocks are resampled as they arrive (rubato's FFT resampler, one fixed-size chunk at a time),
//! so only the 16 kHz output grows with the file length; the source-rate signal never exists
//! as a whole. The first block is placed sample-exactly (leading silence is inserted, or audio
//! before time zero is dropped). Later blocks are only moved when their timestamp disagrees
//! with the running position by more than [`GAP_TOLERANCE_S`]: that fills real gaps (skipped
//! damaged packets, discontinuous recordings) while ignoring millisecond rounding in container
//! timestamps, and it bounds any drift to the tolerance.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};
use vttiro_core::SAMPLE_RATE;

/// Timestamp disagreements below this are container rounding, above it are real gaps.
pub(crate) const GAP_TOLERANCE_S: f64 = 0.015;

/// How far past the declared duration timestamps may still place audio after a gap.
const SILENCE_LIMIT_SLACK_S: f64 = 1.0;

/// Source frames handed to the resampler per call; small enough to keep buffers tiny, large
/// enough that FFT overhead stays low.
const RESAMPLE_CHUNK: usize = 1024;

pub(crate) struct Timeline {
    out: Vec<f32>,
    stage: Option<RateStage>,
    /// Source-rate frames still to discard because the audio starts before time zero.
    pending_drop: u64,
    /// Whether audio has reached the output; before that, blocks are placed sample-exactly.
    anchored: bool,
    /// Presentation time (s) of the first decoded frame, before any trimming at time zero.
    first_time_s: Option<f64>,
    /// Silence is never inserted past this point, so one damaged timestamp (a jump of hours)
    /// cannot allocate gigabytes of zeros.
    silence_limit_s: Option<f64>,
}

/// Resampling state for one source rate; replaced when the rate changes mid-stream.
struct RateStage {
    rate: u32,
    resampler: Option<Fft<f32>>,
    /// Source frames waiting for a full resampler chunk.
    pending: Vec<f32>,
    /// Source frames accepted by this stage, padding included.
    fed: u64,
    /// Output length when this stage began.
    out_base: usize,
    /// Output frames of resampler start-up delay still to discard.
    delay_left: usize,
    scratch: Vec<f32>,
}

#[derive(Debug)]
pub(crate) struct ResampleFailure {
    pub from_rate: u32,
    pub reason: String,
}

impl Timeline {
    /// `duration_s`, when the container declares it, pre-sizes the output so the vector does
    /// not double (and briefly hold two copies) near the end of a long file, and bounds how much
    /// silence timestamps may ask for.
    pub fn new(duration_s: Option<f64>) -> Self {
        /// Larger claims come from damaged headers; growing on demand is then the safer bet.
        const MAX_RESERVE: usize = SAMPLE_RATE as usize * 60 * 60 * 6;
        let expected_output =
            duration_s.map_or(0, |d| (d.max(0.0) * f64::from(SAMPLE_RATE)) as usize);
        Timeline {
            out: Vec::with_capacity(
                expected_output
                    .saturating_add(SAMPLE_RATE as usize)
                    .min(MAX_RESERVE),
            ),
            stage: None,
            pending_drop: 0,
            anchored: false,
            first_time_s: None,
            silence_limit_s: duration_s.map(|d| d + SILENCE_LIMIT_SLACK_S),
        }
    }

    pub fn first_time_s(&self) -> Option<f64> {
        self.first_time_s
    }

    /// Current end of the timeline in seconds, counting audio still inside the resampler.
    pub fn end_s(&self) -> f64 {
        match &self.stage {
            Some(stage) => {
                stage.out_base as f64 / f64::from(SAMPLE_RATE)
                    + stage.fed as f64 / f64::from(stage.rate)
            }
            None => self.out.len() as f64 / f64::from(SAMPLE_RATE),
        }
    }

    /// Appends `mono` (at `rate`) whose first frame is presented at `time_s` when known.
    pub fn push(
        &mut self,
        rate: u32,
        mono: &[f32],
        time_s: Option<f64>,
    ) -> Result<(), ResampleFailure> {
        if mono.is_empty() || rate == 0 {
            return Ok(());
        }
        if self.stage.as_ref().map(|s| s.rate) != Some(rate) {
            self.finish_stage()?;
            self.stage = Some(RateStage::new(rate, self.out.len())?);
        }
        if self.first_time_s.is_none() {
            self.first_time_s = Some(time_s.unwrap_or_else(|| self.end_s()));
        }
        if self.anchored {
            if let Some(time_s) = time_s {
                let gap_s = time_s - self.end_s();
                if gap_s > GAP_TOLERANCE_S {
                    self.feed_silence((gap_s * f64::from(rate)).round() as u64)?;
                }
            }
            return self.feed(mono);
        }
        // Until the first frame at or after time zero is written, place sample-exactly.
        if let Some(time_s) = time_s {
            let offset_s = time_s - self.end_s();
            let frames = (offset_s.abs() * f64::from(rate)).round() as u64;
            if offset_s >= 0.0 {
                self.feed_silence(frames)?;
                self.pending_drop = 0;
            } else {
                self.pending_drop = frames;
            }
        }
        let dropped = (self.pending_drop.min(mono.len() as u64)) as usize;
        self.pending_drop -= dropped as u64;
        if dropped == mono.len() {
            return Ok(());
        }
        self.anchored = true;
        self.feed(&mono[dropped..])
    }

    fn feed_silence(&mut self, frames: u64) -> Result<(), ResampleFailure> {
        let rate = self.stage.as_ref().map_or(SAMPLE_RATE, |s| s.rate);
        let mut frames = match self.silence_limit_s {
            Some(limit) => {
                let room = ((limit - self.end_s()).max(0.0) * f64::from(rate)) as u64;
                frames.min(room)
            }
            None => frames,
        };
        let zeros = [0.0f32; RESAMPLE_CHUNK];
        while frames > 0 {
            let n = (frames as usize).min(zeros.len());
            self.feed(&zeros[..n])?;
            frames -= n as u64;
        }
        Ok(())
    }

    fn feed(&mut self, mono: &[f32]) -> Result<(), ResampleFailure> {
        let stage = self.stage.as_mut().expect("push creates the stage first");
        stage.fed += mono.len() as u64;
        if stage.resampler.is_none() {
            self.out.extend_from_slice(mono);
            return Ok(());
        }
        let mut rest = mono;
        while !rest.is_empty() {
            let want = RESAMPLE_CHUNK - stage.pending.len();
            let take = want.min(rest.len());
            stage.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if stage.pending.len() == RESAMPLE_CHUNK {
                stage.run_chunk(&mut self.out, None)?;
            }
        }
        Ok(())
    }

    /// Drains the resampler so the stage's output has exactly its share of frames.
    fn finish_stage(&mut self) -> Result<(), ResampleFailure> {
        let Some(mut stage) = self.stage.take() else {
            return Ok(());
        };
        if stage.resampler.is_none() {
            return Ok(());
        }
        let expected = stage.out_base
            + ((stage.fed as f64) * f64::from(SAMPLE_RATE) / f64::from(stage.rate)).round()
                as usize;
        let partial = stage.pending.len();
        stage.pending.resize(RESAMPLE_CHUNK, 0.0);
        stage.run_chunk(&mut self.out, Some(partial))?;
        while self.out.len() < expected {
            stage.run_chunk(&mut self.out, Some(0))?;
        }
        self.out.truncate(expected);
        Ok(())
    }

    /// Finishes resampling and cuts the output at `end_s` when the container says where the
    /// presentation ends (trailing encoder padding).
    pub fn finish(mut self, end_s: Option<f64>) -> Result<Vec<f32>, ResampleFailure> {
        self.finish_stage()?;
        if let Some(end_s) = end_s {
            let end = (end_s.max(0.0) * f64::from(SAMPLE_RATE)).round() as usize;
            self.out.truncate(end);
        }
        self.out.shrink_to_fit();
        Ok(self.out)
    }
}

impl RateStage {
    fn new(rate: u32, out_base: usize) -> Result<Self, ResampleFailure> {
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    rate as usize,
                    SAMPLE_RATE as usize,
                    RESAMPLE_CHUNK,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| ResampleFailure {
                    from_rate: rate,
                    reason: e.to_string(),
                })?,
            )
        };
        let delay_left = resampler.as_ref().map_or(0, |r| r.output_delay());
        let scratch = vec![0.0; resampler.as_ref().map_or(0, |r| r.output_frames_max())];
        Ok(RateStage {
            rate,
            resampler,
            pending: Vec::with_capacity(RESAMPLE_CHUNK),
            fed: 0,
            out_base,
            delay_left,
            scratch,
        })
    }

    /// Resamples the full `pending` chunk (of which `valid` frames are real when given) and
    /// appends the result minus any remaining start-up delay.
    fn run_chunk(
        &mut self,
        out: &mut Vec<f32>,
        valid: Option<usize>,
    ) -> Result<(), ResampleFailure> {
        let failure = |reason: String| ResampleFailure {
            from_rate: self.rate,
            reason,
        };
        let resampler = self
            .resampler
            .as_mut()
            .expect("only resampling stages run chunks");
        let input = InterleavedSlice::new(&self.pending, 1, self.pending.len())
            .map_err(|e| failure(e.to_string()))?;
        let frames_out = self.scratch.len();
        let mut output = InterleavedSlice::new_mut(&mut self.scratch, 1, frames_out)
            .map_err(|e| failure(e.to_string()))?;
        let indexing = valid.map(|n| Indexing::new().partial_len(n));
        let (_, produced) = resampler
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| failure(e.to_string()))?;
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        out.extend_from_slice(&self.scratch[skip..produced]);
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, seconds: f64, freq: f64) -> Vec<f32> {
        (0..(seconds * f64::from(rate)) as usize)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    fn first_loud(samples: &[f32]) -> usize {
        samples.iter().position(|s| s.abs() > 0.5).unwrap()
    }

    #[test]
    fn resampling_keeps_length_and_onset() {
        for rate in [8_000, 16_000, 22_050, 44_100, 48_000, 96_000] {
            let mut input = vec![0.0; rate as usize]; // 1 s silence
            input.extend(tone(rate, 0.5, 440.0));
            let mut timeline = Timeline::new(None);
            // Feed in odd-sized blocks as a decoder would.
            for block in input.chunks(1000) {
                timeline.push(rate, block, None).unwrap();
            }
            let out = timeline.finish(None).unwrap();
            assert_eq!(out.len(), 24_000, "rate {rate}");
            let onset = first_loud(&out) as i64;
            assert!(
                (onset - 16_000).abs() <= 16,
                "rate {rate}: onset at {onset}"
            );
        }
    }

    #[test]
    fn first_block_is_placed_by_time_and_gaps_are_filled() {
        let burst = tone(48_000, 0.1, 440.0);
        let mut timeline = Timeline::new(None);
        timeline.push(48_000, &burst, Some(0.5)).unwrap();
        // 2 s later than contiguous playback would put it: a real gap.
        timeline.push(48_000, &burst, Some(2.6)).unwrap();
        // 5 ms late: rounding, appended contiguously.
        timeline.push(48_000, &burst, Some(2.705)).unwrap();
        assert_eq!(timeline.first_time_s(), Some(0.5));
        let out = timeline.finish(None).unwrap();
        assert_eq!(out.len(), (2.8 * 16_000.0) as usize);
        assert!((first_loud(&out) as i64 - 8_000).abs() <= 16);
        assert!((first_loud(&out[16_000..]) as i64 + 16_000 - 41_600).abs() <= 16);
    }

    #[test]
    fn a_wild_timestamp_cannot_pad_past_the_declared_duration() {
        let burst = tone(16_000, 0.5, 440.0);
        let mut timeline = Timeline::new(Some(3.0));
        timeline.push(16_000, &burst, Some(0.0)).unwrap();
        timeline.push(16_000, &burst, Some(36_000.0)).unwrap(); // ten hours later
        let out = timeline.finish(None).unwrap();
        assert_eq!(out.len(), 4 * 16_000 + 8_000);
    }

    #[test]
    fn audio_before_time_zero_is_dropped() {
        let mut input = vec![0.0; 4_800]; // 0.1 s of silence that starts at -0.25 s
        input.extend(tone(48_000, 0.5, 440.0));
        let mut timeline = Timeline::new(None);
        for block in input.chunks(960) {
            let is_first = block.as_ptr() == input.as_ptr();
            timeline
                .push(48_000, block, is_first.then_some(-0.25))
                .unwrap();
        }
        let out = timeline.finish(None).unwrap();
        // 0.6 s of input minus 0.25 s before zero.
        assert_eq!(out.len(), (0.35 * 16_000.0) as usize);
        assert!(first_loud(&out) < 16);
    }
}
