//! Keys, tokens, the audit chain and limits against a real SQLite file.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;
use vttiro_auth::{
    AuditRecord, AuthDb, AuthError, Authenticator, JwksSource, JwtConfig, JwtVerifier, NewKey, Role,
};

const SECRET: [u8; 32] = [7; 32];
const NOW: i64 = 1_790_000_000_000;

fn db(dir: &tempfile::TempDir) -> AuthDb {
    AuthDb::open(&dir.path().join("auth.db"), &SECRET).unwrap()
}

fn new_key(tenant: &str, role: Role) -> NewKey {
    NewKey {
        name: format!("{tenant} {role}"),
        tenant: tenant.into(),
        role,
        expires_at: None,
        requests_per_minute: None,
        audio_minutes_per_day: None,
    }
}

#[test]
fn a_key_works_until_revoked_and_only_its_digest_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let (key, token) = db
        .create_key(&new_key("acme", Role::Submitter), NOW)
        .unwrap();
    assert!(token.starts_with("vt_"));
    let principal = db.verify_key(&token, NOW).unwrap();
    assert_eq!(
        (
            principal.id.as_str(),
            principal.tenant.as_str(),
            principal.role
        ),
        (key.id.as_str(), "acme", Role::Submitter)
    );
    // The secret half of the token is nowhere in the database file.
    drop(db);
    let bytes = std::fs::read(dir.path().join("auth.db")).unwrap();
    // The secret is base64url, which may itself hold '_': it is all that follows the id.
    let secret_part = token
        .strip_prefix(&format!("vt_{}_", &key.id[4..]))
        .unwrap();
    assert_eq!(secret_part.len(), 43);
    assert!(!bytes
        .windows(secret_part.len())
        .any(|w| w == secret_part.as_bytes()));
    let db = self::db(&dir);
    // One changed character of the secret is an unknown key.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(matches!(
        db.verify_key(&forged, NOW),
        Err(AuthError::UnknownKey)
    ));
    // A database opened with another server secret accepts none of the keys.
    let other = AuthDb::open(&dir.path().join("auth.db"), &[9; 32]).unwrap();
    assert!(matches!(
        other.verify_key(&token, NOW),
        Err(AuthError::UnknownKey)
    ));
    db.revoke_key(&key.id, NOW + 1).unwrap();
    assert!(matches!(db.verify_key(&token, NOW + 2), Err(AuthError::Revoked(id)) if id == key.id));
    let listed = db.list_keys(Some("acme")).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, Some(NOW + 1));
    assert!(matches!(
        db.revoke_key("key_nope", NOW),
        Err(AuthError::KeyNotFound(_))
    ));
}

#[test]
fn keys_expire_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let mut expiring = new_key("acme", Role::Reader);
    expiring.expires_at = Some(NOW + 1000);
    let (_, token) = db.create_key(&expiring, NOW).unwrap();
    assert!(db.verify_key(&token, NOW + 999).is_ok());
    assert!(matches!(
        db.verify_key(&token, NOW + 1000),
        Err(AuthError::Expired(_))
    ));
    let mut bad = new_key("Acme Corp", Role::Reader);
    assert!(db
        .create_key(&bad, NOW)
        .unwrap_err()
        .to_string()
        .contains("tenant"));
    bad.tenant = "acme".into();
    bad.expires_at = Some(NOW - 1);
    assert!(db
        .create_key(&bad, NOW)
        .unwrap_err()
        .to_string()
        .contains("past"));
    assert!(AuthDb::open(&dir.path().join("x.db"), b"short").is_err());
}

#[test]
fn the_authenticator_tells_keys_tokens_and_garbage_apart() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(db(&dir));
    let (_, token) = db.create_key(&new_key("acme", Role::Admin), NOW).unwrap();
    let auth = Authenticator::new(db.clone(), None);
    assert_eq!(
        auth.authenticate(Some(&format!("Bearer {token}")), NOW)
            .unwrap()
            .role,
        Role::Admin
    );
    for (header, expected) in [
        (None, "no credentials"),
        (Some("Basic abc"), "malformed"),
        (Some("Bearer sk-123"), "malformed"),
        (Some("Bearer a.b.c"), "no JWKS is configured"),
    ] {
        let e = auth.authenticate(header, NOW).unwrap_err();
        assert!(e.is_credential_failure());
        assert!(e.to_string().contains(expected), "{e}");
    }
    let open = Authenticator::open(db);
    assert_eq!(open.authenticate(None, NOW).unwrap().id, "anonymous");
}

struct Issuer {
    pair: EcdsaKeyPair,
    kid: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Issuer {
    fn new(kid: &str) -> Issuer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Issuer {
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
            kid: kid.into(),
        }
    }

    fn jwk(&self) -> serde_json::Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
               "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    }

    fn sign(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", b64(signature.as_ref()))
    }

    fn token(&self, claims: serde_json::Value) -> String {
        self.sign(
            json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

#[test]
fn jwts_are_checked_for_signature_expiry_issuer_audience_and_claims() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new("k1");
    let stranger = Issuer::new("k1");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [issuer.jwk()]}).to_string()).unwrap();
    let mut config = JwtConfig::new(JwksSource::parse(jwks.to_str().unwrap()));
    config.issuer = Some("https://idp.example".into());
    config.audience = Some("vttiro".into());
    let verifier = JwtVerifier::new(config).unwrap();
    let now_s = NOW / 1000;
    let good = json!({"iss": "https://idp.example", "aud": ["other", "vttiro"], "sub": "alice",
                      "exp": now_s + 300, "tenant": "acme", "role": ["reader", "submitter"]});
    let principal = verifier.verify(&issuer.token(good.clone()), NOW).unwrap();
    assert_eq!(principal.id, "jwt:https://idp.example#alice");
    assert_eq!(
        (principal.tenant.as_str(), principal.role),
        ("acme", Role::Submitter)
    );

    let with = |field: &str, value: serde_json::Value| {
        let mut claims = good.clone();
        claims[field] = value;
        issuer.token(claims)
    };
    for (token, expected) in [
        (stranger.token(good.clone()), "bad signature"),
        (with("exp", json!(now_s - 61)), "expired"),
        (with("nbf", json!(now_s + 120)), "not valid yet"),
        (with("iss", json!("https://evil.example")), "wrong issuer"),
        (with("aud", json!("else")), "wrong audience"),
        (with("tenant", json!("ACME!")), "tenant"),
        (with("role", json!("owner")), "no vttiro role"),
        (
            issuer.sign(json!({"alg": "none", "kid": "k1"}), good.clone()),
            "not accepted",
        ),
        (
            issuer.sign(json!({"alg": "HS256", "kid": "k1"}), good.clone()),
            "not accepted",
        ),
        (
            issuer.sign(json!({"alg": "ES256", "kid": "k9"}), good.clone()),
            "no key \"k9\"",
        ),
    ] {
        let e = verifier.verify(&token, NOW).unwrap_err();
        assert!(e.to_string().contains(expected), "{expected}: got {e}");
    }
    // Within the leeway an expired token still passes: clocks drift.
    assert!(verifier
        .verify(&with("exp", json!(now_s - 30)), NOW)
        .is_ok());
    // A payload swapped under a valid signature fails.
    let token = issuer.token(good.clone());
    let mut parts: Vec<&str> = token.split('.').collect();
    let admin = b64(with_role(&good, "admin").to_string().as_bytes());
    parts[1] = &admin;
    assert!(verifier.verify(&parts.join("."), NOW).is_err());

    std::fs::write(&jwks, "{}").unwrap();
    let e = JwtVerifier::new(JwtConfig::new(JwksSource::File(jwks.clone())))
        .err()
        .unwrap();
    assert!(e.to_string().contains("jwks.json") && e.to_string().contains("keys"));
}

fn with_role(claims: &serde_json::Value, role: &str) -> serde_json::Value {
    let mut claims = claims.clone();
    claims["role"] = json!(role);
    claims
}

#[test]
fn the_audit_chain_detects_edits_deletions_and_reordering() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    for i in 0..5 {
        db.append_audit(
            &AuditRecord {
                actor: "key_abc".into(),
                tenant: Some("acme".into()),
                action: "job.read".into(),
                target: Some(format!("job_{i}")),
                source: Some("127.0.0.1".into()),
                outcome: "ok".into(),
                detail: None,
            },
            NOW + i,
        )
        .unwrap();
    }
    let report = db.verify_audit().unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 5);
    let entries = db.audit_entries(0, 100).unwrap();
    assert_eq!(report.head, entries[4].hash);
    assert_eq!(entries[1].prev_hash, entries[0].hash);
    drop(db);

    let path = dir.path().join("auth.db");
    let sql = rusqlite_free_edit(&path);
    // The triggers refuse ordinary edits...
    assert!(sql("UPDATE audit SET outcome = 'forbidden' WHERE seq = 3").is_err());
    assert!(sql("DELETE FROM audit WHERE seq = 3").is_err());
    // ...and someone who drops them is caught by the chain.
    sql("DROP TRIGGER audit_no_update").unwrap();
    sql("UPDATE audit SET target = 'job_x' WHERE seq = 3").unwrap();
    let report = self::db(&dir).verify_audit().unwrap();
    assert_eq!(report.first_broken, Some(3));
    assert!(report.reason.unwrap().contains("content"));
    // Opening the database puts the triggers back.
    assert!(sql("UPDATE audit SET target = 'job_2' WHERE seq = 3").is_err());
    sql("DROP TRIGGER audit_no_update").unwrap();
    sql("UPDATE audit SET target = 'job_2' WHERE seq = 3").unwrap();
    assert!(self::db(&dir).verify_audit().unwrap().intact());
    sql("DROP TRIGGER audit_no_delete").unwrap();
    sql("DELETE FROM audit WHERE seq = 2").unwrap();
    let report = self::db(&dir).verify_audit().unwrap();
    assert_eq!(report.first_broken, Some(3));
    assert!(report.reason.unwrap().contains("missing"));
}

/// Runs raw SQL on the database file, as an intruder with file access would.
fn rusqlite_free_edit(path: &std::path::Path) -> impl Fn(&str) -> Result<(), String> + '_ {
    move |statement: &str| {
        let output = std::process::Command::new("python3")
            .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"])
            .arg(path)
            .arg(statement)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

#[test]
fn audio_usage_adds_up_per_principal_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let day = vttiro_auth::utc_day(NOW);
    assert_eq!(db.audio_used("key_a", day).unwrap(), 0);
    assert_eq!(db.add_audio("key_a", day, 60_000).unwrap(), 60_000);
    assert_eq!(db.add_audio("key_a", day, 30_000).unwrap(), 90_000);
    assert_eq!(db.audio_used("key_a", day + 1).unwrap(), 0);
    assert_eq!(db.audio_used("key_b", day).unwrap(), 0);
}

/// An RSA key made by openssl, so RS256 is checked against a signer we did not write.
fn openssl_rsa(dir: &std::path::Path) -> ring::signature::RsaKeyPair {
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed by scripts/deps.sh");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "rsa.pem",
    ]);
    // ring reads PKCS#1 DER (`RSAPrivateKey`), which `pkey -outform DER` writes for RSA.
    run(&[
        "pkey", "-in", "rsa.pem", "-outform", "DER", "-out", "rsa.der",
    ]);
    ring::signature::RsaKeyPair::from_der(&std::fs::read(dir.join("rsa.der")).unwrap()).unwrap()
}

/// Serves `body` to `requests` GETs on 127.0.0.1, then stops by itself.
fn serve_once(body: String, requests: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut buffer = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buffer);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = std::io::Write::write_all(&mut stream, reply.as_bytes());
        }
    });
    format!("http://{address}/.well-known/jwks.json")
}

#[test]
fn rs256_tokens_verify_against_a_jwks_fetched_from_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let pair = openssl_rsa(dir.path());
    let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
    let jwks = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "skipped", "x": "AAAA"},
        {"kty": "RSA", "kid": "rsa-1", "alg": "RS256",
         "n": b64(&public.n),
         "e": b64(&public.e)}
    ]});
    let url = serve_once(jwks.to_string(), 1);
    let verifier = JwtVerifier::new(JwtConfig::new(JwksSource::parse(&url))).unwrap();
    let claims = json!({"sub": "svc", "exp": NOW / 1000 + 60, "tenant": "acme", "role": "reader"});
    let signed = format!(
        "{}.{}",
        b64(json!({"alg": "RS256", "kid": "rsa-1"})
            .to_string()
            .as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signature = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .unwrap();
    let token = format!("{signed}.{}", b64(&signature));
    let principal = verifier.verify(&token, NOW).unwrap();
    assert_eq!(
        (principal.role, principal.id.as_str()),
        (Role::Reader, "jwt:#svc")
    );
    // The same signature presented as ES256 is refused before any math.
    let confused = token.replacen(
        &b64(json!({"alg": "RS256", "kid": "rsa-1"})
            .to_string()
            .as_bytes()),
        &b64(json!({"alg": "ES256", "kid": "rsa-1"})
            .to_string()
            .as_bytes()),
        1,
    );
    let e = verifier.verify(&confused, NOW).unwrap_err();
    assert!(
        e.to_string().contains("does not match the key's type"),
        "{e}"
    );
    // An unreachable JWKS URL is a clear start-up error.
    let e = JwtVerifier::new(JwtConfig::new(JwksSource::parse(
        "http://127.0.0.1:9/jwks.json",
    )))
    .err()
    .unwrap();
    assert!(
        e.to_string()
            .starts_with("JWKS http://127.0.0.1:9/jwks.json:"),
        "{e}"
    );
}
