//! The detector on the sounds users complain about (it must find no speech in any of
//! them) and on real recorded speech (it must find nearly all of it), alone, under
//! noise, and sandwiched between noise and a test tone.

mod support;

use support::*;
use vttiro_vad::{detect_speech, VadParams};

const MINUTE: usize = 60 * RATE;

fn assert_no_speech(name: &str, signal: &[f32]) {
    let regions = detect_speech(signal, &VadParams::default());
    assert!(
        regions.is_empty(),
        "{name}: expected no speech, got {:?}",
        seconds(&regions)
    );
}

#[test]
fn a_minute_of_digital_silence_is_not_speech() {
    assert_no_speech("digital silence", &vec![0.0; MINUTE]);
    // Silence with a DC offset and with 16-bit dither is still silence.
    assert_no_speech("dc offset", &vec![0.01; MINUTE]);
    assert_no_speech("dither", &white_noise(MINUTE, -96.0, 1));
}

#[test]
fn a_minute_of_white_noise_is_not_speech_at_any_level() {
    for (level, seed) in [(-60.0, 2), (-40.0, 3), (-20.0, 4), (-6.0, 5)] {
        assert_no_speech(
            &format!("white {level} dBFS"),
            &white_noise(MINUTE, level, seed),
        );
    }
}

#[test]
fn a_minute_of_pink_or_brown_noise_is_not_speech() {
    for level in [-40.0, -20.0] {
        assert_no_speech(&format!("pink {level} dBFS"), &pink_noise(MINUTE, level, 6));
        assert_no_speech(
            &format!("brown {level} dBFS"),
            &brown_noise(MINUTE, level, 7),
        );
    }
}

#[test]
fn noise_generated_by_sox_is_not_speech() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["whitenoise", "pinknoise", "brownnoise"] {
        for gain in [-30.0, -10.0] {
            let noise = sox_noise(dir.path(), kind, 60, gain);
            assert_eq!(noise.len(), MINUTE);
            assert_no_speech(&format!("sox {kind} gain {gain}"), &noise);
        }
    }
}

#[test]
fn a_minute_of_a_steady_tone_hum_or_chord_is_not_speech() {
    assert_no_speech("1 kHz at -12 dBFS", &tone(MINUTE, 1000.0, -12.0));
    assert_no_speech("1 kHz at 0 dBFS", &tone(MINUTE, 1000.0, 0.0));
    assert_no_speech("440 Hz at -20 dBFS", &tone(MINUTE, 440.0, -20.0));
    assert_no_speech("50 Hz hum", &hum(MINUTE, -12.0));
    assert_no_speech("held chord", &chord(MINUTE, -20.0));
    assert_no_speech(
        "tone over hiss",
        &add(&tone(MINUTE, 1000.0, -12.0), &white_noise(MINUTE, -50.0, 8)),
    );
}

#[test]
fn a_minute_of_beeps_is_not_speech() {
    // Half a second on, half a second off: every onset is new to the floor, so only
    // the beeps' single spectral peak tells them from a voice.
    let mut beeps = Vec::with_capacity(MINUTE);
    while beeps.len() < MINUTE {
        beeps.extend(tone(RATE / 2, 1000.0, -12.0));
        beeps.extend(std::iter::repeat_n(0.0, RATE / 2));
    }
    assert_no_speech("1 kHz beeps", &beeps);
}

#[test]
fn real_speech_is_found() {
    for (name, clip) in real_clips() {
        let voiced = voiced_frames(&clip);
        assert!(
            voiced.len() > 100,
            "{name}: only {} voiced frames",
            voiced.len()
        );
        let regions = detect_speech(&clip, &VadParams::default());
        let found = coverage(&regions, &voiced);
        eprintln!(
            "{name}: {:.1}% of {} voiced frames, regions {:?}",
            found * 100.0,
            voiced.len(),
            seconds(&regions)
        );
        assert!(
            found >= 0.9,
            "{name}: only {:.1}% of voiced frames in {:?}",
            found * 100.0,
            seconds(&regions)
        );
    }
}

#[test]
fn quiet_speech_is_found() {
    for (name, clip) in real_clips() {
        let quiet: Vec<f32> = clip.iter().map(|s| s * dbfs(-30.0) as f32).collect();
        let voiced = voiced_frames(&clip);
        let found = coverage(&detect_speech(&quiet, &VadParams::default()), &voiced);
        assert!(found >= 0.9, "{name} at -30 dB: {:.1}%", found * 100.0);
    }
}

/// Speech under noise at 10 dB SNR, with three seconds of the same noise alone before
/// and after it: the speech is still found, and the noise-only parts stay out.
#[test]
fn speech_at_10_db_snr_is_found_and_the_noise_around_it_is_not() {
    let lead = 3 * RATE;
    for (name, clip) in real_clips() {
        let voiced: Vec<usize> = voiced_frames(&clip).iter().map(|s| s + lead).collect();
        let mut speech = vec![0.0f32; lead];
        speech.extend_from_slice(&clip);
        speech.extend(std::iter::repeat_n(0.0, lead));
        let len = speech.len();
        let noises = [
            ("white", white_noise(len, -30.0, 11)),
            ("pink", pink_noise(len, -30.0, 12)),
            ("brown", brown_noise(len, -30.0, 13)),
        ];
        for (kind, noise) in noises {
            // SNR is measured over the speech only, not the padded lead-in.
            let gain = rms(&clip) / rms(&noise) / dbfs(10.0);
            let noisy: Vec<f32> = speech
                .iter()
                .zip(&noise)
                .map(|(&s, &n)| s + (f64::from(n) * gain) as f32)
                .collect();
            let regions = detect_speech(&noisy, &VadParams::default());
            let found = coverage(&regions, &voiced);
            assert!(
                found >= 0.9,
                "{name} in {kind} noise at 10 dB SNR: {:.1}% of voiced frames, regions {:?}",
                found * 100.0,
                seconds(&regions)
            );
            let pad = 4_800; // speech_pad_ms 200 plus 100 ms of onset smearing
            let first = regions.first().unwrap().start;
            let last = regions.last().unwrap().end;
            assert!(
                first + pad >= lead && last <= lead + clip.len() + pad,
                "{name} in {kind}: regions {:?} reach into the noise-only parts",
                seconds(&regions)
            );
        }
    }
}

/// The case that makes Whisper hallucinate: speech with a long stretch of noise before
/// it and a test tone after it. Only the speech may come back.
#[test]
fn speech_between_noise_and_a_tone_yields_regions_only_around_the_speech() {
    let before = 20 * RATE;
    let after = 20 * RATE;
    for (name, clip) in real_clips() {
        let total = before + clip.len() + after;
        let mut signal = white_noise(total, -45.0, 21);
        for (slot, &s) in signal[before..].iter_mut().zip(&clip) {
            *slot += s;
        }
        let speech_end = before + clip.len();
        for (slot, t) in signal[speech_end..]
            .iter_mut()
            .zip(tone(after, 1000.0, -12.0))
        {
            *slot += t;
        }

        let regions = detect_speech(&signal, &VadParams::default());
        let voiced: Vec<usize> = voiced_frames(&clip).iter().map(|s| s + before).collect();
        let found = coverage(&regions, &voiced);
        assert!(
            found >= 0.9,
            "{name}: {:.1}% of voiced frames",
            found * 100.0
        );
        let slack = 4_800;
        for region in &regions {
            assert!(
                region.start + slack >= before && region.end <= speech_end + slack,
                "{name}: region {:?} outside the speech at {:.2}-{:.2} s",
                seconds(&[*region]),
                before as f64 / RATE as f64,
                speech_end as f64 / RATE as f64
            );
        }
    }
}

#[test]
fn the_threshold_trades_sensitivity_for_strictness() {
    let (name, clip) = real_clips().remove(1);
    let noisy = mix_at_snr(&clip, &white_noise(clip.len(), -30.0, 31), 5.0);
    let voiced = voiced_frames(&clip);
    let at = |threshold_db: f32| {
        let params = VadParams {
            threshold_db,
            continue_threshold_db: threshold_db.min(4.5),
            ..VadParams::default()
        };
        params.validate().unwrap();
        coverage(&detect_speech(&noisy, &params), &voiced)
    };
    let default = at(6.0);
    let strict = at(25.0);
    assert!(
        default >= 0.9,
        "{name} at 5 dB SNR: {:.1}%",
        default * 100.0
    );
    assert!(
        strict < 0.5,
        "{name}: a 25 dB threshold still finds {:.1}%",
        strict * 100.0
    );
}

#[test]
fn regions_are_padded_sorted_and_respect_the_duration_rules() {
    let clips = real_clips();
    // Two utterances 1.5 s apart in a quiet room (-60 dBFS hiss).
    let gap = 3 * RATE / 2;
    let (a, b) = (&clips[1].1, &clips[2].1);
    let mut signal = a.clone();
    signal.extend(std::iter::repeat_n(0.0, gap));
    signal.extend_from_slice(b);
    let signal = add(&signal, &white_noise(signal.len(), -60.0, 41));

    let padded = detect_speech(&signal, &VadParams::default());
    for pair in padded.windows(2) {
        assert!(
            pair[0].end < pair[1].start,
            "sorted and disjoint: {:?}",
            seconds(&padded)
        );
    }
    assert!(padded.iter().all(|r| r.end <= signal.len()));

    let unpadded = detect_speech(
        &signal,
        &VadParams {
            speech_pad_ms: 0,
            ..VadParams::default()
        },
    );
    assert_eq!(padded.len(), unpadded.len());
    for (p, u) in padded.iter().zip(&unpadded) {
        assert!(p.start <= u.start && p.end >= u.end);
        let grown = (u.start - p.start) + (p.end - u.end);
        assert!(
            grown > 0 && grown <= 2 * 3_200,
            "padding grew a region by {grown} samples"
        );
    }

    // A pause longer than min_silence separates the utterances; a longer min_silence
    // bridges it.
    let separate = unpadded.iter().any(|r| r.end <= a.len() + 1_600)
        && unpadded.iter().any(|r| r.start + 1_600 >= a.len() + gap);
    assert!(
        separate,
        "utterances should be apart: {:?}",
        seconds(&unpadded)
    );
    let bridged = detect_speech(
        &signal,
        &VadParams {
            min_silence_ms: 3_000,
            speech_pad_ms: 0,
            ..VadParams::default()
        },
    );
    assert_eq!(bridged.len(), 1, "{:?}", seconds(&bridged));
}

#[test]
fn a_lone_syllable_is_kept_or_dropped_by_min_speech_ms() {
    // The loudest 200 ms of the JFK clip, alone in a quiet room.
    let (_, jfk) = real_clips().remove(0);
    let span = RATE / 5;
    let loudest = (0..jfk.len() - span)
        .step_by(160)
        .max_by(|&a, &b| rms(&jfk[a..a + span]).total_cmp(&rms(&jfk[b..b + span])))
        .unwrap();
    let mut signal = vec![0.0f32; 2 * RATE];
    signal[RATE..RATE + span].copy_from_slice(&jfk[loudest..loudest + span]);
    let signal = add(&signal, &white_noise(signal.len(), -60.0, 61));

    let keep_short = VadParams {
        min_speech_ms: 100,
        ..VadParams::default()
    };
    let kept = detect_speech(&signal, &keep_short);
    assert_eq!(kept.len(), 1, "{:?}", seconds(&kept));
    assert!(kept[0].start <= RATE && kept[0].end >= RATE + span);
    let drop_short = VadParams {
        min_speech_ms: 400,
        ..VadParams::default()
    };
    assert!(detect_speech(&signal, &drop_short).is_empty());
}

#[test]
fn empty_and_tiny_inputs_are_handled() {
    assert!(detect_speech(&[], &VadParams::default()).is_empty());
    assert!(detect_speech(&[0.5], &VadParams::default()).is_empty());
    assert!(detect_speech(&[0.1; 100], &VadParams::default()).is_empty());
}
