use std::fs;
use std::path::Path;

use vttiro_core::ErrorCode;
use vttiro_subtitles::{write_atomic, SubtitleError};

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn writes_a_new_file_and_leaves_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("talk.en.vtt");
    write_atomic(&path, b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n").unwrap();
    assert_eq!(
        fs::read(&path).unwrap(),
        b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"
    );
    assert_eq!(entries(dir.path()), ["talk.en.vtt"]);
}

#[test]
fn replaces_an_existing_file_completely() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.srt");
    fs::write(
        &path,
        "an older, much longer subtitle file that must not leave a tail",
    )
    .unwrap();
    write_atomic(&path, b"short").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "short");
    assert_eq!(entries(dir.path()), ["out.srt"]);
}

#[cfg(unix)]
#[test]
fn new_files_are_readable_like_ordinary_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ordinary = dir.path().join("ordinary");
    fs::write(&ordinary, b"x").unwrap();
    let path = dir.path().join("subs.vtt");
    write_atomic(&path, b"x").unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    let ordinary_mode = fs::metadata(&ordinary).unwrap().permissions().mode() & 0o777;
    // Same as a plain write under the current umask, minus execute and group/other write.
    assert_eq!(mode, ordinary_mode & 0o644);
    assert_eq!(mode & 0o600, 0o600);
}

#[test]
fn a_parent_that_is_a_file_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("notes.txt");
    fs::write(&not_a_dir, "I am a file").unwrap();
    let path = not_a_dir.join("out.vtt");
    let error = write_atomic(&path, b"WEBVTT\n").unwrap_err();
    assert!(matches!(error, SubtitleError::Write { .. }));
    assert_eq!(error.code(), ErrorCode::OutputFailed);
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("{}: cannot write subtitles", path.display())),
        "{message}"
    );
    assert!(!message.contains('\n'));
    assert!(!path.exists());
    assert_eq!(fs::read_to_string(&not_a_dir).unwrap(), "I am a file");
    assert_eq!(entries(dir.path()), ["notes.txt"]);
}

#[test]
fn a_target_that_is_a_directory_fails_without_leaving_the_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.vtt");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("keep"), "inside").unwrap();
    // The temporary file is created and written before the rename fails, so this checks
    // that it is cleaned up.
    let error = write_atomic(&path, b"WEBVTT\n").unwrap_err();
    assert!(error.to_string().contains("renaming"), "{error}");
    assert!(path.is_dir());
    assert_eq!(entries(&path), ["keep"]);
    assert_eq!(entries(dir.path()), ["out.vtt"]);
}

#[test]
fn a_missing_directory_fails_without_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("out.vtt");
    let error = write_atomic(&path, b"WEBVTT\n").unwrap_err();
    assert_eq!(error.code(), ErrorCode::OutputFailed);
    assert!(!dir.path().join("missing").exists());
}
