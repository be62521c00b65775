//! Objects as files under one directory. Keys are relative paths of safe characters;
//! writes stream into a temporary file beside the target, are fsynced, then renamed, so a
//! reader (or a crash) never sees half an object. A store opened with master keys seals
//! what it writes (see [`crate::seal`] for the format) and still reads plaintext objects
//! written before encryption was turned on.

use std::fs::{File, Metadata};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::seal::{probe, read_error, Probe, Sink};
use crate::{sniff_media, KeyRing, ObjectReader, StorageError, SNIFF_BYTES};

#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// The container [`sniff_media`] saw, for media writes.
    pub container: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    keys: Option<Arc<KeyRing>>,
}

/// What [`LocalStore::rotate`] did, object by object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Sealed under an older master key; the data key is now wrapped under the current one.
    pub rewrapped: usize,
    /// Plaintext from before encryption was turned on, now sealed.
    pub sealed: usize,
    /// Already under the current master key (or replaced by a writer during the rotation).
    pub unchanged: usize,
}

/// A plaintext file for tools that need a path (ffmpeg), from [`LocalStore::local_file`].
/// A decrypted copy is deleted when this drops.
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
    temporary: bool,
}

impl LocalFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a decrypted copy (deleted on drop) rather than the object's own file.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }
}

impl AsRef<Path> for LocalFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn io(e: std::io::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

/// Partial files from [`LocalStore::put`] and [`LocalStore::rotate`]; never objects.
fn is_partial(name: &str) -> bool {
    name.starts_with('.') && name.contains(".part-")
}

/// A fresh partial-file name beside `target`, which [`LocalStore::sweep_partials`] knows.
fn temp_beside(target: &Path) -> PathBuf {
    target.with_file_name(format!(
        ".{}.part-{:016x}",
        target
            .file_name()
            .expect("a key names a file")
            .to_string_lossy(),
        fastrand::u64(..)
    ))
}

/// Moves a finished, fsynced temp file over `target` and makes the rename durable.
fn commit(temp: &Path, target: &Path) -> Result<(), StorageError> {
    std::fs::rename(temp, target).map_err(io)?;
    if let Ok(dir) = File::open(target.parent().expect("keys are below the root")) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Whether two metadata describe the same file (not merely the same name).
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        a.len() == b.len() && a.modified().ok() == b.modified().ok()
    }
}

impl LocalStore {
    /// A plaintext store: objects are written as they come. Sealed objects in it cannot be
    /// read (they fail with [`StorageError::Sealed`]).
    pub fn open(root: &Path) -> Result<LocalStore, StorageError> {
        std::fs::create_dir_all(root)
            .map_err(|e| StorageError::Io(format!("{}: {e}", root.display())))?;
        Ok(LocalStore {
            root: root.to_path_buf(),
            keys: None,
        })
    }

    /// A store that seals every object it writes under `keys`' current master key and
    /// reads objects sealed under any key in `keys`, or written in plaintext.
    pub fn open_encrypted(root: &Path, keys: Arc<KeyRing>) -> Result<LocalStore, StorageError> {
        let mut store = LocalStore::open(root)?;
        store.keys = Some(keys);
        Ok(store)
    }

    pub fn is_encrypted(&self) -> bool {
        self.keys.is_some()
    }

    /// The file behind `key`; keys are `[A-Za-z0-9._-]` segments joined by `/`, never
    /// `.`/`..`, so no key can name a file outside the root.
    pub fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        let valid = !key.is_empty()
            && key.len() <= 512
            && key.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            });
        if !valid {
            return Err(StorageError::InvalidKey(key.to_string()));
        }
        Ok(self.root.join(key))
    }

    /// Streams `reader` into `key`, refusing more than `limit` bytes (nothing is left
    /// behind when refused).
    pub fn put(
        &self,
        key: &str,
        reader: &mut dyn Read,
        limit: u64,
    ) -> Result<StoredObject, StorageError> {
        self.write(key, reader, limit, false)
    }

    /// [`LocalStore::put`] for media: the first bytes must be an audio or video container.
    pub fn put_media(
        &self,
        key: &str,
        reader: &mut dyn Read,
        limit: u64,
    ) -> Result<StoredObject, StorageError> {
        self.write(key, reader, limit, true)
    }

    fn write(
        &self,
        key: &str,
        reader: &mut dyn Read,
        limit: u64,
        media: bool,
    ) -> Result<StoredObject, StorageError> {
        let target = self.path(key)?;
        let parent = target.parent().expect("keys are below the root");
        std::fs::create_dir_all(parent).map_err(io)?;
        let temp = temp_beside(&target);
        let result = (|| {
            let file = File::create(&temp).map_err(io)?;
            let mut sink = Sink::new(file, self.keys.as_deref(), key)?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut buffer = vec![0u8; 64 * 1024];
            let mut container = None;
            let mut head: Vec<u8> = Vec::new();
            loop {
                let n = match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(StorageError::SourceFailed {
                            what: key.to_string(),
                            reason: e.to_string(),
                        })
                    }
                };
                size += n as u64;
                if size > limit {
                    return Err(StorageError::TooLarge {
                        what: key.to_string(),
                        limit,
                    });
                }
                if media && container.is_none() {
                    // Below SNIFF_BYTES until the container is known.
                    let wanted = SNIFF_BYTES - head.len();
                    head.extend_from_slice(&buffer[..n.min(wanted)]);
                    if head.len() >= SNIFF_BYTES {
                        container = Some(
                            sniff_media(&head)
                                .ok_or_else(|| StorageError::NotMedia(key.to_string()))?,
                        );
                    }
                }
                hasher.update(&buffer[..n]);
                sink.write_all(&buffer[..n]).map_err(io)?;
            }
            if media && container.is_none() {
                container = Some(
                    sniff_media(&head).ok_or_else(|| StorageError::NotMedia(key.to_string()))?,
                );
            }
            sink.finish().map_err(io)?.sync_all().map_err(io)?;
            Ok(StoredObject {
                key: key.to_string(),
                size,
                sha256: hasher
                    .finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                container,
            })
        })();
        match result {
            Ok(object) => match commit(&temp, &target) {
                Ok(()) => Ok(object),
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    Err(e)
                }
            },
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                Err(e)
            }
        }
    }

    /// A streaming reader of `key`'s plaintext, decrypting and verifying segment by
    /// segment. A missing or wrong master key fails here; damage found later fails the
    /// `read` with an [`std::io::Error`] wrapping [`StorageError::Sealed`].
    pub fn open_read(&self, key: &str) -> Result<ObjectReader, StorageError> {
        let path = self.path(key)?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound(key.to_string()),
            _ => io(e),
        })?;
        ObjectReader::open(file, key, self.keys.as_deref())
    }

    /// A plaintext file for tools that need a path (ffmpeg): the object's own file when it
    /// is stored in plaintext; otherwise a decrypted copy in the system temp dir (mode
    /// 0600, named after the key's last segment so its extension survives), deleted when
    /// the returned value drops. The whole object is verified before this returns.
    pub fn local_file(&self, key: &str) -> Result<LocalFile, StorageError> {
        let mut reader = self.open_read(key)?;
        let path = self.path(key)?;
        if !reader.is_sealed() {
            return Ok(LocalFile {
                path,
                temporary: false,
            });
        }
        let name = path
            .file_name()
            .expect("a key names a file")
            .to_string_lossy();
        let temp = std::env::temp_dir().join(format!("vttiro-{:016x}-{name}", fastrand::u64(..)));
        let mut options = std::fs::OpenOptions::new();
        // create_new: never follow a planted symlink or reuse someone else's file.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&temp)
            .map_err(|e| StorageError::Io(format!("{}: {e}", temp.display())))?;
        let local = LocalFile {
            path: temp,
            temporary: true,
        };
        std::io::copy(&mut reader, &mut file).map_err(read_error)?;
        Ok(local)
    }

    pub fn exists(&self, key: &str) -> bool {
        self.path(key).is_ok_and(|p| p.is_file())
    }

    /// Removes `key`; `false` when there was nothing to remove.
    pub fn delete(&self, key: &str) -> Result<bool, StorageError> {
        match std::fs::remove_file(self.path(key)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e)),
        }
    }

    /// Removes everything under `prefix/` (a job's media, results and partial files).
    pub fn delete_prefix(&self, prefix: &str) -> Result<bool, StorageError> {
        let dir = self.path(prefix)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e)),
        }
    }

    /// Removes partial files a killed writer left behind, when older than `min_age` (a
    /// younger one may belong to a live upload in another process). Returns how many.
    pub fn sweep_partials(&self, min_age: std::time::Duration) -> Result<usize, StorageError> {
        fn walk(
            dir: &Path,
            min_age: std::time::Duration,
            removed: &mut usize,
        ) -> std::io::Result<()> {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    walk(&entry.path(), min_age, removed)?;
                    continue;
                }
                if !is_partial(&entry.file_name().to_string_lossy()) {
                    continue;
                }
                let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
                if age >= min_age && std::fs::remove_file(entry.path()).is_ok() {
                    *removed += 1;
                }
            }
            Ok(())
        }
        let mut removed = 0;
        walk(&self.root, min_age, &mut removed).map_err(io)?;
        Ok(removed)
    }

    /// Moves every object to the current master key: data keys wrapped under an older key
    /// are re-wrapped without touching the encrypted body; plaintext objects from before
    /// encryption was turned on are sealed; objects already under the current key are left
    /// alone. Each object is replaced atomically (temp file, fsync, rename), so a crash
    /// leaves every object readable, and running it again finishes the job.
    ///
    /// Stops at the first object it cannot move (e.g. sealed under a key missing from the
    /// keyring, or damaged), naming it; objects moved before then stay moved. An object a
    /// writer replaces while it is being rotated is left to the writer, whose copy is
    /// already under the current key.
    pub fn rotate(&self) -> Result<RotationReport, StorageError> {
        let keys = self.keys.as_deref().ok_or_else(|| {
            StorageError::MasterKey("rotation needs master keys; the store has none".into())
        })?;
        let mut objects = Vec::new();
        collect_objects(&self.root, "", &mut objects).map_err(io)?;
        let mut report = RotationReport::default();
        for key in objects {
            let Ok(target) = self.path(&key) else {
                tracing::warn!(%key, "rotation skips a file whose name is not a storage key");
                continue;
            };
            let mut file = match File::open(&target) {
                Ok(file) => file,
                // Deleted since the walk.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            let opened = file.metadata().map_err(io)?;
            match probe(&mut file, &key)? {
                Probe::Sealed(header) if header.key_id() == keys.current_id() => {
                    report.unchanged += 1;
                }
                Probe::Sealed(header) => {
                    let header = header.rewrap(keys, &key)?;
                    let replaced = self.replace(&target, &opened, |temp| {
                        let mut out = File::create(temp).map_err(io)?;
                        out.write_all(header.as_bytes()).map_err(io)?;
                        // `probe` left `file` just after the old header: the body is copied
                        // as it is, since the data key it was sealed with has not changed.
                        std::io::copy(&mut file, &mut out).map_err(io)?;
                        out.sync_all().map_err(io)
                    })?;
                    if replaced {
                        report.rewrapped += 1;
                    } else {
                        report.unchanged += 1;
                    }
                }
                Probe::Plain => {
                    let replaced = self.replace(&target, &opened, |temp| {
                        let out = File::create(temp).map_err(io)?;
                        let mut sink = Sink::new(out, Some(keys), &key)?;
                        let mut buffer = vec![0u8; 64 * 1024];
                        loop {
                            let n = file.read(&mut buffer).map_err(io)?;
                            if n == 0 {
                                break;
                            }
                            sink.write_all(&buffer[..n]).map_err(io)?;
                        }
                        sink.finish().map_err(io)?.sync_all().map_err(io)
                    })?;
                    if replaced {
                        report.sealed += 1;
                    } else {
                        report.unchanged += 1;
                    }
                }
            }
        }
        tracing::info!(
            current = keys.current_id(),
            rewrapped = report.rewrapped,
            sealed = report.sealed,
            unchanged = report.unchanged,
            "storage key rotation finished"
        );
        Ok(report)
    }

    /// Writes a replacement for `target` with `fill` and renames it into place, unless
    /// `target` is no longer the file `original` describes (a writer replaced or deleted
    /// it meanwhile); `false` then.
    fn replace(
        &self,
        target: &Path,
        original: &Metadata,
        fill: impl FnOnce(&Path) -> Result<(), StorageError>,
    ) -> Result<bool, StorageError> {
        let temp = temp_beside(target);
        let result = fill(&temp).and_then(|()| match std::fs::metadata(target) {
            Ok(now) if same_file(original, &now) => commit(&temp, target).map(|()| true),
            Ok(_) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e)),
        });
        if !matches!(result, Ok(true)) {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }
}

/// The keys of every object under `dir` (whose key prefix is `prefix`), skipping partial
/// files and names no key could have (they are not the store's).
fn collect_objects(dir: &Path, prefix: &str, objects: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A job's directory deleted while the walk was on its way to it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !prefix.is_empty() => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            tracing::warn!(dir = %dir.display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if kind.is_dir() {
            collect_objects(&entry.path(), &key, objects)?;
        } else if kind.is_file() && !is_partial(&name) {
            objects.push(key);
        }
    }
    Ok(())
}
