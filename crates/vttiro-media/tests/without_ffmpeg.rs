//! With no ffmpeg on PATH, the in-process decoder still works and codecs it lacks fail with a
//! message that says why. PATH is emptied for this whole process, so this file holds a single
//! test (fixtures are made first, through ffmpeg's absolute path).

mod common;

use common::*;
use vttiro_core::ErrorCode;
use vttiro_media::{decode, probe, DecodeOptions, DecoderKind};

#[test]
fn without_ffmpeg_on_path() {
    let ffmpeg = ffmpeg_path();
    let dir = tempfile::tempdir().unwrap();
    let source = source_wav(dir.path());
    let src = source.to_str().unwrap();
    let ac3 = dir.path().join("input.mkv");
    ffmpeg_with(&ffmpeg, &["-i", src, "-c:a", "ac3", ac3.to_str().unwrap()]);
    let opus = dir.path().join("speech.webm");
    ffmpeg_with(
        &ffmpeg,
        &["-i", src, "-c:a", "libopus", opus.to_str().unwrap()],
    );
    let whole = dir.path().join("whole.mp4");
    ffmpeg_with(
        &ffmpeg,
        &["-i", src, "-c:a", "aac", whole.to_str().unwrap()],
    );
    let bytes = std::fs::read(&whole).unwrap();
    let half = dir.path().join("half.mp4");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let text = dir.path().join("readme.mp4");
    std::fs::write(&text, "plain text\n".repeat(100)).unwrap();

    let empty_dir = tempfile::tempdir().unwrap();
    std::env::set_var("PATH", empty_dir.path());

    let err = decode(&ac3, &DecodeOptions::default()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedMedia);
    let message = err.to_string();
    assert!(
        message.contains(
            "input.mkv: codec ac3 is not supported in-process and ffmpeg was not found on PATH"
        ),
        "{message}"
    );
    assert_eq!(probe(&ac3).unwrap().audio_tracks[0].codec, "ac3");

    let decoded = decode(&opus, &DecodeOptions::default()).unwrap();
    assert_eq!(decoded.decoder, DecoderKind::Symphonia);
    assert_eq!(onsets(&decoded.samples, 16_000).len(), BURST_STARTS.len());

    assert_eq!(
        decode(&half, &DecodeOptions::default()).unwrap_err().code(),
        ErrorCode::CorruptMedia
    );
    assert_eq!(probe(&half).unwrap_err().code(), ErrorCode::CorruptMedia);
    assert_eq!(
        decode(&text, &DecodeOptions::default()).unwrap_err().code(),
        ErrorCode::UnsupportedMedia
    );
}
