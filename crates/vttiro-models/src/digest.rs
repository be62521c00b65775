//! sha256 over files and streams, as lowercase hex (the form the hub's LFS etags use).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use vttiro_core::CancelToken;

use crate::error::ModelError;

const CHUNK: usize = 256 * 1024;

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(DIGITS[usize::from(byte >> 4)] as char);
        hex.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    hex
}

pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn finish_hex(hasher: Sha256) -> String {
    to_hex(&hasher.finalize())
}

/// Size and sha256 (lowercase hex) of the file at `path`, read in chunks.
pub fn sha256_file(path: &Path) -> Result<(u64, String), ModelError> {
    let mut file = File::open(path).map_err(ModelError::io("open", path))?;
    let mut hasher = Sha256::new();
    let copied = copy_hashing(
        &mut file,
        &mut io::sink(),
        Some(&mut hasher),
        None,
        &mut |_| {},
    )
    .map_err(ModelError::io("read", path))?;
    Ok((copied, finish_hex(hasher)))
}

/// Copies `reader` into `writer`, feeding every byte to `hasher` (if any) and reporting the running
/// total to `on_progress`; returns the number of bytes copied. Once `cancel` is set the copy
/// stops before its next read with an error that [`is_cancelled`] recognises.
pub(crate) fn copy_hashing(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    mut hasher: Option<&mut Sha256>,
    cancel: Option<&CancelToken>,
    on_progress: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        if cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(io::Error::other(CopyCancelled));
        }
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if let Some(hasher) = hasher.as_deref_mut() {
            hasher.update(&buffer[..read]);
        }
        writer.write_all(&buffer[..read])?;
        total += read as u64;
        on_progress(total);
    }
}

#[derive(Debug)]
struct CopyCancelled;

impl std::fmt::Display for CopyCancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for CopyCancelled {}

/// Whether `error` is [`copy_hashing`] stopping for its cancel token, not a read or write
/// failure.
pub(crate) fn is_cancelled(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<CopyCancelled>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_of_known_digest() {
        let mut hasher = Sha256::new();
        hasher.update(b"abc");
        assert_eq!(
            finish_hex(hasher),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256_hex(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        ));
        assert!(!is_sha256_hex("ba7816bf"));
    }
}
