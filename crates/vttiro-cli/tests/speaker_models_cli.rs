//! `vttiro models` with speaker models, end to end on Resemblyzer's real GE2E checkpoint
//! (fetched from its pinned PyPI wheel): import, path, list, verify, rm, and the one-line
//! errors with their exit codes.

mod common;

use std::path::Path;
use std::process::Output;

use common::{stderr, stdout};

fn vttiro(args: &[&str], cwd: &Path, store: &Path) -> Output {
    common::vttiro_in(args, cwd, store)
}

/// A failure: the expected exit code and exactly one `error:` line that contains `needle`.
fn assert_fails(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "`{needle}` missing from: {err}");
}

#[test]
fn a_speaker_model_imports_resolves_lists_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("models");
    let checkpoint = vttiro_fixtures::resemblyzer_pretrained();
    let checkpoint = checkpoint.to_str().unwrap();

    let o = vttiro(
        &["models", "import", checkpoint, "--name", "ge2e"],
        d,
        &store,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("as speaker model ge2e (ge2e)"),
        "{}",
        stderr(&o)
    );

    let o = vttiro(&["models", "path", "ge2e"], d, &store);
    assert!(o.status.success(), "{}", stderr(&o));
    let installed = store.join("speakers/ge2e/model.safetensors");
    assert_eq!(stdout(&o).trim(), installed.to_str().unwrap());
    assert!(installed.is_file());

    let o = vttiro(&["models", "list"], d, &store);
    assert!(o.status.success(), "{}", stderr(&o));
    let listing = stdout(&o);
    let (whisper, speakers) = listing
        .split_once("speaker models")
        .expect("a speaker section");
    assert!(
        whisper.lines().any(|l| l.starts_with("tiny.en ")),
        "{listing}"
    );
    assert!(!whisper.contains("ge2e"), "{listing}");
    let row = |name: &str| {
        speakers
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in {listing}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let ge2e = row("ge2e");
    assert!(ge2e.contains(&"yes".to_owned()), "{ge2e:?}");
    assert!(ge2e.last().unwrap().starts_with("import:"), "{ge2e:?}");
    let resnet = row("wespeaker-resnet34");
    assert!(resnet.contains(&"no".to_owned()) && resnet.contains(&"onnx".to_owned()));
    assert!(row("campplus").contains(&"no".to_owned()));

    let o = vttiro(&["models", "verify", "ge2e"], d, &store);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).trim_end().ends_with("model.safetensors"),
        "{}",
        stdout(&o)
    );

    // Errors: one line naming the input and the reason, with the model exit codes.
    let o = vttiro(
        &["models", "import", checkpoint, "--name", "ge2e"],
        d,
        &store,
    );
    assert_fails(&o, 2, "already installed");
    let garbage = d.join("garbage.pt");
    std::fs::write(&garbage, b"\x80\x02\x8a\x0anot really a checkpoint").unwrap();
    let o = vttiro(
        &[
            "models",
            "import",
            garbage.to_str().unwrap(),
            "--name",
            "ge2e-broken",
        ],
        d,
        &store,
    );
    assert_fails(&o, 24, "garbage.pt is not a usable PyTorch checkpoint");
    assert!(!store.join("speakers/ge2e-broken").exists());
    let o = vttiro(&["models", "path", "wespeaker-resnet34"], d, &store);
    assert_fails(&o, 21, "vttiro models pull wespeaker-resnet34");
    let o = vttiro(&["models", "pull", "ge2e", "--format", "ggml"], d, &store);
    assert_fails(&o, 2, "--format ggml");
    let o = vttiro(
        &[
            "models", "import", checkpoint, "--name", "x", "--to", "ggml",
        ],
        d,
        &store,
    );
    assert_fails(&o, 2, "speaker model");

    // Pulling what is installed touches nothing.
    let o = vttiro(&["models", "pull", "ge2e"], d, &store);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("already installed"), "{}", stderr(&o));

    let o = vttiro(&["models", "rm", "ge2e"], d, &store);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!store.join("speakers/ge2e").exists());
    let o = vttiro(&["models", "path", "ge2e"], d, &store);
    assert_fails(&o, 21, "vttiro models pull ge2e");
}
