use serde_json::{Map, Value};
use vttiro_core::Transcript;

/// Renders the full transcript as pretty JSON: `language`, `language_probability`,
/// `duration_ms`, `model`, `text`, `speakers` (in order of first appearance), and `segments` with their words (text, times in ms,
/// probability, speaker when known) and decoding statistics.
///
/// `extra` adds run information such as timings or settings: the keys of an object are
/// merged at the top level (a key that collides with a transcript field is ignored, so the
/// transcript is always what it claims to be); any other non-null value is stored under
/// `"extra"`.
pub fn to_json(transcript: &Transcript, extra: &Value) -> String {
    let mut root = Map::new();
    root.insert("language".into(), Value::from(transcript.language.clone()));
    root.insert(
        "language_probability".into(),
        Value::from(f64::from(transcript.language_probability)),
    );
    root.insert("duration_ms".into(), Value::from(transcript.duration_ms));
    root.insert("model".into(), Value::from(transcript.model.clone()));
    root.insert("text".into(), Value::from(transcript.text()));
    let mut speakers: Vec<&str> = Vec::new();
    for word in transcript.words() {
        if let Some(name) = word.speaker.as_deref() {
            if !speakers.contains(&name) {
                speakers.push(name);
            }
        }
    }
    root.insert("speakers".into(), Value::from(speakers));
    let segments = serde_json::to_value(&transcript.segments)
        .expect("segments are plain structs with string keys and always serialise");
    root.insert("segments".into(), segments);
    match extra {
        Value::Object(fields) => {
            for (key, value) in fields {
                root.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        Value::Null => {}
        other => {
            root.insert("extra".into(), other.clone());
        }
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(root))
        .expect("a serde_json::Value always serialises");
    text.push('\n');
    text
}
