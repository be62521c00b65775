//! The byte-level BPE vocabulary as whisper.cpp stores it: each regular token as the raw
//! bytes it stands for. CTranslate2 keeps tokens in GPT-2's printable form, where every
//! byte was mapped to a visible character (space became `Ġ`, newline `Ċ`); this undoes it.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

const END_OF_TEXT: &str = "<|endoftext|>";

/// The tokens of `vocabulary.json` or `vocabulary.txt` in id order.
pub fn read_tokens(model_dir: &Path) -> Result<Vec<String>, String> {
    let json = model_dir.join("vocabulary.json");
    if json.is_file() {
        let text = fs::read_to_string(&json).map_err(|e| format!("vocabulary.json: {e}"))?;
        return serde_json::from_str::<Vec<String>>(&text)
            .map_err(|e| format!("vocabulary.json is not a JSON array of strings: {e}"));
    }
    let text = fs::read_to_string(model_dir.join("vocabulary.txt"))
        .map_err(|e| format!("vocabulary.txt: {e}"))?;
    let mut tokens: Vec<String> = text.split('\n').map(str::to_owned).collect();
    // The file ends with a newline, which is not a token.
    if tokens.last().is_some_and(String::is_empty) {
        tokens.pop();
    }
    Ok(tokens)
}

/// The regular (non-special) tokens as bytes: everything before `<|endoftext|>`, which is
/// what whisper.cpp expects in the file; it names the special tokens itself.
pub fn regular_token_bytes(tokens: &[String]) -> Result<Vec<Vec<u8>>, String> {
    let end_of_text = tokens
        .iter()
        .position(|token| token == END_OF_TEXT)
        .ok_or_else(|| format!("the vocabulary has no {END_OF_TEXT} token"))?;
    let decoder = byte_decoder();
    Ok(tokens[..end_of_text]
        .iter()
        .map(|token| token_bytes(token, &decoder))
        .collect())
}

fn token_bytes(token: &str, decoder: &HashMap<char, u8>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(token.len());
    for c in token.chars() {
        match decoder.get(&c) {
            Some(&byte) => bytes.push(byte),
            // Not part of the byte alphabet (never the case in Whisper's vocabularies):
            // keep the character's own UTF-8 so nothing is silently dropped.
            None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    bytes
}

/// GPT-2's byte → printable character table, inverted. Printable Latin-1 bytes map to
/// themselves; the other 68 bytes (controls, space, NBSP, soft hyphen) are assigned the
/// code points from U+0100 upwards in byte order.
fn byte_decoder() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next_unassigned = 256u32;
    let mut decoder = HashMap::with_capacity(256);
    for byte in 0..=255u8 {
        let code_point = if printable(byte) {
            u32::from(byte)
        } else {
            next_unassigned += 1;
            next_unassigned - 1
        };
        let c = char::from_u32(code_point).expect("code points below 0x200 are valid");
        decoder.insert(c, byte);
    }
    decoder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_forms_become_raw_bytes() {
        let decoder = byte_decoder();
        assert_eq!(decoder.len(), 256);
        assert_eq!(token_bytes("Ġthe", &decoder), b" the");
        assert_eq!(token_bytes("Ċ", &decoder), b"\n");
        assert_eq!(token_bytes("ĀĠ", &decoder), [0u8, b' ']);
        // "é" in UTF-8 is C3 A9, which GPT-2 writes as "Ã©".
        assert_eq!(String::from_utf8(token_bytes("Ã©", &decoder)).unwrap(), "é");
        assert_eq!(token_bytes("ġ", &decoder), [0x7f]);
        assert_eq!(token_bytes("ł", &decoder), [0xa0]);
        assert_eq!(token_bytes("Ń", &decoder), [0xad]);
    }

    #[test]
    fn only_tokens_before_end_of_text_are_regular() {
        let tokens: Vec<String> = ["a", "Ġb", END_OF_TEXT, "<|startoftranscript|>"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            regular_token_bytes(&tokens).unwrap(),
            vec![b"a".to_vec(), b" b".to_vec()]
        );
        assert!(regular_token_bytes(&tokens[..2]).is_err());
    }
}
