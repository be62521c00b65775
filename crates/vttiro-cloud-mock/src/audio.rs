//! Recognises audio containers by their magic bytes and reads durations from headers, the way
//! a provider's decoder would refuse bytes that are not what they claim to be.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Wav,
    Ogg,
    Flac,
    Mp3,
    Mp4,
    Webm,
    Aiff,
    Aac,
}

pub fn sniff(bytes: &[u8]) -> Option<Kind> {
    let at = |range: std::ops::Range<usize>| bytes.get(range).unwrap_or_default();
    if at(0..4) == b"RIFF" && at(8..12) == b"WAVE" {
        Some(Kind::Wav)
    } else if at(0..4) == b"OggS" {
        Some(Kind::Ogg)
    } else if at(0..4) == b"fLaC" {
        Some(Kind::Flac)
    } else if at(0..3) == b"ID3" {
        Some(Kind::Mp3)
    } else if at(4..8) == b"ftyp" {
        Some(Kind::Mp4)
    } else if at(0..4) == [0x1A, 0x45, 0xDF, 0xA3] {
        Some(Kind::Webm)
    } else if at(0..4) == b"FORM" && matches!(at(8..12), b"AIFF" | b"AIFC") {
        Some(Kind::Aiff)
    } else if bytes.len() >= 4 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0 {
        // MPEG frame sync; layer bits 00 mean an ADTS (AAC) header instead.
        if (bytes[1] >> 1) & 0b11 == 0 {
            (bytes[1] & 0xF6 == 0xF0).then_some(Kind::Aac)
        } else {
            Some(Kind::Mp3)
        }
    } else {
        None
    }
}

/// Seconds of audio, when the container's header says (WAV, FLAC, Ogg Opus/Vorbis).
pub fn duration(bytes: &[u8]) -> Option<f64> {
    match sniff(bytes)? {
        Kind::Wav => wav_duration(bytes),
        Kind::Flac => flac_duration(bytes),
        Kind::Ogg => ogg_duration(bytes),
        _ => None,
    }
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn wav_duration(bytes: &[u8]) -> Option<f64> {
    let mut at = 12;
    let mut byte_rate = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = le32(bytes, at + 4)? as usize;
        let data = at + 8;
        if id == b"fmt " {
            byte_rate = le32(bytes, data + 8);
        } else if id == b"data" {
            let available = bytes.len() - data;
            let rate = f64::from(byte_rate.filter(|r| *r > 0)?);
            return Some(size.min(available) as f64 / rate);
        }
        at = data.checked_add(size)?.checked_add(size % 2)?;
    }
    None
}

fn flac_duration(bytes: &[u8]) -> Option<f64> {
    // STREAMINFO follows "fLaC" and its 4-byte block header.
    let info = bytes.get(8..8 + 18)?;
    let rate =
        (u32::from(info[10]) << 12) | (u32::from(info[11]) << 4) | (u32::from(info[12]) >> 4);
    let samples = (u64::from(info[13] & 0x0F) << 32)
        | u64::from(u32::from_be_bytes(info[14..18].try_into().ok()?));
    (rate > 0 && samples > 0).then(|| samples as f64 / f64::from(rate))
}

fn ogg_duration(bytes: &[u8]) -> Option<f64> {
    let head = bytes.get(..bytes.len().min(512))?;
    let (rate, pre_skip) = if let Some(i) = find(head, b"OpusHead") {
        let skip = u16::from_le_bytes(head.get(i + 10..i + 12)?.try_into().ok()?);
        (48_000.0, f64::from(skip))
    } else {
        let i = find(head, b"\x01vorbis")?;
        (f64::from(le32(head, i + 12)?), 0.0)
    };
    let last = bytes.windows(4).rposition(|w| w == b"OggS")?;
    let granule = i64::from_le_bytes(bytes.get(last + 6..last + 14)?.try_into().ok()?);
    (granule > 0 && rate > 0.0).then(|| ((granule as f64 - pre_skip) / rate).max(0.0))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A minimal PCM WAV header + silence, for tests.
#[cfg(test)]
pub fn wav(seconds: f64) -> Vec<u8> {
    let data_len = (seconds * 32_000.0) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&[1, 0, 1, 0]);
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 16, 0]);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.resize(out.len() + data_len as usize, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_and_times_containers() {
        assert_eq!(sniff(&wav(0.5)), Some(Kind::Wav));
        assert!((duration(&wav(31.0)).unwrap() - 31.0).abs() < 1e-6);
        assert_eq!(sniff(b"ID3\x04rest"), Some(Kind::Mp3));
        assert_eq!(sniff(&[0xFF, 0xFB, 0x90, 0x00]), Some(Kind::Mp3));
        assert_eq!(sniff(&[0xFF, 0xF1, 0x50, 0x80]), Some(Kind::Aac));
        assert_eq!(sniff(b"<html>not audio</html>"), None);
        let mut ogg = b"OggS\0\x02".to_vec();
        ogg.extend_from_slice(&[0; 22]);
        ogg.extend_from_slice(b"OpusHead\x01\x01\x38\x01");
        ogg.extend_from_slice(b"OggS\0\x04");
        ogg.extend_from_slice(&(48_000i64 * 40 + 312).to_le_bytes());
        assert!((duration(&ogg).unwrap() - 40.0).abs() < 1e-6);
    }
}
