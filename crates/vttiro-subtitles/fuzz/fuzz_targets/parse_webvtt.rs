#![no_main]

use libfuzzer_sys::fuzz_target;
use vttiro_subtitles::{parse_webvtt, to_webvtt, validate_webvtt};

fuzz_target!(|data: &[u8]| {
    // Files reach the parser after a lossy UTF-8 decode, so fuzz through the same door.
    let text = String::from_utf8_lossy(data);
    let parsed = parse_webvtt(&text);
    assert_eq!(
        validate_webvtt(&text),
        parsed.as_ref().map(|_| ()).map_err(Clone::clone),
        "validate_webvtt and parse_webvtt disagree"
    );
    let Ok(cues) = parsed else { return };
    // What we accept we must be able to write back out unchanged: the writer is how users
    // fix up files (shift, merge) and our own output is checked with this parser.
    let written = to_webvtt(&cues);
    let reparsed = parse_webvtt(&written)
        .unwrap_or_else(|e| panic!("re-parsing our own output failed: {e}\n{written}"));
    assert_eq!(reparsed, cues, "round trip changed the cues\n{written}");
});
