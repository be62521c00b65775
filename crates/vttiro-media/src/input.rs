use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::MediaError;

/// Rejects paths that cannot be media before any decoder sees them, so these cases get their
/// own error codes instead of a decoder's vague "unsupported".
pub(crate) fn check_readable_file(path: &Path) -> Result<(), MediaError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MediaError::NotFound { path: path.into() })
        }
        Err(source) => {
            return Err(MediaError::Read {
                path: path.into(),
                source,
            })
        }
    };
    if meta.is_dir() {
        return Err(MediaError::IsDirectory { path: path.into() });
    }
    if meta.len() == 0 {
        return Err(MediaError::Empty { path: path.into() });
    }
    File::open(path).map_err(|source| MediaError::Read {
        path: path.into(),
        source,
    })?;
    Ok(())
}

/// Media families recognisable from their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainerMagic {
    IsoBmff,
    Ebml,
    Ogg,
    Wave,
    Avi,
    Flac,
    MpegAudio,
    Aiff,
    Caf,
    MpegTs,
    MpegPs,
    Asf,
    Flv,
}

impl ContainerMagic {
    /// Families symphonia demuxes. When one of these fails to open, the file is damaged; any
    /// other family is intact media that only ffmpeg can read.
    pub(crate) fn readable_in_process(self) -> bool {
        matches!(
            self,
            ContainerMagic::IsoBmff
                | ContainerMagic::Ebml
                | ContainerMagic::Ogg
                | ContainerMagic::Wave
                | ContainerMagic::Flac
                | ContainerMagic::MpegAudio
                | ContainerMagic::Aiff
                | ContainerMagic::Caf
        )
    }
}

/// Decides whether a file that no decoder could read is damaged media (corrupt) or not media at
/// all (unsupported). Decoder errors alone cannot tell: symphonia reports a truncated MP4 and a
/// text file alike as "unsupported", and ffmpeg says "moov atom not found" for any file named
/// `.mp4`. The leading bytes settle it.
pub(crate) fn sniff_container(path: &Path) -> Option<ContainerMagic> {
    let mut head = [0u8; 512];
    let mut file = File::open(path).ok()?;
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    magic_of(&head[..len])
}

fn magic_of(head: &[u8]) -> Option<ContainerMagic> {
    let at = |offset: usize, sig: &[u8]| head.get(offset..offset + sig.len()) == Some(sig);
    const ISO_TOP_LEVEL_BOXES: [&[u8]; 10] = [
        b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp", b"sidx", b"moof",
    ];
    if ISO_TOP_LEVEL_BOXES.iter().any(|b| at(4, b)) {
        return Some(ContainerMagic::IsoBmff);
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some(ContainerMagic::Ebml);
    }
    if at(0, b"OggS") {
        return Some(ContainerMagic::Ogg);
    }
    if at(0, b"RIFF") || at(0, b"RF64") {
        return Some(if at(8, b"AVI ") {
            ContainerMagic::Avi
        } else {
            ContainerMagic::Wave
        });
    }
    if at(0, b"fLaC") {
        return Some(ContainerMagic::Flac);
    }
    if at(0, b"FORM") {
        return Some(ContainerMagic::Aiff);
    }
    if at(0, b"caff") {
        return Some(ContainerMagic::Caf);
    }
    if at(0, b"FLV") {
        return Some(ContainerMagic::Flv);
    }
    if at(0, &[0x30, 0x26, 0xB2, 0x75]) {
        return Some(ContainerMagic::Asf);
    }
    if at(0, &[0x00, 0x00, 0x01, 0xBA]) {
        return Some(ContainerMagic::MpegPs);
    }
    if head.first() == Some(&0x47) && head.get(188) == Some(&0x47) {
        return Some(ContainerMagic::MpegTs);
    }
    // ID3v2 tag, or an MPEG audio / ADTS frame sync (11 set bits); text never starts with 0xFF.
    if at(0, b"ID3")
        || (head.first() == Some(&0xFF) && head.get(1).is_some_and(|b| b & 0xE0 == 0xE0))
    {
        return Some(ContainerMagic::MpegAudio);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_common_headers_and_rejects_text() {
        assert_eq!(
            magic_of(b"\0\0\0\x20ftypisom"),
            Some(ContainerMagic::IsoBmff)
        );
        assert_eq!(
            magic_of(&[0x1A, 0x45, 0xDF, 0xA3, 0x01]),
            Some(ContainerMagic::Ebml)
        );
        assert_eq!(magic_of(b"OggS\0\x02"), Some(ContainerMagic::Ogg));
        assert_eq!(magic_of(b"ID3\x04\0"), Some(ContainerMagic::MpegAudio));
        assert_eq!(magic_of(b"hello world, this is not media\n"), None);
        assert_eq!(magic_of(b""), None);
    }
}
