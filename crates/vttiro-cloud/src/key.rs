//! API keys: read from the environment, sent only in the provider's auth header, and never
//! printed. `Debug` and `Display` show a fixed placeholder, and [`ApiKey::scrub`] removes the
//! key from provider messages that echo it back (OpenAI quotes part of a wrong key).

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

pub const REDACTED: &str = "[redacted]";

impl ApiKey {
    /// `None` for an empty or blank value, which users set to switch a provider off.
    pub fn new(value: impl Into<String>) -> Option<ApiKey> {
        let value = value.into().trim().to_string();
        (!value.is_empty()).then_some(ApiKey(value))
    }

    /// The secret itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key, and of any 8+ character piece of it that a
    /// provider might quote ("sk-abc...xyz"), replaced by a placeholder.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.0, REDACTED);
        let chars: Vec<char> = self.0.chars().collect();
        const PIECE: usize = 8;
        if chars.len() > PIECE {
            for start in 0..=chars.len() - PIECE {
                let piece: String = chars[start..start + PIECE].iter().collect();
                if out.contains(&piece) {
                    out = out.replace(&piece, REDACTED);
                }
            }
        }
        out
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({REDACTED})")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_key() {
        let key = ApiKey::new("sk-live-0123456789abcdef").unwrap();
        assert!(!format!("{key:?} {key}").contains("0123"));
        assert!(ApiKey::new("  ").is_none());
    }

    #[test]
    fn scrub_removes_whole_keys_and_quoted_pieces() {
        let key = ApiKey::new("sk-live-0123456789abcdef").unwrap();
        let message =
            "Incorrect API key provided: sk-live-0123****cdef. Full: sk-live-0123456789abcdef";
        let scrubbed = key.scrub(message);
        assert!(!scrubbed.contains("0123456789"), "{scrubbed}");
        assert!(!scrubbed.contains("sk-live-0123"), "{scrubbed}");
        assert!(scrubbed.starts_with("Incorrect API key provided: "));
    }
}
