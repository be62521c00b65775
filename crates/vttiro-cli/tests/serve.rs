//! `vttiro serve` end to end: the real binary on 127.0.0.1 transcribes an uploaded JFK
//! sample with the local model through the jobs API, exits cleanly on SIGTERM, and finds
//! its jobs again after a restart.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Server {
    child: Child,
    base: String,
}

fn start(data: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vttiro"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--data-dir",
        ])
        .arg(data)
        .env("VTTIRO_MODEL_DIR", common::asr_store())
        .env("XDG_CONFIG_HOME", data.join("no-user-config"))
        .env_remove("VTTIRO_MODEL")
        .env_remove("VTTIRO_ENGINE")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vttiro serve");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let base = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("listening on ")
                .map(|(_, rest)| rest.split_whitespace().next().unwrap().to_string())
        })
        .expect("the server says where it listens");
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

impl Drop for Server {
    /// A failed assertion must not leave a server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn get_json(url: &str) -> (u16, Value) {
    let mut response = agent().get(url).call().unwrap();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn terminate(server: &mut Server) -> Option<i32> {
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_transcribes_an_upload_and_keeps_its_jobs_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start(&data);

    let audio = std::fs::read(vttiro_fixtures::jfk_wav()).unwrap();
    let boundary = "vttiro-serve-test";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"options\"\r\n\r\n{{\"formats\": [\"vtt\", \"json\"], \"language\": \"en\"}}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"jfk.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&audio);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut response = agent()
        .post(&format!("{}/v1/jobs", server.base))
        .header(
            "content-type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .send(&body[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let job: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    let id = job["id"].as_str().unwrap().to_string();

    let started = Instant::now();
    let done = loop {
        let (_, job) = get_json(&format!("{}/v1/jobs/{id}", server.base));
        match job["state"].as_str() {
            Some("succeeded") => break job,
            Some("failed") => panic!("job failed: {job}"),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(180), "still {job}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        done["result"]["formats"],
        serde_json::json!(["vtt", "json"])
    );
    assert_eq!(done["result"]["summary"]["model"], "tiny.en");

    let mut vtt = agent()
        .get(&format!("{}/v1/jobs/{id}/result?format=vtt", server.base))
        .call()
        .unwrap();
    let text = vtt.body_mut().read_to_string().unwrap();
    assert!(text.starts_with("WEBVTT"), "{text}");
    assert!(text.contains("00:00:00.310 --> "), "{text}");
    assert!(text.contains("what your country can do for you"), "{text}");

    assert_eq!(terminate(&mut server), Some(0));

    // A restarted server on the same data directory still has the job and its result.
    let server2 = &mut start(&data);
    let (status, job) = get_json(&format!("{}/v1/jobs/{id}", server2.base));
    assert_eq!((status, job["state"].as_str()), (200, Some("succeeded")));
    let (status, result) = get_json(&format!("{}/v1/jobs/{id}/result?format=json", server2.base));
    assert_eq!(status, 200);
    assert_eq!(result["model"], "tiny.en");
    assert_eq!(terminate(server2), Some(0));
}
