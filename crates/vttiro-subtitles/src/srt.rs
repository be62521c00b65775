use crate::cue::Cue;
use crate::timestamp::format_timestamp;
use crate::webvtt::displayable_lines;

/// Renders cues as SubRip (`.srt`): numbered from 1, `HH:MM:SS,mmm` times, a blank line after
/// each cue. SRT has no speaker markup, so a speaker is written as a `Name: ` prefix on the
/// first line (the prefix is not counted by [`crate::layout`]'s line limit). SRT has no
/// escaping either; text is written as is. Cues without text are skipped and do not use up a
/// number.
pub fn to_srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    let mut number = 0;
    for cue in cues {
        let lines = displayable_lines(cue);
        if lines.is_empty() {
            continue;
        }
        number += 1;
        out.push_str(&format!(
            "{number}\n{} --> {}\n",
            format_timestamp(cue.start_ms, ','),
            format_timestamp(cue.end_ms, ',')
        ));
        for (k, line) in lines.iter().enumerate() {
            if k == 0 {
                if let Some(speaker) = cue.speaker.as_deref().map(str::trim) {
                    if !speaker.is_empty() {
                        out.push_str(speaker);
                        out.push_str(": ");
                    }
                }
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}
