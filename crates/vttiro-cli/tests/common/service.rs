//! Running the real `vttiro serve` / `vttiro worker` binary on 127.0.0.1 for tests: the
//! tiny.en model store, no user configuration, stderr kept for assertions, and the
//! process killed when the test ends however it ends.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Process {
    pub child: Child,
    /// `http://127.0.0.1:PORT` for `serve`; empty for `worker`.
    pub base: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Starts `vttiro <args> --data-dir <data>` and waits until it says it is up.
pub fn start(args: &[&str], data: &Path) -> Process {
    start_with_env(args, data, &[])
}

/// [`start`] with extra environment variables (`VTTIRO_LOG`, ...).
pub fn start_with_env(args: &[&str], data: &Path, env: &[(&str, &str)]) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vttiro"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("VTTIRO_MODEL_DIR", super::asr_store())
        .env("XDG_CONFIG_HOME", data.join("no-user-config"))
        .env_remove("VTTIRO_MODEL")
        .env_remove("VTTIRO_ENGINE")
        .env_remove("VTTIRO_WEBHOOK_SECRET")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vttiro");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut base = None;
    for line in lines.by_ref().map_while(Result::ok) {
        log.lock().unwrap().push(line.clone());
        if let Some((_, rest)) = line.split_once("listening on ") {
            base = Some(rest.split_whitespace().next().unwrap().to_string());
            break;
        }
        if line.starts_with("vttiro worker:") {
            base = Some(String::new());
            break;
        }
    }
    let base = base.unwrap_or_else(|| {
        panic!(
            "vttiro {args:?} never came up:\n{}",
            log.lock().unwrap().join("\n")
        )
    });
    // Keep draining stderr so the process never blocks on a full pipe.
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Process { child, base, log }
}

impl Process {
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, then the exit code (None when killed by a signal).
    pub fn terminate(&mut self) -> Option<i32> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    /// A failed assertion must not leave a server running.
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// `vttiro keys create` on the data directory; returns the token.
pub fn create_key(data: &Path, tenant: &str, role: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_vttiro"))
        .args([
            "keys",
            "create",
            "--tenant",
            tenant,
            "--role",
            role,
            "--data-dir",
        ])
        .arg(data)
        .output()
        .expect("run vttiro keys create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// [`get_json`] with `Authorization: Bearer <token>`.
pub fn get_json_as(url: &str, token: &str) -> (u16, Value) {
    let mut response = agent()
        .get(url)
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

pub fn get_json(url: &str) -> (u16, Value) {
    let mut response = agent().get(url).call().unwrap();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// `POST {base}/v1/jobs` with `audio` as the file and `options` as JSON.
pub fn submit(base: &str, audio: &[u8], options: &Value) -> (u16, Value) {
    submit_as(base, None, audio, options)
}

/// [`submit`] with `Authorization: Bearer <token>` when given.
pub fn submit_as(base: &str, token: Option<&str>, audio: &[u8], options: &Value) -> (u16, Value) {
    let boundary = "vttiro-service-test";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"options\"\r\n\r\n{options}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"audio.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(audio);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut request = agent().post(&format!("{base}/v1/jobs")).header(
        "content-type",
        &format!("multipart/form-data; boundary={boundary}"),
    );
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.send(&body[..]).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls the job until it is final; panics after `limit`.
pub fn wait_final(base: &str, id: &str, limit: Duration) -> Value {
    wait_final_as(base, None, id, limit)
}

/// [`wait_final`] with `Authorization: Bearer <token>` when given.
pub fn wait_final_as(base: &str, token: Option<&str>, id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let url = format!("{base}/v1/jobs/{id}");
        let (_, job) = match token {
            Some(token) => get_json_as(&url, token),
            None => get_json(&url),
        };
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(started.elapsed() < limit, "job {id} still {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each job's durable history holds exactly one `succeeded` event.
pub fn assert_each_succeeded_once(base: &str, ids: &[String]) {
    for id in ids {
        let mut events = agent()
            .get(&format!("{base}/v1/jobs/{id}/events"))
            .call()
            .unwrap();
        let text = events.body_mut().read_to_string().unwrap();
        let successes = text.lines().filter(|l| *l == "event: succeeded").count();
        assert_eq!(successes, 1, "job {id}:\n{text}");
    }
}
