//! `schemathesis` (PyPI) — a property-based API fuzzer no one here wrote — reads the real
//! `vttiro serve`'s `/openapi.json` and sends every operation generated requests, valid and
//! invalid, checking that nothing answers 5xx and that every status, content type, header
//! and body is one the document promises. It checks the document against the server as
//! much as the server against the document.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::service;

/// Examples per operation: enough to reach every documented refusal, small enough for
/// well under three minutes on two cores.
const MAX_EXAMPLES: &str = "100";
/// Fixed so that a failure can be rerun exactly.
const SEED: &str = "20240611";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,response_headers_conformance";
/// The run's bound; schemathesis is killed past it.
const DEADLINE: Duration = Duration::from_secs(300);

#[test]
fn schemathesis_finds_no_server_errors_and_no_departures_from_the_document() {
    let python = common::pyenv::service_python();
    let dir = tempfile::tempdir().unwrap();
    let server = service::start(
        &[
            "serve",
            "--open",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
        ],
        &dir.path().join("data"),
    );
    let location = format!("{}/openapi.json", server.base);
    let args = [
        "-m",
        "schemathesis.cli",
        "run",
        location.as_str(),
        "--checks",
        CHECKS,
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "1",
        // Nothing written to the working directory or read from an earlier run.
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
    ];
    let mut child = Command::new(&python)
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    // Read both pipes while waiting, so a long report never blocks the fuzzer.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let report = format!(
        "{} {}\n{out}\n{err}\n--- server log ---\n{}",
        python.display(),
        args.join(" "),
        server.log_text()
    );
    let Some(status) = status else {
        panic!("schemathesis ran past {DEADLINE:?}:\n{report}");
    };
    assert!(
        status.success(),
        "schemathesis failed ({status}):\n{report}"
    );
    eprintln!(
        "schemathesis passed in {:.0?}:\n{}",
        started.elapsed(),
        out.lines()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
