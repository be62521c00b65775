//! Whisper's mel filterbank: Slaney
//! mel scale, Slaney area normalisation, 0–8 kHz over the 201 bins of a 400-point FFT at
//! 16 kHz — what `librosa.filters.mel(sr=16000, n_fft=400, n_mels=n)` returns and what the
//! Whisper models were trained with. vttiro's own front end computes features with it, and
//! the ggml converter writes it into model files, because whisper.cpp reads it from there.

const SAMPLE_RATE: f64 = crate::SAMPLE_RATE as f64;
const N_FFT: usize = 400;
/// Frequency bins of a real FFT of Whisper's 400 points.
pub const MEL_FFT_BINS: usize = N_FFT / 2 + 1;

fn hz_to_mel(hz: f64) -> f64 {
    // Slaney's auditory-toolbox scale: linear below 1 kHz, logarithmic above.
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_hz / f_sp + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// The periodic Hann window (`torch.hann_window(periodic=True)`, scipy's
/// `get_window('hann', len, fftbins=True)`): the divisor is `len`, not `len - 1`, which is
/// what both Whisper's and Resemblyzer's front ends were trained with.
pub fn periodic_hann(len: usize) -> Vec<f32> {
    (0..len)
        .map(|n| {
            let phase = 2.0 * std::f64::consts::PI * n as f64 / len as f64;
            (0.5 - 0.5 * phase.cos()) as f32
        })
        .collect()
}

/// `n_mels` triangular filters, row-major `[n_mels][201]`, computed in f64 and stored as
/// f32 as librosa does.
pub fn slaney_mel_filters(n_mels: usize) -> Vec<f32> {
    let fft_freqs: Vec<f64> = (0..MEL_FFT_BINS)
        .map(|bin| bin as f64 * SAMPLE_RATE / N_FFT as f64)
        .collect();
    let (min_mel, max_mel) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0));
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(min_mel + (max_mel - min_mel) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut filters = vec![0.0f32; n_mels * MEL_FFT_BINS];
    for (mel, row) in filters.chunks_exact_mut(MEL_FFT_BINS).enumerate() {
        let (low, centre, high) = (edges[mel], edges[mel + 1], edges[mel + 2]);
        let area_norm = 2.0 / (high - low);
        for (weight, &freq) in row.iter_mut().zip(&fft_freqs) {
            let rising = (freq - low) / (centre - low);
            let falling = (high - freq) / (high - centre);
            *weight = (rising.min(falling).max(0.0) * area_norm) as f32;
        }
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from an independent NumPy implementation of librosa's filterbank
    /// (faster-whisper 1.2.1, `FeatureExtractor.get_mel_filters`), the filters CTranslate2
    /// Whisper inference runs with.
    #[test]
    fn slaney_scale_is_linear_below_1khz_and_invertible() {
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-9);
        for hz in [0.0, 300.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
    }

    #[test]
    fn matches_librosa_at_reference_points() {
        let f80 = slaney_mel_filters(80);
        let at = |m: usize, b: usize| f80[m * MEL_FFT_BINS + b];
        let expected = [
            (0, 1, 0.024_862_595),
            (10, 10, 0.019_908_22),
            (10, 11, 0.004_954_375_3),
            (40, 42, 0.005_411_105),
            (40, 43, 0.014_735_566),
            (40, 44, 0.006_518_19),
            (79, 190, 0.002_232_055),
            (79, 196, 0.001_795_036_1),
        ];
        for (m, b, want) in expected {
            let got = at(m, b);
            assert!(
                (got - want).abs() <= 1e-7,
                "filter {m} bin {b}: {got} vs {want}"
            );
        }
        let nonzero =
            |m: usize| -> Vec<usize> { (0..MEL_FFT_BINS).filter(|&b| at(m, b) != 0.0).collect() };
        assert_eq!(nonzero(0), vec![1]);
        assert_eq!(nonzero(79), (186..200).collect::<Vec<_>>());

        let f128 = slaney_mel_filters(128);
        assert!((f128[1] - 0.012_373_987).abs() <= 1e-7);
        assert!((f128[127 * MEL_FFT_BINS + 195] - 0.005_041_601_6).abs() <= 1e-7);
    }
}
