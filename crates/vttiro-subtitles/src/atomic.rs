use std::io::Write;
use std::path::Path;

use crate::error::SubtitleError;

/// Writes `contents` to `path` so that readers see either the old file or the complete new
/// one, never a prefix: the bytes go to a hidden temporary file in the same directory (a
/// rename is only atomic within one filesystem), are flushed to disk, and the file is then
/// renamed over `path`. On any error the temporary file is removed and `path` is untouched.
///
/// New files get mode 0644 (before umask) on Unix rather than the 0600 of temporary files,
/// because subtitles are meant to be served and shared.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), SubtitleError> {
    let fail = |stage, source| SubtitleError::Write {
        path: path.to_path_buf(),
        stage,
        source,
    };
    let file_name = path.file_name().ok_or_else(|| {
        fail(
            "the path has no file name",
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        )
    })?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };

    let prefix = format!(".{}.", file_name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut temporary = builder
        .tempfile_in(directory)
        .map_err(|e| fail("creating a temporary file beside it", e))?;
    temporary
        .write_all(contents)
        .map_err(|e| fail("writing the temporary file", e))?;
    temporary
        .as_file()
        .sync_all()
        .map_err(|e| fail("flushing the temporary file to disk", e))?;
    temporary
        .persist(path)
        .map_err(|e| fail("renaming the temporary file into place", e.error))?;

    // Syncing the directory makes the rename itself survive a power cut. It is best effort:
    // some filesystems refuse fsync on directories, and the new file is already complete and
    // in place, so failing here would report an error for a write that succeeded.
    #[cfg(unix)]
    if let Ok(dir) = std::fs::File::open(directory) {
        let _ = dir.sync_all();
    }
    Ok(())
}
