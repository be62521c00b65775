//! Encryption at rest: what a sealed object looks like on disk, the master keys that
//! protect it, and the streaming sealer and reader.
//!
//! # Threat model
//!
//! Someone who copies the storage directory (a stolen disk, a leaked backup, a
//! misconfigured volume) must learn nothing but object names and approximate sizes, and
//! anyone who edits the files must be caught when they are read. The master keys live
//! outside the directory (config, environment or a 0600 file).
//!
//! # Envelope encryption
//!
//! Every object gets its own random 256-bit data key (DEK). The content is encrypted with
//! the DEK; the DEK is encrypted ("wrapped") with a master key and kept in the object's
//! header. Rotating the master key therefore rewrites 102 header bytes per object instead
//! of re-encrypting gigabytes of media, and one object's key never unlocks another.
//!
//! # Format, version 1 (all integers big-endian)
//!
//! ```text
//! offset  size  field
//!      0     8  magic  89 'v' 't' 't' 'i' 'r' 'o' 0A   (0x89 so no text file starts with it)
//!      8     1  format version = 1
//!      9     1  master key id length n (1..=32)
//!     10    32  master key id, ASCII, zero-padded
//!     42    12  wrap nonce (random)
//!     54    48  wrapped DEK: AES-256-GCM(master key, wrap nonce, DEK) || 16-byte tag
//!               associated data = bytes 0..42 || storage key
//!    102     …  body: segments
//! ```
//!
//! The body is the plaintext cut into 64 KiB segments, each sealed on its own with
//! AES-256-GCM under the DEK and stored as ciphertext || 16-byte tag. Every segment but the
//! last holds exactly 64 KiB; the last holds 0..=64 KiB (an empty object is one empty
//! final segment, and an exact multiple of 64 KiB ends with a full final segment), so the
//! segment layout — and the plaintext length — follow from the file length alone.
//!
//! Segment `i`'s nonce is `00 00 00 || i as u64 || last` where `last` is 1 for the final
//! segment and 0 otherwise (the STREAM construction): reordering segments breaks the
//! counter, cutting the file at a segment boundary leaves a last segment sealed with
//! `last = 0`, and appending turns the old final segment into one that claims `last = 0`.
//! A fixed nonce prefix is safe because every DEK seals exactly one object, once.
//!
//! Segment associated data is `magic || version || storage key`, so two files swapped on
//! disk fail authentication. It deliberately excludes the master key id and wrapped DEK:
//! rotation replaces those, and the body must survive rotation byte for byte.
//!
//! Readers hold one segment in memory at a time and return no plaintext from a segment
//! before its tag has been checked. A stream reports end of file only after the final
//! segment has verified, so a truncated object can never pass for a shorter one.
//!
//! Files without the magic are plaintext written before encryption was turned on; they stay
//! readable, and [`crate::Store::rotate`] seals them. A file whose first eight bytes
//! are within two bytes of the magic is taken for a sealed object with a damaged header, so
//! bit rot there yields an error rather than ciphertext served as content. The price of
//! that compatibility: someone who can write to the directory can plant a plaintext file
//! that an encrypted store will serve. Confidentiality is unaffected.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::StorageError;

const MAGIC: [u8; 8] = *b"\x89vttiro\n";
const VERSION: u8 = 1;
const ID_MAX: usize = 32;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
const WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;
const ID_AT: usize = 10;
const NONCE_AT: usize = ID_AT + ID_MAX;
const WRAPPED_AT: usize = NONCE_AT + NONCE_LEN;

/// Bytes before the first segment of a sealed object.
pub const SEALED_HEADER_LEN: usize = WRAPPED_AT + WRAPPED_LEN;
/// Plaintext bytes per sealed segment; each is stored with a 16-byte tag after it.
pub const SEGMENT_SIZE: usize = 64 * 1024;
const SEGMENT_STORED: u64 = (SEGMENT_SIZE + TAG_LEN) as u64;

const AUTH_FAILED: &str = "authentication failed (wrong master key or tampered data)";
const NO_KEYS: &str = "encrypted; no master key configured";

// Both padded and unpadded base64 are accepted: people paste keys from many tools.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn sealed(key: &str, reason: impl Into<String>) -> StorageError {
    StorageError::Sealed {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn io(e: io::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

fn random<const N: usize>() -> Result<[u8; N], StorageError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StorageError::Io("the system random number generator failed".into()))?;
    Ok(bytes)
}

fn aes_key(bytes: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("keys are 32 bytes"))
}

fn valid_id(id: &str) -> bool {
    (1..=ID_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct MasterKey {
    id: String,
    key: LessSafeKey,
}

/// The master keys: the first (current) wraps the data keys of new and rotated objects;
/// the others only unwrap, so objects sealed before a rotation stay readable until
/// [`crate::Store::rotate`] has moved them to the current key.
pub struct KeyRing {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for KeyRing {
    // Ids only: key bytes must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current_id())
            .field("ids", &self.ids())
            .finish()
    }
}

impl KeyRing {
    /// Spec text: comma-separated `id:base64(32 random bytes)` entries, the FIRST is
    /// current. Ids are 1..=32 characters of `[A-Za-z0-9_-]`; whitespace and newlines
    /// around entries are ignored. Errors name the entry by position (and id, once it is
    /// known to be one) and never repeat key material.
    pub fn parse(spec: &str) -> Result<KeyRing, StorageError> {
        let bad = |message: String| StorageError::MasterKey(message);
        let mut keys: Vec<MasterKey> = Vec::new();
        for (index, entry) in spec.split(',').enumerate() {
            let n = index + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some((id, material)) = entry.split_once(':') else {
                return Err(bad(format!("entry {n}: expected `id:base64-key`")));
            };
            let (id, material) = (id.trim(), material.trim());
            // An invalid id is not echoed: a pasted key in the wrong place would be.
            if !valid_id(id) {
                return Err(bad(format!(
                    "entry {n}: the key id must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-'"
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(bad(format!("entry {n}: duplicate key id {id:?}")));
            }
            let bytes = BASE64
                .decode(material)
                .map_err(|_| bad(format!("entry {n} ({id:?}): the key is not valid base64")))?;
            if bytes.len() != KEY_LEN {
                return Err(bad(format!(
                    "entry {n} ({id:?}): the key is {} bytes; it must be {KEY_LEN} random bytes",
                    bytes.len()
                )));
            }
            if bytes.iter().all(|&b| b == 0) {
                return Err(bad(format!(
                    "entry {n} ({id:?}): the key is all zeros, a placeholder rather than a key"
                )));
            }
            keys.push(MasterKey {
                id: id.to_string(),
                key: aes_key(&bytes),
            });
        }
        if keys.is_empty() {
            return Err(bad(
                "no keys given (expected `id:base64-key[,id:base64-key…]`)".into(),
            ));
        }
        Ok(KeyRing { keys })
    }

    /// Reads the spec from a file, refusing one that group or others may use (unix): a
    /// key file anyone can read protects nothing.
    pub fn load_file(path: &Path) -> Result<KeyRing, StorageError> {
        let named =
            |message: String| StorageError::MasterKey(format!("{}: {message}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| named(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Checked on the open handle, so the file cannot be swapped after the check.
            let mode = file
                .metadata()
                .map_err(|e| named(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(named(format!(
                    "mode {:04o} lets group or others access the master keys; run `chmod 600` on it",
                    mode & 0o7777
                )));
            }
        }
        let mut text = String::new();
        file.take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|_| named("not a UTF-8 text file".into()))?;
        KeyRing::parse(&text).map_err(|e| match e {
            StorageError::MasterKey(message) => named(message),
            other => other,
        })
    }

    /// A new random key with this id, and its spec text (for `vttiro` to write to a 0600
    /// file, or to append to an existing spec after a comma).
    pub fn generate(id: &str) -> Result<(KeyRing, String), StorageError> {
        if !valid_id(id) {
            return Err(StorageError::MasterKey(format!(
                "{id:?}: a key id must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-'"
            )));
        }
        let spec = format!("{id}:{}", BASE64.encode(random::<KEY_LEN>()?));
        Ok((KeyRing::parse(&spec)?, spec))
    }

    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// All ids, current first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// A parsed header of a sealed object (see the module doc for the layout).
#[derive(Clone)]
pub(crate) struct Header {
    bytes: [u8; SEALED_HEADER_LEN],
}

impl Header {
    pub(crate) fn key_id(&self) -> &str {
        let n = self.bytes[9] as usize;
        std::str::from_utf8(&self.bytes[ID_AT..ID_AT + n]).expect("validated when read")
    }

    fn wrap(master: &MasterKey, dek: &[u8; KEY_LEN], key: &str) -> Result<Header, StorageError> {
        let mut bytes = [0u8; SEALED_HEADER_LEN];
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8] = VERSION;
        bytes[9] = master.id.len() as u8;
        bytes[ID_AT..ID_AT + master.id.len()].copy_from_slice(master.id.as_bytes());
        let nonce = random::<NONCE_LEN>()?;
        bytes[NONCE_AT..WRAPPED_AT].copy_from_slice(&nonce);
        let mut wrapped = dek.to_vec();
        master
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(&bytes, key)),
                &mut wrapped,
            )
            .map_err(|_| StorageError::Io("sealing a data key failed".into()))?;
        bytes[WRAPPED_AT..].copy_from_slice(&wrapped);
        Ok(Header { bytes })
    }

    /// The data key, checked against the header and the storage key it belongs to.
    fn data_key(&self, keys: Option<&KeyRing>, key: &str) -> Result<[u8; KEY_LEN], StorageError> {
        let keys = keys.ok_or_else(|| sealed(key, NO_KEYS))?;
        let id = self.key_id();
        let master = keys.get(id).ok_or_else(|| {
            sealed(
                key,
                format!(
                    "sealed under master key {id:?}, which is not in the keyring (it has {})",
                    keys.ids().join(", ")
                ),
            )
        })?;
        let mut wrapped = self.bytes[WRAPPED_AT..].to_vec();
        let nonce: [u8; NONCE_LEN] = self.bytes[NONCE_AT..WRAPPED_AT]
            .try_into()
            .expect("12 bytes");
        let dek = master
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(&self.bytes, key)),
                &mut wrapped,
            )
            .map_err(|_| sealed(key, AUTH_FAILED))?;
        Ok(dek.try_into().expect("a wrapped key opens to 32 bytes"))
    }

    /// The same data key wrapped under the keyring's current master key.
    pub(crate) fn rewrap(&self, keys: &KeyRing, key: &str) -> Result<Header, StorageError> {
        let dek = self.data_key(Some(keys), key)?;
        Header::wrap(&keys.keys[0], &dek, key)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn wrap_aad(header: &[u8; SEALED_HEADER_LEN], key: &str) -> Vec<u8> {
    [&header[..NONCE_AT], key.as_bytes()].concat()
}

fn segment_aad(key: &str) -> Vec<u8> {
    [&MAGIC[..], &[VERSION], key.as_bytes()].concat()
}

fn segment_nonce(counter: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[3..11].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    Nonce::assume_unique_for_key(nonce)
}

/// What the first bytes of a stored file say it is.
pub(crate) enum Probe {
    /// No header: plaintext from before encryption was turned on.
    Plain,
    Sealed(Header),
}

/// Reads the header of `file` (for `key`), leaving the position just after it when sealed
/// and at the start when plaintext.
pub(crate) fn probe(file: &mut (impl Read + Seek), key: &str) -> Result<Probe, StorageError> {
    let mut bytes = [0u8; SEALED_HEADER_LEN];
    let mut filled = 0;
    while filled < bytes.len() {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    let differing = MAGIC
        .iter()
        .zip(&bytes[..filled.min(8)])
        .filter(|(a, b)| a != b)
        .count();
    if filled < 8 || differing > 2 {
        file.rewind().map_err(io)?;
        return Ok(Probe::Plain);
    }
    if differing > 0 {
        return Err(sealed(
            key,
            "the header is damaged (not a sealed object's magic)",
        ));
    }
    if bytes[8] != VERSION {
        return Err(sealed(
            key,
            format!(
                "unsupported format version {} (this build reads {VERSION})",
                bytes[8]
            ),
        ));
    }
    if filled < SEALED_HEADER_LEN {
        return Err(sealed(key, "truncated inside the header"));
    }
    let n = bytes[9] as usize;
    let id_ok = (1..=ID_MAX).contains(&n)
        && std::str::from_utf8(&bytes[ID_AT..ID_AT + n]).is_ok_and(valid_id)
        && bytes[ID_AT + n..NONCE_AT].iter().all(|&b| b == 0);
    if !id_ok {
        return Err(sealed(key, "the header is damaged (bad master key id)"));
    }
    Ok(Probe::Sealed(Header { bytes }))
}

/// Where writes go: the file itself, or a sealer in front of it.
pub(crate) enum Sink<W: Write> {
    Plain(W),
    Sealed(Box<Sealer<W>>),
}

impl<W: Write> Sink<W> {
    /// A sealed sink writes its header into `file` at once.
    pub(crate) fn new(file: W, keys: Option<&KeyRing>, key: &str) -> Result<Sink<W>, StorageError> {
        Ok(match keys {
            None => Sink::Plain(file),
            Some(keys) => Sink::Sealed(Box::new(Sealer::new(file, keys, key)?)),
        })
    }

    pub(crate) fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(file) => file.write_all(data),
            Sink::Sealed(sealer) => sealer.write_all(data),
        }
    }

    /// Seals the final segment; the file still needs its fsync.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Sink::Plain(file) => Ok(file),
            Sink::Sealed(sealer) => sealer.finish(),
        }
    }
}

/// Seals a stream segment by segment, holding at most one segment of plaintext.
pub(crate) struct Sealer<W: Write> {
    out: W,
    dek: LessSafeKey,
    aad: Vec<u8>,
    counter: u64,
    buffer: Vec<u8>,
}

impl<W: Write> Sealer<W> {
    fn new(mut out: W, keys: &KeyRing, key: &str) -> Result<Sealer<W>, StorageError> {
        let dek = random::<KEY_LEN>()?;
        let header = Header::wrap(&keys.keys[0], &dek, key)?;
        out.write_all(header.as_bytes()).map_err(io)?;
        Ok(Sealer {
            out,
            dek: aes_key(&dek),
            aad: segment_aad(key),
            counter: 0,
            buffer: Vec::with_capacity(SEGMENT_SIZE + TAG_LEN),
        })
    }

    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            // A full segment waits for more data before it is sealed: only then is it
            // known not to be the last one.
            if self.buffer.len() == SEGMENT_SIZE {
                self.seal_segment(false)?;
            }
            let take = (SEGMENT_SIZE - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    fn seal_segment(&mut self, last: bool) -> io::Result<()> {
        self.dek
            .seal_in_place_append_tag(
                segment_nonce(self.counter, last),
                Aad::from(&self.aad),
                &mut self.buffer,
            )
            .map_err(|_| io::Error::other("sealing a segment failed"))?;
        self.out.write_all(&self.buffer)?;
        self.buffer.clear();
        self.counter += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.seal_segment(true)?;
        Ok(self.out)
    }
}

/// A streaming reader of an object's plaintext, from [`crate::Store::open_read`].
///
/// For a sealed object each segment is verified before any of its bytes are returned; a
/// segment that fails makes `read` return an [`io::Error`] (kind `InvalidData`) wrapping
/// [`StorageError::Sealed`], whose message is the one-line reason, and every later `read`
/// fails the same way. `Ok(0)` (end of file) comes only after the final segment verified.
pub struct ObjectReader {
    inner: Inner,
    len: u64,
}

/// Where a stored object's bytes are read from: a file, or ranged reads of a remote object.
pub(crate) trait Blob: Read + Seek + Send {}

impl<T: Read + Seek + Send> Blob for T {}

enum Inner {
    Plain(Box<dyn Blob>),
    Sealed(Box<Opener>),
}

struct Opener {
    file: Box<dyn Blob>,
    key: String,
    dek: LessSafeKey,
    aad: Vec<u8>,
    segments: u64,
    last_stored: usize,
    next: u64,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    failed: Option<String>,
}

impl fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectReader")
            .field("len", &self.len)
            .field("sealed", &self.is_sealed())
            .finish()
    }
}

impl ObjectReader {
    /// Opens the object stored in `file` (`stored_len` bytes) under `key`; sealed objects
    /// are unwrapped now, so a missing or wrong master key fails here rather than on the
    /// first read.
    pub(crate) fn open(
        mut file: Box<dyn Blob>,
        stored_len: u64,
        key: &str,
        keys: Option<&KeyRing>,
    ) -> Result<ObjectReader, StorageError> {
        let header = match probe(&mut file, key)? {
            Probe::Plain => {
                return Ok(ObjectReader {
                    inner: Inner::Plain(file),
                    len: stored_len,
                });
            }
            Probe::Sealed(header) => header,
        };
        let dek = header.data_key(keys, key)?;
        let body = stored_len - SEALED_HEADER_LEN as u64;
        let segments = body.div_ceil(SEGMENT_STORED);
        let last_stored = (body - segments.saturating_sub(1) * SEGMENT_STORED) as usize;
        if segments == 0 || last_stored < TAG_LEN {
            return Err(sealed(key, "truncated (the last segment is incomplete)"));
        }
        file.seek(SeekFrom::Start(SEALED_HEADER_LEN as u64))
            .map_err(io)?;
        Ok(ObjectReader {
            len: body - segments * TAG_LEN as u64,
            inner: Inner::Sealed(Box::new(Opener {
                file,
                key: key.to_string(),
                dek: aes_key(&dek),
                aad: segment_aad(key),
                segments,
                last_stored,
                next: 0,
                buffer: Vec::with_capacity(SEGMENT_STORED as usize),
                start: 0,
                end: 0,
                failed: None,
            })),
        })
    }

    /// Plaintext bytes (for a sealed object, as the file's length implies; every byte of
    /// it is verified as it is read).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the object is stored encrypted (false for plaintext written before
    /// encryption was turned on).
    pub fn is_sealed(&self) -> bool {
        matches!(self.inner, Inner::Sealed(_))
    }
}

impl Opener {
    fn fail(&mut self, reason: &str) -> io::Error {
        self.failed = Some(reason.to_string());
        io::Error::new(io::ErrorKind::InvalidData, sealed(&self.key, reason))
    }

    /// Reads and verifies the next segment into the buffer.
    fn load(&mut self) -> io::Result<()> {
        let last = self.next + 1 == self.segments;
        let stored = if last {
            self.last_stored
        } else {
            SEGMENT_STORED as usize
        };
        self.buffer.resize(stored, 0);
        if let Err(e) = self.file.read_exact(&mut self.buffer) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                self.fail("truncated while reading")
            } else {
                e
            });
        }
        let opened = self.dek.open_in_place(
            segment_nonce(self.next, last),
            Aad::from(&self.aad),
            &mut self.buffer,
        );
        let Ok(plain) = opened else {
            self.buffer.clear();
            return Err(self.fail(AUTH_FAILED));
        };
        self.end = plain.len();
        self.start = 0;
        self.next += 1;
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let opener = match &mut self.inner {
            Inner::Plain(file) => return file.read(out),
            Inner::Sealed(opener) => opener,
        };
        if let Some(reason) = &opener.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                sealed(&opener.key, reason.clone()),
            ));
        }
        if out.is_empty() {
            return Ok(0);
        }
        while opener.start == opener.end {
            if opener.next == opener.segments {
                return Ok(0);
            }
            opener.load()?;
        }
        let n = out.len().min(opener.end - opener.start);
        out[..n].copy_from_slice(&opener.buffer[opener.start..opener.start + n]);
        opener.start += n;
        Ok(n)
    }
}

/// The [`StorageError`] inside an error from [`ObjectReader`]'s `read`, or an I/O error.
pub(crate) fn read_error(e: io::Error) -> StorageError {
    if e.get_ref().is_some_and(|inner| inner.is::<StorageError>()) {
        let inner = e.into_inner().expect("checked above");
        return *inner.downcast::<StorageError>().expect("checked above");
    }
    io(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::generate("unit").unwrap().0
    }

    fn seal_to_vec(data: &[u8], key: &str, keys: &KeyRing) -> Vec<u8> {
        let file = tempfile::tempfile().unwrap();
        let mut sink = Sink::new(file, Some(keys), key).unwrap();
        sink.write_all(data).unwrap();
        let mut file = sink.finish().unwrap();
        file.rewind().unwrap();
        let mut out = Vec::new();
        file.read_to_end(&mut out).unwrap();
        out
    }

    fn open_vec(bytes: &[u8], key: &str, keys: Option<&KeyRing>) -> Result<Vec<u8>, StorageError> {
        let mut reader = ObjectReader::open(
            Box::new(io::Cursor::new(bytes.to_vec())),
            bytes.len() as u64,
            key,
            keys,
        )?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(read_error)?;
        assert_eq!(reader.len(), out.len() as u64);
        Ok(out)
    }

    #[test]
    fn stored_size_follows_the_segment_layout() {
        let keys = ring();
        for len in [
            0,
            1,
            SEGMENT_SIZE - 1,
            SEGMENT_SIZE,
            SEGMENT_SIZE + 1,
            3 * SEGMENT_SIZE,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let stored = seal_to_vec(&data, "k", &keys);
            let segments = len.div_ceil(SEGMENT_SIZE).max(1);
            assert_eq!(
                stored.len(),
                SEALED_HEADER_LEN + len + segments * TAG_LEN,
                "len {len}"
            );
            assert_eq!(
                open_vec(&stored, "k", Some(&keys)).unwrap(),
                data,
                "len {len}"
            );
        }
    }

    #[test]
    fn nonces_differ_by_counter_and_last_flag() {
        let a = segment_nonce(1, false);
        let b = segment_nonce(1, true);
        let c = segment_nonce(2, false);
        assert_ne!(a.as_ref(), b.as_ref());
        assert_ne!(a.as_ref(), c.as_ref());
    }

    #[test]
    fn appending_a_segment_is_detected() {
        let keys = ring();
        let mut stored = seal_to_vec(&[7u8; 100], "k", &keys);
        // A whole extra segment of garbage after the real final one.
        stored.extend(std::iter::repeat_n(0u8, SEGMENT_STORED as usize));
        let err = open_vec(&stored, "k", Some(&keys)).unwrap_err();
        assert!(err.to_string().contains("authentication failed"), "{err}");
    }

    #[test]
    fn dropping_the_final_segment_of_a_two_segment_object_is_detected() {
        let keys = ring();
        let stored = seal_to_vec(&vec![3u8; SEGMENT_SIZE + 10], "k", &keys);
        let cut = &stored[..SEALED_HEADER_LEN + SEGMENT_STORED as usize];
        let err = open_vec(cut, "k", Some(&keys)).unwrap_err();
        assert!(err.to_string().contains("authentication failed"), "{err}");
    }

    #[test]
    fn a_near_miss_magic_is_a_damaged_header_but_text_is_plaintext() {
        let keys = ring();
        let mut stored = seal_to_vec(b"hello", "k", &keys);
        stored[3] ^= 0x01;
        let err = open_vec(&stored, "k", Some(&keys)).unwrap_err();
        assert!(err.to_string().contains("header is damaged"), "{err}");
        assert_eq!(
            open_vec(b"WEBVTT\n\n", "k", Some(&keys)).unwrap(),
            b"WEBVTT\n\n"
        );
        assert_eq!(open_vec(b"", "k", Some(&keys)).unwrap(), b"");
    }

    #[test]
    fn header_and_body_are_each_bound_to_the_storage_key() {
        let keys = ring();
        let stored = seal_to_vec(b"alice's transcript", "jobs/a", &keys);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&stored).unwrap();
        file.rewind().unwrap();
        let Probe::Sealed(header) = probe(&mut file, "jobs/a").unwrap() else {
            panic!("not sealed");
        };
        assert!(
            header.data_key(Some(&keys), "jobs/b").is_err(),
            "wrap is bound"
        );
        // Someone holding the master key re-wraps the data key for another name: the
        // segments must still refuse to be that object.
        let dek = header.data_key(Some(&keys), "jobs/a").unwrap();
        let forge = |name: &str| {
            let mut forged = Header::wrap(&keys.keys[0], &dek, name)
                .unwrap()
                .as_bytes()
                .to_vec();
            forged.extend_from_slice(&stored[SEALED_HEADER_LEN..]);
            forged
        };
        let err = open_vec(&forge("jobs/b"), "jobs/b", Some(&keys)).unwrap_err();
        assert!(err.to_string().contains("authentication failed"), "{err}");
        assert_eq!(
            open_vec(&forge("jobs/a"), "jobs/a", Some(&keys)).unwrap(),
            b"alice's transcript",
            "control: a fresh header for the right name opens"
        );
    }

    #[test]
    fn debug_shows_ids_only() {
        let (keys, spec) = KeyRing::generate("dbg").unwrap();
        let material = spec.split_once(':').unwrap().1;
        let shown = format!("{keys:?}");
        assert!(shown.contains("dbg"));
        assert!(!shown.contains(material), "{shown}");
    }
}
