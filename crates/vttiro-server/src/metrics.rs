//! Prometheus metrics for one process, rendered in the text exposition format at
//! `/metrics`. Names follow `vttiro_<noun>_<unit>[_total]`; labels are only ever drawn
//! from small fixed sets (route templates, methods, statuses, states, stages, engine and
//! error-code names), never ids, file names, tenants' text or keys.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use vttiro_jobs::QueueStats;

/// Request latencies, from a cache hit to a slow upload.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Job stages, from a VAD pass over a short clip to an hour of recognition.
const STAGE_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// Processing time over audio time: below 1 is faster than real time.
const RTF_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0,
];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Cumulative counts are computed when rendering; these are per bucket.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Default, Clone)]
struct Families {
    counters: BTreeMap<&'static str, BTreeMap<Labels, u64>>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
}

/// One process's counters, histograms and gauges.
pub struct Metrics {
    families: Mutex<Families>,
    workers: AtomicU64,
    busy_workers: AtomicI64,
    audio_ms: AtomicU64,
    /// The served certificate's notAfter (unix seconds); 0 when not serving TLS.
    tls_not_after: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            families: Mutex::new(Families::default()),
            workers: AtomicU64::new(0),
            busy_workers: AtomicI64::new(0),
            audio_ms: AtomicU64::new(0),
            tls_not_after: AtomicI64::new(0),
        }
    }
}

/// Names, help and types, in the order they are rendered.
const COUNTERS: &[(&str, &str)] = &[
    (
        "vttiro_http_requests_total",
        "HTTP requests answered, by route template, method and status.",
    ),
    (
        "vttiro_jobs_finished_total",
        "Job attempts that ended, by outcome (succeeded, failed, retried, cancelled, released).",
    ),
    (
        "vttiro_job_errors_total",
        "Failed job attempts, by error code.",
    ),
    (
        "vttiro_webhook_deliveries_total",
        "Webhook delivery attempts, by outcome (delivered, retried, abandoned).",
    ),
];
const HISTOGRAMS: &[(&str, &str)] = &[
    (
        "vttiro_http_request_duration_seconds",
        "HTTP request latency, by route template and method.",
    ),
    (
        "vttiro_job_stage_duration_seconds",
        "Time spent in each job stage, by stage and engine.",
    ),
    (
        "vttiro_job_realtime_factor",
        "Processing time over audio duration per job, by engine.",
    ),
    (
        "vttiro_model_load_seconds",
        "Time to load a model into memory (jobs that found it loaded count nothing), by engine.",
    ),
];

fn lock(metrics: &Metrics) -> std::sync::MutexGuard<'_, Families> {
    metrics
        .families
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// The certificate now served expires at `not_after` (unix seconds).
    pub fn set_tls_certificate_expiry(&self, not_after: i64) {
        self.tls_not_after.store(not_after, Ordering::Relaxed);
    }

    fn add(&self, name: &'static str, labels: Labels, by: u64) {
        *lock(self)
            .counters
            .entry(name)
            .or_default()
            .entry(labels)
            .or_default() += by;
    }

    fn observe(&self, name: &'static str, bounds: &'static [f64], labels: Labels, value: f64) {
        lock(self)
            .histograms
            .entry(name)
            .or_default()
            .entry(labels)
            .or_insert_with(|| Histogram::new(bounds))
            .observe(value);
    }

    /// `route` is the matched route template (`/v1/jobs/{id}`), never the raw path.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.add(
            "vttiro_http_requests_total",
            vec![
                ("route", route.to_string()),
                ("method", method.to_string()),
                ("status", status.to_string()),
            ],
            1,
        );
        self.observe(
            "vttiro_http_request_duration_seconds",
            HTTP_BUCKETS,
            vec![("route", route.to_string()), ("method", method.to_string())],
            took.as_secs_f64(),
        );
    }

    pub fn set_workers(&self, count: u64) {
        self.workers.store(count, Ordering::Relaxed);
    }

    pub fn worker_busy(&self, busy: bool) {
        self.busy_workers
            .fetch_add(if busy { 1 } else { -1 }, Ordering::Relaxed);
    }

    /// An attempt ended: `outcome` is the job's state after it (or `retried`/`released`).
    pub fn job_finished(&self, outcome: &str, error_code: Option<&str>) {
        self.add(
            "vttiro_jobs_finished_total",
            vec![("outcome", outcome.to_string())],
            1,
        );
        if let Some(code) = error_code {
            self.add(
                "vttiro_job_errors_total",
                vec![("code", code.to_string())],
                1,
            );
        }
    }

    /// Reads a successful run's summary: `engine`, `timings` (`*_ms` per stage) and
    /// `audio_ms`.
    pub fn job_summary(&self, summary: &Value) {
        let engine = summary["engine"].as_str().unwrap_or("unknown").to_string();
        let mut total_ms = 0.0;
        if let Some(timings) = summary["timings"].as_object() {
            for (key, value) in timings {
                let (Some(stage), Some(ms)) = (key.strip_suffix("_ms"), value.as_f64()) else {
                    continue;
                };
                if stage == "total" {
                    total_ms = ms;
                    continue;
                }
                self.observe(
                    "vttiro_job_stage_duration_seconds",
                    STAGE_BUCKETS,
                    vec![("stage", stage.to_string()), ("engine", engine.clone())],
                    ms / 1000.0,
                );
            }
        }
        if let Some(load_ms) = summary["model_load_ms"].as_f64() {
            self.observe(
                "vttiro_model_load_seconds",
                STAGE_BUCKETS,
                vec![("engine", engine.clone())],
                load_ms / 1000.0,
            );
        }
        if let Some(audio_ms) = summary["audio_ms"].as_u64().filter(|ms| *ms > 0) {
            self.audio_ms.fetch_add(audio_ms, Ordering::Relaxed);
            if total_ms > 0.0 {
                self.observe(
                    "vttiro_job_realtime_factor",
                    RTF_BUCKETS,
                    vec![("engine", engine)],
                    total_ms / audio_ms as f64,
                );
            }
        }
    }

    pub fn webhook_delivery(&self, outcome: &str) {
        self.add(
            "vttiro_webhook_deliveries_total",
            vec![("outcome", outcome.to_string())],
            1,
        );
    }

    /// The exposition text; `queue` (shared by every process on the database) gives the
    /// depth gauges.
    pub fn render(&self, queue: Option<&QueueStats>) -> String {
        let mut out = String::new();
        let families = lock(self).clone();
        for (name, help) in COUNTERS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in families.counters.get(name).into_iter().flatten() {
                let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
            }
        }
        for (name, help) in HISTOGRAMS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (labels, histogram) in families.histograms.get(name).into_iter().flatten() {
                let mut cumulative = 0;
                for (bound, count) in histogram.bounds.iter().zip(&histogram.counts) {
                    cumulative += count;
                    let le = format!("{bound}");
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {cumulative}",
                        render_labels(labels, Some(&le))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    render_labels(labels, Some("+Inf")),
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    render_labels(labels, None),
                    histogram.sum
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    render_labels(labels, None),
                    histogram.count
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP vttiro_audio_processed_seconds_total Audio transcribed by this process.\n# TYPE vttiro_audio_processed_seconds_total counter\nvttiro_audio_processed_seconds_total {}",
            self.audio_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "# HELP vttiro_tls_certificate_expiry_timestamp_seconds When the served TLS certificate expires (absent without TLS).\n# TYPE vttiro_tls_certificate_expiry_timestamp_seconds gauge"
        );
        let not_after = self.tls_not_after.load(Ordering::Relaxed);
        if not_after > 0 {
            let _ = writeln!(
                out,
                "vttiro_tls_certificate_expiry_timestamp_seconds {not_after}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP vttiro_workers Worker threads in this process, by state.\n# TYPE vttiro_workers gauge"
        );
        let total = self.workers.load(Ordering::Relaxed) as i64;
        let busy = self.busy_workers.load(Ordering::Relaxed).clamp(0, total);
        let _ = writeln!(out, "vttiro_workers{{state=\"busy\"}} {busy}");
        let _ = writeln!(out, "vttiro_workers{{state=\"idle\"}} {}", total - busy);
        if let Some(stats) = queue {
            let _ = writeln!(
                out,
                "# HELP vttiro_queue_jobs Jobs in the queue, by state.\n# TYPE vttiro_queue_jobs gauge"
            );
            for (state, count) in [
                ("queued", stats.queued),
                ("running", stats.running),
                ("succeeded", stats.succeeded),
                ("failed", stats.failed),
                ("cancelled", stats.cancelled),
            ] {
                let _ = writeln!(out, "vttiro_queue_jobs{{state=\"{state}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "# HELP vttiro_queue_oldest_job_age_seconds Age of the oldest queued job (0 when none).\n# TYPE vttiro_queue_oldest_job_age_seconds gauge\nvttiro_queue_oldest_job_age_seconds {}",
                stats.oldest_queued_ms.unwrap_or(0).max(0) as f64 / 1000.0
            );
        }
        out
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
