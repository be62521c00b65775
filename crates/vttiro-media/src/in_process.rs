//! The symphonia side: open a container, describe its audio tracks, and decode one of them
//! into the [`Timeline`].

use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;

use symphonia::core::audio::{Channels, GenericAudioBufferRef, Position};
use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::audio::{AudioCodecId, AudioCodecParameters, AudioDecoderOptions};
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackFlags};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::TimeBase;
use symphonia_adapter_libopus::OpusDecoder;

use crate::iso_edit_list::{read_iso_tracks, EditPlacement};
use crate::timeline::{ResampleFailure, Timeline};
use crate::{AudioTrackInfo, CancelToken};

/// symphonia's own codecs plus libopus, which symphonia does not ship.
fn codecs() -> &'static CodecRegistry {
    static REGISTRY: OnceLock<CodecRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_audio_decoder::<OpusDecoder>();
        registry
    })
}

/// An opened container and what vttiro needs to know about its audio tracks.
pub(crate) struct Container {
    pub reader: Box<dyn FormatReader>,
    pub format: &'static str,
    pub duration_s: Option<f64>,
    pub audio: Vec<AudioSource>,
    /// Tracks symphonia could not classify (unknown codec): there may be audio it cannot see.
    pub has_unknown_tracks: bool,
}

/// One audio track with the parameters needed to decode and place it.
pub(crate) struct AudioSource {
    pub info: AudioTrackInfo,
    pub track_id: u32,
    pub params: AudioCodecParameters,
    pub time_base: Option<TimeBase>,
    pub duration_s: Option<f64>,
    pub placement: Option<EditPlacement>,
    pub decodable: bool,
}

pub(crate) fn open(path: &Path) -> Result<Container, SymphoniaError> {
    let file = File::open(path)?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let reader = symphonia::default::get_probe().probe(
        &hint,
        stream,
        FormatOptions::default(),
        MetadataOptions::default(),
    )?;
    let format = reader.format_info().short_name;
    // Only ISO-BMFF needs the edit lists; a failed read just means no placement information.
    let iso_tracks = if format == "isomp4" {
        read_iso_tracks(path).unwrap_or_default()
    } else {
        Vec::new()
    };

    let matroska_defaults = if format == "matroska" {
        crate::matroska_default::default_track_numbers(path).ok()
    } else {
        None
    };

    let mut audio = Vec::new();
    let mut has_unknown_tracks = false;
    for track in reader.tracks() {
        let params = match &track.codec_params {
            Some(CodecParameters::Audio(params)) => params.clone(),
            Some(_) => continue,
            None => {
                has_unknown_tracks = true;
                continue;
            }
        };
        let iso = iso_tracks.iter().find(|t| t.track_id == track.id);
        let decodable = codecs().get_audio_decoder(params.codec).is_some();
        let duration_s = match (track.duration, track.time_base) {
            (Some(d), Some(tb)) => Some(seconds(tb, d.get() as i64)),
            _ => None,
        };
        let placement = iso.and_then(|t| t.edit);
        let info = AudioTrackInfo {
            index: audio.len(),
            codec: codec_name(params.codec),
            sample_rate: params.sample_rate,
            channels: params
                .channels
                .as_ref()
                .and_then(|c| u16::try_from(c.count()).ok()),
            language: track
                .language
                .clone()
                .filter(|l| !l.is_empty() && l != "und")
                .or_else(|| iso.and_then(|t| t.language.clone())),
            is_default: match &matroska_defaults {
                Some(defaults) => defaults.contains(&u64::from(track.id)),
                None => track.flags.contains(TrackFlags::DEFAULT) || iso.is_some_and(|t| t.enabled),
            },
        };
        audio.push(AudioSource {
            info,
            track_id: track.id,
            params,
            time_base: track.time_base,
            duration_s: placement
                .and_then(|p| p.presented_s)
                .or(duration_s)
                .map(|d| d + placement.map_or(0.0, |p| p.lead_s)),
            placement,
            decodable,
        });
    }

    let media = reader.media_info();
    let duration_s = match (media.duration, media.time_base) {
        (Some(d), Some(tb)) => Some(seconds(tb, d.get() as i64)),
        _ => None,
    }
    .or_else(|| audio.iter().filter_map(|a| a.duration_s).reduce(f64::max));

    Ok(Container {
        reader,
        format,
        duration_s,
        audio,
        has_unknown_tracks,
    })
}

fn seconds(tb: TimeBase, ts: i64) -> f64 {
    ts as f64 * f64::from(tb.numer.get()) / f64::from(tb.denom.get())
}

/// How an in-process decode ended when it produced no result.
pub(crate) enum InProcessFailure {
    /// The codec (or a feature of this stream) is beyond symphonia; ffmpeg may manage.
    CodecUnsupported(String),
    /// The container or stream is damaged beyond what skipping packets can repair.
    Corrupt(String),
    Io(std::io::Error),
    Resample(ResampleFailure),
    /// The caller's cancel token was set.
    Cancelled,
}

pub(crate) struct InProcessAudio {
    pub samples: Vec<f32>,
    pub start_offset_s: Option<f64>,
}

/// Packets that fail in a row before any audio came out: the decoder cannot handle this
/// stream, so the caller should try ffmpeg rather than return silence.
const MAX_FAILURES_BEFORE_AUDIO: usize = 20;
/// A file that ends more than this short of its declared duration was cut off.
const TRUNCATION_TOLERANCE_S: f64 = 1.0;

pub(crate) fn decode(
    container: &mut Container,
    track_index: usize,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(f32),
) -> Result<InProcessAudio, InProcessFailure> {
    let source = &container.audio[track_index];
    let mut decoder = codecs()
        .make_audio_decoder(&source.params, &AudioDecoderOptions::default())
        .map_err(|e| InProcessFailure::CodecUnsupported(e.to_string()))?;
    let time_base = source.time_base.unwrap_or_else(|| {
        TimeBase::try_from_recip(source.params.sample_rate.unwrap_or(1)).unwrap_or_default()
    });
    // The libopus adapter drops the Opus pre-skip from its first output by itself. Matroska
    // stamps packets on the presentation clock (symphonia subtracts CodecDelay, so the first
    // packet starts at -pre-skip), while Ogg stamps them on the granule clock, which counts the
    // pre-skip as time: there presentation = granule time - pre-skip.
    let opus_pre_skip_s = if source.params.codec == CODEC_ID_OPUS {
        opus_pre_skip(&source.params).map_or(0.0, |n| f64::from(n) / 48_000.0)
    } else {
        0.0
    };
    let clock_offset_s = if container.format == "ogg" {
        opus_pre_skip_s
    } else {
        0.0
    };
    let mut trimmed_by_decoder_s = opus_pre_skip_s;
    let placement = source.placement;
    let duration_s = source.duration_s.or(container.duration_s);
    let mut track_id = source.track_id;
    let mut in_chained_link = false;

    let mut timeline = Timeline::new(duration_s);
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut failures_in_a_row = 0usize;
    let mut last_error = String::new();
    let mut last_time_s = 0.0f64;
    let mut last_progress = -1.0f32;

    loop {
        if cancel.is_cancelled() {
            return Err(InProcessFailure::Cancelled);
        }
        let packet = match container.reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::ResetRequired) => {
                // A chained stream (concatenated Ogg) begins a new link with its own tracks and
                // a clock that restarts at zero: continue with its first audio track, appended
                // right after the previous link.
                let next = container
                    .reader
                    .tracks()
                    .iter()
                    .find_map(|t| match &t.codec_params {
                        Some(CodecParameters::Audio(params)) => Some((t.id, params.clone())),
                        _ => None,
                    });
                let Some((next_id, next_params)) = next else {
                    break;
                };
                decoder = codecs()
                    .make_audio_decoder(&next_params, &AudioDecoderOptions::default())
                    .map_err(|e| InProcessFailure::CodecUnsupported(e.to_string()))?;
                track_id = next_id;
                in_chained_link = true;
                continue;
            }
            Err(SymphoniaError::IoError(e)) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
                return Err(InProcessFailure::Io(e))
            }
            Err(e) => {
                // A demuxer that stops early has met a cut or damaged file. Near the declared
                // end it is only trailing junk; with no declared end, running out of bytes is
                // how some streams finish.
                let is_eof = matches!(&e, SymphoniaError::IoError(_));
                match duration_s {
                    Some(total) if total - last_time_s <= TRUNCATION_TOLERANCE_S => break,
                    None if is_eof => break,
                    Some(total) => {
                        return Err(InProcessFailure::Corrupt(format!(
                            "{e}; the audio stops at {last_time_s:.1} s of {total:.1} s"
                        )))
                    }
                    None => return Err(InProcessFailure::Corrupt(e.to_string())),
                }
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        let media_s = seconds(time_base, packet.pts.get())
            + seconds(time_base, packet.trim_start.get() as i64)
            + trimmed_by_decoder_s
            - clock_offset_s;
        let time_s = placement.map_or(media_s, |p| p.presentation_time(media_s));

        let decoded = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(SymphoniaError::DecodeError(msg)) => {
                failures_in_a_row += 1;
                last_error = msg.to_string();
                if timeline.first_time_s().is_none()
                    && failures_in_a_row >= MAX_FAILURES_BEFORE_AUDIO
                {
                    return Err(InProcessFailure::CodecUnsupported(last_error));
                }
                continue;
            }
            Err(SymphoniaError::IoError(e)) => {
                failures_in_a_row += 1;
                last_error = e.to_string();
                continue;
            }
            Err(SymphoniaError::Unsupported(msg)) => {
                return Err(InProcessFailure::CodecUnsupported(msg.to_string()))
            }
            Err(e) => return Err(InProcessFailure::Corrupt(e.to_string())),
        };
        trimmed_by_decoder_s = 0.0;
        failures_in_a_row = 0;
        if decoded.frames() == 0 {
            continue;
        }
        let rate = decoded.spec().rate();
        downmix(&decoded, &mut planes, &mut mono);
        timeline
            .push(rate, &mono, (!in_chained_link).then_some(time_s))
            .map_err(InProcessFailure::Resample)?;
        last_time_s = timeline.end_s();

        if let Some(total) = duration_s.filter(|d| *d > 0.0) {
            let fraction = (last_time_s / total).clamp(0.0, 1.0) as f32;
            if fraction - last_progress >= 0.01 {
                progress(fraction);
                last_progress = fraction;
            }
        }
    }
    if timeline.first_time_s().is_none() && !last_error.is_empty() {
        return Err(InProcessFailure::CodecUnsupported(last_error));
    }
    let start_offset_s = timeline.first_time_s();
    let end_s = placement.and_then(|p| p.presentation_end());
    let samples = timeline.finish(end_s).map_err(InProcessFailure::Resample)?;
    Ok(InProcessAudio {
        samples,
        start_offset_s,
    })
}

/// Averages the channels into one, leaving out the LFE channel: it carries no speech and
/// would only add rumble.
fn downmix(decoded: &GenericAudioBufferRef<'_>, planes: &mut Vec<Vec<f32>>, mono: &mut Vec<f32>) {
    decoded.copy_to_vecs_planar::<f32>(planes);
    let channels = decoded.spec().channels();
    let lfe = match channels {
        Channels::Positioned(p) if p.contains(Position::LFE1) && planes.len() > 1 => {
            channels.get_canonical_index_for_positioned_channel(Position::LFE1)
        }
        _ => None,
    };
    let frames = decoded.frames();
    mono.clear();
    mono.resize(frames, 0.0);
    let mut used = 0usize;
    for (index, plane) in planes.iter().enumerate() {
        if Some(index) == lfe {
            continue;
        }
        used += 1;
        for (m, s) in mono.iter_mut().zip(plane) {
            *m += *s;
        }
    }
    if used > 1 {
        let scale = 1.0 / used as f32;
        mono.iter_mut().for_each(|m| *m *= scale);
    }
}

/// Opus pre-skip from the OpusHead identification header (bytes 10-11, little endian).
fn opus_pre_skip(params: &AudioCodecParameters) -> Option<u16> {
    let head = params.extra_data.as_deref()?;
    if head.get(0..8) != Some(b"OpusHead") {
        return None;
    }
    Some(u16::from_le_bytes([*head.get(10)?, *head.get(11)?]))
}

/// ffmpeg's codec names, so a track reads the same whichever decoder handles it.
pub(crate) fn codec_name(id: AudioCodecId) -> String {
    let known = match id {
        CODEC_ID_PCM_S32LE | CODEC_ID_PCM_S32LE_PLANAR => "pcm_s32le",
        CODEC_ID_PCM_S32BE | CODEC_ID_PCM_S32BE_PLANAR => "pcm_s32be",
        CODEC_ID_PCM_S24LE | CODEC_ID_PCM_S24LE_PLANAR => "pcm_s24le",
        CODEC_ID_PCM_S24BE | CODEC_ID_PCM_S24BE_PLANAR => "pcm_s24be",
        CODEC_ID_PCM_S16LE | CODEC_ID_PCM_S16LE_PLANAR => "pcm_s16le",
        CODEC_ID_PCM_S16BE | CODEC_ID_PCM_S16BE_PLANAR => "pcm_s16be",
        CODEC_ID_PCM_S8 | CODEC_ID_PCM_S8_PLANAR => "pcm_s8",
        CODEC_ID_PCM_U32LE | CODEC_ID_PCM_U32LE_PLANAR => "pcm_u32le",
        CODEC_ID_PCM_U32BE | CODEC_ID_PCM_U32BE_PLANAR => "pcm_u32be",
        CODEC_ID_PCM_U24LE | CODEC_ID_PCM_U24LE_PLANAR => "pcm_u24le",
        CODEC_ID_PCM_U24BE | CODEC_ID_PCM_U24BE_PLANAR => "pcm_u24be",
        CODEC_ID_PCM_U16LE | CODEC_ID_PCM_U16LE_PLANAR => "pcm_u16le",
        CODEC_ID_PCM_U16BE | CODEC_ID_PCM_U16BE_PLANAR => "pcm_u16be",
        CODEC_ID_PCM_U8 | CODEC_ID_PCM_U8_PLANAR => "pcm_u8",
        CODEC_ID_PCM_F32LE | CODEC_ID_PCM_F32LE_PLANAR => "pcm_f32le",
        CODEC_ID_PCM_F32BE | CODEC_ID_PCM_F32BE_PLANAR => "pcm_f32be",
        CODEC_ID_PCM_F64LE | CODEC_ID_PCM_F64LE_PLANAR => "pcm_f64le",
        CODEC_ID_PCM_F64BE | CODEC_ID_PCM_F64BE_PLANAR => "pcm_f64be",
        CODEC_ID_PCM_ALAW => "pcm_alaw",
        CODEC_ID_PCM_MULAW => "pcm_mulaw",
        CODEC_ID_ADPCM_G722 => "adpcm_g722",
        CODEC_ID_ADPCM_G726 | CODEC_ID_ADPCM_G726LE => "adpcm_g726",
        CODEC_ID_ADPCM_MS => "adpcm_ms",
        CODEC_ID_ADPCM_IMA_WAV => "adpcm_ima_wav",
        CODEC_ID_ADPCM_IMA_QT => "adpcm_ima_qt",
        CODEC_ID_VORBIS => "vorbis",
        CODEC_ID_OPUS => "opus",
        CODEC_ID_SPEEX => "speex",
        CODEC_ID_MUSEPACK => "musepack",
        CODEC_ID_MP1 => "mp1",
        CODEC_ID_MP2 => "mp2",
        CODEC_ID_MP3 => "mp3",
        CODEC_ID_AAC => "aac",
        CODEC_ID_AC3 => "ac3",
        CODEC_ID_EAC3 => "eac3",
        CODEC_ID_AC4 => "ac4",
        CODEC_ID_DCA => "dts",
        CODEC_ID_ATRAC1 => "atrac1",
        CODEC_ID_ATRAC3 => "atrac3",
        CODEC_ID_ATRAC3PLUS => "atrac3plus",
        CODEC_ID_ATRAC9 => "atrac9",
        CODEC_ID_WMA => "wma",
        CODEC_ID_COOK => "cook",
        CODEC_ID_FLAC => "flac",
        CODEC_ID_WAVPACK => "wavpack",
        CODEC_ID_MONKEYS_AUDIO => "ape",
        CODEC_ID_ALAC => "alac",
        CODEC_ID_TTA => "tta",
        CODEC_ID_TRUEHD => "truehd",
        _ => {
            return codecs()
                .get_audio_decoder(id)
                .map(|d| d.codec.info.short_name.to_string())
                .unwrap_or_else(|| format!("unknown codec {id}"))
        }
    };
    known.to_string()
}
