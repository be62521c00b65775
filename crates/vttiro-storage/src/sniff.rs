//! Recognising media from its first bytes, so an upload that is not audio or video is
//! refused (415) before it is stored, whatever its name or declared type says.

/// How many leading bytes [`sniff_media`] wants.
pub const SNIFF_BYTES: usize = 4096;

/// The container `head` starts, or `None` when it is not media vttiro can decode.
pub fn sniff_media(head: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Some("wav");
    }
    if at(0, b"RIFF") && at(8, b"AVI ") {
        return Some("avi");
    }
    if at(0, b"fLaC") {
        return Some("flac");
    }
    if at(0, b"OggS") {
        return Some("ogg");
    }
    if at(0, b"ID3") {
        return Some("mp3");
    }
    if at(4, b"ftyp") || at(4, b"moov") || at(4, b"mdat") || at(4, b"free") || at(4, b"wide") {
        return Some("mp4");
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some("matroska");
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return Some("aiff");
    }
    if at(0, b"caff") {
        return Some("caf");
    }
    if at(0, b"#!AMR") {
        return Some("amr");
    }
    // MPEG transport streams: a sync byte every 188 bytes.
    if head.len() >= 188 * 3 && (0..3).all(|i| head[i * 188] == 0x47) {
        return Some("mpegts");
    }
    // MPEG audio frames (MP3 without a tag) and ADTS AAC: an 11- or 12-bit frame sync.
    if head.len() >= 4 && head[0] == 0xFF {
        if head[1] & 0xF6 == 0xF0 {
            return Some("aac");
        }
        if head[1] & 0xE0 == 0xE0 && head[1] & 0x06 != 0 && head[2] & 0xF0 != 0xF0 {
            return Some("mp3");
        }
    }
    if at(0, b"0&\xB2u\x8Ef\xCF\x11") {
        return Some("asf");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_recognised_and_text_is_not() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.resize(64, 0);
        assert_eq!(sniff_media(&wav), Some("wav"));
        assert_eq!(sniff_media(b"\0\0\0\x20ftypisom\0\0\x02\0"), Some("mp4"));
        assert_eq!(
            sniff_media(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F]),
            Some("matroska")
        );
        assert_eq!(sniff_media(&[0xFF, 0xFB, 0x90, 0x64]), Some("mp3"));
        assert_eq!(sniff_media(&[0xFF, 0xF1, 0x50, 0x80]), Some("aac"));
        assert_eq!(sniff_media(b"<!DOCTYPE html><html>"), None);
        assert_eq!(sniff_media(b"%PDF-1.7"), None);
        assert_eq!(sniff_media(b""), None);
    }
}
