/// Every stage after decoding works on 16 kHz mono, the rate Whisper-family models expect.
pub const SAMPLE_RATE: u32 = 16_000;

/// Converts a sample index at [`SAMPLE_RATE`] to milliseconds, rounding to nearest.
pub fn samples_to_ms(samples: usize) -> i64 {
    ((samples as i64) * 1000 + i64::from(SAMPLE_RATE) / 2) / i64::from(SAMPLE_RATE)
}

/// Converts milliseconds to a sample index at [`SAMPLE_RATE`]; negative times clamp to 0.
pub fn ms_to_samples(ms: i64) -> usize {
    (ms.max(0) * i64::from(SAMPLE_RATE) / 1000) as usize
}

/// Converts engine seconds to milliseconds, rounding to nearest so 0.0005 s errors do not
/// accumulate into visible drift.
pub fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_on_whole_milliseconds() {
        for ms in [0_i64, 1, 15, 999, 30_000, 7_200_000] {
            assert_eq!(samples_to_ms(ms_to_samples(ms)), ms);
        }
        assert_eq!(samples_to_ms(8), 1); // 0.5 ms rounds up
        assert_eq!(ms_to_samples(-5), 0);
        assert_eq!(seconds_to_ms(1.2345), 1235);
    }
}
