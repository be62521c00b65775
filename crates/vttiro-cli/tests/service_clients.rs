//! The service checked by clients no one here wrote: the official `openai` Python SDK
//! transcribes the JFK sample through `POST /v1/audio/transcriptions` with only its
//! `base_url` changed, and a receiver built on the `standardwebhooks` library verifies
//! the signed notification of a job run by a separate `vttiro worker` process behind an
//! API-only `vttiro serve`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::service::{self, start};
use serde_json::{json, Value};

const SDK_SCRIPT: &str = r#"
import json, sys
import openai
from openai import OpenAI

base, audio, key = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    OpenAI(base_url=base + "/v1", api_key="vt_not_a_real_key", max_retries=0).models.list()
    out = {"wrong_key": None}
except openai.AuthenticationError as e:
    out = {"wrong_key": {"status": e.status_code, "body": e.body}}
client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=300)
out["models"] = [m.id for m in client.models.list()]

def create(**kwargs):
    with open(audio, "rb") as f:
        return client.audio.transcriptions.create(file=f, **kwargs)

out["vtt"] = create(model="whisper-1", response_format="vtt")
verbose = create(model="tiny.en", response_format="verbose_json",
                 timestamp_granularities=["word", "segment"])
out["verbose"] = verbose.model_dump()
out["json"] = create(model="whisper-1").text
out["srt"] = create(model="whisper-1", response_format="srt", language="en")
try:
    create(model="no-such-model")
    out["bad_model"] = None
except openai.BadRequestError as e:
    out["bad_model"] = {"status": e.status_code, "body": e.body}
print(json.dumps(out))
"#;

#[test]
fn the_official_openai_sdk_transcribes_through_vttiro() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Authentication on, as deployed: the SDK's api_key is a vttiro key.
    let key = service::create_key(&data, "acme", "submitter");
    let mut server = start(
        &["serve", "--listen", "127.0.0.1:0", "--workers", "1"],
        &data,
    );
    let python = common::pyenv::service_python();
    let output = Command::new(python)
        .arg("-c")
        .arg(SDK_SCRIPT)
        .arg(&server.base)
        .arg(vttiro_fixtures::jfk_wav())
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log_text()
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();

    let models: Vec<&str> = out["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        models.contains(&"whisper-1") && models.contains(&"tiny.en"),
        "{models:?}"
    );

    let vtt = out["vtt"].as_str().unwrap();
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    assert!(vtt.contains("what your country can do for you"), "{vtt}");

    let verbose = &out["verbose"];
    assert_eq!(verbose["language"], "english");
    let duration = verbose["duration"].as_f64().unwrap();
    assert!((10.5..11.5).contains(&duration), "{duration}");
    assert!(verbose["text"]
        .as_str()
        .unwrap()
        .contains("ask not what your country can do for you"));
    let segments = verbose["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    let words = verbose["words"].as_array().unwrap();
    assert!(words.len() >= 20, "{words:?}");
    let starts: Vec<f64> = words.iter().map(|w| w["start"].as_f64().unwrap()).collect();
    assert!(starts.windows(2).all(|p| p[0] <= p[1]), "{starts:?}");
    assert!(words
        .iter()
        .all(|w| w["end"].as_f64() >= w["start"].as_f64()));
    assert!(words.iter().any(|w| w["word"] == "country"), "{words:?}");

    assert!(
        out["json"]
            .as_str()
            .unwrap()
            .starts_with("And so my fellow Americans"),
        "{}",
        out["json"]
    );
    let srt = out["srt"].as_str().unwrap();
    assert!(srt.starts_with("1\n00:00:00,"), "{srt}");

    let wrong = &out["wrong_key"];
    assert_eq!(wrong["status"], 401, "{wrong}");
    assert_eq!(wrong["body"]["code"], "unauthenticated", "{wrong}");

    let bad = &out["bad_model"];
    assert_eq!(bad["status"], 400, "{bad}");
    assert_eq!(bad["body"]["code"], "unknown_model", "{bad}");

    // Synchronous requests leave no jobs or files behind.
    let (_, jobs) = service::get_json_as(&format!("{}/v1/jobs", server.base), &key);
    assert_eq!(jobs["jobs"], json!([]), "{jobs}");
    assert_eq!(server.terminate(), Some(0));
}

const RECEIVER_SCRIPT: &str = r#"
import json, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from standardwebhooks.webhooks import Webhook

secret_path = sys.argv[1]
received = []

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        with open(secret_path) as f:
            secret = f.read().strip()
        try:
            payload = Webhook(secret).verify(body, dict(self.headers))
            received.append({"verified": True, "payload": payload, "id": self.headers["webhook-id"]})
        except Exception as e:
            received.append({"verified": False, "error": repr(e)})
        self.send_response(204)
        self.end_headers()
        threading.Thread(target=self.server.shutdown).start()

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Hook)
print(server.server_address[1], flush=True)
timer = threading.Timer(240, server.shutdown)
timer.start()
server.serve_forever()
timer.cancel()
print(json.dumps(received), flush=True)
"#;

#[test]
fn an_api_only_server_and_a_separate_worker_run_a_job_with_a_verified_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut api = start(
        &[
            "serve",
            "--open",
            "--listen",
            "127.0.0.1:0",
            "--no-workers",
            "--allow-internal-urls",
        ],
        &data,
    );
    assert!(api.log_text().contains("API only"), "{}", api.log_text());
    // Readiness of an API-only process does not depend on a model.
    let (status, _) = service::get_json(&format!("{}/readyz", api.base));
    assert_eq!(status, 200);

    let mut receiver = Command::new(common::pyenv::service_python())
        .arg("-c")
        .arg(RECEIVER_SCRIPT)
        .arg(data.join("webhook-secret"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let port = lines.next().unwrap().unwrap();

    let audio = std::fs::read(vttiro_fixtures::jfk_wav()).unwrap();
    let (status, job) = service::submit(
        &api.base,
        &audio,
        &json!({ "formats": ["vtt"], "webhook_url": format!("http://127.0.0.1:{port}/hook") }),
    );
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    // No worker yet: the job waits.
    std::thread::sleep(Duration::from_millis(500));
    let (_, waiting) = service::get_json(&format!("{}/v1/jobs/{id}", api.base));
    assert_eq!(waiting["state"], "queued");

    let mut worker = start(
        &["worker", "--workers", "1", "--allow-internal-urls"],
        &data,
    );
    let done = service::wait_final(&api.base, &id, Duration::from_secs(180));
    assert_eq!(done["state"], "succeeded", "{done}\n{}", worker.log_text());

    let received: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let _ = receiver.wait();
    assert_eq!(received[0]["verified"], true, "{received}");
    assert_eq!(received[0]["payload"]["type"], "job.succeeded");
    assert_eq!(received[0]["payload"]["data"]["id"], json!(id));
    assert!(received[0]["id"].as_str().unwrap().starts_with("msg_"));

    assert_eq!(worker.terminate(), Some(0));
    assert_eq!(api.terminate(), Some(0));
}
