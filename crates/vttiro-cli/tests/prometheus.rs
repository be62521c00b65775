//! A real Prometheus server (Debian's `prometheus` package, on 127.0.0.1) scrapes
//! `vttiro serve`'s `/metrics` while it transcribes the JFK sample, and the test reads the
//! job counter back through Prometheus' own query API: the exposition is one Prometheus
//! parses and stores, not only one our tests read.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::service::{agent, create_key, start, submit_as, wait_final_as};
use serde_json::{json, Value};

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prometheus' answer to an instant query.
fn answer(base: &str, promql: &str) -> Value {
    let mut response = agent()
        .get(&format!("{base}/api/v1/query"))
        .query("query", promql)
        .call()
        .unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null)
}

/// The first sample of an instant query, once Prometheus has one.
fn query(base: &str, promql: &str) -> Option<f64> {
    answer(base, promql)["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_scrapes_the_service_and_sees_a_finished_job() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Authentication on, as deployed: Prometheus scrapes with a `metrics` key.
    let scraper = create_key(&data, "ops", "metrics");
    let submitter = create_key(&data, "acme", "submitter");
    let mut server = start(
        &["serve", "--listen", "127.0.0.1:0", "--workers", "1"],
        &data,
    );
    let target = server.base.trim_start_matches("http://").to_string();
    let config = dir.path().join("prometheus.yml");
    let credentials = dir.path().join("scrape.key");
    std::fs::write(&credentials, &scraper).unwrap();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: vttiro\n    metrics_path: /metrics\n    authorization:\n      type: Bearer\n      credentials_file: {}\n    static_configs:\n      - targets: ['{target}']\n",
            credentials.display()
        ),
    )
    .unwrap();
    let port = vttiro_fixtures::free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run prometheus (Debian package `prometheus`, installed by scripts/deps.sh)");
    let _prometheus = Prometheus(child);
    let prometheus = format!("http://127.0.0.1:{port}");

    let audio = std::fs::read(vttiro_fixtures::jfk_wav()).unwrap();
    let (status, job) = submit_as(
        &server.base,
        Some(&submitter),
        &audio,
        &json!({ "formats": ["vtt"] }),
    );
    assert_eq!(status, 202, "{job}");
    let done = wait_final_as(
        &server.base,
        Some(&submitter),
        job["id"].as_str().unwrap(),
        Duration::from_secs(180),
    );
    assert_eq!(done["state"], "succeeded", "{done}");

    let started = Instant::now();
    let (up, finished, audio_seconds) = loop {
        let up = query(&prometheus, "up{job=\"vttiro\"}");
        let finished = query(
            &prometheus,
            "vttiro_jobs_finished_total{job=\"vttiro\",outcome=\"succeeded\"}",
        );
        let audio_seconds = query(&prometheus, "vttiro_audio_processed_seconds_total");
        if finished == Some(1.0) {
            break (up, finished, audio_seconds);
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "Prometheus never saw the job: up={up:?} finished={finished:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(up, Some(1.0), "the scrape target is up");
    assert_eq!(finished, Some(1.0));
    let audio_seconds = audio_seconds.unwrap();
    assert!((10.5..11.5).contains(&audio_seconds), "{audio_seconds}");

    // Every query on the shipped dashboard is one Prometheus accepts, over these metrics.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy/monitoring/grafana-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            // Grafana's interval variable, as Grafana would fill it for a 1 s scrape.
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m");
            let reply = answer(&prometheus, &expr);
            assert_eq!(
                reply["status"], "success",
                "{}: {expr}: {reply}",
                panel["title"]
            );
        }
    }
    // A rate needs two scrapes of a series; the request counters get them within seconds.
    let started = Instant::now();
    loop {
        let traffic = answer(
            &prometheus,
            "sum by (route) (rate(vttiro_http_requests_total[1m]))",
        );
        if !traffic["data"]["result"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{traffic}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(server.terminate(), Some(0));
}
