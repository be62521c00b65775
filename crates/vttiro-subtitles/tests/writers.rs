mod common;

use common::*;
use serde_json::{json, Value};
use vttiro_core::{ErrorCode, Word};
use vttiro_subtitles::{
    layout, parse_webvtt, to_json, to_srt, to_txt, to_webvtt, validate_webvtt, Cue, LayoutRules,
    OutputFormat,
};

fn sample_cues() -> Vec<Cue> {
    vec![
        cue(480, 2055, &["Good evening, everyone."], None),
        cue(
            2405,
            5895,
            &[
                "Tonight we are going to talk",
                "about Tom & Jerry <3 -> fun",
            ],
            Some("Dr. Ana <Host>"),
        ),
        cue(3_723_045, 3_725_500, &["", "Over an hour in."], Some("Bob")),
        cue(3_726_000, 3_727_000, &["  "], None),
    ]
}

#[test]
fn webvtt_output_is_exactly_as_expected() {
    let expected = "WEBVTT

00:00:00.480 --> 00:00:02.055
Good evening, everyone.

00:00:02.405 --> 00:00:05.895
<v Dr. Ana &lt;Host&gt;>Tonight we are going to talk
about Tom &amp; Jerry &lt;3 -&gt; fun

01:02:03.045 --> 01:02:05.500
<v Bob>Over an hour in.
";
    assert_eq!(to_webvtt(&sample_cues()), expected);
    validate_webvtt(expected).unwrap();
}

#[test]
fn srt_output_is_exactly_as_expected() {
    let expected = "1
00:00:00,480 --> 00:00:02,055
Good evening, everyone.

2
00:00:02,405 --> 00:00:05,895
Dr. Ana <Host>: Tonight we are going to talk
about Tom & Jerry <3 -> fun

3
01:02:03,045 --> 01:02:05,500
Bob: Over an hour in.

";
    assert_eq!(to_srt(&sample_cues()), expected);
}

#[test]
fn webvtt_round_trips_through_the_parser() {
    let written = sample_cues();
    let parsed = parse_webvtt(&to_webvtt(&written)).unwrap();
    let expected: Vec<Cue> = vec![
        written[0].clone(),
        written[1].clone(),
        cue(3_723_045, 3_725_500, &["Over an hour in."], Some("Bob")),
    ];
    assert_eq!(parsed, expected);
}

#[test]
fn laid_out_transcripts_round_trip_and_validate() {
    let rules = LayoutRules::default();
    let plain = passage_transcript();
    let timed = timed_words(
        "Is it safe? Yes, as long as you stay behind the <red> line & wait.",
        500,
        &[],
    );
    let diarized = transcript_from_words(
        timed
            .iter()
            .enumerate()
            .map(|(k, (t, s, e))| word(t, *s, *e, Some(if k < 3 { "Guard 1" } else { "Guide" })))
            .collect(),
    );
    for transcript in [plain, diarized] {
        let cues = layout(&transcript, &rules);
        let vtt = to_webvtt(&cues);
        validate_webvtt(&vtt).unwrap();
        assert_eq!(parse_webvtt(&vtt).unwrap(), cues);
    }
}

#[test]
fn plain_text_is_one_line_per_segment() {
    let text = to_txt(&passage_transcript());
    assert_eq!(
        text,
        "Good evening, everyone.
Tonight we are going to talk about the river project, which has taken almost three years to finish.
The new bridge opens to traffic on Monday morning, and the old ferry will stop running at the end of the month.
Thank you all for coming.
"
    );
}

#[test]
fn plain_text_with_speakers_is_one_paragraph_per_turn() {
    let words = vec![
        word("Ready?", 0, 400, Some("Ana")),
        word("Almost.", 600, 1000, Some("Ben")),
        word("Two", 1100, 1300, Some("Ben")),
        word("minutes.", 1300, 1800, Some("Ben")),
        word("Fine.", 2000, 2300, Some("Ana")),
    ];
    assert_eq!(
        to_txt(&transcript_from_words(words)),
        "Ana: Ready?\nBen: Almost. Two minutes.\nAna: Fine.\n"
    );
}

#[test]
fn json_carries_words_times_probabilities_and_extra() {
    let mut transcript = passage_transcript();
    transcript.segments[0].words[0].speaker = Some("Host".into());
    let extra = json!({
        "timings": {"decode_ms": 812, "asr_ms": 20411},
        "model": "this must not replace the transcript's model",
    });
    let text = to_json(&transcript, &extra);
    assert!(
        text.ends_with("}\n") && text.contains("\n  \""),
        "pretty printed"
    );
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["language"], "en");
    assert_eq!(value["model"], "large-v3-turbo");
    assert_eq!(value["duration_ms"], transcript.duration_ms);
    assert_eq!(value["text"], PASSAGE);
    assert_eq!(value["timings"]["asr_ms"], 20411);
    let segments = value["segments"].as_array().unwrap();
    assert_eq!(segments.len(), transcript.segments.len());
    let first_word = &segments[0]["words"][0];
    assert_eq!(first_word["text"], " Good");
    assert_eq!(first_word["start_ms"], 480);
    assert_eq!(first_word["end_ms"], 780);
    assert!((first_word["probability"].as_f64().unwrap() - 0.93).abs() < 1e-6);
    assert_eq!(first_word["speaker"], "Host");
    assert!(segments[0]["words"][1].get("speaker").is_none());
    let words_in_json: usize = segments
        .iter()
        .map(|s| s["words"].as_array().unwrap().len())
        .sum();
    assert_eq!(words_in_json, 48);

    let with_scalar: Value = serde_json::from_str(&to_json(&transcript, &json!("run-7"))).unwrap();
    assert_eq!(with_scalar["extra"], "run-7");
    let without: Value = serde_json::from_str(&to_json(&transcript, &Value::Null)).unwrap();
    assert!(without.get("extra").is_none());
}

#[test]
fn output_format_parses_names_and_reports_bad_ones() {
    for (name, format) in [
        ("vtt", OutputFormat::Vtt),
        ("WebVTT", OutputFormat::Vtt),
        (".srt", OutputFormat::Srt),
        ("JSON", OutputFormat::Json),
        (" txt ", OutputFormat::Txt),
        ("text", OutputFormat::Txt),
    ] {
        assert_eq!(name.parse::<OutputFormat>().unwrap(), format, "{name:?}");
    }
    for format in OutputFormat::ALL {
        assert_eq!(format.extension().parse::<OutputFormat>().unwrap(), format);
        assert_eq!(format.to_string(), format.extension());
    }
    let error = "docx".parse::<OutputFormat>().unwrap_err();
    assert!(error.to_string().contains("\"docx\""), "{error}");
    assert_eq!(error.code(), ErrorCode::InvalidArgument);
}

#[test]
fn render_produces_each_format() {
    let transcript = passage_transcript();
    let rules = LayoutRules::default();
    let extra = json!({"timings": {"total_ms": 1}});
    let vtt = OutputFormat::Vtt.render(&transcript, &rules, &extra);
    validate_webvtt(&vtt).unwrap();
    assert_eq!(parse_webvtt(&vtt).unwrap(), layout(&transcript, &rules));
    let srt = OutputFormat::Srt.render(&transcript, &rules, &extra);
    assert!(srt.starts_with("1\n00:00:00,480 --> "));
    let json: Value =
        serde_json::from_str(&OutputFormat::Json.render(&transcript, &rules, &extra)).unwrap();
    assert_eq!(json["timings"]["total_ms"], 1);
    assert_eq!(
        OutputFormat::Txt.render(&transcript, &rules, &extra),
        to_txt(&transcript)
    );
}

#[test]
fn words_with_markup_characters_survive_layout_and_webvtt() {
    let words: Vec<Word> = ["if", "a", "<", "b", "&&", "c", "-->", "d"]
        .iter()
        .enumerate()
        .map(|(k, t)| word(t, k as i64 * 300, k as i64 * 300 + 250, None))
        .collect();
    let transcript = transcript_from_words(words);
    let cues = layout(&transcript, &LayoutRules::default());
    let vtt = to_webvtt(&cues);
    assert_eq!(
        vtt.lines().nth(3),
        Some("if a &lt; b &amp;&amp; c --&gt; d"),
        "{vtt}"
    );
    let parsed = parse_webvtt(&vtt).unwrap();
    assert_eq!(parsed[0].lines, ["if a < b && c --> d"]);
}

#[test]
fn webvtt_header_metadata_note_style_and_identifiers() {
    use vttiro_subtitles::{to_webvtt_with, VttOptions};
    let cues = vec![
        cue(0, 1500, &["Hello."], Some("Ana \"the\" Host")),
        cue(1600, 3000, &["Hi."], Some("Bob")),
        cue(3100, 4000, &["Bye."], Some("Ana \"the\" Host")),
    ];
    let vtt = to_webvtt_with(
        &cues,
        &VttOptions {
            kind: Some("captions".into()),
            language: Some("en".into()),
            note: vec!["source: talk.mp4".into(), "model: tiny.en --> int8".into()],
            cue_ids: true,
            speaker_colours: true,
        },
    );
    let expected = "WEBVTT
Kind: captions
Language: en

NOTE
source: talk.mp4
model: tiny.en -> int8

STYLE
::cue(v[voice=\"Ana \\\"the\\\" Host\"]) { color: #ffffff; }
::cue(v[voice=\"Bob\"]) { color: #e69f00; }

1
00:00:00.000 --> 00:00:01.500
<v Ana \"the\" Host>Hello.

2
00:00:01.600 --> 00:00:03.000
<v Bob>Hi.

3
00:00:03.100 --> 00:00:04.000
<v Ana \"the\" Host>Bye.
";
    assert_eq!(vtt, expected);
    // Identifiers, metadata, NOTE and STYLE blocks do not disturb a parser.
    let parsed = parse_webvtt(&vtt).unwrap();
    assert_eq!(parsed, cues);
}

#[test]
fn srt_speakers_as_prefix_dash_or_omitted() {
    use vttiro_subtitles::{to_srt_with, SrtSpeakers};
    let cues = vec![
        cue(0, 1000, &["Hello."], Some("Ana")),
        cue(1100, 2000, &["Still me."], Some("Ana")),
        cue(2100, 3000, &["Hi."], Some("Bob")),
    ];
    let dash = to_srt_with(&cues, SrtSpeakers::Dash);
    assert_eq!(
        dash,
        "1\n00:00:00,000 --> 00:00:01,000\n- Hello.\n\n2\n00:00:01,100 --> 00:00:02,000\nStill me.\n\n3\n00:00:02,100 --> 00:00:03,000\n- Hi.\n\n"
    );
    let prefix = to_srt_with(&cues, SrtSpeakers::Prefix);
    assert!(prefix.contains("\nAna: Still me.\n") && prefix.contains("\nBob: Hi.\n"));
    let omitted = to_srt_with(&cues, SrtSpeakers::Omit);
    assert!(!omitted.contains("Ana") && !omitted.contains("- "));
}

#[test]
fn rttm_has_one_line_per_speaker_turn() {
    let mut transcript = transcript_from_words(vec![
        word("Hello", 0, 400, Some("spk 1")),
        word("there.", 400, 900, Some("spk 1")),
        word("Hi!", 1200, 1500, Some("B")),
        word("Again.", 2000, 2600, Some("spk 1")),
        word("unlabelled", 3000, 3300, None),
    ]);
    transcript.duration_ms = 4000;
    let rttm = vttiro_subtitles::to_rttm(&transcript, "my talk");
    assert_eq!(
        rttm,
        "SPEAKER my_talk 1 0.000 0.900 <NA> <NA> spk_1 <NA> <NA>\n\
         SPEAKER my_talk 1 1.200 0.300 <NA> <NA> B <NA> <NA>\n\
         SPEAKER my_talk 1 2.000 0.600 <NA> <NA> spk_1 <NA> <NA>\n"
    );
    let json: Value = serde_json::from_str(&to_json(&transcript, &json!({}))).unwrap();
    assert_eq!(json["speakers"], json!(["spk 1", "B"]));
}
