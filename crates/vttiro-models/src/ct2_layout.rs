//! Recognising a CTranslate2 Whisper model directory and reading the few facts the pipeline
//! needs from it without loading the weights.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::error::ModelError;
use crate::registry::{FileRule, CT2_WHISPER_FILES};

/// Whisper's rule: a vocabulary this large includes the language tokens, so the model is
/// multilingual; the English-only checkpoints have 51864 tokens.
const MULTILINGUAL_VOCAB: usize = 51_865;
/// large-v3 added a language token (51866 tokens) together with 128 mel bins.
const LARGE_V3_VOCAB: usize = 51_866;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelTraits {
    pub vocab_size: usize,
    pub english_only: bool,
    pub n_mels: u32,
}

/// A directory that passed validation: which model files it has and what they say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ct2Directory {
    /// The model files present, in [`CT2_WHISPER_FILES`] order; other files are not part of
    /// the model and are never copied.
    pub files: Vec<&'static str>,
    pub traits: ModelTraits,
}

/// Checks that `dir` holds a loadable CTranslate2 Whisper model (config.json that parses,
/// non-empty model.bin, tokenizer.json, a vocabulary) and derives its traits.
pub fn inspect_ct2_dir(dir: &Path) -> Result<Ct2Directory, ModelError> {
    let invalid = |reason: String| ModelError::InvalidModelDir {
        path: dir.to_path_buf(),
        reason,
    };
    if !dir.is_dir() {
        return Err(invalid("not a directory or does not exist".into()));
    }
    let is_file = |name: &str| dir.join(name).is_file();
    let mut files = Vec::new();
    for rule in CT2_WHISPER_FILES {
        match rule {
            FileRule::Required(name) if is_file(name) => files.push(*name),
            FileRule::Required(name) => return Err(invalid(format!("{name} is missing"))),
            FileRule::OneOf(names) => match names.iter().find(|name| is_file(name)) {
                Some(name) => files.push(*name),
                None => return Err(invalid(format!("none of {} is present", names.join(", ")))),
            },
            FileRule::Optional(name) if is_file(name) => files.push(*name),
            FileRule::Optional(_) => {}
        }
    }

    let config_text = fs::read_to_string(dir.join("config.json"))
        .map_err(|error| invalid(format!("config.json is unreadable: {error}")))?;
    match serde_json::from_str::<serde_json::Value>(&config_text) {
        Ok(serde_json::Value::Object(_)) => {}
        Ok(_) => return Err(invalid("config.json is not a JSON object".into())),
        Err(error) => return Err(invalid(format!("config.json is not valid JSON: {error}"))),
    }
    let weights_len = fs::metadata(dir.join("model.bin")).map_or(0, |meta| meta.len());
    if weights_len == 0 {
        return Err(invalid("model.bin is empty".into()));
    }

    let vocab_size = if files.contains(&"vocabulary.json") {
        json_vocabulary_size(&dir.join("vocabulary.json")).map_err(invalid)?
    } else {
        text_vocabulary_size(&dir.join("vocabulary.txt")).map_err(invalid)?
    };
    let n_mels = match preprocessor_feature_size(dir).map_err(invalid)? {
        Some(n_mels) => n_mels,
        None if vocab_size >= LARGE_V3_VOCAB => 128,
        None => 80,
    };
    Ok(Ct2Directory {
        files,
        traits: ModelTraits {
            vocab_size,
            english_only: vocab_size < MULTILINGUAL_VOCAB,
            n_mels,
        },
    })
}

fn text_vocabulary_size(path: &Path) -> Result<usize, String> {
    let file = fs::File::open(path).map_err(|error| format!("vocabulary.txt: {error}"))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut tokens = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|error| format!("vocabulary.txt: {error}"))?;
        if read == 0 {
            return Ok(tokens);
        }
        tokens += 1;
    }
}

fn json_vocabulary_size(path: &Path) -> Result<usize, String> {
    let text = fs::read_to_string(path).map_err(|error| format!("vocabulary.json: {error}"))?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(tokens)) => Ok(tokens.len()),
        Ok(_) => Err("vocabulary.json is not a JSON array".into()),
        Err(error) => Err(format!("vocabulary.json is not valid JSON: {error}")),
    }
}

fn preprocessor_feature_size(dir: &Path) -> Result<Option<u32>, String> {
    let path = dir.join("preprocessor_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        fs::read_to_string(&path).map_err(|error| format!("preprocessor_config.json: {error}"))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| format!("preprocessor_config.json is not valid JSON: {error}"))?;
    Ok(value
        .get("feature_size")
        .and_then(serde_json::Value::as_u64)
        .and_then(|size| u32::try_from(size).ok()))
}
