//! Objects as files under one directory. Keys are relative paths of safe characters;
//! writes stream into a temporary file beside the target, are fsynced, then renamed, so a
//! reader (or a crash) never sees half an object.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{sniff_media, StorageError, SNIFF_BYTES};

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
}

fn io(e: std::io::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<LocalStore, StorageError> {
        std::fs::create_dir_all(root)
            .map_err(|e| StorageError::Io(format!("{}: {e}", root.display())))?;
        Ok(LocalStore {
            root: root.to_path_buf(),
        })
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
        let temp = parent.join(format!(
            ".{}.part-{:016x}",
            target
                .file_name()
                .expect("a key names a file")
                .to_string_lossy(),
            fastrand::u64(..)
        ));
        let result = (|| {
            let mut file = File::create(&temp).map_err(io)?;
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
                file.write_all(&buffer[..n]).map_err(io)?;
            }
            if media && container.is_none() {
                container = Some(
                    sniff_media(&head).ok_or_else(|| StorageError::NotMedia(key.to_string()))?,
                );
            }
            file.sync_all().map_err(io)?;
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
            Ok(object) => {
                std::fs::rename(&temp, &target).map_err(io)?;
                if let Ok(dir) = File::open(parent) {
                    let _ = dir.sync_all();
                }
                Ok(object)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                Err(e)
            }
        }
    }

    pub fn open_read(&self, key: &str) -> Result<File, StorageError> {
        let path = self.path(key)?;
        File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound(key.to_string()),
            _ => io(e),
        })
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
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !(name.starts_with('.') && name.contains(".part-")) {
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
}
