//! Reads Matroska's per-track `FlagDefault`. symphonia only marks a track default when the
//! element is present with value 1, but the element defaults to 1 when absent, and ffmpeg (like
//! other muxers) writes it only for non-default tracks as `0`. Without this reader the default
//! track of an ffmpeg-made MKV could never be found.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

const SEGMENT: u32 = 0x1853_8067;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const FLAG_DEFAULT: u32 = 0x88;
const CLUSTER: u32 = 0x1F43_B675;

/// Track numbers (symphonia's track ids for Matroska) whose `FlagDefault` is set, explicitly
/// or by omission. Stops at the first Cluster: track headers precede the media data.
pub(crate) fn default_track_numbers(path: &Path) -> io::Result<Vec<u64>> {
    let mut file = BufReader::new(File::open(path)?);
    let file_len = file.get_ref().metadata()?.len();
    let mut pos = 0u64;
    while pos < file_len {
        let Some((id, size, header_len)) = read_element_header(&mut file, pos)? else {
            break;
        };
        let body = pos + header_len;
        let end = size.map_or(file_len, |s| (body + s).min(file_len));
        if id == SEGMENT {
            return read_segment(&mut file, body, end);
        }
        pos = end;
    }
    Ok(Vec::new())
}

fn read_segment<R: Read + Seek>(file: &mut R, start: u64, end: u64) -> io::Result<Vec<u64>> {
    let mut pos = start;
    while pos < end {
        let Some((id, size, header_len)) = read_element_header(file, pos)? else {
            break;
        };
        match (id, size) {
            (TRACKS, Some(size)) => {
                return read_tracks(file, pos + header_len, pos + header_len + size)
            }
            (CLUSTER, _) | (_, None) => break,
            (_, Some(size)) => pos += header_len + size,
        }
    }
    Ok(Vec::new())
}

fn read_tracks<R: Read + Seek>(file: &mut R, start: u64, end: u64) -> io::Result<Vec<u64>> {
    let mut defaults = Vec::new();
    let mut pos = start;
    while pos < end {
        let Some((id, Some(size), header_len)) = read_element_header(file, pos)? else {
            break;
        };
        if id == TRACK_ENTRY {
            let (number, is_default) =
                read_track_entry(file, pos + header_len, pos + header_len + size)?;
            if let (Some(number), true) = (number, is_default) {
                defaults.push(number);
            }
        }
        pos += header_len + size;
    }
    Ok(defaults)
}

fn read_track_entry<R: Read + Seek>(
    file: &mut R,
    start: u64,
    end: u64,
) -> io::Result<(Option<u64>, bool)> {
    let mut number = None;
    let mut is_default = true; // the schema default when the element is absent
    let mut pos = start;
    while pos < end {
        let Some((id, Some(size), header_len)) = read_element_header(file, pos)? else {
            break;
        };
        if (id == TRACK_NUMBER || id == FLAG_DEFAULT) && size <= 8 {
            let value = read_uint(file, size as usize)?;
            if id == TRACK_NUMBER {
                number = Some(value);
            } else {
                is_default = value == 1;
            }
        }
        pos += header_len + size;
    }
    Ok((number, is_default))
}

/// Reads an element ID and size at `pos`: `(id, size or None when unknown, header length)`.
fn read_element_header<R: Read + Seek>(
    file: &mut R,
    pos: u64,
) -> io::Result<Option<(u32, Option<u64>, u64)>> {
    file.seek(SeekFrom::Start(pos))?;
    let Some((id, id_len, _)) = read_vint(file, 4)? else {
        return Ok(None);
    };
    let Some((size, size_len, all_ones)) = read_vint(file, 8)? else {
        return Ok(None);
    };
    // IDs keep their length marker, as the spec writes them.
    let id = (id | (1 << (7 * id_len))) as u32;
    let size = (!all_ones).then_some(size);
    Ok(Some((id, size, u64::from(id_len + size_len))))
}

/// EBML variable-length integer without its marker bit: `(value, length, all value bits set)`.
fn read_vint<R: Read>(file: &mut R, max_len: u8) -> io::Result<Option<(u64, u8, bool)>> {
    let mut first = [0u8; 1];
    if file.read(&mut first)? == 0 {
        return Ok(None);
    }
    let len = first[0].leading_zeros() as u8 + 1;
    if len > max_len {
        return Ok(None);
    }
    let mut value = u64::from(first[0]) & (0xFF >> len);
    for _ in 1..len {
        let mut byte = [0u8; 1];
        file.read_exact(&mut byte)?;
        value = (value << 8) | u64::from(byte[0]);
    }
    let all_ones = value == (1u64 << (7 * u32::from(len))) - 1;
    Ok(Some((value, len, all_ones)))
}

fn read_uint<R: Read>(file: &mut R, len: usize) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    file.read_exact(&mut bytes[..len])?;
    Ok(bytes[..len]
        .iter()
        .fold(0, |acc, b| (acc << 8) | u64::from(*b)))
}
