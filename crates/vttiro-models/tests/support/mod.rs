//! Test fixtures shared by the integration tests: generated CTranslate2-shaped model
//! directories and a local server that speaks the Hugging Face hub protocol.
#![allow(dead_code)]

pub mod fake_hub;

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

pub const ENGLISH_VOCAB: usize = 51_864;
pub const MULTILINGUAL_VOCAB: usize = 51_865;
pub const LARGE_V3_VOCAB: usize = 51_866;

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Deterministic bytes that do not compress or repeat, standing in for weights.
pub fn weights(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub fn text_vocabulary(tokens: usize) -> Vec<u8> {
    let mut text = String::new();
    for index in 0..tokens {
        text.push_str(&format!("tok{index}\n"));
    }
    text.into_bytes()
}

pub fn json_vocabulary(tokens: usize) -> Vec<u8> {
    let tokens: Vec<String> = (0..tokens).map(|index| format!("tok{index}")).collect();
    serde_json::to_vec(&tokens).unwrap()
}

pub const CONFIG_JSON: &[u8] = br#"{"alignment_heads": [[1, 0]], "lang_ids": [], "suppress_ids": [1, 2], "suppress_ids_begin": [220]}"#;
pub const TOKENIZER_JSON: &[u8] = br#"{"version": "1.0", "model": {"type": "BPE", "vocab": {}}}"#;

/// The files of a small but well-formed CTranslate2 Whisper directory.
pub fn ct2_files(vocab_tokens: usize, json_vocab: bool) -> Vec<(&'static str, Vec<u8>)> {
    let vocabulary = if json_vocab {
        ("vocabulary.json", json_vocabulary(vocab_tokens))
    } else {
        ("vocabulary.txt", text_vocabulary(vocab_tokens))
    };
    vec![
        ("config.json", CONFIG_JSON.to_vec()),
        ("model.bin", weights(300_000, vocab_tokens as u64)),
        ("tokenizer.json", TOKENIZER_JSON.to_vec()),
        vocabulary,
    ]
}

pub fn write_files(dir: &Path, files: &[(&str, Vec<u8>)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Every entry of `dir` whose name starts with a dot: the store's bookkeeping.
pub fn hidden_entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect()
}
