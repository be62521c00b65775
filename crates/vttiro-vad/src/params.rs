use serde::{Deserialize, Serialize};
use vttiro_core::ErrorCode;

/// Settings of [`crate::detect_speech`]. The defaults are what the product runs with;
/// build with `..VadParams::default()` and call [`VadParams::validate`] on values that
/// came from a user. Deserialises from partial configuration: missing fields keep their
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadParams {
    /// How far a 10 ms frame must rise above the noise floor under it to start a speech
    /// region, in dB averaged over the 20 bins (of 172 between 125 Hz and 5.5 kHz) that
    /// rise furthest. Steady noise of any level and colour scores 3-5 dB, pure tones 0,
    /// clean speech 20-30 dB and speech 10 dB under white noise around 12. Default 6.0;
    /// raise it to ignore faint background talk, lower it (not below 4) for whispering.
    pub threshold_db: f32,
    /// A frame next to a region keeps it going while it stays this far above the floor,
    /// so soft word endings and unvoiced consonants are not cut off. Default 4.5.
    pub continue_threshold_db: f32,
    /// Regions (before padding) shorter than this are dropped: coughs, clicks, a single
    /// syllable of crosstalk. Default 250 ms.
    pub min_speech_ms: u32,
    /// Pauses shorter than this do not split a region. Default 300 ms.
    pub min_silence_ms: u32,
    /// Added before and after every region so the first and last phonemes, whose energy
    /// is low, reach the recogniser intact. Default 200 ms.
    pub speech_pad_ms: u32,
    /// A region must hold at least this much clearly periodic (voiced, pitch 70-400 Hz)
    /// audio; noise bursts and clicks have none. Default 60 ms.
    pub min_voiced_ms: u32,
}

impl Default for VadParams {
    fn default() -> Self {
        Self {
            threshold_db: 6.0,
            continue_threshold_db: 4.5,
            min_speech_ms: 250,
            min_silence_ms: 300,
            speech_pad_ms: 200,
            min_voiced_ms: 60,
        }
    }
}

impl VadParams {
    /// Rejects settings that cannot be meant: a threshold steady noise already crosses,
    /// or a continuation threshold above the start threshold.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let finite = self.threshold_db.is_finite() && self.continue_threshold_db.is_finite();
        if !finite || self.threshold_db < MIN_THRESHOLD_DB || self.threshold_db > 30.0 {
            return Err(ParamsError::new(
                "vad threshold_db",
                format!(
                    "{} is outside {MIN_THRESHOLD_DB}..=30 dB",
                    self.threshold_db
                ),
            ));
        }
        if self.continue_threshold_db < MIN_THRESHOLD_DB
            || self.continue_threshold_db > self.threshold_db
        {
            return Err(ParamsError::new(
                "vad continue_threshold_db",
                format!(
                    "{} must lie between {MIN_THRESHOLD_DB} and threshold_db ({})",
                    self.continue_threshold_db, self.threshold_db
                ),
            ));
        }
        Ok(())
    }
}

/// Below this, the typical frame of steady noise (3.5 dB) crosses the threshold, and
/// regions would only end where the noise does.
const MIN_THRESHOLD_DB: f32 = 4.0;

/// Settings of [`crate::plan_chunks`]; like [`VadParams`], missing fields deserialise to
/// their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkParams {
    /// Longest window handed to the recogniser. Whisper's encoder sees exactly 30 s, so
    /// a longer chunk would be cut blindly by the engine. Default 30 000 ms.
    pub max_chunk_ms: u32,
    /// Pauses longer than this always end a chunk and are skipped, so the recogniser
    /// never sits on long silence (where Whisper invents text). Shorter pauses stay inside
    /// a chunk while it has room. Default 2 000 ms.
    pub max_inner_pause_ms: u32,
}

impl Default for ChunkParams {
    fn default() -> Self {
        Self {
            max_chunk_ms: 30_000,
            max_inner_pause_ms: 2_000,
        }
    }
}

impl ChunkParams {
    /// A chunk must at least hold a few 20 ms analysis frames to have a quiet one to cut at.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.max_chunk_ms < 1_000 {
            return Err(ParamsError::new(
                "chunk max_chunk_ms",
                format!("{} ms is shorter than 1000 ms", self.max_chunk_ms),
            ));
        }
        Ok(())
    }
}

/// A setting that cannot be used, named as the user wrote it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct ParamsError {
    pub setting: &'static str,
    pub reason: String,
}

impl ParamsError {
    fn new(setting: &'static str, reason: String) -> Self {
        Self { setting, reason }
    }

    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(VadParams::default().validate(), Ok(()));
        assert_eq!(ChunkParams::default().validate(), Ok(()));
    }

    #[test]
    fn partial_configuration_keeps_the_other_defaults() {
        let vad: VadParams = serde_json::from_str(r#"{"threshold_db": 9.5}"#).unwrap();
        assert_eq!(vad.threshold_db, 9.5);
        assert_eq!(vad.speech_pad_ms, VadParams::default().speech_pad_ms);
        let chunk: ChunkParams = serde_json::from_str("{}").unwrap();
        assert_eq!(chunk, ChunkParams::default());
        let typo = serde_json::from_str::<VadParams>(r#"{"treshold_db": 9.5}"#);
        assert!(
            typo.is_err(),
            "a misspelt setting must not be silently ignored"
        );
    }

    #[test]
    fn unusable_settings_are_rejected_with_their_name() {
        let low = VadParams {
            threshold_db: 1.0,
            ..VadParams::default()
        };
        let err = low.validate().unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(err.to_string().contains("threshold_db"), "{err}");

        let inverted = VadParams {
            continue_threshold_db: 9.0,
            ..VadParams::default()
        };
        assert!(inverted
            .validate()
            .unwrap_err()
            .to_string()
            .contains("continue_threshold_db"));

        let nan = VadParams {
            threshold_db: f32::NAN,
            ..VadParams::default()
        };
        assert!(nan.validate().is_err());

        let tiny = ChunkParams {
            max_chunk_ms: 10,
            ..ChunkParams::default()
        };
        assert!(tiny
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_chunk_ms"));
    }
}
