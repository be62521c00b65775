//! Objects in a cloud bucket (S3 and S3-compatible servers, Google Cloud Storage, Azure
//! Blob) through the `object_store` crate, behind the same blocking interface as the local
//! directory. The crate is async; this module owns a small private runtime and waits on it,
//! so callers keep streaming from their blocking threads and nothing here ever blocks a
//! runtime of theirs.
//!
//! Writes are whole-object atomic, as on disk: an object up to [`PART_SIZE`] is one PUT;
//! a larger one is a multipart upload that becomes visible only when completed and is
//! aborted when the write fails. Reads are ranged GETs of [`WINDOW`] bytes pinned to the
//! ETag seen when the object was opened, so a reader never mixes two versions of an object.
//! Credentials come from the environment each provider documents (`AWS_*`, `GOOGLE_*`,
//! `AZURE_*`), which includes workload identity on EKS, GKE and AKS.

use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, GetRange, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt as _, PutMode,
    PutOptions, PutPayload, UpdateVersion,
};

use crate::StorageError;

/// Bytes per multipart part, and the largest object written with a single PUT. S3 wants
/// parts of at least 5 MiB; 8 MiB keeps a 1 GiB upload near 128 parts of the 10,000 allowed.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Bytes fetched per ranged GET while reading.
pub const WINDOW: u64 = 8 * 1024 * 1024;

/// A bucket (and key prefix inside it) with the runtime that drives its requests.
pub(crate) struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("location", &self.location)
            .finish()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async context; the last clone
        // of a store may well be dropped there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn storage(e: object_store::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

/// What the remote answered to a write made with a condition.
pub(crate) enum Conditional {
    Written,
    /// `PutMode::Create` found an object; `PutMode::Update` found another version.
    Refused,
}

impl Remote {
    /// Opens `location`, a `s3://`, `s3a://`, `gs://`, `az://`, `azure://`, `abfs://` or
    /// `abfss://` URL whose path, if any, is a key prefix inside the bucket. `options` are
    /// `object_store` configuration keys (`aws_endpoint`, `google_service_account`, …)
    /// applied over what the environment says.
    pub(crate) fn open(
        location: &str,
        options: &[(String, String)],
    ) -> Result<Remote, StorageError> {
        let bad = |reason: String| StorageError::Location {
            location: location.to_string(),
            reason,
        };
        let url = url::Url::parse(location).map_err(|e| bad(e.to_string()))?;
        // reqwest is built without a bundled crypto provider, so the process-wide one must
        // be ring (the workspace's only provider); a second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let option = |key: &str, e: object_store::Error| bad(format!("option {key:?}: {e}"));
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "s3" | "s3a" => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(location);
                for (key, value) in options {
                    builder = builder.with_config(key.parse().map_err(|e| option(key, e))?, value);
                }
                Arc::new(builder.build().map_err(|e| bad(e.to_string()))?)
            }
            "gs" => {
                let mut builder =
                    object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(location);
                for (key, value) in options {
                    builder = builder.with_config(key.parse().map_err(|e| option(key, e))?, value);
                }
                Arc::new(builder.build().map_err(|e| bad(e.to_string()))?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut builder =
                    object_store::azure::MicrosoftAzureBuilder::from_env().with_url(location);
                for (key, value) in options {
                    builder = builder.with_config(key.parse().map_err(|e| option(key, e))?, value);
                }
                Arc::new(builder.build().map_err(|e| bad(e.to_string()))?)
            }
            other => {
                return Err(bad(format!(
                    "unsupported scheme {other:?} (use a directory, file://, s3://, gs:// or az://)"
                )))
            }
        };
        let prefix = url.path().trim_matches('/').to_string();
        if !prefix.is_empty() {
            crate::store::check_key(&prefix)
                .map_err(|_| bad("the key prefix must be safe path segments".into()))?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vttiro-store")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("starting the storage runtime: {e}")))?;
        Ok(Remote {
            store,
            prefix,
            location: location.to_string(),
            runtime: Some(runtime),
        })
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// Runs `future` on the private runtime and waits for it from this (blocking) thread.
    fn run<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .spawn(async move {
                let _ = done.send(future.await);
            });
        result
            .recv()
            .expect("the storage runtime finishes every request it starts")
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// The object's metadata, or `None` when there is none.
    pub(crate) fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        self.head_path(&self.path(key))
    }

    /// A seekable reader of `key` and its stored length.
    pub(crate) fn reader(self: &Arc<Self>, key: &str) -> Result<(RangedReader, u64), StorageError> {
        let meta = self
            .head(key)?
            .ok_or_else(|| StorageError::NotFound(key.to_string()))?;
        Ok((
            RangedReader {
                remote: self.clone(),
                key: key.to_string(),
                path: self.path(key),
                len: meta.size,
                e_tag: meta.e_tag,
                pos: 0,
                window_start: 0,
                window: bytes::Bytes::new(),
            },
            meta.size,
        ))
    }

    pub(crate) fn writer(self: &Arc<Self>, key: &str) -> RemoteWriter {
        RemoteWriter {
            remote: self.clone(),
            path: self.path(key),
            buffer: Vec::new(),
            upload: None,
        }
    }

    /// Removes `key`; `false` when there was nothing to remove.
    pub(crate) fn delete(&self, key: &str) -> Result<bool, StorageError> {
        if self.head(key)?.is_none() {
            return Ok(false);
        }
        let (store, path) = (self.store.clone(), self.path(key));
        match self.run(async move { store.delete(&path).await }) {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage(e)),
        }
    }

    /// The keys under `prefix/` (every key for `None`), sorted.
    pub(crate) fn list(&self, prefix: Option<&str>) -> Result<Vec<String>, StorageError> {
        let store = self.store.clone();
        let listed = match prefix {
            Some(prefix) => Some(self.path(prefix)),
            None if self.prefix.is_empty() => None,
            None => Some(ObjectPath::from(self.prefix.as_str())),
        };
        let metas = self.run(async move {
            store
                .list(listed.as_ref())
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
        });
        let skip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut keys: Vec<String> = metas
            .map_err(storage)?
            .into_iter()
            .map(|meta| meta.location.as_ref()[skip..].to_string())
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Removes every object under `prefix/`; `false` when there were none.
    pub(crate) fn delete_prefix(&self, prefix: &str) -> Result<bool, StorageError> {
        let keys = self.list(Some(prefix))?;
        if keys.is_empty() {
            return Ok(false);
        }
        let store = self.store.clone();
        let paths: Vec<_> = keys.iter().map(|key| Ok(self.path(key))).collect();
        let outcomes = self.run(async move {
            store
                .delete_stream(futures_util::stream::iter(paths).boxed())
                .collect::<Vec<_>>()
                .await
        });
        for outcome in outcomes {
            match outcome {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage(e)),
            }
        }
        Ok(true)
    }
}

/// Buffers what is written into parts: a single PUT when everything fits in one part, a
/// multipart upload otherwise. Nothing is visible until [`RemoteWriter::finish`]; a writer
/// dropped unfinished aborts its upload.
pub(crate) struct RemoteWriter {
    remote: Arc<Remote>,
    path: ObjectPath,
    buffer: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
}

impl RemoteWriter {
    fn send_part(&mut self, part: Vec<u8>) -> io::Result<()> {
        if self.upload.is_none() {
            let (store, path) = (self.remote.store.clone(), self.path.clone());
            let upload = self
                .remote
                .run(async move { store.put_multipart_opts(&path, Default::default()).await })
                .map_err(io::Error::other)?;
            self.upload = Some(upload);
        }
        let sent = self
            .upload
            .as_mut()
            .expect("started above")
            .put_part(PutPayload::from(part));
        self.remote.run(sent).map_err(io::Error::other)
    }

    /// Makes the object visible under `mode`. A single PUT carries the condition itself;
    /// object stores cannot attach one to completing a multipart upload, so there the
    /// condition is checked just before completing (a narrow window for a racing writer).
    pub(crate) fn finish(mut self, mode: PutMode) -> Result<Conditional, StorageError> {
        if self.upload.is_none() {
            let (store, path) = (self.remote.store.clone(), self.path.clone());
            let payload = PutPayload::from(std::mem::take(&mut self.buffer));
            let options = PutOptions {
                mode,
                ..PutOptions::default()
            };
            return match self
                .remote
                .run(async move { store.put_opts(&path, payload, options).await })
            {
                Ok(_) => Ok(Conditional::Written),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => Ok(Conditional::Refused),
                Err(e) => Err(storage(e)),
            };
        }
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty() {
            self.send_part(rest)
                .map_err(|e| StorageError::Io(e.to_string()))?;
        }
        let key = self.path.as_ref().to_string();
        let allowed = match &mode {
            PutMode::Overwrite => true,
            PutMode::Create => self.remote.head_path(&self.path)?.is_none(),
            PutMode::Update(UpdateVersion { e_tag, .. }) => self
                .remote
                .head_path(&self.path)?
                .is_some_and(|meta| meta.e_tag == *e_tag),
        };
        let mut upload = self.upload.take().expect("a multipart upload was started");
        if !allowed {
            let _ = self.remote.run(async move { upload.abort().await });
            tracing::debug!(%key, "conditional multipart write refused");
            return Ok(Conditional::Refused);
        }
        self.remote
            .run(async move { upload.complete().await })
            .map_err(storage)?;
        Ok(Conditional::Written)
    }
}

impl Remote {
    fn head_path(&self, path: &ObjectPath) -> Result<Option<ObjectMeta>, StorageError> {
        let (store, path) = (self.store.clone(), path.clone());
        match self.run(async move { store.head(&path).await }) {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage(e)),
        }
    }
}

impl Write for RemoteWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        // A full part is sent only once more data arrives, so an object of exactly
        // PART_SIZE bytes is still a single PUT.
        while self.buffer.len() > PART_SIZE {
            let rest = self.buffer.split_off(PART_SIZE);
            let part = std::mem::replace(&mut self.buffer, rest);
            self.send_part(part)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RemoteWriter {
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            // Abandoned: parts already sent would otherwise be billed until a lifecycle
            // rule cleans them up.
            if let Err(e) = self.remote.run(async move { upload.abort().await }) {
                tracing::warn!(path = %self.path, error = %e, "aborting a multipart upload failed");
            }
        }
    }
}

/// Reads an object by ranged GETs of [`WINDOW`] bytes, each conditional on the ETag seen
/// when it was opened: an object replaced mid-read fails the read instead of splicing two
/// versions together.
pub(crate) struct RangedReader {
    remote: Arc<Remote>,
    key: String,
    path: ObjectPath,
    len: u64,
    e_tag: Option<String>,
    pos: u64,
    window_start: u64,
    window: bytes::Bytes,
}

impl RangedReader {
    pub(crate) fn e_tag(&self) -> Option<&str> {
        self.e_tag.as_deref()
    }

    fn fetch(&mut self) -> io::Result<()> {
        let end = (self.pos + WINDOW).min(self.len);
        let (store, path) = (self.remote.store.clone(), self.path.clone());
        let options = GetOptions {
            range: Some(GetRange::Bounded(self.pos..end)),
            if_match: self.e_tag.clone(),
            ..GetOptions::default()
        };
        let fetched = self
            .remote
            .run(async move { store.get_opts(&path, options).await?.bytes().await });
        self.window = match fetched {
            Ok(bytes) => bytes,
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => {
                return Err(io::Error::other(StorageError::Io(format!(
                    "{}: replaced or deleted while being read",
                    self.key
                ))))
            }
            Err(e) => return Err(io::Error::other(storage(e))),
        };
        if self.window.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: the object ended early", self.key),
            ));
        }
        self.window_start = self.pos;
        Ok(())
    }
}

impl Read for RangedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        let window_end = self.window_start + self.window.len() as u64;
        if self.pos < self.window_start || self.pos >= window_end {
            self.fetch()?;
        }
        let offset = (self.pos - self.window_start) as usize;
        let n = out.len().min(self.window.len() - offset);
        out[..n].copy_from_slice(&self.window[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangedReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
