//! Authentication, roles, tenancy, rate limits, quotas, the audit trail and retention,
//! over HTTP against the real router, queue and store.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use vttiro_auth::{NewKey, Role};
use vttiro_core::ErrorCode;
use vttiro_jobs::{JobQueue, ManualClock, NewJob, QueuePolicy, SqliteQueue};
use vttiro_server::*;

/// Writes each format as text that names the job, and says the audio was one minute long.
struct MinuteRunner;

impl JobRunner for MinuteRunner {
    fn run(
        &self,
        request: &RunRequest<'_>,
        _context: &mut dyn RunContext,
    ) -> Result<RunOutput, RunFailure> {
        Ok(RunOutput {
            files: request
                .formats
                .iter()
                .map(|f| {
                    (
                        f.clone(),
                        format!("transcript of {}", request.job_id).into_bytes(),
                    )
                })
                .collect(),
            summary: json!({"engine": "test", "audio_ms": 60_000, "timings": {"total_ms": 1}}),
        })
    }
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn key(service: &Service, tenant: &str, role: Role) -> String {
    service.key(tenant, role)
}

fn key_with(service: &Service, tenant: &str, role: Role, edit: impl FnOnce(&mut NewKey)) -> String {
    service.key_with(tenant, role, edit)
}

fn call(service: &Service, verb: &str, path: &str, token: Option<&str>) -> Reply {
    let headers: Vec<(&str, String)> = token.map(bearer).into_iter().collect();
    send(verb, &service.url(path), &headers, Vec::new())
}

fn submit_as(service: &Service, token: &str) -> Reply {
    let (mut headers, body) = multipart(&[], &wav(1));
    headers.push(bearer(token));
    send("POST", &service.url("/v1/jobs"), &headers, body)
}

fn wait_succeeded(service: &Service, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if service.queue.get(id).unwrap().state == vttiro_jobs::JobState::Succeeded {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("job {id} did not succeed");
}

fn code(reply: &Reply) -> String {
    serde_json::from_slice::<Value>(&reply.body).unwrap_or(Value::Null)["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn each_role_may_call_exactly_its_endpoints() {
    let service = Service::start_secured(ServerConfig::default(), 1, Arc::new(MinuteRunner), None);
    let admin = key(&service, "acme", Role::Admin);
    let submitter = key(&service, "acme", Role::Submitter);
    let reader = key(&service, "acme", Role::Reader);
    let metrics = key(&service, "acme", Role::Metrics);
    let created: Value = serde_json::from_slice(&submit_as(&service, &submitter).body).unwrap();
    let job = created["id"].as_str().unwrap().to_string();
    wait_succeeded(&service, &job);

    // (verb, path, which of admin/submitter/reader/metrics may call it)
    let matrix: Vec<(&str, String, [bool; 4])> = vec![
        ("GET", "/metrics".into(), [true, false, false, true]),
        ("GET", "/v1/jobs".into(), [true, true, true, false]),
        ("GET", format!("/v1/jobs/{job}"), [true, true, true, false]),
        (
            "GET",
            format!("/v1/jobs/{job}/result?format=vtt"),
            [true, true, true, false],
        ),
        (
            "GET",
            format!("/v1/jobs/{job}/events"),
            [true, true, true, false],
        ),
        ("GET", "/v1/models".into(), [true, true, true, false]),
        (
            "POST",
            "/v1/jobs/job_none/cancel".into(),
            [true, true, false, false],
        ),
        (
            "DELETE",
            "/v1/jobs/job_none".into(),
            [true, true, false, false],
        ),
        ("GET", "/v1/keys".into(), [true, false, false, false]),
        (
            "DELETE",
            "/v1/keys/key_none".into(),
            [true, false, false, false],
        ),
        ("GET", "/v1/audit".into(), [true, false, false, false]),
        (
            "GET",
            "/v1/audit/verify".into(),
            [true, false, false, false],
        ),
        (
            "GET",
            "/v1/tenants/acme/export".into(),
            [true, true, true, false],
        ),
    ];
    for (verb, path, allowed) in &matrix {
        for (token, may) in [&admin, &submitter, &reader, &metrics]
            .into_iter()
            .zip(allowed)
        {
            let reply = call(&service, verb, path, Some(token));
            if *may {
                assert!(
                    reply.status != 401 && reply.status != 403,
                    "{verb} {path} refused a role that may: {} {}",
                    reply.status,
                    reply.text()
                );
            } else {
                assert_eq!(reply.status, 403, "{verb} {path}: {}", reply.text());
                assert_eq!(code(&reply), "forbidden");
            }
        }
        let anonymous = call(&service, verb, path, None);
        assert_eq!(anonymous.status, 401, "{verb} {path} without credentials");
        assert_eq!(code(&anonymous), "unauthenticated");
        assert!(anonymous
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")));
    }
    // Submitting: submitters and admins only.
    assert_eq!(submit_as(&service, &admin).status, 202);
    assert_eq!(submit_as(&service, &reader).status, 403);
    assert_eq!(submit_as(&service, &metrics).status, 403);
    // The probes and the API's description need nothing.
    for path in ["/healthz", "/readyz", "/openapi.json", "/docs"] {
        assert_eq!(call(&service, "GET", path, None).status, 200, "{path}");
    }
}

#[test]
fn tenants_never_see_each_others_jobs() {
    let service = Service::start_secured(ServerConfig::default(), 1, Arc::new(MinuteRunner), None);
    let acme = key(&service, "acme", Role::Submitter);
    let globex = key(&service, "globex", Role::Submitter);
    let admin = key(&service, "ops", Role::Admin);
    let created: Value = serde_json::from_slice(&submit_as(&service, &acme).body).unwrap();
    let job = created["id"].as_str().unwrap().to_string();
    assert_eq!(service.queue.get(&job).unwrap().tenant, "acme");
    wait_succeeded(&service, &job);

    let missing = call(
        &service,
        "GET",
        "/v1/jobs/job_does_not_exist",
        Some(&globex),
    );
    for (verb, path) in [
        ("GET", format!("/v1/jobs/{job}")),
        ("GET", format!("/v1/jobs/{job}/result")),
        ("GET", format!("/v1/jobs/{job}/events")),
        ("POST", format!("/v1/jobs/{job}/cancel")),
        ("DELETE", format!("/v1/jobs/{job}")),
    ] {
        let reply = call(&service, verb, &path, Some(&globex));
        assert_eq!(reply.status, 404, "{verb} {path}: {}", reply.text());
        // Word for word what a missing job gets, but for the id.
        let message = |r: &Reply| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["error"]["message"]
                .as_str()
                .unwrap()
                .replace(&job, "ID")
                .replace("job_does_not_exist", "ID")
        };
        assert_eq!(message(&reply), message(&missing), "{verb} {path}");
    }
    let listed: Value =
        serde_json::from_slice(&call(&service, "GET", "/v1/jobs", Some(&globex)).body).unwrap();
    assert_eq!(listed["jobs"], json!([]));
    assert_eq!(
        call(&service, "GET", "/v1/tenants/acme/export", Some(&globex)).status,
        404
    );
    // The job survived the other tenant's attempts, and its owner and admins see it.
    assert_eq!(
        call(&service, "GET", &format!("/v1/jobs/{job}"), Some(&acme)).status,
        200
    );
    assert_eq!(
        call(&service, "GET", &format!("/v1/jobs/{job}"), Some(&admin)).status,
        200
    );
    let all: Value =
        serde_json::from_slice(&call(&service, "GET", "/v1/jobs", Some(&admin)).body).unwrap();
    assert_eq!(all["jobs"].as_array().unwrap().len(), 1);
    let export = call(&service, "GET", "/v1/tenants/acme/export", Some(&acme));
    assert_eq!(export.status, 200);
    let lines: Vec<Value> = export
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let job_line = lines
        .iter()
        .find(|l| l["type"] == "job")
        .expect("the job is exported");
    assert_eq!(job_line["job"]["id"], job);
    assert_eq!(job_line["results"]["vtt"], format!("transcript of {job}"));
    assert!(lines.iter().any(|l| l["type"] == "key"));
    assert!(lines
        .iter()
        .any(|l| l["type"] == "audit" && l["entry"]["action"] == "job.create"));
    assert!(
        !export.text().contains(&acme) && !export.text().contains(&globex),
        "an export never holds a token"
    );
    assert_eq!(
        call(&service, "DELETE", &format!("/v1/jobs/{job}"), Some(&acme)).status,
        204
    );
}

#[test]
fn revoked_expired_and_forged_keys_are_refused() {
    let service = Service::start_secured(ServerConfig::default(), 0, Arc::new(MinuteRunner), None);
    let admin = key(&service, "ops", Role::Admin);
    let reader = key(&service, "acme", Role::Reader);
    assert_eq!(call(&service, "GET", "/v1/jobs", Some(&reader)).status, 200);
    let keys: Value =
        serde_json::from_slice(&call(&service, "GET", "/v1/keys?tenant=acme", Some(&admin)).body)
            .unwrap();
    let id = keys["keys"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        call(&service, "DELETE", &format!("/v1/keys/{id}"), Some(&admin)).status,
        200
    );
    let revoked = call(&service, "GET", "/v1/jobs", Some(&reader));
    assert_eq!(revoked.status, 401);
    assert!(revoked.text().contains("revoked"), "{}", revoked.text());

    let expiring = key_with(&service, "acme", Role::Reader, |k| {
        k.expires_at = Some(vttiro_auth::now_ms() + 300)
    });
    assert_eq!(
        call(&service, "GET", "/v1/jobs", Some(&expiring)).status,
        200
    );
    std::thread::sleep(Duration::from_millis(400));
    let expired = call(&service, "GET", "/v1/jobs", Some(&expiring));
    assert_eq!(expired.status, 401);
    assert!(expired.text().contains("expired"), "{}", expired.text());

    let mut forged = admin.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'x' { 'y' } else { 'x' });
    assert_eq!(call(&service, "GET", "/v1/keys", Some(&forged)).status, 401);
    assert_eq!(
        call(&service, "GET", "/v1/keys", Some("vt_nonsense")).status,
        401
    );
    let error = call(&service, "GET", "/v1/keys", Some(&forged));
    assert!(
        !error.text().contains(&forged),
        "a refusal never echoes the token"
    );
}

struct Issuer(EcdsaKeyPair);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Issuer {
    fn new() -> Issuer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Issuer(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn jwks(&self) -> Value {
        let point = self.0.public_key().as_ref();
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "idp-1", "x": b64(&point[1..33]), "y": b64(&point[33..65])}]})
    }

    fn token(&self, claims: Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(json!({"alg": "ES256", "kid": "idp-1"})
                .to_string()
                .as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .0
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", b64(signature.as_ref()))
    }
}

#[test]
fn jwt_bearer_tokens_carry_tenant_and_role() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks().to_string()).unwrap();
    let mut config = vttiro_auth::JwtConfig::new(vttiro_auth::JwksSource::File(jwks));
    config.issuer = Some("https://idp.test".into());
    config.audience = Some("vttiro".into());
    let verifier = vttiro_auth::JwtVerifier::new(config).unwrap();
    let service = Service::start_secured(
        ServerConfig::default(),
        1,
        Arc::new(MinuteRunner),
        Some(verifier),
    );
    let now = vttiro_auth::now_ms() / 1000;
    let claims = |role: &str, exp: i64| json!({"iss": "https://idp.test", "aud": "vttiro", "sub": "alice", "tenant": "acme", "role": role, "exp": exp});

    let submitter = issuer.token(claims("submitter", now + 600));
    let created = submit_as(&service, &submitter);
    assert_eq!(created.status, 202, "{}", created.text());
    let id = serde_json::from_slice::<Value>(&created.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(service.queue.get(&id).unwrap().tenant, "acme");
    assert_eq!(
        call(&service, "GET", "/v1/keys", Some(&submitter)).status,
        403
    );

    let expired = issuer.token(claims("submitter", now - 3600));
    let reply = call(&service, "GET", "/v1/jobs", Some(&expired));
    assert_eq!(reply.status, 401);
    assert!(reply.text().contains("expired"), "{}", reply.text());
    let forged = Issuer::new().token(claims("admin", now + 600));
    let reply = call(&service, "GET", "/v1/jobs", Some(&forged));
    assert_eq!(reply.status, 401);
    assert!(reply.text().contains("bad signature"), "{}", reply.text());
    let mut wrong_audience = claims("reader", now + 600);
    wrong_audience["aud"] = json!("someone-else");
    assert_eq!(
        call(
            &service,
            "GET",
            "/v1/jobs",
            Some(&issuer.token(wrong_audience))
        )
        .status,
        401
    );
    // The audit log names the token's subject.
    let entries = service.auth.audit_entries(0, 1000).unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.record.actor == "jwt:https://idp.test#alice"
                && e.record.action == "job.create")
    );
}

#[test]
fn rate_limits_answer_429_with_headers_and_recover() {
    let config = ServerConfig {
        requests_per_minute: Some(60),
        ..ServerConfig::default()
    };
    let service = Service::start_secured(config, 0, Arc::new(MinuteRunner), None);
    let reader = key(&service, "acme", Role::Reader);
    let fast = key_with(&service, "acme", Role::Reader, |k| {
        k.requests_per_minute = Some(600)
    });
    let metrics = key(&service, "acme", Role::Metrics);
    let first = call(&service, "GET", "/v1/jobs", Some(&reader));
    assert_eq!(first.header("ratelimit-limit"), Some("60"));
    assert_eq!(first.header("ratelimit-remaining"), Some("59"));
    let mut refused = None;
    for _ in 0..70 {
        let reply = call(&service, "GET", "/v1/jobs", Some(&reader));
        if reply.status == 429 {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("the 61st request in a minute is refused");
    assert_eq!(code(&refused), "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    assert!(refused.header("ratelimit-reset").is_some());
    // Another key has its own bucket (and its own limit); scrapers and probes are exempt.
    assert_eq!(
        call(&service, "GET", "/v1/jobs", Some(&fast)).header("ratelimit-limit"),
        Some("600")
    );
    for _ in 0..100 {
        assert_eq!(
            call(&service, "GET", "/metrics", Some(&metrics)).status,
            200
        );
        assert_eq!(call(&service, "GET", "/healthz", None).status, 200);
    }
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        call(&service, "GET", "/v1/jobs", Some(&reader)).status,
        200,
        "a token refilled"
    );
}

#[test]
fn the_daily_audio_quota_stops_submissions_once_used() {
    let service = Service::start_secured(ServerConfig::default(), 1, Arc::new(MinuteRunner), None);
    let limited = key_with(&service, "acme", Role::Submitter, |k| {
        k.audio_minutes_per_day = Some(1)
    });
    let other = key_with(&service, "acme", Role::Submitter, |k| {
        k.audio_minutes_per_day = Some(1)
    });
    let created: Value = serde_json::from_slice(&submit_as(&service, &limited).body).unwrap();
    wait_succeeded(&service, created["id"].as_str().unwrap());
    let refused = submit_as(&service, &limited);
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(code(&refused), "quota_exceeded");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "until midnight UTC: {retry}");
    assert_eq!(
        submit_as(&service, &other).status,
        202,
        "quotas are per key"
    );
    assert_eq!(ErrorCode::QuotaExceeded.http_status(), 429);
}

#[test]
fn the_audit_log_records_who_did_what_and_detects_tampering() {
    let service = Service::start_secured(ServerConfig::default(), 1, Arc::new(MinuteRunner), None);
    let submitter = key(&service, "acme", Role::Submitter);
    let created: Value = serde_json::from_slice(&submit_as(&service, &submitter).body).unwrap();
    let job = created["id"].as_str().unwrap().to_string();
    wait_succeeded(&service, &job);
    call(
        &service,
        "GET",
        &format!("/v1/jobs/{job}/result"),
        Some(&submitter),
    );
    call(
        &service,
        "DELETE",
        &format!("/v1/jobs/{job}"),
        Some(&submitter),
    );
    call(&service, "GET", "/v1/jobs", Some("vt_garbage"));
    let entries = service.auth.audit_entries(0, 1000).unwrap();
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e.record.action == action)
            .unwrap_or_else(|| panic!("no {action} in {entries:#?}"))
    };
    for action in ["job.create", "job.result", "job.delete"] {
        let entry = find(action);
        assert!(entry.record.actor.starts_with("key_"));
        assert_eq!(entry.record.tenant.as_deref(), Some("acme"));
        assert_eq!(entry.record.source.as_deref(), Some("127.0.0.1"));
        assert_eq!(entry.record.outcome, "ok");
    }
    assert_eq!(
        find("job.delete").record.target.as_deref(),
        Some(job.as_str())
    );
    let failure = find("auth.failure");
    assert_eq!(failure.record.outcome, "unauthenticated");
    assert_eq!(failure.record.actor, "unauthenticated");
    let log = serde_json::to_string(&entries).unwrap();
    assert!(
        !log.contains("transcript of"),
        "no transcript text in the audit log"
    );
    assert!(!log.contains(&submitter), "no tokens in the audit log");
    assert!(service.auth.verify_audit().unwrap().intact());
}

#[test]
fn the_retention_sweeper_erases_media_then_jobs_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let start = 1_800_000_000_000;
    let clock = Arc::new(ManualClock::new(start));
    let queue = SqliteQueue::open(
        &dir.path().join("jobs.db"),
        clock.clone(),
        QueuePolicy::default(),
    )
    .unwrap();
    let store = vttiro_storage::Store::open(&dir.path().join("store")).unwrap();
    let auth = vttiro_auth::AuthDb::open(&dir.path().join("auth.db"), &[3; 32]).unwrap();
    let mut finished = Vec::new();
    for tenant in ["acme", "globex"] {
        let media = format!("uploads/{tenant}/media");
        store.put_media(&media, &mut &wav(1)[..], 1 << 20).unwrap();
        let job = queue
            .submit(NewJob {
                tenant: tenant.into(),
                spec: json!({}),
                media: Some(media.clone()),
                idempotency_key: None,
                fingerprint: tenant.into(),
                max_attempts: None,
                trace_parent: None,
            })
            .unwrap()
            .job()
            .clone();
        let lease = queue.claim("w").unwrap().unwrap();
        store
            .put(
                &format!("jobs/{}/result.vtt", job.id),
                &mut &b"WEBVTT\n"[..],
                1 << 20,
            )
            .unwrap();
        queue.succeed(&lease, json!({})).unwrap();
        finished.push((job.id, media));
    }
    // globex keeps media for 1 hour and results for 2 days; acme takes the defaults.
    auth.set_tenant_policy(&vttiro_auth::TenantPolicy {
        tenant: "globex".into(),
        media_retention_hours: Some(1),
        result_retention_days: Some(2),
    })
    .unwrap();
    let defaults = Retention {
        media_hours: Some(24),
        result_days: Some(30),
    };
    let hour = 3_600_000;
    let sweep_at = |at: i64| sweep(&queue, &store, &auth, defaults, at).unwrap();
    let [(acme, acme_media), (globex, globex_media)] = [finished[0].clone(), finished[1].clone()];

    assert_eq!(sweep_at(start + hour - 1), SweepReport::default());
    assert_eq!(
        sweep_at(start + hour),
        SweepReport {
            media_erased: 1,
            jobs_erased: 0
        }
    );
    assert!(!store.exists(&globex_media) && store.exists(&acme_media));
    assert!(
        store.exists(&format!("jobs/{globex}/result.vtt")),
        "results outlive media"
    );
    assert_eq!(
        sweep_at(start + 24 * hour),
        SweepReport {
            media_erased: 1,
            jobs_erased: 0
        }
    );
    assert_eq!(
        sweep_at(start + 48 * hour),
        SweepReport {
            media_erased: 0,
            jobs_erased: 1
        }
    );
    assert!(queue.get(&globex).is_err());
    assert!(!store.exists(&format!("jobs/{globex}/result.vtt")));
    assert!(queue.get(&acme).is_ok());
    assert_eq!(
        sweep_at(start + 30 * 24 * hour),
        SweepReport {
            media_erased: 0,
            jobs_erased: 1
        }
    );
    assert!(queue.get(&acme).is_err());
    let erased: Vec<_> = auth
        .audit_entries(0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.record.actor == "retention")
        .map(|e| (e.record.action, e.record.target.unwrap()))
        .collect();
    assert_eq!(erased.len(), 4, "{erased:?}");
    assert!(erased.contains(&("retention.job_erased".into(), acme)));
}

/// Saves its transcript as a checkpoint and fails the first attempt; the retry answers
/// from the checkpoint alone, after noting what the data directory holds at that moment
/// (the sealed checkpoints are gone once the job succeeds).
#[derive(Default)]
struct CheckpointRunner {
    data_dir: std::sync::OnceLock<std::path::PathBuf>,
    files_during_retry: Mutex<Vec<std::path::PathBuf>>,
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path().is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files
}

fn assert_no_transcript(files: &[std::path::PathBuf]) {
    for file in files {
        let bytes = std::fs::read(file).unwrap_or_default();
        assert!(
            !bytes.windows(SPOKEN.len()).any(|w| w == SPOKEN.as_bytes()),
            "{} holds the transcript",
            file.display()
        );
    }
}

const SPOKEN: &str = "words nobody outside should read";

impl JobRunner for CheckpointRunner {
    fn run(
        &self,
        request: &RunRequest<'_>,
        context: &mut dyn RunContext,
    ) -> Result<RunOutput, RunFailure> {
        let Some(saved) = context.checkpoint("asr/fp/0") else {
            context.save_checkpoint("asr/fp/0", SPOKEN.as_bytes())?;
            return Err(RunFailure {
                code: ErrorCode::EngineFailed,
                message: "the engine fell over".into(),
            });
        };
        let files = files_under(self.data_dir.get().expect("set before submitting"));
        assert_no_transcript(&files);
        *self.files_during_retry.lock().unwrap() = files;
        Ok(RunOutput {
            files: request
                .formats
                .iter()
                .map(|f| (f.clone(), saved.clone()))
                .collect(),
            summary: json!({"engine": "test", "audio_ms": 1000}),
        })
    }
}

#[test]
fn on_an_encrypted_store_checkpoints_and_results_are_unreadable_on_disk() {
    let (keys, _) = vttiro_storage::KeyRing::generate("k1").unwrap();
    let runner = Arc::new(CheckpointRunner::default());
    let service = Service::start_encrypted(1, runner.clone(), Arc::new(keys));
    runner.data_dir.set(service.data_dir.clone()).unwrap();
    let (headers, body) = multipart(&[], &wav(1));
    let created: Value =
        serde_json::from_slice(&send("POST", &service.url("/v1/jobs"), &headers, body).body)
            .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    wait_succeeded(&service, &id);
    assert_eq!(
        service.queue.get(&id).unwrap().attempts,
        2,
        "the retry resumed"
    );
    let result = get(&service.url(&format!("/v1/jobs/{id}/result?format=vtt")));
    assert_eq!(result.text(), SPOKEN);
    // While the retry ran, the checkpoint was a sealed object in the store.
    let during = runner.files_during_retry.lock().unwrap().clone();
    assert!(
        during.iter().any(|f| f
            .to_string_lossy()
            .contains(&format!("jobs/{id}/checkpoints/"))),
        "{during:?}"
    );
    // Once the job succeeded its checkpoints went, and nothing left holds the transcript.
    let after = files_under(&service.data_dir);
    assert!(
        !after
            .iter()
            .any(|f| f.to_string_lossy().contains("/checkpoints/")),
        "{after:?}"
    );
    assert_no_transcript(&after);
    // DELETE erases the rest.
    assert_eq!(
        method("DELETE", &service.url(&format!("/v1/jobs/{id}"))).status,
        204
    );
    assert!(!service.store_dir.join(format!("jobs/{id}")).exists());
    assert!(service
        .queue
        .checkpoints(&id)
        .map_or(true, |c| c.is_empty()));
}
