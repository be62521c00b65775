//! vttiro-media owns the first pipeline stage: probing a local media file and decoding one of
//! its audio tracks to 16 kHz mono `f32` ([`vttiro_core::SAMPLE_RATE`]), the only signal every
//! later stage sees. It must not depend on other vttiro crates besides vttiro-core, and knows
//! nothing about VAD, engines, HTTP, databases or async runtimes; callers that need it off
//! their executor run it on a blocking thread.
//!
//! # Two decoders
//!
//! Decoding runs in-process with symphonia (plus libopus through `symphonia-adapter-libopus`),
//! which covers MP4/MOV/M4A, Matroska/WebM, Ogg, WAV, FLAC, MP3 and AIFF with AAC-LC, Opus,
//! Vorbis, MP3, FLAC, ALAC and PCM. Anything else (AC-3, E-AC-3, DTS, multichannel AAC, AVI,
//! MPEG-TS, ...) goes to the `ffmpeg` binary when it is on PATH and [`DecodeOptions::allow_ffmpeg`]
//! is set; ffmpeg streams 16 kHz mono f32 through a pipe. [`DecodedAudio::decoder`] says which
//! one did the work. In-process decoding is preferred because it needs no external program and
//! reports its failures as typed errors rather than as text.
//!
//! # Timing
//!
//! Sample 0 of the output is presentation time 0 of the container, because subtitle cues are
//! timed against what the player shows, not against the first audio packet:
//!
//! * an audio track that starts late (an MKV block at +0.5 s, an MP4 empty edit) is preceded by
//!   silence; audio stamped before zero is dropped;
//! * MP4 edit lists are read (symphonia parses but ignores them) so AAC encoder priming is
//!   removed and offsets are honoured; Ogg/MP3 gapless trimming and Opus pre-skip come from the
//!   demuxers and decoders;
//! * gaps in the timestamps (damaged packets skipped, paused recordings) become silence, so
//!   skipped packets never shift later cues by more than 15 ms;
//! * the ffmpeg path gets the same behaviour from `-copyts` and `aresample=async=1:first_pts=0`.
//!   Transport streams (MPEG-TS/PS) are the exception: their clock starts at an arbitrary value,
//!   so their timeline starts at the container's first timestamp.
//!
//! Matroska signals encoder priming with CodecDelay, which is honoured. ffmpeg 5 and older
//! write it only for Opus and store AAC/MP3 priming as ordinary audio at time zero (shifting
//! the video with it); such audio then sits 1024 samples later, exactly where players put it.
//!
//! # Memory
//!
//! Packets are downmixed and resampled (rubato, FFT) as they are decoded, so memory grows only
//! with the 16 kHz output (about 460 MB for two hours; a two-hour 48 kHz stereo FLAC peaks at
//! 445 MiB RSS), never with the source's rate or channel count. The output vector is sized
//! from the container's duration up front so it does not double near the end.
//!
//! # Errors
//!
//! Missing, directory and empty inputs are rejected before any decoder runs. When both
//! decoders fail, the file's leading bytes decide between
//! [`vttiro_core::ErrorCode::CorruptMedia`] (a known container that does not parse, such as an
//! MP4 cut in half) and [`vttiro_core::ErrorCode::UnsupportedMedia`] (not media at all):
//! decoder messages cannot tell, since ffmpeg reports "moov atom not found" for any file named
//! `.mp4`. A file that ends well before its declared duration is corrupt, not silently short.
//!
//! # Track numbering
//!
//! Audio tracks are numbered in container order, counting audio only; [`probe`] and [`decode`]
//! always agree. The default track is the one the container flags (Matroska `FlagDefault`, MP4
//! `tkhd` enabled flag), else the first.

mod encode;
mod error;
mod ffmpeg;
mod in_process;
mod input;
mod iso_edit_list;
mod matroska_default;
mod timeline;

use std::path::{Path, PathBuf};

pub use encode::{encode_ogg_opus, encode_wav, EncodeError};
pub use error::{FfmpegUnavailable, MediaError};

use in_process::InProcessFailure;
pub use vttiro_core::CancelToken;

/// Which audio track to decode and whether the ffmpeg binary may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    /// N-th audio track (0-based, counting audio tracks only). `None` picks the track the
    /// container marks as default, else the first audio track.
    pub audio_track: Option<usize>,
    /// Fall back to the `ffmpeg` binary for codecs and containers symphonia cannot read.
    pub allow_ffmpeg: bool,
    /// Stops the decoding between packets (in process) or reads (ffmpeg, which is then
    /// killed) once set.
    pub cancel: CancelToken,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            audio_track: None,
            allow_ffmpeg: true,
            cancel: CancelToken::default(),
        }
    }
}

/// Which decoder produced the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderKind {
    Symphonia,
    Ffmpeg,
}

/// One audio track as the container describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrackInfo {
    /// Position among the file's audio tracks; the value [`DecodeOptions::audio_track`] takes.
    pub index: usize,
    /// ffmpeg's codec name (`aac`, `opus`, `ac3`, `pcm_s16le`, ...) whichever decoder read it.
    pub codec: String,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
    /// Language tag as stored (ISO 639-2 or BCP 47); `None` when absent or `und`.
    pub language: Option<String>,
    pub is_default: bool,
}

/// What [`probe`] learns without decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    pub path: PathBuf,
    /// Container name: symphonia's (`isomp4`, `matroska`, `ogg`, `wave`, `flac`, `mp3`) or,
    /// for files only ffmpeg reads, ffmpeg's (`mpegts`, `avi`, ...).
    pub container: String,
    pub duration_ms: Option<i64>,
    pub audio_tracks: Vec<AudioTrackInfo>,
}

/// Decoded audio at [`vttiro_core::SAMPLE_RATE`], mono.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    pub samples: Vec<f32>,
    pub track: AudioTrackInfo,
    pub decoder: DecoderKind,
    /// Presentation time of the track's first decoded sample: positive when the track starts
    /// late (the output begins with that much silence), negative when the container places
    /// encoder priming before zero (trimmed from the output).
    pub start_offset_ms: i64,
}

/// Lists the audio tracks of `path`. A file with no audio is not an error here (the list is
/// empty); [`decode`] reports it as [`vttiro_core::ErrorCode::NoAudioTrack`].
pub fn probe(path: &Path) -> Result<MediaInfo, MediaError> {
    input::check_readable_file(path)?;
    let ffmpeg = ffmpeg::locate();
    match in_process::open(path) {
        Ok(container) => {
            if let Some(listing) = more_complete_listing(&container, ffmpeg.as_deref(), path) {
                return Ok(media_info_from_listing(path, listing));
            }
            Ok(MediaInfo {
                path: path.to_path_buf(),
                container: container.format.to_string(),
                duration_ms: container.duration_s.map(seconds_to_ms),
                audio_tracks: container.audio.into_iter().map(|a| a.info).collect(),
            })
        }
        Err(open_error) => {
            let magic = input::sniff_container(path);
            let Some(ffmpeg) = ffmpeg else {
                return Err(open_failure_without_ffmpeg(
                    path,
                    magic,
                    &open_error,
                    FfmpegUnavailable::NotOnPath,
                ));
            };
            let listing = ffmpeg::list_streams(&ffmpeg, path)
                .map_err(|stderr| ffmpeg::classify_failure(path, magic, &stderr))?;
            Ok(media_info_from_listing(path, listing))
        }
    }
}

/// Decodes the selected audio track of `path` to 16 kHz mono.
pub fn decode(path: &Path, opts: &DecodeOptions) -> Result<DecodedAudio, MediaError> {
    decode_with_progress(path, opts, &mut |_| {})
}

/// [`decode`], calling `progress` with the fraction done (0..=1) as decoding advances when the
/// duration is known, and with 1.0 once at the end in any case.
pub fn decode_with_progress(
    path: &Path,
    opts: &DecodeOptions,
    progress: &mut dyn FnMut(f32),
) -> Result<DecodedAudio, MediaError> {
    input::check_readable_file(path)?;
    // When ffmpeg takes over from a failed in-process attempt it starts again from zero;
    // callers should never see the fraction go backwards.
    let mut reported = 0.0f32;
    let progress = &mut |fraction: f32| {
        if fraction > reported {
            reported = fraction;
            progress(fraction);
        }
    };
    let (ffmpeg, unavailable) = if opts.allow_ffmpeg {
        (ffmpeg::locate(), FfmpegUnavailable::NotOnPath)
    } else {
        (None, FfmpegUnavailable::Disabled)
    };
    let decoded = match in_process::open(path) {
        Ok(container) => decode_opened(
            path,
            opts,
            container,
            ffmpeg.as_deref(),
            unavailable,
            progress,
        )?,
        Err(open_error) => {
            let magic = input::sniff_container(path);
            let Some(ffmpeg) = ffmpeg else {
                return Err(open_failure_without_ffmpeg(
                    path,
                    magic,
                    &open_error,
                    unavailable,
                ));
            };
            decode_with_ffmpeg_only(path, opts, &ffmpeg, magic, progress)?
        }
    };
    progress(1.0);
    Ok(decoded)
}

fn decode_opened(
    path: &Path,
    opts: &DecodeOptions,
    mut container: in_process::Container,
    ffmpeg: Option<&Path>,
    unavailable: FfmpegUnavailable,
    progress: &mut dyn FnMut(f32),
) -> Result<DecodedAudio, MediaError> {
    if let Some(listing) = more_complete_listing(&container, ffmpeg, path) {
        let ffmpeg = ffmpeg.expect("a listing comes from ffmpeg");
        let magic = input::sniff_container(path);
        return decode_listed_with_ffmpeg(path, opts, ffmpeg, listing, magic, progress);
    }
    if container.audio.is_empty() {
        return Err(MediaError::NoAudioTrack { path: path.into() });
    }
    let infos: Vec<AudioTrackInfo> = container.audio.iter().map(|a| a.info.clone()).collect();
    let index = select_track(path, &infos, opts.audio_track)?;
    let track = infos[index].clone();

    let mut in_process_problem = None;
    if container.audio[index].decodable {
        match in_process::decode(&mut container, index, &opts.cancel, progress) {
            Ok(audio) => {
                return Ok(DecodedAudio {
                    samples: audio.samples,
                    track,
                    decoder: DecoderKind::Symphonia,
                    start_offset_ms: audio.start_offset_s.map_or(0, seconds_to_ms),
                })
            }
            Err(InProcessFailure::Io(source)) => {
                return Err(MediaError::Read {
                    path: path.into(),
                    source,
                })
            }
            Err(InProcessFailure::Resample(f)) => return Err(resample_error(path, f)),
            Err(InProcessFailure::Cancelled) => {
                return Err(MediaError::Cancelled { path: path.into() })
            }
            Err(InProcessFailure::CodecUnsupported(reason)) => in_process_problem = Some(reason),
            // Not retried with ffmpeg: it would return whatever it could salvage from a cut-off
            // file with exit status 0, and a silently shortened transcript is worse than an error.
            Err(InProcessFailure::Corrupt(reason)) => {
                return Err(MediaError::Corrupt {
                    path: path.into(),
                    reason,
                })
            }
        }
    }
    let Some(ffmpeg) = ffmpeg else {
        let codec = match in_process_problem {
            Some(reason) => format!("{} ({reason})", track.codec),
            None => track.codec,
        };
        return Err(MediaError::CodecNeedsFfmpeg {
            path: path.into(),
            codec,
            why: unavailable,
        });
    };
    let expected_ms = container.duration_s.map(seconds_to_ms);
    decode_track_with_ffmpeg(
        path,
        ffmpeg,
        track,
        true,
        expected_ms,
        &opts.cancel,
        progress,
    )
    .map_err(|e| e.into_media_error(path, input::sniff_container(path)))
}

/// symphonia leaves tracks with codecs it cannot name untyped, so its audio list may miss some
/// and its numbering then disagrees with ffmpeg's. Only then is ffmpeg's listing used instead,
/// so that [`probe`] and [`decode`] always number tracks the same way.
fn more_complete_listing(
    container: &in_process::Container,
    ffmpeg: Option<&Path>,
    path: &Path,
) -> Option<ffmpeg::Listing> {
    if !container.has_unknown_tracks {
        return None;
    }
    let listing = ffmpeg::list_streams(ffmpeg?, path).ok()?;
    (listing.audio.len() > container.audio.len()).then_some(listing)
}

/// For files symphonia cannot open at all: ffmpeg lists the streams and decodes.
fn decode_with_ffmpeg_only(
    path: &Path,
    opts: &DecodeOptions,
    ffmpeg: &Path,
    magic: Option<input::ContainerMagic>,
    progress: &mut dyn FnMut(f32),
) -> Result<DecodedAudio, MediaError> {
    let listing = ffmpeg::list_streams(ffmpeg, path)
        .map_err(|stderr| ffmpeg::classify_failure(path, magic, &stderr))?;
    decode_listed_with_ffmpeg(path, opts, ffmpeg, listing, magic, progress)
}

fn decode_listed_with_ffmpeg(
    path: &Path,
    opts: &DecodeOptions,
    ffmpeg: &Path,
    listing: ffmpeg::Listing,
    magic: Option<input::ContainerMagic>,
    progress: &mut dyn FnMut(f32),
) -> Result<DecodedAudio, MediaError> {
    if listing.audio.is_empty() {
        return Err(MediaError::NoAudioTrack { path: path.into() });
    }
    let index = select_track(path, &listing.audio, opts.audio_track)?;
    let track = listing.audio[index].clone();
    let zero_based = listing.timeline_starts_at_zero();
    let mut decoded = decode_track_with_ffmpeg(
        path,
        ffmpeg,
        track,
        zero_based,
        listing.duration_ms,
        &opts.cancel,
        progress,
    )
    .map_err(|e| e.into_media_error(path, magic))?;
    if !zero_based {
        let container_start_ms = listing.start_s.map_or(0, seconds_to_ms);
        decoded.start_offset_ms -= container_start_ms;
    }
    Ok(decoded)
}

enum FfmpegError {
    Media(MediaError),
    /// ffmpeg exited with an error; its stderr is kept for the caller to classify.
    Classify(String),
}

impl FfmpegError {
    fn into_media_error(self, path: &Path, magic: Option<input::ContainerMagic>) -> MediaError {
        match self {
            FfmpegError::Media(e) => e,
            FfmpegError::Classify(stderr) => ffmpeg::classify_failure(path, magic, &stderr),
        }
    }
}

fn decode_track_with_ffmpeg(
    path: &Path,
    ffmpeg: &Path,
    track: AudioTrackInfo,
    keep_timestamps: bool,
    expected_ms: Option<i64>,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(f32),
) -> Result<DecodedAudio, FfmpegError> {
    let start_s = ffmpeg::first_packet_time(ffmpeg, path, track.index);
    let samples = ffmpeg::decode(
        ffmpeg,
        path,
        track.index,
        keep_timestamps,
        expected_ms,
        cancel,
        progress,
    )
    .map_err(|failure| match failure {
        ffmpeg::DecodeFailure::Cancelled => {
            FfmpegError::Media(MediaError::Cancelled { path: path.into() })
        }
        ffmpeg::DecodeFailure::Exited { stderr } => FfmpegError::Classify(stderr),
        ffmpeg::DecodeFailure::Process(reason) => FfmpegError::Media(MediaError::FfmpegFailed {
            path: path.into(),
            reason,
        }),
    })?;
    Ok(DecodedAudio {
        samples,
        track,
        decoder: DecoderKind::Ffmpeg,
        start_offset_ms: start_s.map_or(0, seconds_to_ms),
    })
}

fn select_track(
    path: &Path,
    tracks: &[AudioTrackInfo],
    requested: Option<usize>,
) -> Result<usize, MediaError> {
    match requested {
        Some(n) if n < tracks.len() => Ok(n),
        Some(n) => Err(MediaError::TrackOutOfRange {
            path: path.into(),
            requested: n,
            count: tracks.len(),
        }),
        None => Ok(tracks.iter().position(|t| t.is_default).unwrap_or(0)),
    }
}

/// symphonia could not open the file and ffmpeg is not available to try.
fn open_failure_without_ffmpeg(
    path: &Path,
    magic: Option<input::ContainerMagic>,
    error: &symphonia::core::errors::Error,
    unavailable: FfmpegUnavailable,
) -> MediaError {
    use symphonia::core::errors::Error;
    match (error, magic) {
        (Error::IoError(e), _) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            MediaError::Read {
                path: path.into(),
                source: std::io::Error::new(e.kind(), e.to_string()),
            }
        }
        (_, Some(m)) if m.readable_in_process() => MediaError::Corrupt {
            path: path.into(),
            reason: error.to_string(),
        },
        (_, Some(m)) => MediaError::Unsupported {
            path: path.into(),
            reason: format!("{m:?} files need ffmpeg and {unavailable}"),
        },
        (_, None) => MediaError::Unsupported {
            path: path.into(),
            reason: format!("unrecognised format; {unavailable}"),
        },
    }
}

fn media_info_from_listing(path: &Path, listing: ffmpeg::Listing) -> MediaInfo {
    MediaInfo {
        path: path.to_path_buf(),
        container: listing.format,
        duration_ms: listing.duration_ms,
        audio_tracks: listing.audio,
    }
}

fn resample_error(path: &Path, failure: timeline::ResampleFailure) -> MediaError {
    MediaError::Resample {
        path: path.into(),
        from_rate: failure.from_rate,
        reason: failure.reason,
    }
}

fn seconds_to_ms(seconds: f64) -> i64 {
    vttiro_core::seconds_to_ms(seconds)
}
