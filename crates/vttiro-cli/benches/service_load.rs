//! Load on `vttiro serve` over loopback: 1,000 jobs submitted at once from 1,000 client
//! threads against a queue capped at 800, so some must be refused. Every submission must
//! be accepted (202) or cleanly refused (429 with Retry-After); then every accepted job
//! must finish. Prints API latency percentiles for submissions and for status reads made
//! while the workers are busy, the time to drain, and the server's peak RSS.
//!
//! `cargo bench -p vttiro-cli --bench service_load` (env `LOAD_JOBS`, `LOAD_MAX_QUEUED`,
//! `LOAD_WORKERS` override the defaults). The jobs run the real pipeline with tiny.en on a
//! 2-second clip, so the API is measured while transcription competes for the CPU.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::Value;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(label: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{label}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        latencies.len(),
        percentile(&latencies, 50.0).as_secs_f64() * 1000.0,
        percentile(&latencies, 99.0).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn multipart(audio: &[u8]) -> (String, Vec<u8>) {
    let boundary = "vttiro-load-bench";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"options\"\r\n\r\n{{\"formats\": [\"vtt\"], \"language\": \"en\"}}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(audio);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn main() {
    let jobs = env_or("LOAD_JOBS", 1000);
    let max_queued = env_or("LOAD_MAX_QUEUED", 800);
    let workers = env_or("LOAD_WORKERS", 2);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = vttiro_fixtures::tiny_en_model()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut server = Command::new(env!("CARGO_BIN_EXE_vttiro"))
        .args(["serve", "--open", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(["--workers", &workers.to_string()])
        .args(["--max-queued", &max_queued.to_string()])
        .env("VTTIRO_MODEL_DIR", &store)
        .env("XDG_CONFIG_HOME", data.join("no-user-config"))
        .env("VTTIRO_LOG", "warn")
        .env_remove("VTTIRO_MODEL")
        .env_remove("VTTIRO_ENGINE")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vttiro serve");
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let base = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("listening on ")
                .map(|(_, rest)| rest.split_whitespace().next().unwrap().to_string())
        })
        .expect("the server says where it listens");
    std::thread::spawn(move || for _ in lines {});

    let jfk = vttiro_media::decode(&vttiro_fixtures::jfk_wav(), &Default::default()).unwrap();
    let clip = vttiro_media::encode_wav(&jfk.samples[..32_000]);
    let (content_type, body) = multipart(&clip);
    let body = Arc::new(body);

    // Every client thread fires at the same moment.
    let barrier = Arc::new(Barrier::new(jobs));
    let submitted_at = Instant::now();
    let clients: Vec<_> = (0..jobs)
        .map(|_| {
            let (barrier, body, content_type, url) = (
                barrier.clone(),
                body.clone(),
                content_type.clone(),
                format!("{base}/v1/jobs"),
            );
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(120)))
                    .build()
                    .into();
                barrier.wait();
                let started = Instant::now();
                let mut response = agent
                    .post(&url)
                    .header("content-type", &content_type)
                    .send(&body[..])
                    .expect("the server answers");
                let took = started.elapsed();
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").is_some();
                let job: Value =
                    serde_json::from_str(&response.body_mut().read_to_string().unwrap_or_default())
                        .unwrap_or(Value::Null);
                (
                    status,
                    retry_after,
                    took,
                    job["id"].as_str().map(str::to_string),
                )
            })
        })
        .collect();
    let results: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let submit_wall = submitted_at.elapsed();
    let accepted: Vec<String> = results
        .iter()
        .filter(|r| r.0 == 202)
        .filter_map(|r| r.3.clone())
        .collect();
    let refused = results.iter().filter(|r| r.0 == 429).count();
    let unclean: Vec<_> = results
        .iter()
        .filter(|r| !(r.0 == 202 || (r.0 == 429 && r.1)))
        .map(|r| r.0)
        .collect();
    assert!(
        unclean.is_empty(),
        "answers other than 202 or 429+Retry-After: {unclean:?}"
    );
    println!(
        "submitted {jobs} at once in {:.2} s: {} accepted, {refused} refused with 429 + Retry-After",
        submit_wall.as_secs_f64(),
        accepted.len()
    );
    report(
        "POST /v1/jobs latency",
        results.iter().map(|r| r.2).collect(),
    );

    // Status reads while the workers drain the queue.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut reads = Vec::new();
    let drain_started = Instant::now();
    let mut pending: Vec<String> = accepted.clone();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let started = Instant::now();
            let mut response = agent.get(&format!("{base}/v1/jobs/{id}")).call().unwrap();
            reads.push(started.elapsed());
            let job: Value =
                serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
            match job["state"].as_str() {
                Some("succeeded") => {}
                Some("failed" | "cancelled") => panic!("job {id} did not succeed: {job}"),
                _ => still.push(id),
            }
        }
        pending = still;
        assert!(
            drain_started.elapsed() < Duration::from_secs(3600),
            "{} jobs still unfinished after an hour",
            pending.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "all {} accepted jobs succeeded; drained in {:.1} s ({:.2} jobs/s with {workers} workers)",
        accepted.len(),
        drain_started.elapsed().as_secs_f64(),
        accepted.len() as f64 / drain_started.elapsed().as_secs_f64()
    );
    report("GET /v1/jobs/{id} latency under load", reads);
    match peak_rss_kib(server.id()) {
        Some(kib) => println!("server peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("server peak RSS: unavailable (no /proc)"),
    }
    let _ = server.kill();
    let _ = server.wait();
}
