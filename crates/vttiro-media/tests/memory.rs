//! Decoding streams: peak memory grows with the 16 kHz mono output, not with the source's
//! 48 kHz stereo signal. This file holds a single test so the process's high-water mark
//! (VmHWM) belongs to it alone.

mod common;

use common::ffmpeg;
use vttiro_core::SAMPLE_RATE;
use vttiro_media::{decode_with_progress, DecodeOptions, DecoderKind};

const MINUTES: u32 = 20;

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc is required");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM value in kB");
    kib * 1024
}

#[test]
fn long_48khz_stereo_flac_decodes_within_output_sized_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.flac");
    let seconds = (MINUTES * 60).to_string();
    // Left and right differ so the downmix has real work; tones keep the FLAC small.
    let sources = format!(
        "sine=frequency=220:sample_rate=48000:duration={seconds}[l];\
         sine=frequency=330:sample_rate=48000:duration={seconds}[r];[l][r]amerge=inputs=2"
    );
    ffmpeg(&[
        "-filter_complex",
        &sources,
        "-c:a",
        "flac",
        path.to_str().unwrap(),
    ]);

    let before = peak_rss_bytes();
    let mut reports = 0usize;
    let decoded = decode_with_progress(&path, &DecodeOptions::default(), &mut |_| reports += 1)
        .expect("long flac decodes");
    let growth = peak_rss_bytes().saturating_sub(before);

    assert_eq!(decoded.decoder, DecoderKind::Symphonia);
    let expected_len = (MINUTES * 60 * SAMPLE_RATE) as usize;
    assert!(
        decoded.samples.len().abs_diff(expected_len) <= 16,
        "{} samples, expected {expected_len}",
        decoded.samples.len()
    );
    assert!(reports > 50, "progress reported {reports} times");

    let output_bytes = (decoded.samples.len() * 4) as u64;
    let source_bytes = u64::from(MINUTES * 60 * 48_000 * 2 * 4);
    let allowed = output_bytes + 48 * 1024 * 1024;
    eprintln!(
        "peak RSS growth {} MiB, output {} MiB",
        growth >> 20,
        output_bytes >> 20
    );
    assert!(
        growth <= allowed,
        "peak RSS grew {} MiB for {} MiB of output (allowed {} MiB; the whole source at 48 kHz \
         stereo would be {} MiB)",
        growth >> 20,
        output_bytes >> 20,
        allowed >> 20,
        source_bytes >> 20
    );
}
