use vttiro_core::ErrorCode;
use vttiro_subtitles::{parse_webvtt, validate_webvtt, Cue, VttError};

#[test]
fn parses_a_file_written_by_another_tool() {
    // CRLF line ends, a byte-order mark, header metadata, NOTE/STYLE blocks, identifiers, cue
    // settings, timestamps without hours, inline tags and entities.
    let text = "\u{feff}WEBVTT - exported\r\nKind: captions\r\nLanguage: en\r\n\r\n\
STYLE\r\n::cue { color: yellow }\r\n\r\n\
NOTE this is a comment\r\nspanning two lines\r\n\r\n\
intro\r\n00:01.000 --> 00:04.250 align:start position:10%\r\n<v.loud Ana Lee>Hello <i>there</i>,\r\nfriends &amp; family!\r\n\r\n\
00:00:04.250 --> 00:00:06.000\r\nNo <c.yellow>speaker</c> here&nbsp;now\r\n\r\n\
3\r\n01:00:00.000 --> 01:00:01.500\r\n<v Ben>Much later</v>\r\n";
    let cues = parse_webvtt(text).unwrap();
    assert_eq!(
        cues,
        vec![
            Cue {
                start_ms: 1000,
                end_ms: 4250,
                lines: vec!["Hello there,".into(), "friends & family!".into()],
                speaker: Some("Ana Lee".into()),
            },
            Cue {
                start_ms: 4250,
                end_ms: 6000,
                lines: vec!["No speaker here\u{a0}now".into()],
                speaker: None,
            },
            Cue {
                start_ms: 3_600_000,
                end_ms: 3_601_500,
                lines: vec!["Much later".into()],
                speaker: Some("Ben".into()),
            },
        ]
    );
}

#[test]
fn header_only_file_has_no_cues() {
    assert_eq!(parse_webvtt("WEBVTT\n").unwrap(), vec![]);
    assert_eq!(parse_webvtt("WEBVTT").unwrap(), vec![]);
}

fn error_of(text: &str) -> VttError {
    let error = validate_webvtt(text).unwrap_err();
    assert_eq!(parse_webvtt(text).unwrap_err(), error);
    error
}

#[test]
fn missing_header_is_unsupported_input() {
    for text in [
        "",
        "1\n00:00:01,000 --> 00:00:02,000\nSRT, not VTT\n",
        "WEBVTTX\n",
        "webvtt\n",
    ] {
        let error = error_of(text);
        assert!(
            matches!(error, VttError::MissingHeader { line: 1, .. }),
            "{text:?}: {error}"
        );
        assert_eq!(error.code(), ErrorCode::InvalidSubtitles);
        assert!(error.to_string().starts_with("line 1: "), "{error}");
    }
}

#[test]
fn bad_timestamps_name_the_line_and_value() {
    let text =
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nfine\n\n00:00:03.000 --> 00:00:4.000\nbroken\n";
    let error = error_of(text);
    assert_eq!(
        error,
        VttError::BadTimestamp {
            line: 6,
            value: "00:00:4.000".into()
        }
    );
    assert_eq!(error.line(), 6);
    assert_eq!(error.code(), ErrorCode::InvalidSubtitles);
    assert_eq!(
        error.to_string(),
        "line 6: invalid timestamp \"00:00:4.000\", expected [hh:]mm:ss.ttt"
    );
    let comma = error_of("WEBVTT\n\n00:00:01,000 --> 00:00:02.000\nsrt style\n");
    assert_eq!(comma.line(), 3);
}

#[test]
fn end_must_come_after_start() {
    let error = error_of("WEBVTT\n\n00:00:05.000 --> 00:00:05.000\nzero length\n");
    assert_eq!(
        error,
        VttError::EndNotAfterStart {
            line: 3,
            start: "00:00:05.000".into(),
            end: "00:00:05.000".into()
        }
    );
    assert_eq!(
        error_of("WEBVTT\n\n00:00:05.000 --> 00:00:04.000\nbackwards\n").line(),
        3
    );
}

#[test]
fn starts_must_not_decrease() {
    let text = "WEBVTT\n\n00:00:05.000 --> 00:00:06.000\nsecond\n\nid\n00:00:01.000 --> 00:00:02.000\nfirst\n";
    let error = error_of(text);
    assert_eq!(
        error,
        VttError::StartsBeforePrevious {
            line: 7,
            start: "00:00:01.000".into(),
            previous: "00:00:05.000".into()
        }
    );
    // Equal starts are allowed (two cues shown together).
    validate_webvtt(
        "WEBVTT\n\n00:00:05.000 --> 00:00:06.000\na\n\n00:00:05.000 --> 00:00:07.000\nb\n",
    )
    .unwrap();
}

#[test]
fn cues_need_text() {
    let error = error_of("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n\nstray text\n");
    assert_eq!(error, VttError::EmptyCue { line: 3 });
    assert_eq!(
        error_of("WEBVTT\n\n00:00:01.000 --> 00:00:02.000").line(),
        3
    );
}

#[test]
fn blocks_must_have_timing_lines() {
    let error = error_of("WEBVTT\n\nidentifier\nnot a timing line\n");
    assert_eq!(
        error,
        VttError::ExpectedTiming {
            line: 4,
            found: "not a timing line".into()
        }
    );
    assert_eq!(error_of("WEBVTT\n\nlonely line\n").line(), 3);
}

#[test]
fn a_missing_blank_line_between_cues_is_reported() {
    let text =
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nfirst\n00:00:02.000 --> 00:00:03.000\nsecond\n";
    assert_eq!(error_of(text), VttError::ArrowInText { line: 5 });
}
