//! Reads the few ISO-BMFF (MP4/MOV/M4A) boxes that symphonia parses but does not act on: the
//! edit list (`elst`), which places a track on the presentation timeline and hides AAC encoder
//! priming, plus the track's enabled flag and language. Without the edit list, AAC audio from
//! ffmpeg would be 1024 samples late and an audio track muxed with `-itsoffset` would start at
//! zero instead of at its offset.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Timing and labels of one `trak`, keyed by its `tkhd` track id (the id symphonia uses).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IsoTrack {
    pub track_id: u32,
    pub is_audio: bool,
    /// `tkhd` enabled flag; ffmpeg sets it on the default track of each kind.
    pub enabled: bool,
    pub language: Option<String>,
    pub edit: Option<EditPlacement>,
}

/// Where the media of a track appears on the presentation timeline, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EditPlacement {
    /// Silence before the media starts (sum of leading empty edits).
    pub lead_s: f64,
    /// Media time shown at `lead_s`; media before it (encoder priming) is not presented.
    pub media_start_s: f64,
    /// How long the media is presented; `None` when the edit runs to the end of the media.
    pub presented_s: Option<f64>,
}

impl EditPlacement {
    pub fn presentation_time(&self, media_time_s: f64) -> f64 {
        self.lead_s + media_time_s - self.media_start_s
    }

    pub fn presentation_end(&self) -> Option<f64> {
        self.presented_s.map(|d| self.lead_s + d)
    }
}

/// Tables this large only come from damaged or hostile files; refusing them bounds memory.
const MAX_EDIT_ENTRIES: u32 = 4096;
const MAX_LEAF_BOX: u64 = 1 << 20;

pub(crate) fn read_iso_tracks(path: &Path) -> io::Result<Vec<IsoTrack>> {
    let mut file = BufReader::new(File::open(path)?);
    let file_len = file.get_ref().metadata()?.len();
    let mut tracks = Vec::new();
    let mut movie_timescale = 0u32;
    walk(
        &mut file,
        0,
        file_len,
        &mut |file, kind, body_start, body_end| {
            if &kind != b"moov" {
                return Ok(());
            }
            // The movie timescale (mvhd) is needed by every trak's edit list; it comes first.
            walk(file, body_start, body_end, &mut |file, kind, start, end| {
                match &kind {
                    b"mvhd" => movie_timescale = read_mvhd_timescale(file, start, end)?,
                    b"trak" => {
                        if let Some(track) = read_trak(file, start, end, movie_timescale)? {
                            tracks.push(track);
                        }
                    }
                    _ => {}
                }
                Ok(())
            })
        },
    )?;
    Ok(tracks)
}

type BoxVisitor<'a, R> = dyn FnMut(&mut R, [u8; 4], u64, u64) -> io::Result<()> + 'a;

/// Calls `visit(kind, body_start, body_end)` for each box between `start` and `end`.
fn walk<R: Read + Seek>(
    file: &mut R,
    start: u64,
    end: u64,
    visit: &mut BoxVisitor<'_, R>,
) -> io::Result<()> {
    let mut pos = start;
    while pos + 8 <= end {
        file.seek(SeekFrom::Start(pos))?;
        let mut header = [0u8; 8];
        file.read_exact(&mut header)?;
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = [header[4], header[5], header[6], header[7]];
        let (size, header_len) = match size32 {
            0 => (end - pos, 8),
            1 => {
                let mut large = [0u8; 8];
                file.read_exact(&mut large)?;
                (u64::from_be_bytes(large), 16)
            }
            n => (u64::from(n), 8),
        };
        if size < header_len || pos + size > end {
            // A box running past its parent means the file is cut short; keep what was read.
            break;
        }
        visit(file, kind, pos + header_len, pos + size)?;
        pos += size;
    }
    Ok(())
}

fn read_body<R: Read + Seek>(file: &mut R, start: u64, end: u64) -> io::Result<Vec<u8>> {
    let len = end - start;
    if len > MAX_LEAF_BOX {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "box too large"));
    }
    file.seek(SeekFrom::Start(start))?;
    let mut body = vec![0u8; len as usize];
    file.read_exact(&mut body)?;
    Ok(body)
}

fn read_mvhd_timescale<R: Read + Seek>(file: &mut R, start: u64, end: u64) -> io::Result<u32> {
    let body = read_body(file, start, end)?;
    let offset = if body.first() == Some(&1) { 20 } else { 12 };
    Ok(be_u32(&body, offset).unwrap_or(0))
}

fn read_trak<R: Read + Seek>(
    file: &mut R,
    start: u64,
    end: u64,
    movie_timescale: u32,
) -> io::Result<Option<IsoTrack>> {
    let mut track_id = None;
    let mut enabled = false;
    let mut raw_edits: Vec<(u64, i64)> = Vec::new();
    let mut media_timescale = 0u32;
    let mut language = None;
    let mut is_audio = false;
    walk(file, start, end, &mut |file, kind, start, end| {
        match &kind {
            b"tkhd" => {
                let body = read_body(file, start, end)?;
                let flags = be_u32(&body, 0).unwrap_or(0) & 0x00FF_FFFF;
                enabled = flags & 1 == 1;
                let id_offset = if body.first() == Some(&1) { 20 } else { 12 };
                track_id = be_u32(&body, id_offset);
            }
            b"edts" => walk(file, start, end, &mut |file, kind, start, end| {
                if &kind == b"elst" {
                    raw_edits = read_elst(&read_body(file, start, end)?);
                }
                Ok(())
            })?,
            b"mdia" => walk(file, start, end, &mut |file, kind, start, end| {
                match &kind {
                    b"mdhd" => {
                        let body = read_body(file, start, end)?;
                        let (scale_at, lang_at) = if body.first() == Some(&1) {
                            (20, 32)
                        } else {
                            (12, 20)
                        };
                        media_timescale = be_u32(&body, scale_at).unwrap_or(0);
                        language = body
                            .get(lang_at..lang_at + 2)
                            .and_then(|b| decode_iso639(u16::from_be_bytes([b[0], b[1]])));
                    }
                    b"hdlr" => {
                        let body = read_body(file, start, end)?;
                        is_audio = body.get(8..12) == Some(b"soun");
                    }
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    let Some(track_id) = track_id else {
        return Ok(None);
    };
    Ok(Some(IsoTrack {
        track_id,
        is_audio,
        enabled,
        language,
        edit: placement(&raw_edits, movie_timescale, media_timescale),
    }))
}

fn read_elst(body: &[u8]) -> Vec<(u64, i64)> {
    let version = body.first().copied().unwrap_or(0);
    let count = be_u32(body, 4).unwrap_or(0).min(MAX_EDIT_ENTRIES);
    let entry_len = if version == 1 { 20 } else { 12 };
    (0..count as usize)
        .map_while(|i| {
            let at = 8 + i * entry_len;
            if version == 1 {
                let duration = be_u64(body, at)?;
                let media_time = be_u64(body, at + 8)? as i64;
                Some((duration, media_time))
            } else {
                let duration = u64::from(be_u32(body, at)?);
                let media_time = i64::from(be_u32(body, at + 4)? as i32);
                Some((duration, media_time))
            }
        })
        .collect()
}

/// Interprets the leading empty edits and the first media edit. Later edits (rare in audio,
/// used for in-file cuts) are not honoured: the media then plays contiguously.
fn placement(
    edits: &[(u64, i64)],
    movie_timescale: u32,
    media_timescale: u32,
) -> Option<EditPlacement> {
    if edits.is_empty() || movie_timescale == 0 || media_timescale == 0 {
        return None;
    }
    let movie = f64::from(movie_timescale);
    let mut lead_s = 0.0;
    for &(duration, media_time) in edits {
        if media_time < 0 {
            lead_s += duration as f64 / movie;
            continue;
        }
        return Some(EditPlacement {
            lead_s,
            media_start_s: media_time as f64 / f64::from(media_timescale),
            presented_s: (duration > 0).then(|| duration as f64 / movie),
        });
    }
    None
}

fn decode_iso639(packed: u16) -> Option<String> {
    let letters: String = [10u16, 5, 0]
        .iter()
        .map(|shift| char::from(((packed >> shift) & 0x1F) as u8 + 0x60))
        .collect();
    let valid = letters.chars().all(|c| c.is_ascii_lowercase());
    (valid && letters != "und").then_some(letters)
}

fn be_u32(body: &[u8], at: usize) -> Option<u32> {
    body.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be_u64(body: &[u8], at: usize) -> Option<u64> {
    let b = body.get(at..at + 8)?;
    Some(u64::from_be_bytes([
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_edit_becomes_lead_and_media_edit_skips_priming() {
        // 476 ms of nothing, then media from sample 1024 at 44.1 kHz for 3 s (movie clock 1 kHz).
        let edits = [(476, -1), (3000, 1024)];
        let p = placement(&edits, 1000, 44_100).unwrap();
        assert!((p.lead_s - 0.476).abs() < 1e-9);
        assert!((p.presentation_time(1024.0 / 44_100.0) - 0.476).abs() < 1e-9);
        assert_eq!(p.presentation_end(), Some(3.476));
        assert_eq!(placement(&[], 1000, 44_100), None);
    }

    #[test]
    fn language_codes_unpack() {
        // "eng" packed as 5-bit letters minus 0x60.
        let eng = ((b'e' - 0x60) as u16) << 10 | ((b'n' - 0x60) as u16) << 5 | (b'g' - 0x60) as u16;
        assert_eq!(decode_iso639(eng).as_deref(), Some("eng"));
        let und = ((b'u' - 0x60) as u16) << 10 | ((b'n' - 0x60) as u16) << 5 | (b'd' - 0x60) as u16;
        assert_eq!(decode_iso639(und), None);
    }
}
