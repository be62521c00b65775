//! Each kind of bad input gets its own error code and a one-line message naming the file.

mod common;

use std::path::Path;

use common::*;
use vttiro_core::ErrorCode;
use vttiro_media::{decode, probe, DecodeOptions, MediaError};

fn in_process_only() -> DecodeOptions {
    DecodeOptions {
        allow_ffmpeg: false,
        ..DecodeOptions::default()
    }
}

fn assert_error(err: MediaError, code: ErrorCode, file_name: &str) {
    let message = err.to_string();
    assert_eq!(err.code(), code, "{message}");
    assert!(
        message.contains(file_name),
        "message does not name the file: {message}"
    );
    assert!(
        !message.contains('\n'),
        "message is not one line: {message}"
    );
}

/// Checks `decode` with and without ffmpeg, and `probe` when it must fail too.
fn assert_decode_fails(path: &Path, code: ErrorCode) {
    let name = path.file_name().unwrap().to_str().unwrap();
    assert_error(
        decode(path, &DecodeOptions::default()).unwrap_err(),
        code,
        name,
    );
    assert_error(decode(path, &in_process_only()).unwrap_err(), code, name);
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.mp4");
    assert_decode_fails(&path, ErrorCode::InputNotFound);
    assert_error(
        probe(&path).unwrap_err(),
        ErrorCode::InputNotFound,
        "nowhere.mp4",
    );
}

#[test]
fn directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("folder.mkv");
    std::fs::create_dir(&path).unwrap();
    assert_decode_fails(&path, ErrorCode::InputIsDirectory);
    assert_error(
        probe(&path).unwrap_err(),
        ErrorCode::InputIsDirectory,
        "folder.mkv",
    );
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wav");
    std::fs::write(&path, b"").unwrap();
    assert_decode_fails(&path, ErrorCode::InputEmpty);
    assert_error(
        probe(&path).unwrap_err(),
        ErrorCode::InputEmpty,
        "empty.wav",
    );
}

#[test]
fn text_file_named_mp4_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.mp4");
    let text = "Meeting notes\n".repeat(200);
    std::fs::write(&path, text).unwrap();
    assert_decode_fails(&path, ErrorCode::UnsupportedMedia);
    assert_error(
        probe(&path).unwrap_err(),
        ErrorCode::UnsupportedMedia,
        "notes.mp4",
    );
}

#[test]
fn mp4_cut_in_half_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let source = source_wav(dir.path());
    let whole = encode(dir.path(), &source, "whole.mp4", &["-c:a", "aac"]);
    let bytes = std::fs::read(&whole).unwrap();
    let path = dir.path().join("half.mp4");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_decode_fails(&path, ErrorCode::CorruptMedia);
    assert_error(
        probe(&path).unwrap_err(),
        ErrorCode::CorruptMedia,
        "half.mp4",
    );
}

#[test]
fn faststart_mp4_cut_in_half_is_corrupt_not_shortened() {
    // The index survives at the front, so the cut is only found while reading the media.
    let dir = tempfile::tempdir().unwrap();
    let source = source_wav(dir.path());
    let args = ["-c:a", "aac", "-movflags", "+faststart"];
    let whole = encode(dir.path(), &source, "whole.mp4", &args);
    let bytes = std::fs::read(&whole).unwrap();
    let path = dir.path().join("half-faststart.mp4");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_decode_fails(&path, ErrorCode::CorruptMedia);
}

#[test]
fn video_without_audio_has_no_audio_track() {
    let dir = tempfile::tempdir().unwrap();
    // MP4 is opened in-process; AVI only by ffmpeg, whose stream listing then finds no audio.
    for name in ["silent.mp4", "silent.avi"] {
        let path = dir.path().join(name);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=d=1:s=64x64:r=5",
            "-an",
            "-c:v",
            "mpeg4",
            path.to_str().unwrap(),
        ]);
        assert_error(
            decode(&path, &DecodeOptions::default()).unwrap_err(),
            ErrorCode::NoAudioTrack,
            name,
        );
        let info = probe(&path).unwrap();
        assert!(info.audio_tracks.is_empty(), "{name}: {info:?}");
    }
    let mp4 = dir.path().join("silent.mp4");
    assert_error(
        decode(&mp4, &in_process_only()).unwrap_err(),
        ErrorCode::NoAudioTrack,
        "silent.mp4",
    );
}

#[test]
fn avi_without_ffmpeg_is_unsupported_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let source = source_wav(dir.path());
    let path = encode(dir.path(), &source, "speech.avi", &["-c:a", "pcm_s16le"]);
    assert!(decode(&path, &DecodeOptions::default()).is_ok());
    let err = decode(&path, &in_process_only()).unwrap_err();
    assert_error(err, ErrorCode::UnsupportedMedia, "speech.avi");
}
