//! The `ffmpeg` binary as a fallback for what symphonia cannot read (AC-3, E-AC-3, DTS,
//! multichannel AAC, AVI, MPEG-TS, ...). It is run as a child process that streams 16 kHz mono
//! f32 to a pipe, so its memory use stays bounded like the in-process path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::input::ContainerMagic;
use crate::{AudioTrackInfo, CancelToken, MediaError};

/// Finds `ffmpeg` on PATH, as a shell would.
pub(crate) fn locate() -> Option<PathBuf> {
    let names: &[&str] = if cfg!(windows) {
        &["ffmpeg.exe", "ffmpeg"]
    } else {
        &["ffmpeg"]
    };
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// What `ffmpeg -i` reports about an input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Listing {
    /// ffmpeg's demuxer name, e.g. `matroska,webm` or `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format: String,
    pub duration_ms: Option<i64>,
    /// The container's first timestamp, in seconds.
    pub start_s: Option<f64>,
    pub audio: Vec<AudioTrackInfo>,
}

impl Listing {
    /// Transport and program streams carry arbitrary clock values (a capture may start at 10 h),
    /// so their timeline starts at the first timestamp instead of at zero.
    pub fn timeline_starts_at_zero(&self) -> bool {
        !self
            .format
            .split(',')
            .any(|f| matches!(f, "mpegts" | "mpegtsraw" | "mpeg" | "mpegvideo" | "hls"))
    }
}

/// Runs `ffmpeg -i PATH` (which lists the streams and exits) and parses the listing. On failure
/// returns ffmpeg's stderr for classification.
pub(crate) fn list_streams(ffmpeg: &Path, path: &Path) -> Result<Listing, String> {
    let output = Command::new(ffmpeg)
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ffmpeg.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    parse_listing(&stderr).ok_or_else(|| stderr.into_owned())
}

fn parse_listing(stderr: &str) -> Option<Listing> {
    let mut format = None;
    let mut duration_ms = None;
    let mut start_s = None;
    let mut audio = Vec::new();
    for line in stderr.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Input #0, ") {
            format = Some(rest.split(", from '").next().unwrap_or(rest).to_string());
        } else if line.starts_with("Input #") {
            break; // only the first input matters
        } else if let Some(rest) = line.strip_prefix("Duration: ") {
            duration_ms = parse_clock(rest.split(',').next().unwrap_or(""));
            start_s = rest
                .split(", ")
                .find_map(|f| f.strip_prefix("start: "))
                .and_then(|v| v.trim().parse().ok());
        } else if line.starts_with("Stream #0:") {
            if let Some(track) = parse_audio_stream(line, audio.len()) {
                audio.push(track);
            }
        }
    }
    Some(Listing {
        format: format?,
        duration_ms,
        start_s,
        audio,
    })
}

/// Parses `HH:MM:SS.cc` into milliseconds.
fn parse_clock(text: &str) -> Option<i64> {
    let mut parts = text.trim().split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let secs: f64 = parts.next()?.parse().ok()?;
    Some(((hours * 3600.0 + minutes * 60.0 + secs) * 1000.0).round() as i64)
}

/// Parses e.g. `Stream #0:1[0x2](eng): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo,
/// fltp, 45 kb/s (default)`.
fn parse_audio_stream(line: &str, index: usize) -> Option<AudioTrackInfo> {
    let (head, body) = line.split_once(": Audio: ")?;
    let language = head
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .filter(|l| !l.is_empty() && *l != "und")
        .map(str::to_string);
    let codec: String = body
        .chars()
        .take_while(|c| !matches!(c, ' ' | ','))
        .collect();
    let fields: Vec<&str> = body.split(", ").map(str::trim).collect();
    let rate_at = fields.iter().position(|f| f.ends_with(" Hz"));
    let sample_rate = rate_at.and_then(|i| fields[i].trim_end_matches(" Hz").parse().ok());
    let channels = rate_at
        .and_then(|i| fields.get(i + 1))
        .and_then(|layout| channel_count(layout));
    Some(AudioTrackInfo {
        index,
        codec,
        sample_rate,
        channels,
        language,
        is_default: line.contains("(default)"),
    })
}

/// Channel count of an ffmpeg layout name: `mono`, `stereo`, `5.1(side)`, `6 channels`, ...
fn channel_count(layout: &str) -> Option<u16> {
    let name = layout.split('(').next().unwrap_or(layout).trim();
    match name {
        "mono" => return Some(1),
        "stereo" | "downmix" => return Some(2),
        "quad" => return Some(4),
        "hexagonal" => return Some(6),
        "octagonal" => return Some(8),
        _ => {}
    }
    if let Some(n) = name.strip_suffix(" channels") {
        return n.trim().parse().ok();
    }
    // "5.1" is five full-range channels plus one LFE.
    let (full, lfe) = name.split_once('.')?;
    Some(full.parse::<u16>().ok()? + lfe.parse::<u16>().ok()?)
}

/// Timestamp (s) of the first packet of audio stream `audio_index` on the container's clock,
/// read with ffmpeg's `framecrc` muxer without decoding anything.
pub(crate) fn first_packet_time(ffmpeg: &Path, path: &Path, audio_index: usize) -> Option<f64> {
    let output = Command::new(ffmpeg)
        .args(["-nostdin", "-v", "error", "-copyts", "-i"])
        .arg(path)
        .args(["-map", &format!("0:a:{audio_index}")])
        .args(["-c", "copy", "-frames:a", "1", "-f", "framecrc", "pipe:1"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    parse_first_packet_time(&String::from_utf8_lossy(&output.stdout))
}

/// Reads `#tb 0: 1/44100` and the pts column of the first packet line `0, pts, dts, ...`.
fn parse_first_packet_time(framecrc: &str) -> Option<f64> {
    let mut time_base = None;
    for line in framecrc.lines() {
        if let Some(tb) = line.strip_prefix("#tb 0: ") {
            let (num, den) = tb.trim().split_once('/')?;
            time_base = Some(num.parse::<f64>().ok()? / den.parse::<f64>().ok()?);
        } else if !line.starts_with('#') {
            let pts: i64 = line.split(',').nth(1)?.trim().parse().ok()?;
            return Some(pts as f64 * time_base?);
        }
    }
    None
}

/// ffmpeg ended with an error; `stderr` is what it said.
#[derive(Debug)]
pub(crate) enum DecodeFailure {
    Exited {
        stderr: String,
    },
    /// Spawning, piping or signals: a problem of the environment.
    Process(String),
    /// The caller's cancel token was set; ffmpeg was killed.
    Cancelled,
}

/// Decodes audio stream `audio_index` (among audio streams) to 16 kHz mono f32, reading the
/// pipe as ffmpeg writes it.
pub(crate) fn decode(
    ffmpeg: &Path,
    path: &Path,
    audio_index: usize,
    keep_timestamps: bool,
    expected_ms: Option<i64>,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(f32),
) -> Result<Vec<f32>, DecodeFailure> {
    let mut command = Command::new(ffmpeg);
    command.args(["-nostdin", "-v", "error"]);
    if keep_timestamps {
        // Keep the container's own clock so an audio track that starts late is padded to its
        // place instead of being shifted to zero (ffmpeg's default rebases to the first packet).
        command.arg("-copyts");
    }
    command
        .arg("-i")
        .arg(path)
        .args(["-map", &format!("0:a:{audio_index}")])
        .args(["-vn", "-sn", "-dn"])
        // Pads (or trims) so the first output sample is presentation time zero, and fills
        // timestamp gaps with silence, matching the in-process path. rematrix_maxval keeps a
        // 5.1 downmix within [-1, 1] like the in-process average (ffmpeg's default sums to ~3x).
        .args(["-af", "aresample=async=1:first_pts=0:rematrix_maxval=1.0"])
        .args(["-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| DecodeFailure::Process(format!("cannot start {}: {e}", ffmpeg.display())))?;

    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    // Drained on its own thread: a chatty ffmpeg would otherwise block on a full stderr pipe
    // while we wait on stdout.
    let stderr_reader = std::thread::spawn(move || {
        const KEEP: usize = 16 * 1024;
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * KEEP {
                tail.drain(..tail.len() - KEEP);
            }
        }
        String::from_utf8_lossy(&tail).into_owned()
    });

    let expected_samples = expected_ms.filter(|ms| *ms > 0).map(|ms| ms as usize * 16);
    let mut samples: Vec<f32> = Vec::with_capacity(expected_samples.unwrap_or(0).min(1 << 28));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry = 0usize;
    let mut last_progress = -1.0f32;
    let read_result = loop {
        if cancel.is_cancelled() {
            // Killed rather than left to finish: a long film would keep a core busy.
            let _ = child.kill();
            let _ = child.wait();
            let _ = stderr_reader.join();
            return Err(DecodeFailure::Cancelled);
        }
        match stdout.read(&mut buf[carry..]) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                let filled = carry + n;
                let whole = filled - filled % 4;
                samples.extend(
                    buf[..whole]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
                buf.copy_within(whole..filled, 0);
                carry = filled - whole;
                if let Some(total) = expected_samples {
                    let fraction = (samples.len() as f32 / total as f32).min(1.0);
                    if fraction - last_progress >= 0.01 {
                        progress(fraction);
                        last_progress = fraction;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    drop(stdout);
    let status = child
        .wait()
        .map_err(|e| DecodeFailure::Process(format!("waiting for ffmpeg: {e}")))?;
    let stderr = stderr_reader.join().unwrap_or_default();
    if let Err(e) = read_result {
        return Err(DecodeFailure::Process(format!(
            "reading ffmpeg output: {e}"
        )));
    }
    match status.code() {
        Some(0) => Ok(samples),
        Some(_) => Err(DecodeFailure::Exited { stderr }),
        None => Err(DecodeFailure::Process(format!(
            "ffmpeg was terminated ({status})"
        ))),
    }
}

/// Turns a failed ffmpeg run into the error the caller should see. ffmpeg's wording alone
/// misleads (it says "moov atom not found" for any file named .mp4), so the sniffed file
/// header decides between damaged media and not-media-at-all.
pub(crate) fn classify_failure(
    path: &Path,
    magic: Option<ContainerMagic>,
    stderr: &str,
) -> MediaError {
    let path_buf = path.to_path_buf();
    if stderr.contains("matches no streams") || stderr.contains("does not contain any stream") {
        return MediaError::NoAudioTrack { path: path_buf };
    }
    let reason = summarize(stderr, path);
    if magic.is_some() {
        MediaError::Corrupt {
            path: path_buf,
            reason,
        }
    } else {
        MediaError::Unsupported {
            path: path_buf,
            reason,
        }
    }
}

/// One line out of ffmpeg's stderr: the most telling message, without its `[demuxer @ 0x..]`
/// and file-name prefixes.
fn summarize(stderr: &str, path: &Path) -> String {
    const TELLING: [&str; 4] = [
        "moov atom not found",
        "Invalid data found",
        "End of file",
        "corrupt",
    ];
    let path_prefix = format!("{}: ", path.display());
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| {
            let l = l.trim();
            let l = match (l.starts_with('['), l.find("] ")) {
                (true, Some(end)) => &l[end + 2..],
                _ => l,
            };
            l.strip_prefix(path_prefix.as_str()).unwrap_or(l)
        })
        .filter(|l| !l.is_empty())
        .collect();
    let chosen = lines
        .iter()
        .find(|l| TELLING.iter().any(|t| l.contains(t)))
        .or(lines.last())
        .copied()
        .unwrap_or("ffmpeg gave no reason");
    let mut reason = format!("ffmpeg: {chosen}");
    if reason.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|i| reason.is_char_boundary(*i))
            .unwrap_or(0);
        reason.truncate(cut);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_give_channel_counts() {
        assert_eq!(channel_count("mono"), Some(1));
        assert_eq!(channel_count("stereo"), Some(2));
        assert_eq!(channel_count("5.1(side)"), Some(6));
        assert_eq!(channel_count("7.1"), Some(8));
        assert_eq!(channel_count("3 channels"), Some(3));
        assert_eq!(channel_count("fltp"), None);
    }

    /// ffmpeg's own failures, produced for real, land on the right error codes.
    #[test]
    fn ffmpeg_failures_are_classified_from_stderr_and_file_header() {
        use vttiro_core::ErrorCode;
        let ffmpeg = locate().expect("ffmpeg must be installed for this test");
        let dir = tempfile::tempdir().unwrap();
        let video_only = dir.path().join("video.avi");
        let status = Command::new(&ffmpeg)
            .args([
                "-v",
                "error",
                "-nostdin",
                "-f",
                "lavfi",
                "-i",
                "testsrc=d=1:s=32x32:r=5",
            ])
            .args(["-an", "-c:v", "mpeg4"])
            .arg(&video_only)
            .status()
            .unwrap();
        assert!(status.success());
        let text = dir.path().join("text.mp4");
        std::fs::write(&text, "not a movie\n".repeat(50)).unwrap();
        let fake_mp4 = dir.path().join("cut.mp4");
        std::fs::write(&fake_mp4, b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2").unwrap();

        let cases = [
            (&video_only, ErrorCode::NoAudioTrack, "matches no streams"),
            (&text, ErrorCode::UnsupportedMedia, ""),
            (&fake_mp4, ErrorCode::CorruptMedia, ""),
        ];
        for (path, code, stderr_says) in cases {
            let Err(DecodeFailure::Exited { stderr }) = decode(
                &ffmpeg,
                path,
                0,
                true,
                None,
                &CancelToken::new(),
                &mut |_| {},
            ) else {
                panic!("{}: ffmpeg should fail", path.display());
            };
            assert!(stderr.contains(stderr_says), "{stderr}");
            let err = classify_failure(path, crate::input::sniff_container(path), &stderr);
            assert_eq!(err.code(), code, "{}: {err}", path.display());
            assert!(!err.to_string().contains('\n'), "{err}");
        }
    }

    #[test]
    fn clock_parses_to_milliseconds() {
        assert_eq!(parse_clock("00:00:03.50"), Some(3500));
        assert_eq!(parse_clock("01:02:03.04"), Some(3_723_040));
        assert_eq!(parse_clock("N/A"), None);
    }
}
