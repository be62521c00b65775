//! Property tests: the writers, the WebVTT parser and the layout engine checked on many
//! generated inputs rather than a handful of examples, so that odd characters, extreme
//! times and unusual word streams are covered by the guarantees each function documents.

use proptest::collection::vec;
use proptest::prelude::*;
use vttiro_core::{Segment, Transcript, Word};
use vttiro_subtitles::{display_width, layout, parse_webvtt, to_srt, to_webvtt, Cue, LayoutRules};

const HUNDRED_HOURS_MS: i64 = 100 * 3_600_000;

fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// A time anywhere up to 100 hours, with the ends of the range drawn often: two-digit hours
/// overflowing into three is where a formatter or parser would go wrong.
fn time_ms() -> impl Strategy<Value = i64> {
    prop_oneof![
        1 => Just(0),
        1 => Just(HUNDRED_HOURS_MS),
        1 => (HUNDRED_HOURS_MS - 3_600_000)..=HUNDRED_HOURS_MS,
        6 => 0..=HUNDRED_HOURS_MS,
    ]
}

/// Two different times, in order.
fn time_span() -> impl Strategy<Value = (i64, i64)> {
    (time_ms(), time_ms())
        .prop_filter("a cue needs a duration", |(a, b)| a != b)
        .prop_map(|(a, b)| (a.min(b), a.max(b)))
}

/// Cue text mixing plain words with everything a writer must escape or keep apart: markup
/// and entity lookalikes, timing arrows, non-ASCII (combining marks, CJK, emoji,
/// bidirectional marks), Unicode spaces and embedded line breaks.
fn text_line() -> impl Strategy<Value = String> {
    let letters = vec(proptest::char::range('a', 'z'), 1..8).prop_map(String::from_iter);
    let special = prop::sample::select(vec![
        " ",
        " ",
        "  ",
        "\t",
        "&",
        "<",
        ">",
        "&amp;",
        "&lt;",
        "&nbsp;",
        "&bogus;",
        "<i>",
        "</v>",
        "<v Bob>",
        "-->",
        "--",
        "->",
        "NOTE",
        "WEBVTT",
        "00:00:01.000",
        "é",
        "e\u{301}",
        "日本語",
        "🙂",
        "👩\u{200d}👧",
        "\u{a0}",
        "\u{3000}",
        "\u{200e}",
        "\u{feff}",
        "\n",
        "\r",
        "\r\n",
        "\n\n",
    ]);
    vec(
        prop_oneof![3 => letters, 2 => special.prop_map(String::from)],
        0..8,
    )
    .prop_map(|parts| parts.concat())
}

fn speaker() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        3 => text_line().prop_map(Some),
    ]
}

/// What the WebVTT writer promises to put on screen for a cue: embedded line breaks (LF,
/// CRLF or a lone CR) split lines and blank lines are dropped, because a blank line would
/// end the cue.
fn displayed_lines(cue: &Cue) -> Vec<String> {
    cue.lines
        .iter()
        .flat_map(|line| line.split(['\r', '\n']))
        .filter(|line| !line.trim().is_empty())
        .map(String::from)
        .collect()
}

/// The speaker as a voice annotation can carry it: one line, trimmed, absent when empty.
fn displayed_speaker(cue: &Cue) -> Option<String> {
    cue.speaker
        .as_deref()
        .map(|s| s.replace(['\r', '\n'], " ").trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Ordered, non-overlapping cues of one or two lines each.
fn cue_list() -> impl Strategy<Value = Vec<Cue>> {
    vec(
        (0..3_000i64, 1..8_000i64, vec(text_line(), 1..=2), speaker()),
        0..8,
    )
    .prop_map(|specs| {
        let mut end = 0;
        specs
            .into_iter()
            .map(|(gap, duration, lines, speaker)| {
                let start_ms = end + gap;
                end = start_ms + duration;
                Cue {
                    start_ms,
                    end_ms: end,
                    lines,
                    speaker,
                }
            })
            .collect()
    })
}

/// `HH:MM:SS,mmm` exactly as SubRip writes it (hours may grow past two digits).
fn srt_clock(text: &str) -> i64 {
    let (clock, millis) = text
        .split_once(',')
        .unwrap_or_else(|| panic!("{text:?} has no ',' before the milliseconds"));
    let fields: Vec<&str> = clock.split(':').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    assert!(
        fields.len() == 3
            && fields[0].len() >= 2
            && fields[1].len() == 2
            && fields[2].len() == 2
            && millis.len() == 3
            && fields.iter().all(|f| digits(f))
            && digits(millis),
        "{text:?} is not HH:MM:SS,mmm"
    );
    let number = |s: &str| s.parse::<i64>().unwrap();
    let (hours, minutes, seconds) = (number(fields[0]), number(fields[1]), number(fields[2]));
    assert!(minutes < 60 && seconds < 60, "{text:?} is out of range");
    ((hours * 60 + minutes) * 60 + seconds) * 1000 + number(millis)
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn webvtt_timestamps_read_back_to_the_millisecond((start_ms, end_ms) in time_span()) {
        let cue = Cue { start_ms, end_ms, lines: vec!["x".into()], speaker: None };
        let parsed = parse_webvtt(&to_webvtt(std::slice::from_ref(&cue))).unwrap();
        prop_assert_eq!(parsed, vec![cue]);
    }

    #[test]
    fn srt_numbers_cues_from_one_and_writes_exact_times(
        spans in vec(time_span(), 1..6),
        texts in vec(text_line(), 6),
        speakers in vec(speaker(), 6),
    ) {
        let cues: Vec<Cue> = spans
            .iter()
            .zip(texts.iter().zip(&speakers))
            .map(|(&(start_ms, end_ms), (text, speaker))| Cue {
                start_ms,
                end_ms,
                lines: vec![text.clone()],
                speaker: speaker.clone(),
            })
            .collect();
        // Cues with nothing to show are skipped without using up a number.
        let shown: Vec<&Cue> = cues.iter().filter(|c| !displayed_lines(c).is_empty()).collect();
        let srt = to_srt(&cues);
        let blocks: Vec<&str> = srt.split_terminator("\n\n").collect();
        prop_assert_eq!(blocks.len(), shown.len(), "{:?}", srt);
        for (k, (block, cue)) in blocks.iter().zip(&shown).enumerate() {
            let lines: Vec<&str> = block.split('\n').collect();
            let number = (k + 1).to_string();
            prop_assert_eq!(lines[0], number.as_str());
            let (start, end) = lines[1].split_once(" --> ").unwrap();
            prop_assert_eq!((srt_clock(start), srt_clock(end)), (cue.start_ms, cue.end_ms));
            let mut expected = displayed_lines(cue);
            if let Some(name) = cue.speaker.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                expected[0] = format!("{}: {}", name.replace(['\r', '\n'], " "), expected[0]);
            }
            prop_assert_eq!(&lines[2..], expected.as_slice());
        }
    }

    #[test]
    fn webvtt_round_trip_keeps_times_text_and_speaker(cues in cue_list()) {
        let expected: Vec<Cue> = cues
            .iter()
            .map(|c| Cue {
                start_ms: c.start_ms,
                end_ms: c.end_ms,
                lines: displayed_lines(c),
                speaker: displayed_speaker(c),
            })
            .filter(|c| !c.lines.is_empty())
            .collect();
        let written = to_webvtt(&cues);
        let parsed = parse_webvtt(&written);
        prop_assert_eq!(parsed, Ok(expected), "{:?}", written);
    }
}

/// One generated word: its text, whether the engine marked it with a leading space (Whisper
/// style; a piece without one continues the previous word), silence before it, its length
/// and its speaker.
#[derive(Debug, Clone)]
struct WordSpec {
    text: String,
    leading_space: bool,
    gap_ms: i64,
    duration_ms: i64,
    /// `Some(speaker)` starts a new turn; diarization assigns speakers in turns, not per word.
    turn: Option<Option<&'static str>>,
    new_segment: bool,
}

fn word_text() -> impl Strategy<Value = String> {
    let letters = |len: std::ops::Range<usize>| {
        vec(proptest::char::range('a', 'z'), len).prop_map(String::from_iter)
    };
    let punctuation =
        prop::sample::select(vec!["", "", "", "", ".", ",", "?", "!", ";", "…", ".\""]);
    prop_oneof![
        8 => (letters(1..10), punctuation).prop_map(|(w, p)| w + p),
        // Words that bind to what follows and abbreviations that do not end sentences.
        2 => prop::sample::select(vec!["the", "a", "of", "to", "Mr.", "J.", "e.g."]).prop_map(String::from),
        // Longer than a line on their own.
        1 => letters(43..90),
        1 => prop::sample::select(vec![
            "日本語", "です。", "e\u{301}te\u{301}", "👩\u{200d}👩\u{200d}👧", "naïve", "،",
        ])
        .prop_map(String::from),
        // 50 characters on screen, 100 code points: counts graphemes, not chars.
        1 => Just("e\u{301}".repeat(50)),
    ]
}

fn word_spec() -> impl Strategy<Value = WordSpec> {
    (
        word_text(),
        prop::bool::weighted(0.85),
        prop_oneof![6 => 0..200i64, 2 => 200..1_500i64, 1 => Just(0)],
        prop_oneof![8 => 0..900i64, 1 => 3_000..9_000i64],
        prop_oneof![
            6 => Just(None),
            1 => prop::sample::select(vec![None, Some("A"), Some("B")]).prop_map(Some),
        ],
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(text, leading_space, gap_ms, duration_ms, turn, new_segment)| WordSpec {
                text,
                leading_space,
                gap_ms,
                duration_ms,
                turn,
                new_segment,
            },
        )
}

fn transcript(specs: &[WordSpec], language: &str, trailing_ms: Option<i64>) -> Transcript {
    let mut segments: Vec<Segment> = Vec::new();
    let mut t = 0;
    let mut speaker: Option<&str> = None;
    for (k, spec) in specs.iter().enumerate() {
        let start_ms = t + spec.gap_ms;
        t = start_ms + spec.duration_ms;
        if let Some(next_speaker) = spec.turn {
            speaker = next_speaker;
        }
        let word = Word {
            text: if spec.leading_space {
                format!(" {}", spec.text)
            } else {
                spec.text.clone()
            },
            start_ms,
            end_ms: t,
            probability: 0.9,
            speaker: speaker.map(String::from),
        };
        if k == 0 || spec.new_segment {
            segments.push(Segment {
                id: segments.len() as u32,
                start_ms,
                end_ms: t,
                text: String::new(),
                words: Vec::new(),
                avg_logprob: -0.2,
                no_speech_prob: 0.01,
                compression_ratio: 1.5,
                temperature: 0.0,
            });
        }
        let segment = segments.last_mut().unwrap();
        segment.end_ms = t;
        segment.text.push_str(&word.text);
        segment.words.push(word);
    }
    Transcript {
        language: language.into(),
        language_probability: 0.9,
        duration_ms: trailing_ms.map_or(0, |extra| t + extra),
        model: "generated".into(),
        segments,
    }
}

/// Reads each cue line back against the transcript's words in order (between two words a
/// line has a space, or nothing for a piece glued to the previous word) and returns, per
/// cue and line, the indices of the words shown. Fails if a word is missing, repeated,
/// reordered or altered, or if text is left over.
fn words_on_lines(cues: &[Cue], words: &[&Word]) -> Result<Vec<Vec<Vec<usize>>>, String> {
    let mut next = 0;
    let mut out = Vec::new();
    for (c, cue) in cues.iter().enumerate() {
        let mut cue_lines = Vec::new();
        for line in &cue.lines {
            let mut rest = line.as_str();
            let mut shown = Vec::new();
            while !rest.is_empty() {
                if !shown.is_empty() {
                    rest = rest.strip_prefix(' ').unwrap_or(rest);
                }
                let word = words
                    .get(next)
                    .ok_or_else(|| format!("cue {c} shows {rest:?} after the last word"))?;
                rest = rest.strip_prefix(word.text.trim()).ok_or_else(|| {
                    format!(
                        "cue {c}: expected word {next} {:?}, found {rest:?}",
                        word.text
                    )
                })?;
                shown.push(next);
                next += 1;
            }
            if shown.is_empty() {
                return Err(format!("cue {c} has an empty line"));
            }
            cue_lines.push(shown);
        }
        out.push(cue_lines);
    }
    if next != words.len() {
        return Err(format!("words {next}.. are not shown"));
    }
    Ok(out)
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn layout_keeps_every_documented_guarantee(
        specs in vec(word_spec(), 1..70),
        language in prop::sample::select(vec!["en", "ja"]),
        trailing_ms in prop::option::of(0..3_000i64),
    ) {
        let transcript = transcript(&specs, language, trailing_ms);
        let rules = LayoutRules::default();
        let cues = layout(&transcript, &rules);
        let words: Vec<&Word> = transcript.words().collect();
        let placed = words_on_lines(&cues, &words).map_err(TestCaseError::fail)?;

        for (c, (cue, lines)) in cues.iter().zip(&placed).enumerate() {
            prop_assert!(
                (1..=rules.max_lines).contains(&cue.lines.len()),
                "cue {} has {} lines: {:?}", c, cue.lines.len(), cue
            );
            for (line, shown) in cue.lines.iter().zip(lines) {
                prop_assert!(
                    display_width(line) <= rules.max_chars_per_line || shown.len() == 1,
                    "cue {} line of {} characters holds {} words: {:?}",
                    c, display_width(line), shown.len(), line
                );
            }
            let cue_words: Vec<&Word> = lines.iter().flatten().map(|&w| words[w]).collect();
            prop_assert!(
                cue_words.iter().all(|w| w.speaker == cue.speaker),
                "cue {} mixes speakers: {:?}", c, cue
            );
            for pair in cue_words.windows(2) {
                prop_assert!(
                    pair[1].start_ms - pair[0].end_ms <= rules.split_pause_ms,
                    "cue {} runs across a {} ms pause", c, pair[1].start_ms - pair[0].end_ms
                );
            }
            prop_assert!(cue.start_ms < cue.end_ms, "cue {} has no duration: {:?}", c, cue);
            prop_assert!(cue.duration_ms() <= rules.max_cue_ms, "cue {} too long: {:?}", c, cue);
            let first_word_start = cue_words[0].start_ms;
            let last_word_end = cue_words.iter().map(|w| w.end_ms).max().unwrap();
            prop_assert!(
                cue.start_ms >= first_word_start,
                "cue {} starts at {} before its first word at {}", c, cue.start_ms, first_word_start
            );
            // A cue lingers at most max_linger_ms after its last word; the only way past that
            // is the one-millisecond minimum duration of a cue whose words take no time.
            prop_assert!(
                cue.end_ms <= (last_word_end + rules.max_linger_ms).max(cue.start_ms + 1),
                "cue {} ends at {}, more than {} ms after its last word at {}",
                c, cue.end_ms, rules.max_linger_ms, last_word_end
            );
            if let Some(next) = cues.get(c + 1) {
                prop_assert!(
                    cue.end_ms <= next.start_ms,
                    "cue {} overlaps the next: {:?} {:?}", c, cue, next
                );
            }
        }
    }
}
