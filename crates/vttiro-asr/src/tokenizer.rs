//! Whisper's byte-level BPE vocabulary as the decoding loop needs it: special-token ids,
//! id -> text decoding that survives tokens which split a UTF-8 character, encoding of
//! user prompts, and grouping tokens into words for word-level timestamps.

use std::collections::HashMap;
use std::path::Path;

use crate::AsrError;

pub struct WhisperTokenizer {
    vocab: Vec<String>,
    ids: HashMap<String, usize>,
    byte_of_char: HashMap<char, u8>,
    encoder: Option<tokenizers::Tokenizer>,
    pub eot: usize,
    pub sot: usize,
    pub sot_prev: usize,
    pub transcribe: usize,
    pub translate: usize,
    pub no_timestamps: usize,
    pub timestamp_begin: usize,
    pub english_only: bool,
}

impl WhisperTokenizer {
    /// Loads `vocabulary.txt` or `vocabulary.json` (the id order CTranslate2 uses) and
    /// `tokenizer.json` (BPE merges, only needed to encode prompts).
    pub fn load(model_dir: &Path, english_only: bool) -> Result<Self, AsrError> {
        let vocab = read_vocabulary(model_dir)?;
        let ids: HashMap<String, usize> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        let special = |name: &str| -> Result<usize, AsrError> {
            ids.get(name)
                .copied()
                .ok_or_else(|| AsrError::ModelInvalid {
                    model: model_dir.display().to_string(),
                    reason: format!("vocabulary lacks the special token {name}"),
                })
        };
        let no_timestamps = special("<|notimestamps|>")?;
        let timestamp_begin = ids.get("<|0.00|>").copied().unwrap_or(no_timestamps + 1);
        let encoder = tokenizers::Tokenizer::from_file(model_dir.join("tokenizer.json")).ok();
        Ok(WhisperTokenizer {
            eot: special("<|endoftext|>")?,
            sot: special("<|startoftranscript|>")?,
            sot_prev: special("<|startofprev|>")?,
            transcribe: special("<|transcribe|>")?,
            translate: special("<|translate|>")?,
            no_timestamps,
            timestamp_begin,
            english_only,
            byte_of_char: byte_decoder(),
            vocab,
            ids,
            encoder,
        })
    }

    pub fn token_str(&self, id: usize) -> &str {
        self.vocab.get(id).map(String::as_str).unwrap_or("")
    }

    pub fn id_of(&self, token: &str) -> Option<usize> {
        self.ids.get(token).copied()
    }

    pub fn language_token(&self, language: &str) -> Option<usize> {
        self.id_of(&format!("<|{language}|>"))
    }

    pub fn is_timestamp(&self, id: usize) -> bool {
        id >= self.timestamp_begin
    }

    /// The decoder prompt that starts every window. English-only models were trained
    /// without language and task tokens; adding them degrades output.
    pub fn sot_sequence(&self, language: &str, translate: bool) -> Vec<usize> {
        let mut seq = vec![self.sot];
        if !self.english_only {
            if let Some(lang) = self.language_token(language) {
                seq.push(lang);
            }
            seq.push(if translate {
                self.translate
            } else {
                self.transcribe
            });
        }
        seq
    }

    /// Encodes free text (a vocabulary prompt) with a leading space, as Whisper does for
    /// initial prompts.
    pub fn encode(&self, text: &str) -> Vec<usize> {
        let Some(enc) = &self.encoder else {
            return Vec::new();
        };
        let with_space = format!(" {}", text.trim());
        match enc.encode(with_space.as_str(), false) {
            Ok(e) => e.get_ids().iter().map(|&i| i as usize).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn token_bytes(&self, id: usize, out: &mut Vec<u8>) {
        for ch in self.token_str(id).chars() {
            match self.byte_of_char.get(&ch) {
                Some(&b) => out.push(b),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    /// Decodes text tokens, skipping special and timestamp tokens.
    pub fn decode(&self, ids: &[usize]) -> String {
        let mut bytes = Vec::new();
        for &id in ids.iter().filter(|&&id| id < self.eot) {
            self.token_bytes(id, &mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Groups text tokens into words the way subtitles need them: a new word starts at a
    /// token beginning with a space, so punctuation and suffixes such as "'t" stay on their
    /// word. Tokens whose bytes end mid-character are held until the character completes so
    /// no word carries U+FFFD.
    pub fn split_words(&self, ids: &[usize]) -> Vec<(String, Vec<usize>)> {
        // First group into units that decode to complete UTF-8.
        let mut units: Vec<(String, Vec<usize>)> = Vec::new();
        let mut pending_bytes = Vec::new();
        let mut pending_ids = Vec::new();
        for &id in ids {
            self.token_bytes(id, &mut pending_bytes);
            pending_ids.push(id);
            if let Ok(text) = std::str::from_utf8(&pending_bytes) {
                units.push((text.to_string(), std::mem::take(&mut pending_ids)));
                pending_bytes.clear();
            }
        }
        if !pending_ids.is_empty() {
            units.push((
                String::from_utf8_lossy(&pending_bytes).into_owned(),
                pending_ids,
            ));
        }
        let mut words: Vec<(String, Vec<usize>)> = Vec::new();
        for (text, unit_ids) in units {
            match words.last_mut() {
                Some(last) if !text.starts_with(' ') => {
                    last.0.push_str(&text);
                    last.1.extend(unit_ids);
                }
                _ => words.push((text, unit_ids)),
            }
        }
        words
    }
}

fn read_vocabulary(model_dir: &Path) -> Result<Vec<String>, AsrError> {
    let txt = model_dir.join("vocabulary.txt");
    let json = model_dir.join("vocabulary.json");
    let invalid = |reason: String| AsrError::ModelInvalid {
        model: model_dir.display().to_string(),
        reason,
    };
    if txt.exists() {
        let text = std::fs::read_to_string(&txt)
            .map_err(|e| invalid(format!("cannot read vocabulary.txt: {e}")))?;
        Ok(text.lines().map(str::to_string).collect())
    } else if json.exists() {
        let text = std::fs::read_to_string(&json)
            .map_err(|e| invalid(format!("cannot read vocabulary.json: {e}")))?;
        serde_json::from_str(&text).map_err(|e| invalid(format!("vocabulary.json: {e}")))
    } else {
        Err(invalid("no vocabulary.txt or vocabulary.json".into()))
    }
}

/// GPT-2's reversible map from bytes to printable characters, inverted.
fn byte_decoder() -> HashMap<char, u8> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut map = HashMap::new();
    let mut next = 0u32;
    for b in 0u32..=255 {
        let ch = if printable(b) {
            b
        } else {
            let c = 256 + next;
            next += 1;
            c
        };
        map.insert(char::from_u32(ch).expect("valid code point"), b as u8);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_decoder_covers_every_byte_once() {
        let map = byte_decoder();
        assert_eq!(map.len(), 256);
        assert_eq!(map[&'Ġ'], b' ');
        assert_eq!(map[&'a'], b'a');
        let mut bytes: Vec<u8> = map.values().copied().collect();
        bytes.sort();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
    }
}
