use vttiro_core::Transcript;

use crate::layout::WordSpacing;

/// Renders the transcript as plain text without times.
///
/// Without speaker labels each segment becomes one line, since segments end at the pauses
/// and sentence ends the model chose. With speaker labels on the words, each change of
/// speaker starts a new paragraph prefixed `Name: ` instead, because a reader needs to know
/// who is talking more than where the model cut its windows.
pub fn to_txt(transcript: &Transcript) -> String {
    let diarized = transcript.words().any(|w| w.speaker.is_some());
    let mut out = String::new();
    if !diarized {
        for segment in &transcript.segments {
            let text = segment.text.trim();
            if !text.is_empty() {
                out.push_str(text);
                out.push('\n');
            }
        }
        return out;
    }

    let spacing = WordSpacing::of(transcript);
    let mut current: Option<Option<&str>> = None;
    let mut paragraph = String::new();
    for word in transcript.words() {
        let text = word.text.trim();
        if text.is_empty() {
            continue;
        }
        let speaker = word.speaker.as_deref();
        if current != Some(speaker) {
            if let Some(previous) = current {
                push_paragraph(&mut out, previous, &mut paragraph);
            }
            current = Some(speaker);
        }
        let glued = spacing.continues_previous(&word.text);
        if !paragraph.is_empty() && !glued {
            paragraph.push(' ');
        }
        paragraph.push_str(text);
    }
    if let Some(previous) = current {
        push_paragraph(&mut out, previous, &mut paragraph);
    }
    out
}

fn push_paragraph(out: &mut String, speaker: Option<&str>, paragraph: &mut String) {
    if paragraph.is_empty() {
        return;
    }
    if let Some(name) = speaker {
        out.push_str(name);
        out.push_str(": ");
    }
    out.push_str(paragraph);
    out.push('\n');
    paragraph.clear();
}
