//! Our own WebVTT parser was written alongside the writer and shares its assumptions, so a
//! round trip through it cannot show that players read our files the way we meant them.
//! These tests write realistic cue lists with `to_webvtt` and read them back with two
//! parsers we did not write: Chromium's (through the HTML `TextTrack` API, as a browser
//! player shows them) and the `webvtt-py` library from PyPI. Each must see the same cue
//! count, times and displayed text (voice span removed, entities decoded, lines joined
//! with "\n") as the cues we wrote, and the same speaker.
//!
//! Needs `chromium` (Debian package, installed by scripts/deps.sh), `timeout` (coreutils)
//! and `python3` with the venv module; `webvtt-py` is installed on first use into
//! `~/.cache/vttiro/pyenv`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{cue, timed_words, transcript_from_words, word};
use serde_json::Value;
use vttiro_core::Word;
use vttiro_subtitles::{layout, to_webvtt, to_webvtt_with, Cue, LayoutRules, VttOptions};

/// Pinned so that a new release cannot change what "independent parser" means under us.
const WEBVTT_PY_VERSION: &str = "0.6.0";

/// Text that looks like WebVTT syntax must reach the viewer as text.
fn markup_lookalikes() -> Vec<Cue> {
    vec![
        cue(
            1_000,
            3_500,
            &["Tom & Jerry <3 cartoons", "a --> b means \"then\""],
            None,
        ),
        cue(
            4_000,
            6_000,
            &[
                "<v Fake>not a voice</v>",
                "<b>not bold</b> <i>nor italic</i>",
            ],
            Some("Host"),
        ),
        cue(
            6_500,
            8_000,
            &["&amp; &lt; &gt; &nbsp; are written literally"],
            Some("Dr. Ana <Host> & Co"),
        ),
        cue(8_500, 9_000, &["-->"], None),
        cue(9_500, 11_000, &["5 > 3 && 2 < 4", "x->y <-- z"], None),
        cue(11_500, 12_000, &["00:00:13.000 --> 00:00:14.000"], None),
        cue(
            12_500,
            13_500,
            &["NOTE is text here, not a comment", "STYLE neither"],
            None,
        ),
        // Blank lines would end the cue early and an empty cue has nothing to show;
        // `to_webvtt` documents that it drops both.
        cue(14_000, 15_000, &["first", "", "   ", "after blanks"], None),
        cue(15_500, 16_000, &["", "  "], Some("Nobody")),
        cue(16_500, 18_000, &["last one"], Some("  Padded Name  ")),
    ]
}

/// Timestamp fields roll over at 59.999 s, 59:59.999 and 99:59:59.999 (hours grow a digit).
fn time_boundaries() -> Vec<Cue> {
    let spans = [
        (0, 999),
        (59_000, 59_999),
        (59_999, 60_000),
        (3_599_000, 3_599_999),
        (3_599_999, 3_600_000),
        (3_600_000, 3_600_001),
        (3_661_001, 3_662_999),
        (35_999_999, 36_000_000),
        (359_999_999, 360_000_000),
        (360_000_001, 360_001_500),
    ];
    spans
        .iter()
        .enumerate()
        .map(|(k, &(start, end))| cue(start, end, &[&format!("boundary {k}")], None))
        .collect()
}

fn scripts_and_emoji() -> Vec<Cue> {
    let cues: [(&[&str], Option<&str>); 9] = [
        (
            &[
                "Zoë's café serves crème brûlée",
                "naïve façade, Ångström, Øresund",
            ],
            Some("Zoë"),
        ),
        (&["字幕のテストです。", "我们明天见，好吗？"], Some("李雷")),
        (&["مرحبا بكم في البرنامج"], Some("محمد")),
        (&["שלום עולם, מה שלומך?"], Some("דנה")),
        (
            &["He said \"שלום\" and left.", "قال مرحبا 123 then 456"],
            None,
        ),
        (
            &["👋🏽 Hi from the 👨‍👩‍👧 family! 🎉", "100\u{a0}km in 2\u{202f}h"],
            Some("🎤 DJ"),
        ),
        (
            &[
                "e\u{301} (combining) vs \u{e9}",
                "\u{200f}RLM and \u{200e}LRM marks",
            ],
            None,
        ),
        (&["안녕하세요", "Καλημέρα, Привет"], Some("Ελένη")),
        (&["สวัสดีครับ", "नमस्ते दुनिया"], None),
    ];
    cues.iter()
        .enumerate()
        .map(|(k, (lines, speaker))| {
            let start = 2_000 * k as i64 + 500;
            cue(start, start + 1_800, lines, *speaker)
        })
        .collect()
}

/// What the pipeline really writes: `layout` over word timings, with speaker turns, a cue
/// crossing the one-hour mark and markup-like words.
fn laid_out_transcript() -> Vec<Cue> {
    let turns: [(&str, &str); 3] = [
        (
            "Alice",
            "Good evening. Tom & Jerry <3 cartoons, and the arrow --> means then. The café \
             on Ångström street sells crème brûlée for €4, which is a bargain.",
        ),
        (
            "Bob",
            "東京で会いましょう。 مرحبا بكم في البرنامج. שלום לכולם! 👋 See you when 9 > 8, \
             right?",
        ),
        (
            "Alice",
            "Right. <v Alice> is how a voice tag looks, & that's all for tonight.",
        ),
    ];
    let mut words: Vec<Word> = Vec::new();
    let mut start = 3_594_500;
    for (speaker, text) in turns {
        for (text, word_start, word_end) in timed_words(text, start, &[("evening.", 900)]) {
            words.push(word(&text, word_start, word_end, Some(speaker)));
        }
        start = words.last().map_or(start, |w| w.end_ms) + 700;
    }
    let cues = layout(&transcript_from_words(words), &LayoutRules::default());
    // Guards the fixture, not the writer: without these the test would prove less than
    // its name says.
    assert!(cues.iter().any(|c| c.lines.len() == 2), "{cues:#?}");
    assert!(cues.iter().any(|c| c.end_ms <= 3_600_000), "{cues:#?}");
    assert!(cues.iter().any(|c| c.start_ms >= 3_600_000), "{cues:#?}");
    let speakers: Vec<_> = cues.iter().filter_map(|c| c.speaker.as_deref()).collect();
    assert!(speakers.contains(&"Alice") && speakers.contains(&"Bob"));
    cues
}

/// A carriage return is a WebVTT line terminator on its own, so one inside a cue line is a
/// line break for every reader, and two in a row are a blank line that ends the cue.
fn carriage_returns() -> Vec<Cue> {
    vec![
        cue(1_000, 2_000, &["one line\rsecond line"], None),
        cue(
            3_000,
            4_000,
            &["before\r\rafter two carriage returns"],
            None,
        ),
        cue(5_000, 6_000, &["windows\r\nline ending"], Some("Eve")),
    ]
}

/// A cue as a reader presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShownCue {
    start_ms: i64,
    end_ms: i64,
    text: String,
    voice: Option<String>,
}

/// What a viewer should see for the cues we wrote, following `to_webvtt`'s contract: each
/// WebVTT line terminator (CR, LF, CRLF) starts a new screen line, blank lines are dropped,
/// a cue left without text is not written, and the speaker is trimmed and kept on one line.
fn shown_as_written(cues: &[Cue]) -> Vec<ShownCue> {
    cues.iter()
        .filter_map(|cue| {
            let lines: Vec<&str> = cue
                .lines
                .iter()
                // A CRLF leaves an empty piece between its halves; it goes with the blanks.
                .flat_map(|line| line.split(['\r', '\n']))
                .filter(|line| !line.trim().is_empty())
                .collect();
            if lines.is_empty() {
                return None;
            }
            let voice = cue
                .speaker
                .as_deref()
                .map(|s| s.trim().replace(['\r', '\n'], " "))
                .filter(|s| !s.is_empty());
            Some(ShownCue {
                start_ms: cue.start_ms,
                end_ms: cue.end_ms,
                text: lines.join("\n"),
                voice,
            })
        })
        .collect()
}

struct WrittenFile {
    name: String,
    path: PathBuf,
    vtt: String,
    expected: Vec<ShownCue>,
}

fn write_files(dir: &Path, sets: Vec<(&str, Vec<Cue>)>) -> Vec<WrittenFile> {
    sets.into_iter()
        .enumerate()
        .map(|(k, (stem, cues))| {
            let name = format!("{stem}.vtt");
            let path = dir.join(&name);
            // Every other file carries everything the full writer adds (header metadata,
            // a NOTE, a STYLE block with speaker colours, cue identifiers), which the
            // parsers must skip or apply without changing a cue.
            let vtt = if k % 2 == 1 {
                to_webvtt_with(
                    &cues,
                    &VttOptions {
                        kind: Some("captions".into()),
                        language: Some("en".into()),
                        note: vec!["source: fixture.mp4".into(), "made by --> vttiro".into()],
                        cue_ids: true,
                        speaker_colours: true,
                    },
                )
            } else {
                to_webvtt(&cues)
            };
            std::fs::write(&path, &vtt).unwrap();
            WrittenFile {
                name,
                path,
                vtt,
                expected: shown_as_written(&cues),
            }
        })
        .collect()
}

fn all_sets() -> Vec<(&'static str, Vec<Cue>)> {
    vec![
        ("markup_lookalikes", markup_lookalikes()),
        ("time_boundaries", time_boundaries()),
        ("scripts_and_emoji", scripts_and_emoji()),
        ("laid_out_transcript", laid_out_transcript()),
    ]
}

type Readings = BTreeMap<String, Result<Vec<ShownCue>, String>>;

/// Every way `readings` differs from what we wrote, so one run shows the whole picture.
fn disagreements(reader: &str, files: &[WrittenFile], readings: &Readings) -> Vec<String> {
    let mut problems = Vec::new();
    for file in files {
        let before = problems.len();
        match readings.get(&file.name) {
            None => problems.push(format!("{}: {reader} returned nothing", file.name)),
            Some(Err(error)) => problems.push(format!("{}: {reader} failed: {error}", file.name)),
            Some(Ok(read)) => {
                if read.len() != file.expected.len() {
                    problems.push(format!(
                        "{}: {reader} read {} cues, we wrote {}",
                        file.name,
                        read.len(),
                        file.expected.len()
                    ));
                }
                for (k, (want, got)) in file.expected.iter().zip(read).enumerate() {
                    if want != got {
                        problems.push(format!(
                            "{} cue {k}:\n    wrote {want:?}\n    {reader} read {got:?}",
                            file.name
                        ));
                    }
                }
                for (k, extra) in read.iter().enumerate().skip(file.expected.len()) {
                    problems.push(format!("{} extra cue {k}: {extra:?}", file.name));
                }
            }
        }
        if problems.len() > before {
            let visible = file.vtt.replace('\r', "\\r");
            problems.push(format!(
                "{} as written (CR shown as \\r):\n{visible}",
                file.name
            ));
        }
    }
    problems
        .into_iter()
        .map(|problem| format!("{reader}: {problem}"))
        .collect()
}

fn assert_no_disagreements(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "independent readers disagree with what we wrote:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Chromium

/// Loads every file as a `<track>` of one `<video>` and serialises what the `TextTrack` API
/// exposes. The `<video>` needs no media source for its tracks to load. Cue text comes from
/// `getCueAsHTML()`, which is what Chromium renders: the voice becomes a `<span title>`,
/// entities are decoded. The report is hex-encoded UTF-8 so that `--dump-dom`'s HTML
/// escaping cannot touch it.
fn track_page(files: &[WrittenFile]) -> String {
    let tracks: String = files
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let default = if k == 0 { " default" } else { "" };
            format!(
                "<track kind=\"subtitles\" srclang=\"en\" label=\"{0}\" src=\"/{0}\"{default}>",
                f.name
            )
        })
        .collect();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>vttiro tracks</title></head><body>
<video id="player">{tracks}</video>
<pre id="report">pending</pre>
<script>
const elements = Array.from(document.querySelectorAll('track'));
const outcome = new Map();
function readFragment(node, into) {{
  for (const child of node.childNodes) {{
    if (child.nodeType === Node.TEXT_NODE) into.text += child.data;
    else if (child.nodeName === 'BR') into.text += '\n';
    else {{
      if (child.nodeName === 'SPAN' && child.hasAttribute('title')) into.voices.push(child.getAttribute('title'));
      readFragment(child, into);
    }}
  }}
}}
function report() {{
  const files = {{}};
  for (const element of elements) {{
    const cues = [];
    for (const cue of Array.from(element.track.cues || [])) {{
      const shown = {{text: '', voices: []}};
      readFragment(cue.getCueAsHTML(), shown);
      cues.push({{start: cue.startTime, end: cue.endTime, text: shown.text, voices: shown.voices}});
    }}
    files[element.label] = {{event: outcome.get(element), cues}};
  }}
  const bytes = new TextEncoder().encode(JSON.stringify(files));
  document.getElementById('report').textContent =
    Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
}}
for (const element of elements) {{
  for (const event of ['load', 'error']) {{
    element.addEventListener(event, () => {{
      outcome.set(element, event);
      if (outcome.size === elements.length) report();
    }});
  }}
  element.track.mode = 'hidden';
}}
</script></body></html>
"#
    )
}

/// Serves fixed bodies, one request per connection. The tracks are fetched under the
/// page's origin rules, so page and tracks come from the same http origin rather than
/// file://, where track loading depends on browser policy.
struct StaticServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept_loop: Option<JoinHandle<()>>,
    requested: Arc<Mutex<Vec<String>>>,
}

/// Chromium opens a few connections per page (page, tracks, speculative preconnects);
/// anything beyond this means something is looping.
const MAX_CONNECTIONS: usize = 64;
const CONNECTION_IDLE_LIMIT: Duration = Duration::from_secs(10);

impl StaticServer {
    fn start(bodies: BTreeMap<String, (&'static str, Vec<u8>)>) -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requested = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(bodies);
        let accept_loop = {
            let stop = stop.clone();
            let requested = requested.clone();
            std::thread::spawn(move || {
                for _ in 0..MAX_CONNECTIONS {
                    let Ok((stream, _)) = listener.accept() else {
                        break;
                    };
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let bodies = bodies.clone();
                    let requested = requested.clone();
                    std::thread::spawn(move || answer(stream, &bodies, &requested));
                }
            })
        };
        StaticServer {
            addr,
            stop,
            accept_loop: Some(accept_loop),
            requested,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn requested(&self) -> Vec<String> {
        self.requested.lock().unwrap().clone()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // `accept` blocks; one more connection lets the loop see the stop flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(handle) = self.accept_loop.take() {
            let _ = handle.join();
        }
    }
}

fn answer(
    mut stream: TcpStream,
    bodies: &BTreeMap<String, (&'static str, Vec<u8>)>,
    requested: &Mutex<Vec<String>>,
) {
    let _ = stream.set_read_timeout(Some(CONNECTION_IDLE_LIMIT));
    let _ = stream.set_write_timeout(Some(CONNECTION_IDLE_LIMIT));
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    requested.lock().unwrap().push(path.clone());
    let (status, content_type, body): (&str, &str, &[u8]) = match bodies.get(&path) {
        Some((content_type, body)) => ("200 OK", content_type, body),
        None => ("404 Not Found", "text/plain", b"not found"),
    };
    let response_head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(response_head.as_bytes());
    let _ = stream.write_all(body);
}

fn read_with_chromium(files: &[WrittenFile]) -> Readings {
    let mut bodies = BTreeMap::new();
    bodies.insert(
        "tracks.html".to_string(),
        ("text/html; charset=utf-8", track_page(files).into_bytes()),
    );
    for file in files {
        bodies.insert(
            file.name.clone(),
            (
                "text/vtt; charset=utf-8",
                std::fs::read(&file.path).unwrap(),
            ),
        );
    }
    let server = StaticServer::start(bodies);
    // Virtual time is an upper bound on page time while it waits for the tracks.
    let output =
        vttiro_fixtures::chromium_dump_dom(&server.url("tracks.html"), 20_000, &["--mute-audio"]);
    let dom = String::from_utf8_lossy(&output.stdout);
    let report = dom
        .split_once("<pre id=\"report\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(report, _)| report.trim());
    let json = match report.and_then(decode_hex) {
        Some(json) => json,
        None => panic!(
            "Chromium reported no cues (exit {:?}, report {report:?}, requests {:?}); stderr:\n{}",
            output.status.code(),
            server.requested(),
            String::from_utf8_lossy(&output.stderr)
        ),
    };
    let parsed: Value = serde_json::from_slice(&json).unwrap();
    let mut readings = Readings::new();
    for file in files {
        let reading = &parsed[&file.name];
        let result = if reading["event"] != "load" {
            Err(format!("track fired {} instead of load", reading["event"]))
        } else {
            chromium_cues(&reading["cues"])
        };
        readings.insert(file.name.clone(), result);
    }
    readings
}

fn chromium_cues(cues: &Value) -> Result<Vec<ShownCue>, String> {
    let cues = cues.as_array().ok_or("no cue list")?;
    cues.iter()
        .map(|cue| {
            let voices: Vec<String> = cue["voices"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            if voices.len() > 1 {
                return Err(format!("cue with several voices: {cue}"));
            }
            Ok(ShownCue {
                start_ms: seconds_to_ms(&cue["start"])?,
                end_ms: seconds_to_ms(&cue["end"])?,
                text: cue["text"].as_str().ok_or("cue without text")?.to_string(),
                voice: voices.into_iter().next(),
            })
        })
        .collect()
}

/// `TextTrackCue` times are doubles in seconds; our millisecond times survive the
/// conversion exactly once rounded.
fn seconds_to_ms(seconds: &Value) -> Result<i64, String> {
    let seconds = seconds
        .as_f64()
        .ok_or_else(|| format!("time {seconds} is not a number"))?;
    Ok((seconds * 1000.0).round() as i64)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------
// webvtt-py

/// webvtt-py strips cue tags but leaves character references as written, so its text is
/// decoded with Python's `html.unescape`, which implements the HTML character references
/// that WebVTT cue text uses. `strict=True` makes a malformed block an error instead of
/// a silently dropped cue.
const WEBVTT_PY_READER: &str = r#"
import html, json, sys
import webvtt

def read(path):
    try:
        captions = webvtt.read(path, encoding="utf-8", strict=True).captions
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return {"cues": [
        {
            "start_ms": c.start_time.in_milliseconds(),
            "end_ms": c.end_time.in_milliseconds(),
            "text": html.unescape(c.text),
            "voice": None if c.voice is None else html.unescape(c.voice),
        }
        for c in captions
    ]}

json.dump({path: read(path) for path in sys.argv[1:]}, sys.stdout, ensure_ascii=True)
"#;

/// A venv holding the pinned webvtt-py, shared by every test run on the machine.
fn webvtt_py_python() -> PathBuf {
    vttiro_fixtures::python_venv(
        "webvtt-py-venv",
        &[&format!("webvtt-py=={WEBVTT_PY_VERSION}")],
    )
}

fn read_with_webvtt_py(files: &[WrittenFile]) -> Readings {
    let python = webvtt_py_python();
    let script_dir = tempfile::tempdir().unwrap();
    let script = script_dir.path().join("read_webvtt.py");
    std::fs::write(&script, WEBVTT_PY_READER).unwrap();
    let output = Command::new(&python)
        .arg(&script)
        .args(files.iter().map(|f| &f.path))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "webvtt-py reader failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    files
        .iter()
        .map(|file| {
            let reading = &parsed[file.path.to_str().unwrap()];
            let result = match reading["error"].as_str() {
                Some(error) => Err(error.to_string()),
                None => webvtt_py_cues(&reading["cues"]),
            };
            (file.name.clone(), result)
        })
        .collect()
}

fn webvtt_py_cues(cues: &Value) -> Result<Vec<ShownCue>, String> {
    let cues = cues.as_array().ok_or("no cue list")?;
    cues.iter()
        .map(|cue| {
            Ok(ShownCue {
                start_ms: cue["start_ms"].as_i64().ok_or("start is not an integer")?,
                end_ms: cue["end_ms"].as_i64().ok_or("end is not an integer")?,
                text: cue["text"].as_str().ok_or("cue without text")?.to_string(),
                voice: cue["voice"].as_str().map(str::to_string),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------

#[test]
fn headless_chromium_shows_our_webvtt_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path(), all_sets());
    assert_no_disagreements(disagreements(
        "Chromium",
        &files,
        &read_with_chromium(&files),
    ));
}

#[test]
fn webvtt_py_reads_our_webvtt_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path(), all_sets());
    assert_no_disagreements(disagreements(
        "webvtt-py",
        &files,
        &read_with_webvtt_py(&files),
    ));
}

#[test]
fn carriage_returns_in_cue_text_never_end_a_cue() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path(), vec![("carriage_returns", carriage_returns())]);
    let mut problems = disagreements("Chromium", &files, &read_with_chromium(&files));
    problems.extend(disagreements(
        "webvtt-py",
        &files,
        &read_with_webvtt_py(&files),
    ));
    assert_no_disagreements(problems);
}
