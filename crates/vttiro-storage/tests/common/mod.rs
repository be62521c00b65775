//! Helpers the storage test files share.

use std::sync::Arc;

use vttiro_storage::KeyRing;

/// The size limit the tests write under.
pub const LIMIT: u64 = 64 << 20;

/// A keyring of one freshly generated key, and its spec.
pub fn key(id: &str) -> (Arc<KeyRing>, String) {
    let (ring, spec) = KeyRing::generate(id).unwrap();
    (Arc::new(ring), spec)
}

/// The keyring a spec (`id:base64key[,…]`) describes.
pub fn ring(spec: &str) -> Arc<KeyRing> {
    Arc::new(KeyRing::parse(spec).unwrap())
}

/// `len` bytes from a seeded generator, so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}
