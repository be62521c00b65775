//! RTTM, the NIST Rich Transcription Time Marked format that diarization scorers (dscore,
//! pyannote.metrics) read: one `SPEAKER` line per speaker turn.

use vttiro_core::Transcript;

/// Speaker turns of `transcript` as RTTM lines for recording `file_id`: consecutive words of
/// the same speaker form one turn, from its first word's start to its last word's end;
/// words without a speaker are left out. Times are in seconds with millisecond precision.
pub fn to_rttm(transcript: &Transcript, file_id: &str) -> String {
    let mut turns: Vec<(i64, i64, &str)> = Vec::new();
    let mut open: Option<(i64, i64, &str)> = None;
    for word in transcript.words() {
        let Some(speaker) = word.speaker.as_deref() else {
            turns.extend(open.take());
            continue;
        };
        match &mut open {
            Some((_, end, current)) if *current == speaker => *end = (*end).max(word.end_ms),
            _ => {
                turns.extend(open.take());
                open = Some((word.start_ms, word.end_ms, speaker));
            }
        }
    }
    turns.extend(open);
    to_rttm_turns(&turns, file_id)
}

/// RTTM lines for speaker turns given directly as `(start_ms, end_ms, speaker)`, such as
/// a diarizer's own turns, which also cover speech no word was recognised in.
pub fn to_rttm_turns(turns: &[(i64, i64, &str)], file_id: &str) -> String {
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
    turns
        .iter()
        .map(|(start, end, speaker)| {
            format!(
                "SPEAKER {file} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>\n",
                *start as f64 / 1000.0,
                (end - start).max(0) as f64 / 1000.0,
                field(speaker)
            )
        })
        .collect()
}
