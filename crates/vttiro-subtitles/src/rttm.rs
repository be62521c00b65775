//! RTTM, the NIST Rich Transcription Time Marked format that diarization scorers (dscore,
//! pyannote.metrics) read: one `SPEAKER` line per speaker turn.

use vttiro_core::Transcript;

/// Speaker turns of `transcript` as RTTM lines for recording `file_id`: consecutive words of
/// the same speaker form one turn, from its first word's start to its last word's end;
/// words without a speaker are left out. Times are in seconds with millisecond precision.
pub fn to_rttm(transcript: &Transcript, file_id: &str) -> String {
    // RTTM fields are separated by spaces, so a name with spaces would shift every column.
    let field = |text: &str| -> String {
        let cleaned: String = text
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        if cleaned.is_empty() {
            "<NA>".to_string()
        } else {
            cleaned
        }
    };
    let file = field(file_id);
    let mut out = String::new();
    let mut turn: Option<(String, i64, i64)> = None;
    let flush = |turn: &mut Option<(String, i64, i64)>, out: &mut String| {
        if let Some((speaker, start, end)) = turn.take() {
            out.push_str(&format!(
                "SPEAKER {file} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>\n",
                start as f64 / 1000.0,
                (end - start).max(0) as f64 / 1000.0,
                field(&speaker)
            ));
        }
    };
    for word in transcript.words() {
        let Some(speaker) = word.speaker.as_deref() else {
            flush(&mut turn, &mut out);
            continue;
        };
        match &mut turn {
            Some((current, _, end)) if current == speaker => *end = (*end).max(word.end_ms),
            _ => {
                flush(&mut turn, &mut out);
                turn = Some((speaker.to_string(), word.start_ms, word.end_ms));
            }
        }
    }
    flush(&mut turn, &mut out);
    out
}
