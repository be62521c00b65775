//! Every supported container/codec pair, encoded by ffmpeg from one speech-like source, must
//! decode to a signal of the source's length whose bursts sit where the source (plus any
//! container offset) puts them.

mod common;

use std::path::Path;

use common::*;
use vttiro_core::{ErrorCode, SAMPLE_RATE};
use vttiro_media::{decode, decode_with_progress, probe, DecodeOptions, DecoderKind};

const ONSET_TOLERANCE_S: f64 = 0.020;
const DURATION_TOLERANCE_S: f64 = 0.050;

/// A small video stream so containers hold several streams, like real uploads.
const VIDEO_INPUT: [&str; 4] = ["-f", "lavfi", "-i", "testsrc=d=6:s=64x64:r=5"];

struct Expect {
    codec: &'static str,
    decoder: DecoderKind,
    /// Where the container places the audio relative to the source, in seconds.
    offset_s: f64,
    /// Encoder priming (samples at the source rate) that the container may store as ordinary
    /// audio at time zero. Matroska from ffmpeg 5 does this for AAC and MP3 (the whole file,
    /// video included, is shifted by it, so players show the burst that late); newer ffmpeg
    /// writes a CodecDelay instead, which puts the burst back at the source time. Both readings
    /// are correct, so either position is accepted.
    priming_samples: Option<u32>,
}

fn in_process(codec: &'static str) -> Expect {
    Expect {
        codec,
        decoder: DecoderKind::Symphonia,
        offset_s: 0.0,
        priming_samples: None,
    }
}

/// Encodes the source with `args` (which must contain `-i SOURCE` where the placeholder
/// `SOURCE` stands), decodes it, and checks timing, length and decoder.
fn check(name: &str, args: &[&str], expect: Expect) {
    let dir = tempfile::tempdir().unwrap();
    let source = source_wav(dir.path());
    let file = dir.path().join(name);
    let mut full: Vec<&str> = args
        .iter()
        .map(|a| {
            if *a == "SOURCE" {
                source.to_str().unwrap()
            } else {
                a
            }
        })
        .collect();
    full.push(file.to_str().unwrap());
    ffmpeg(&full);

    let decoded = decode(&file, &DecodeOptions::default())
        .unwrap_or_else(|e| panic!("{name}: decode failed: {e}"));
    assert_eq!(decoded.decoder, expect.decoder, "{name}: decoder");
    assert_eq!(decoded.track.codec, expect.codec, "{name}: codec");
    assert_eq!(decoded.track.index, 0);

    let expected_len_s = SOURCE_SECONDS + expect.offset_s;
    let len_s = decoded.samples.len() as f64 / f64::from(SAMPLE_RATE);
    assert!(
        (len_s - expected_len_s).abs() <= DURATION_TOLERANCE_S,
        "{name}: decoded {len_s:.3} s, expected {expected_len_s:.3} s"
    );

    let want = source_onsets();
    assert_eq!(want.len(), BURST_STARTS.len(), "source onsets {want:?}");
    let got = onsets(&decoded.samples, SAMPLE_RATE);
    assert_eq!(
        got.len(),
        want.len(),
        "{name}: onsets {got:?}, source {want:?}"
    );
    let shifts: Vec<f64> = std::iter::once(0.0)
        .chain(
            expect
                .priming_samples
                .map(|n| f64::from(n) / f64::from(SOURCE_RATE)),
        )
        .collect();
    for (g, w) in got.iter().zip(&want) {
        let error = shifts
            .iter()
            .map(|shift| (g - (w + expect.offset_s + shift)).abs())
            .fold(f64::INFINITY, f64::min);
        eprintln!(
            "{name}: burst {w:.3} s decoded at {g:.4} s, error {:.1} ms",
            error * 1000.0
        );
        assert!(
            error <= ONSET_TOLERANCE_S,
            "{name}: burst at {g:.4} s, source {w:.4} s + offset {} s (error {:.1} ms)",
            expect.offset_s,
            error * 1000.0
        );
    }
    let start_error_ms = (decoded.start_offset_ms as f64 - expect.offset_s * 1000.0).abs();
    assert!(
        start_error_ms <= 30.0,
        "{name}: start offset {} ms, expected about {} ms",
        decoded.start_offset_ms,
        expect.offset_s * 1000.0
    );
}

#[test]
fn wav_pcm() {
    check(
        "a.wav",
        &["-i", "SOURCE", "-c:a", "pcm_s24le"],
        in_process("pcm_s24le"),
    );
}

#[test]
fn flac() {
    check(
        "a.flac",
        &["-i", "SOURCE", "-c:a", "flac"],
        in_process("flac"),
    );
}

#[test]
fn mp3() {
    check(
        "a.mp3",
        &["-i", "SOURCE", "-c:a", "libmp3lame"],
        in_process("mp3"),
    );
}

#[test]
fn ogg_vorbis() {
    check(
        "a.ogg",
        &["-i", "SOURCE", "-c:a", "libvorbis"],
        in_process("vorbis"),
    );
}

#[test]
fn ogg_opus() {
    check(
        "a.opus",
        &["-i", "SOURCE", "-c:a", "libopus"],
        in_process("opus"),
    );
}

#[test]
fn m4a_aac() {
    check("a.m4a", &["-i", "SOURCE", "-c:a", "aac"], in_process("aac"));
}

#[test]
fn mov_aac() {
    check("a.mov", &["-i", "SOURCE", "-c:a", "aac"], in_process("aac"));
}

#[test]
fn mp4_aac_with_video() {
    let args = [
        &VIDEO_INPUT[..],
        &["-i", "SOURCE", "-c:v", "mpeg4", "-c:a", "aac"],
    ]
    .concat();
    check("a.mp4", &args, in_process("aac"));
}

#[test]
fn mp4_audio_starting_half_a_second_late() {
    let args = [
        &VIDEO_INPUT[..],
        &[
            "-itsoffset",
            "0.5",
            "-i",
            "SOURCE",
            "-map",
            "0:v",
            "-map",
            "1:a",
        ],
        &["-c:v", "mpeg4", "-c:a", "aac"],
    ]
    .concat();
    let expect = Expect {
        offset_s: 0.5,
        ..in_process("aac")
    };
    check("late.mp4", &args, expect);
}

#[test]
fn mkv_opus() {
    check(
        "a.mkv",
        &["-i", "SOURCE", "-c:a", "libopus"],
        in_process("opus"),
    );
}

#[test]
fn mkv_vorbis() {
    check(
        "a.mkv",
        &["-i", "SOURCE", "-c:a", "libvorbis"],
        in_process("vorbis"),
    );
}

#[test]
fn mkv_aac() {
    let expect = Expect {
        priming_samples: Some(1024),
        ..in_process("aac")
    };
    check("a.mkv", &["-i", "SOURCE", "-c:a", "aac"], expect);
}

#[test]
fn mkv_mp3() {
    // LAME's 576-sample delay plus the 529-sample decoder delay.
    let expect = Expect {
        priming_samples: Some(1105),
        ..in_process("mp3")
    };
    check("a.mkv", &["-i", "SOURCE", "-c:a", "libmp3lame"], expect);
}

#[test]
fn mkv_opus_with_video_starting_half_a_second_late() {
    let args = [
        &VIDEO_INPUT[..],
        &[
            "-itsoffset",
            "0.5",
            "-i",
            "SOURCE",
            "-map",
            "0:v",
            "-map",
            "1:a",
        ],
        &["-c:v", "mpeg4", "-c:a", "libopus"],
    ]
    .concat();
    let expect = Expect {
        offset_s: 0.5,
        ..in_process("opus")
    };
    check("late.mkv", &args, expect);
}

#[test]
fn webm_opus_with_video() {
    let args = [
        &VIDEO_INPUT[..],
        &["-i", "SOURCE", "-c:v", "libvpx", "-c:a", "libopus"],
    ]
    .concat();
    check("a.webm", &args, in_process("opus"));
}

#[test]
fn webm_vorbis() {
    check(
        "a.webm",
        &["-i", "SOURCE", "-c:a", "libvorbis"],
        in_process("vorbis"),
    );
}

#[test]
fn ac3_goes_through_ffmpeg_and_keeps_its_offset() {
    let args = [
        &VIDEO_INPUT[..],
        &[
            "-itsoffset",
            "0.5",
            "-i",
            "SOURCE",
            "-map",
            "0:v",
            "-map",
            "1:a",
        ],
        &["-c:v", "mpeg4", "-c:a", "ac3"],
    ]
    .concat();
    let expect = Expect {
        codec: "ac3",
        decoder: DecoderKind::Ffmpeg,
        offset_s: 0.5,
        priming_samples: None,
    };
    check("late-ac3.mkv", &args, expect);
}

#[test]
fn mpeg_ts_is_read_by_ffmpeg_from_its_first_timestamp() {
    // MPEG-TS clocks start at an arbitrary value (ffmpeg writes 1.4 s); the timeline starts at
    // the first timestamp, so the bursts sit at their source times.
    let args = [
        &VIDEO_INPUT[..],
        &["-i", "SOURCE", "-c:v", "mpeg2video", "-c:a", "mp2"],
    ]
    .concat();
    let expect = Expect {
        codec: "mp2",
        decoder: DecoderKind::Ffmpeg,
        offset_s: 0.0,
        priming_samples: None,
    };
    check("a.ts", &args, expect);
}

#[test]
fn ac3_without_ffmpeg_allowed_names_the_codec() {
    let dir = tempfile::tempdir().unwrap();
    let source = source_wav(dir.path());
    let file = encode(dir.path(), &source, "speech.mkv", &["-c:a", "ac3"]);
    let opts = DecodeOptions {
        allow_ffmpeg: false,
        ..DecodeOptions::default()
    };
    let err = decode(&file, &opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedMedia);
    let message = err.to_string();
    assert!(message.contains("speech.mkv"), "{message}");
    assert!(
        message
            .contains("codec ac3 is not supported in-process and the ffmpeg fallback is disabled"),
        "{message}"
    );
    // Probing still works in-process: the container is readable, only the codec is not.
    let info = probe(&file).unwrap();
    assert_eq!(info.audio_tracks.len(), 1);
    assert_eq!(info.audio_tracks[0].codec, "ac3");
}

/// Two audio tracks told apart by frequency: 300 Hz (first) and 1200 Hz (second).
fn two_track_file(dir: &Path, name: &str, extra: &[&str]) -> std::path::PathBuf {
    let low = dir.join("low.wav");
    let high = dir.join("high.wav");
    write_wav(&low, SOURCE_RATE, 1, &tone_bursts_mono(300.0));
    write_wav(&high, SOURCE_RATE, 1, &tone_bursts_mono(1200.0));
    let out = dir.join(name);
    let mut args = vec!["-i", low.to_str().unwrap(), "-i", high.to_str().unwrap()];
    args.extend_from_slice(&["-map", "0:a", "-map", "1:a"]);
    args.extend_from_slice(extra);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

fn is_high_track(samples: &[f32]) -> bool {
    let low = tone_power(samples, 300.0, SAMPLE_RATE);
    let high = tone_power(samples, 1200.0, SAMPLE_RATE);
    assert!(
        low > 10.0 * high || high > 10.0 * low,
        "tracks not distinguishable: {low} vs {high}"
    );
    high > low
}

#[test]
fn audio_track_option_picks_the_nth_audio_track() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "-c:a",
        "libopus",
        "-metadata:s:a:0",
        "language=eng",
        "-metadata:s:a:1",
        "language=fra",
    ];
    let file = two_track_file(dir.path(), "two.mkv", &args);

    let info = probe(&file).unwrap();
    assert_eq!(info.container, "matroska");
    assert_eq!(info.audio_tracks.len(), 2);
    assert_eq!(info.audio_tracks[0].language.as_deref(), Some("eng"));
    assert_eq!(info.audio_tracks[1].language.as_deref(), Some("fra"));
    assert_eq!(info.audio_tracks[1].index, 1);
    assert_eq!(info.audio_tracks[0].channels, Some(1));

    let first = decode(&file, &DecodeOptions::default()).unwrap();
    assert!(!is_high_track(&first.samples));
    assert_eq!(first.track.index, 0);

    let opts = DecodeOptions {
        audio_track: Some(1),
        ..DecodeOptions::default()
    };
    let second = decode(&file, &opts).unwrap();
    assert!(is_high_track(&second.samples));
    assert_eq!(second.track.index, 1);
    assert_eq!(second.track.language.as_deref(), Some("fra"));

    let opts = DecodeOptions {
        audio_track: Some(2),
        ..DecodeOptions::default()
    };
    let err = decode(&file, &opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let message = err.to_string();
    assert!(
        message.contains("two.mkv") && message.contains("2 audio track"),
        "{message}"
    );
}

#[test]
fn default_flag_decides_the_track_when_none_is_requested() {
    let dir = tempfile::tempdir().unwrap();
    let disposition = ["-disposition:a:0", "0", "-disposition:a:1", "default"];
    for (name, codec) in [
        ("two.mkv", "libopus"),
        ("two.mp4", "aac"),
        ("two-ac3.mkv", "ac3"),
    ] {
        let args = [&["-c:a", codec][..], &disposition[..]].concat();
        let file = two_track_file(dir.path(), name, &args);
        let info = probe(&file).unwrap();
        let defaults: Vec<bool> = info.audio_tracks.iter().map(|t| t.is_default).collect();
        assert_eq!(defaults, [false, true], "{name}");
        let decoded = decode(&file, &DecodeOptions::default()).unwrap();
        assert_eq!(decoded.track.index, 1, "{name}");
        assert!(is_high_track(&decoded.samples), "{name}");
    }
}

#[test]
fn progress_rises_to_one_on_both_decoders() {
    let dir = tempfile::tempdir().unwrap();
    let source = source_wav(dir.path());
    for (name, codec) in [("p.flac", "flac"), ("p.mkv", "ac3")] {
        let file = encode(dir.path(), &source, name, &["-c:a", codec]);
        let mut seen = Vec::new();
        decode_with_progress(&file, &DecodeOptions::default(), &mut |f| seen.push(f)).unwrap();
        assert!(seen.len() >= 3, "{name}: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{name}: {seen:?}");
        assert!(
            seen.iter().all(|f| (0.0..=1.0).contains(f)),
            "{name}: {seen:?}"
        );
        assert_eq!(seen.last(), Some(&1.0), "{name}");
        assert!(seen[0] < 0.5, "{name}: first report {}", seen[0]);
    }
}

#[test]
fn a_cancel_token_stops_both_decoders_part_way() {
    let dir = tempfile::tempdir().unwrap();
    // Ten minutes, so there is much left to decode when the first report arrives.
    let long = dir.path().join("long.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=16000:duration=600",
        long.to_str().unwrap(),
    ]);
    for (name, codec) in [("long.flac", "flac"), ("long.mkv", "ac3")] {
        let file = encode(dir.path(), &long, name, &["-c:a", codec]);
        let opts = DecodeOptions::default();
        let caller = opts.cancel.clone();
        let mut seen = Vec::new();
        let result = decode_with_progress(&file, &opts, &mut |f| {
            seen.push(f);
            // The caller (a notebook's Ctrl-C) cancels once decoding is under way.
            if f > 0.0 {
                caller.cancel();
            }
        });
        let Err(err) = result else {
            panic!("{name}: decoded to the end despite the cancel");
        };
        assert!(
            matches!(err, vttiro_media::MediaError::Cancelled { .. }),
            "{name}: {err}"
        );
        assert_eq!(err.to_string(), format!("{}: cancelled", file.display()));
        let last = *seen.last().unwrap();
        assert!(last < 0.2, "{name}: reached {last} before stopping");
    }
}

#[test]
fn probe_reports_container_duration_and_track_details() {
    let dir = tempfile::tempdir().unwrap();
    let source = source_wav(dir.path());
    let file = encode(
        dir.path(),
        &source,
        "a.m4a",
        &["-c:a", "aac", "-metadata:s:a:0", "language=deu"],
    );
    let info = probe(&file).unwrap();
    assert_eq!(info.path, file);
    assert_eq!(info.container, "isomp4");
    let duration = info.duration_ms.expect("mp4 declares its duration");
    assert!((duration - 6000).abs() <= 50, "{duration}");
    let track = &info.audio_tracks[0];
    assert_eq!(track.codec, "aac");
    assert_eq!(track.sample_rate, Some(48_000));
    assert_eq!(track.channels, Some(2));
    assert_eq!(track.language.as_deref(), Some("deu"));

    // A container only ffmpeg reads is described by ffmpeg.
    let ts = encode(dir.path(), &source, "a.ts", &["-c:a", "ac3"]);
    let info = probe(&ts).unwrap();
    assert_eq!(info.container, "mpegts");
    assert_eq!(info.audio_tracks.len(), 1);
    assert_eq!(info.audio_tracks[0].codec, "ac3");
    assert_eq!(info.audio_tracks[0].sample_rate, Some(48_000));
    assert_eq!(info.audio_tracks[0].channels, Some(2));
}

#[test]
fn tracks_symphonia_cannot_name_keep_ffmpeg_numbering() {
    // Matroska stores WMA as A_MS/ACM, a codec id symphonia does not map: it would list only
    // the AAC track, as number 0. ffmpeg's numbering must win so indices mean the same file
    // track everywhere.
    let dir = tempfile::tempdir().unwrap();
    let file = two_track_file(dir.path(), "acm.mkv", &["-c:a:0", "wmav2", "-c:a:1", "aac"]);
    let info = probe(&file).unwrap();
    let codecs: Vec<&str> = info.audio_tracks.iter().map(|t| t.codec.as_str()).collect();
    assert_eq!(codecs, ["wmav2", "aac"]);

    let first = decode(&file, &DecodeOptions::default()).unwrap();
    assert_eq!(first.track.codec, "wmav2");
    assert!(!is_high_track(&first.samples));
    let opts = DecodeOptions {
        audio_track: Some(1),
        ..DecodeOptions::default()
    };
    let second = decode(&file, &opts).unwrap();
    assert_eq!(second.track.codec, "aac");
    assert!(is_high_track(&second.samples));
}

#[test]
fn surround_downmix_stays_in_range_on_both_decoders() {
    // symphonia's AAC decoder stops at two channels, so 5.1 AAC goes to ffmpeg; 5.1 FLAC stays
    // in-process. Either way the mono mix keeps the source's level and timing.
    let dir = tempfile::tempdir().unwrap();
    let source = source_wav(dir.path());
    let to_surround = "pan=5.1|FL=c0|FR=c1|FC=c0|LFE=c1|BL=c0|BR=c1";
    for (name, codec, decoder) in [
        ("surround.mp4", "aac", DecoderKind::Ffmpeg),
        ("surround.flac", "flac", DecoderKind::Symphonia),
    ] {
        let file = encode(
            dir.path(),
            &source,
            name,
            &["-af", to_surround, "-c:a", codec],
        );
        let decoded = decode(&file, &DecodeOptions::default()).unwrap();
        assert_eq!(decoded.decoder, decoder, "{name}");
        assert_eq!(decoded.track.channels, Some(6), "{name}");
        let peak = decoded.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((0.5..=1.05).contains(&peak), "{name}: peak {peak}");
        let got = onsets(&decoded.samples, SAMPLE_RATE);
        let want = source_onsets();
        assert_eq!(got.len(), want.len(), "{name}: {got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= ONSET_TOLERANCE_S, "{name}: {g} vs {w}");
        }
    }
}
