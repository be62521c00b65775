//! The object store the service keeps media, results and checkpoints in: files under one
//! directory (the default), or a bucket (see [`crate::remote`]). Keys are relative paths of
//! safe characters. On disk, writes stream into a temporary file beside the target, are
//! fsynced, then renamed; in a bucket, an object appears only when its upload completes;
//! either way a reader (or a crash) never sees half an object. A store opened with master
//! keys seals what it writes (see [`crate::seal`] for the format) and still reads plaintext
//! objects written before encryption was turned on — the sealing sits above the backend,
//! so a bucket holds only ciphertext, whatever the provider's own encryption does.

use std::fs::{File, Metadata};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use object_store::{PutMode, UpdateVersion};

use crate::remote::{Conditional, Remote};
use crate::seal::{probe, read_error, Blob, Probe, Sink};
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
pub struct Store {
    backend: Backend,
    keys: Option<Arc<KeyRing>>,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(PathBuf),
    Remote(Arc<Remote>),
}

/// Whether `key` is a storage key: `[A-Za-z0-9._-]` segments joined by `/`, never `.` or
/// `..`, so no key can name a file outside the root or an odd object name.
pub(crate) fn check_key(key: &str) -> Result<(), StorageError> {
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
    if valid {
        Ok(())
    } else {
        Err(StorageError::InvalidKey(key.to_string()))
    }
}

/// What [`Store::rotate`] did, object by object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Sealed under an older master key; the data key is now wrapped under the current one.
    pub rewrapped: usize,
    /// Plaintext from before encryption was turned on, now sealed.
    pub sealed: usize,
    /// Already under the current master key (or replaced by a writer during the rotation).
    pub unchanged: usize,
}

/// A plaintext file for tools that need a path (ffmpeg), from [`Store::local_file`].
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
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

fn io(e: std::io::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

/// Partial files from [`Store::put`] and [`Store::rotate`]; never objects.
fn is_partial(name: &str) -> bool {
    name.starts_with('.') && name.contains(".part-")
}

/// A fresh partial-file name beside `target`, which [`Store::sweep_partials`] knows.
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
    sync_parent(target);
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

/// How a write treats an object already under the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    Replace,
    Keep,
}

/// What [`stream_into`] saw of the stream.
struct Streamed {
    size: u64,
    sha256: String,
    container: Option<&'static str>,
}

/// Copies `reader` into `sink`, refusing more than `limit` bytes and, for media, anything
/// whose first bytes are not an audio or video container.
fn stream_into<W: Write>(
    sink: &mut Sink<W>,
    key: &str,
    reader: &mut dyn Read,
    limit: u64,
    media: bool,
) -> Result<Streamed, StorageError> {
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
                    sniff_media(&head).ok_or_else(|| StorageError::NotMedia(key.to_string()))?,
                );
            }
        }
        hasher.update(&buffer[..n]);
        sink.write_all(&buffer[..n]).map_err(io)?;
    }
    if media && container.is_none() {
        container =
            Some(sniff_media(&head).ok_or_else(|| StorageError::NotMedia(key.to_string()))?);
    }
    Ok(Streamed {
        size,
        sha256: hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        container,
    })
}

impl Store {
    /// A plaintext store: objects are written as they come. Sealed objects in it cannot be
    /// read (they fail with [`StorageError::Sealed`]).
    pub fn open(root: &Path) -> Result<Store, StorageError> {
        std::fs::create_dir_all(root)
            .map_err(|e| StorageError::Io(format!("{}: {e}", root.display())))?;
        Ok(Store {
            backend: Backend::Local(root.to_path_buf()),
            keys: None,
        })
    }

    /// A store that seals every object it writes under `keys`' current master key and
    /// reads objects sealed under any key in `keys`, or written in plaintext.
    pub fn open_encrypted(root: &Path, keys: Arc<KeyRing>) -> Result<Store, StorageError> {
        Store::open_directory(root, Some(keys))
    }

    /// The store at `location`: a directory (a plain path or `file://` URL), or a bucket —
    /// `s3://bucket/prefix` (also S3-compatible servers, through `AWS_ENDPOINT`),
    /// `gs://bucket/prefix`, `az://container/prefix` — with credentials from the provider's
    /// usual environment variables. With `keys`, objects are sealed before they leave the
    /// process.
    pub fn open_location(
        location: &str,
        keys: Option<Arc<KeyRing>>,
    ) -> Result<Store, StorageError> {
        Store::open_location_with(location, &[], keys)
    }

    /// [`Store::open_location`] with `object_store` configuration keys for a bucket
    /// (`aws_endpoint`, `aws_allow_http`, …) applied over the environment's.
    pub fn open_location_with(
        location: &str,
        options: &[(String, String)],
        keys: Option<Arc<KeyRing>>,
    ) -> Result<Store, StorageError> {
        let backend = match location.split_once("://") {
            None => return Store::open_directory(Path::new(location), keys),
            Some(("file", path)) => return Store::open_directory(Path::new(path), keys),
            Some(_) => Backend::Remote(Arc::new(Remote::open(location, options)?)),
        };
        Ok(Store { backend, keys })
    }

    /// A store in the directory `root`, sealing with `keys` when given.
    pub fn open_directory(root: &Path, keys: Option<Arc<KeyRing>>) -> Result<Store, StorageError> {
        let mut store = Store::open(root)?;
        store.keys = keys;
        Ok(store)
    }

    pub fn is_encrypted(&self) -> bool {
        self.keys.is_some()
    }

    /// Whether objects live in a bucket rather than a local directory.
    pub fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::Remote(_))
    }

    /// Where the objects live, for logs and messages (a directory or a bucket URL; never
    /// credentials, which only come from the environment).
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Local(root) => root.display().to_string(),
            Backend::Remote(remote) => remote.location().to_string(),
        }
    }

    /// The file behind `key` in a directory store (see [`check_key`] for what a key is).
    /// A bucket has no files: asking one fails.
    pub fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        check_key(key)?;
        match &self.backend {
            Backend::Local(root) => Ok(root.join(key)),
            Backend::Remote(remote) => Err(StorageError::Io(format!(
                "{key}: {} is a bucket, not a directory",
                remote.location()
            ))),
        }
    }

    /// Streams `reader` into `key`, refusing more than `limit` bytes (nothing is left
    /// behind when refused).
    pub fn put(
        &self,
        key: &str,
        reader: &mut dyn Read,
        limit: u64,
    ) -> Result<StoredObject, StorageError> {
        self.write(key, reader, limit, false, Existing::Replace)
            .map(|object| object.expect("unconditional writes always write"))
    }

    /// [`Store::put`] for media: the first bytes must be an audio or video container.
    pub fn put_media(
        &self,
        key: &str,
        reader: &mut dyn Read,
        limit: u64,
    ) -> Result<StoredObject, StorageError> {
        self.write(key, reader, limit, true, Existing::Replace)
            .map(|object| object.expect("unconditional writes always write"))
    }

    /// [`Store::put`] that never replaces: `None` when `key` already exists, and the store
    /// is left as it was. Atomic on disk (a hard link cannot replace) and in a bucket for
    /// objects up to one part ([`crate::PART_SIZE`]; a conditional PUT).
    pub fn put_if_absent(
        &self,
        key: &str,
        reader: &mut dyn Read,
        limit: u64,
    ) -> Result<Option<StoredObject>, StorageError> {
        self.write(key, reader, limit, false, Existing::Keep)
    }

    fn write(
        &self,
        key: &str,
        reader: &mut dyn Read,
        limit: u64,
        media: bool,
        existing: Existing,
    ) -> Result<Option<StoredObject>, StorageError> {
        check_key(key)?;
        let object = |streamed: Streamed| StoredObject {
            key: key.to_string(),
            size: streamed.size,
            sha256: streamed.sha256,
            container: streamed.container,
        };
        match &self.backend {
            Backend::Local(_) => {
                let target = self.path(key)?;
                let parent = target.parent().expect("keys are below the root");
                std::fs::create_dir_all(parent).map_err(io)?;
                let temp = temp_beside(&target);
                let result = (|| {
                    let file = File::create(&temp).map_err(io)?;
                    let mut sink = Sink::new(file, self.keys.as_deref(), key)?;
                    let streamed = stream_into(&mut sink, key, reader, limit, media)?;
                    sink.finish().map_err(io)?.sync_all().map_err(io)?;
                    match existing {
                        Existing::Replace => commit(&temp, &target)?,
                        Existing::Keep => match std::fs::hard_link(&temp, &target) {
                            Ok(()) => sync_parent(&target),
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                                return Ok(None)
                            }
                            Err(e) => return Err(io(e)),
                        },
                    }
                    Ok(Some(object(streamed)))
                })();
                // After a commit the temp name is gone; after a link it is a second name.
                let _ = std::fs::remove_file(&temp);
                result
            }
            Backend::Remote(remote) => {
                if existing == Existing::Keep && remote.head(key)?.is_some() {
                    return Ok(None);
                }
                let mut sink = Sink::new(remote.writer(key), self.keys.as_deref(), key)?;
                let streamed = stream_into(&mut sink, key, reader, limit, media)?;
                let writer = sink.finish().map_err(io)?;
                let mode = match existing {
                    Existing::Replace => PutMode::Overwrite,
                    Existing::Keep => PutMode::Create,
                };
                Ok(match writer.finish(mode)? {
                    Conditional::Written => Some(object(streamed)),
                    Conditional::Refused => None,
                })
            }
        }
    }

    /// The stored bytes of `key` and their length.
    fn open_blob(&self, key: &str) -> Result<(Box<dyn Blob>, u64), StorageError> {
        check_key(key)?;
        match &self.backend {
            Backend::Local(_) => {
                let file = File::open(self.path(key)?).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => StorageError::NotFound(key.to_string()),
                    _ => io(e),
                })?;
                let len = file.metadata().map_err(io)?.len();
                Ok((Box::new(file), len))
            }
            Backend::Remote(remote) => {
                let (reader, len) = remote.reader(key)?;
                Ok((Box::new(reader), len))
            }
        }
    }

    /// A streaming reader of `key`'s plaintext, decrypting and verifying segment by
    /// segment. A missing or wrong master key fails here; damage found later fails the
    /// `read` with an [`std::io::Error`] wrapping [`StorageError::Sealed`].
    pub fn open_read(&self, key: &str) -> Result<ObjectReader, StorageError> {
        let (blob, len) = self.open_blob(key)?;
        ObjectReader::open(blob, len, key, self.keys.as_deref())
    }

    /// A plaintext file for tools that need a path (ffmpeg): the object's own file when it
    /// is stored in plaintext on disk; otherwise a decrypted or downloaded copy named after
    /// the key's last segment (so its extension survives) in a private directory (0700) of
    /// the system temp dir, deleted when the returned value drops. The whole object is read (and
    /// verified) before this returns.
    pub fn local_file(&self, key: &str) -> Result<LocalFile, StorageError> {
        let mut reader = self.open_read(key)?;
        if let (Backend::Local(_), false) = (&self.backend, reader.is_sealed()) {
            return Ok(LocalFile {
                path: self.path(key)?,
                temporary: false,
            });
        }
        // The copy keeps the object's own name (what ends up in a subtitle's `source:`
        // note, whatever the store), inside a private directory of its own.
        let name = key.rsplit('/').next().expect("a key names an object");
        let dir = std::env::temp_dir().join(format!("vttiro-{:016x}", fastrand::u64(..)));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        // A fresh directory: never one someone planted (create fails if it exists).
        builder
            .create(&dir)
            .map_err(|e| StorageError::Io(format!("{}: {e}", dir.display())))?;
        let local = LocalFile {
            path: dir.join(name),
            temporary: true,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&local.path)
            .map_err(|e| StorageError::Io(format!("{}: {e}", local.path.display())))?;
        std::io::copy(&mut reader, &mut file).map_err(read_error)?;
        Ok(local)
    }

    pub fn exists(&self, key: &str) -> bool {
        match &self.backend {
            Backend::Local(_) => self.path(key).is_ok_and(|p| p.is_file()),
            Backend::Remote(remote) => {
                check_key(key).is_ok() && remote.head(key).is_ok_and(|meta| meta.is_some())
            }
        }
    }

    /// Removes `key`; `false` when there was nothing to remove.
    pub fn delete(&self, key: &str) -> Result<bool, StorageError> {
        check_key(key)?;
        match &self.backend {
            Backend::Local(_) => match std::fs::remove_file(self.path(key)?) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io(e)),
            },
            Backend::Remote(remote) => remote.delete(key),
        }
    }

    /// Removes everything under `prefix/` (a job's media, results and partial files).
    pub fn delete_prefix(&self, prefix: &str) -> Result<bool, StorageError> {
        check_key(prefix)?;
        match &self.backend {
            Backend::Local(_) => match std::fs::remove_dir_all(self.path(prefix)?) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io(e)),
            },
            Backend::Remote(remote) => remote.delete_prefix(prefix),
        }
    }

    /// The keys of every object under `prefix/` (every object for `None`), sorted; never
    /// partial files.
    pub fn list(&self, prefix: Option<&str>) -> Result<Vec<String>, StorageError> {
        if let Some(prefix) = prefix {
            check_key(prefix)?;
        }
        match &self.backend {
            Backend::Local(root) => {
                let (dir, start) = match prefix {
                    Some(prefix) => (root.join(prefix), prefix),
                    None => (root.clone(), ""),
                };
                let mut keys = Vec::new();
                match collect_objects(&dir, start, &mut keys) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(e)),
                }
                keys.sort();
                Ok(keys)
            }
            Backend::Remote(remote) => remote.list(prefix),
        }
    }

    /// Removes partial files a killed writer left behind, when older than `min_age` (a
    /// younger one may belong to a live upload in another process). Returns how many.
    /// A bucket has none to remove: an unfinished upload is invisible, aborted by the
    /// writer when it fails, and otherwise left to the bucket's lifecycle rule for
    /// incomplete multipart uploads (see docs/deploy/object-storage.md).
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
        let Backend::Local(root) = &self.backend else {
            return Ok(0);
        };
        let mut removed = 0;
        walk(root, min_age, &mut removed).map_err(io)?;
        Ok(removed)
    }

    /// Moves every object to the current master key: data keys wrapped under an older key
    /// are re-wrapped without touching the encrypted body; plaintext objects from before
    /// encryption was turned on are sealed; objects already under the current key are left
    /// alone. Each object is replaced atomically (on disk: temp file, fsync, rename; in a
    /// bucket: a new upload of header and unchanged body), so a crash leaves every object
    /// readable, and running it again finishes the job.
    ///
    /// Stops at the first object it cannot move (e.g. sealed under a key missing from the
    /// keyring, or damaged), naming it; objects moved before then stay moved. An object a
    /// writer replaces while it is being rotated is left to the writer, whose copy is
    /// already under the current key.
    pub fn rotate(&self) -> Result<RotationReport, StorageError> {
        let keys = self.keys.as_deref().ok_or_else(|| {
            StorageError::MasterKey("rotation needs master keys; the store has none".into())
        })?;
        let mut report = RotationReport::default();
        for key in self.list(None)? {
            let (mut blob, version) = match self.open_versioned(&key) {
                Ok(Some(opened)) => opened,
                // Deleted since the listing.
                Ok(None) => continue,
                Err(e) => return Err(e),
            };
            match probe(&mut blob, &key)? {
                Probe::Sealed(header) if header.key_id() == keys.current_id() => {
                    report.unchanged += 1;
                }
                Probe::Sealed(header) => {
                    let header = header.rewrap(keys, &key)?;
                    let replaced = self.replace(&key, version, |out| {
                        out.write_all(header.as_bytes()).map_err(io)?;
                        // `probe` left `blob` just after the old header: the body is copied
                        // as it is, since the data key it was sealed with has not changed.
                        std::io::copy(&mut blob, out).map_err(io)?;
                        Ok(())
                    })?;
                    if replaced {
                        report.rewrapped += 1;
                    } else {
                        report.unchanged += 1;
                    }
                }
                Probe::Plain => {
                    let replaced = self.replace(&key, version, |out| {
                        let mut sink = Sink::new(out, Some(keys), &key)?;
                        std::io::copy(&mut blob, &mut SinkWriter(&mut sink)).map_err(io)?;
                        sink.finish().map_err(io)?;
                        Ok(())
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

    /// `key`'s stored bytes with what identifies this version of it, or `None` when gone.
    fn open_versioned(&self, key: &str) -> Result<Option<Versioned>, StorageError> {
        match &self.backend {
            Backend::Local(_) => {
                let path = self.path(key)?;
                let file = match File::open(&path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io(e)),
                };
                let metadata = file.metadata().map_err(io)?;
                Ok(Some((Box::new(file), Version::File(metadata))))
            }
            Backend::Remote(remote) => match remote.reader(key) {
                Ok((reader, _)) => {
                    let e_tag = reader.e_tag().map(str::to_string);
                    Ok(Some((Box::new(reader), Version::ETag(e_tag))))
                }
                Err(StorageError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Writes a replacement for `key` with `fill` and puts it in place, unless `key` is no
    /// longer the version `original` describes (a writer replaced or deleted it
    /// meanwhile); `false` then.
    fn replace(
        &self,
        key: &str,
        original: Version,
        fill: impl FnOnce(&mut dyn Write) -> Result<(), StorageError>,
    ) -> Result<bool, StorageError> {
        match (&self.backend, original) {
            (Backend::Local(_), Version::File(original)) => {
                let target = self.path(key)?;
                let temp = temp_beside(&target);
                let result = (|| {
                    let mut out = File::create(&temp).map_err(io)?;
                    fill(&mut out)?;
                    out.sync_all().map_err(io)?;
                    match std::fs::metadata(&target) {
                        Ok(now) if same_file(&original, &now) => {
                            commit(&temp, &target).map(|()| true)
                        }
                        Ok(_) => Ok(false),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                        Err(e) => Err(io(e)),
                    }
                })();
                if !matches!(result, Ok(true)) {
                    let _ = std::fs::remove_file(&temp);
                }
                result
            }
            (Backend::Remote(remote), Version::ETag(e_tag)) => {
                let mut writer = remote.writer(key);
                fill(&mut writer)?;
                let mode = PutMode::Update(UpdateVersion {
                    e_tag,
                    version: None,
                });
                Ok(matches!(writer.finish(mode)?, Conditional::Written))
            }
            _ => unreachable!("a version comes from the store's own backend"),
        }
    }
}

/// An object's stored bytes and the version they belong to.
type Versioned = (Box<dyn Blob>, Version);

/// What identifies the version of an object that [`Store::rotate`] read.
enum Version {
    File(Metadata),
    ETag(Option<String>),
}

/// [`Sink`] as an [`std::io::Write`], for `io::copy`.
struct SinkWriter<'a, W: Write>(&'a mut Sink<W>);

impl<W: Write> Write for SinkWriter<'_, W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes a new name in `target`'s directory durable.
fn sync_parent(target: &Path) {
    if let Ok(dir) = File::open(target.parent().expect("keys are below the root")) {
        let _ = dir.sync_all();
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
