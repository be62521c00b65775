//! OIDC/JWT bearer tokens: RS256 and ES256 signatures checked against a JWKS (a file, or an
//! identity provider's URL), then `exp`/`nbf` with a small leeway, `iss` and `aud` when
//! configured, and the tenant and role claims. Unsigned (`none`) and shared-secret (`HS*`)
//! tokens are refused outright: a public JWKS must never verify a token anyone can mint.

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::roles::valid_tenant;
use crate::{AuthError, Millis, Principal, Role};

#[derive(Debug, Clone, PartialEq)]
pub enum JwksSource {
    File(PathBuf),
    Url(String),
}

impl JwksSource {
    /// `http(s)://…` is a URL; anything else a file path.
    pub fn parse(text: &str) -> JwksSource {
        if text.starts_with("https://") || text.starts_with("http://") {
            JwksSource::Url(text.to_string())
        } else {
            JwksSource::File(PathBuf::from(text))
        }
    }

    fn name(&self) -> String {
        match self {
            JwksSource::File(path) => path.display().to_string(),
            JwksSource::Url(url) => url.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub jwks: JwksSource,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required member of `aud`, when set.
    pub audience: Option<String>,
    /// The claim naming the caller's tenant.
    pub tenant_claim: String,
    /// The claim holding the role, a string or an array of strings.
    pub role_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: i64,
}

impl JwtConfig {
    pub fn new(jwks: JwksSource) -> JwtConfig {
        JwtConfig {
            jwks,
            issuer: None,
            audience: None,
            tenant_claim: "tenant".into(),
            role_claim: "role".into(),
            leeway_secs: 60,
        }
    }
}

#[derive(Debug, Clone)]
enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed P-256 point: 0x04 ‖ x ‖ y.
    P256(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

struct KeySet {
    keys: Vec<Jwk>,
    loaded: Instant,
}

pub struct JwtVerifier {
    config: JwtConfig,
    keys: RwLock<KeySet>,
}

/// A refetch for an unknown `kid` (the provider rotated keys) at most this often, so
/// tokens with made-up kids cannot turn the server into a JWKS request amplifier.
const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

fn b64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidToken(reason.into())
}

fn parse_jwks(source: &JwksSource, text: &str) -> Result<Vec<Jwk>, AuthError> {
    let bad = |reason: String| AuthError::Jwks {
        source_name: source.name(),
        reason,
    };
    let document: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let entries = document["keys"]
        .as_array()
        .ok_or_else(|| bad("no \"keys\" array".into()))?;
    let mut keys = Vec::new();
    for entry in entries {
        let field = |name: &str| entry[name].as_str().and_then(b64);
        let key = match (entry["kty"].as_str(), entry["crv"].as_str()) {
            (Some("RSA"), _) => match (field("n"), field("e")) {
                (Some(n), Some(e)) => PublicKey::Rsa { n, e },
                _ => return Err(bad("an RSA key lacks n or e".into())),
            },
            (Some("EC"), Some("P-256")) => match (field("x"), field("y")) {
                (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                    let mut point = vec![4u8];
                    point.extend(x);
                    point.extend(y);
                    PublicKey::P256(point)
                }
                _ => return Err(bad("a P-256 key lacks 32-byte x and y".into())),
            },
            // Keys for algorithms we don't accept are skipped, not fatal: providers
            // publish several kinds side by side.
            _ => continue,
        };
        if entry["use"].as_str().is_some_and(|u| u != "sig") {
            continue;
        }
        keys.push(Jwk {
            kid: entry["kid"].as_str().map(str::to_string),
            key,
        });
    }
    if keys.is_empty() {
        return Err(bad("no RS256 or ES256 signing keys".into()));
    }
    Ok(keys)
}

fn load(source: &JwksSource) -> Result<Vec<Jwk>, AuthError> {
    let text = match source {
        JwksSource::File(path) => std::fs::read_to_string(path).map_err(|e| AuthError::Jwks {
            source_name: source.name(),
            reason: e.to_string(),
        })?,
        JwksSource::Url(url) => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .max_redirects(3)
                .build()
                .into();
            agent
                .get(url)
                .call()
                .and_then(|mut r| r.body_mut().with_config().limit(1 << 20).read_to_string())
                .map_err(|e| AuthError::Jwks {
                    source_name: source.name(),
                    reason: e.to_string(),
                })?
        }
    };
    parse_jwks(source, &text)
}

impl JwtVerifier {
    /// Loads the JWKS now, so a bad one stops the server at start rather than at the first request.
    pub fn new(config: JwtConfig) -> Result<JwtVerifier, AuthError> {
        let keys = load(&config.jwks)?;
        Ok(JwtVerifier {
            config,
            keys: RwLock::new(KeySet {
                keys,
                loaded: Instant::now(),
            }),
        })
    }

    fn find_key(&self, kid: Option<&str>) -> Option<Jwk> {
        let set = self.keys.read().unwrap_or_else(|p| p.into_inner());
        match kid {
            Some(kid) => set
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        }
    }

    fn key_for(&self, kid: Option<&str>) -> Result<Jwk, AuthError> {
        if let Some(key) = self.find_key(kid) {
            return Ok(key);
        }
        let stale = {
            let set = self.keys.read().unwrap_or_else(|p| p.into_inner());
            set.loaded.elapsed() >= REFRESH_INTERVAL
        };
        if stale {
            match load(&self.config.jwks) {
                Ok(keys) => {
                    *self.keys.write().unwrap_or_else(|p| p.into_inner()) = KeySet {
                        keys,
                        loaded: Instant::now(),
                    };
                }
                Err(e) => tracing::warn!(error = %e, "could not refresh the JWKS"),
            }
        }
        self.find_key(kid)
            .ok_or_else(|| invalid(format!("no key {:?} in the JWKS", kid.unwrap_or("(none)"))))
    }

    pub fn verify(&self, token: &str, now: Millis) -> Result<Principal, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a JWS compact token"));
        };
        let header: Value = b64(header)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| invalid("unreadable header"))?;
        let signature = b64(signature).ok_or_else(|| invalid("unreadable signature"))?;
        let alg = header["alg"].as_str().unwrap_or("");
        let jwk = self.key_for(header["kid"].as_str())?;
        let signed = &token[..header_and_payload_len(token)];
        let verified = match (alg, &jwk.key) {
            ("RS256", PublicKey::Rsa { n, e }) => ring::signature::RsaPublicKeyComponents { n, e }
                .verify(
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    signed.as_bytes(),
                    &signature,
                )
                .is_ok(),
            ("ES256", PublicKey::P256(point)) => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(signed.as_bytes(), &signature)
            .is_ok(),
            ("RS256" | "ES256", _) => {
                return Err(invalid(format!("alg {alg} does not match the key's type")))
            }
            (other, _) => return Err(invalid(format!("alg {other:?} is not accepted"))),
        };
        if !verified {
            return Err(invalid("bad signature"));
        }
        let claims: Value = b64(payload)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| invalid("unreadable claims"))?;
        self.check_claims(&claims, now)
    }

    fn check_claims(&self, claims: &Value, now: Millis) -> Result<Principal, AuthError> {
        let now_s = now.div_euclid(1000);
        let leeway = self.config.leeway_secs;
        let exp = claims["exp"]
            .as_i64()
            .ok_or_else(|| invalid("no exp claim"))?;
        if now_s > exp + leeway {
            return Err(invalid("expired"));
        }
        if claims["nbf"]
            .as_i64()
            .is_some_and(|nbf| now_s + leeway < nbf)
        {
            return Err(invalid("not valid yet (nbf)"));
        }
        if let Some(issuer) = &self.config.issuer {
            if claims["iss"].as_str() != Some(issuer.as_str()) {
                return Err(invalid("wrong issuer"));
            }
        }
        if let Some(audience) = &self.config.audience {
            let matches = match &claims["aud"] {
                Value::String(a) => a == audience,
                Value::Array(list) => list.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !matches {
                return Err(invalid("wrong audience"));
            }
        }
        let subject = claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("no sub claim"))?;
        let tenant = claims[&self.config.tenant_claim]
            .as_str()
            .filter(|t| valid_tenant(t))
            .ok_or_else(|| {
                invalid(format!(
                    "claim {:?} must name a tenant (lowercase letters, digits, '-', '_')",
                    self.config.tenant_claim
                ))
            })?;
        let named: Vec<&str> = match &claims[&self.config.role_claim] {
            Value::String(role) => vec![role.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        // The most privileged recognised role wins; unknown role names are ignored.
        let role = Role::ALL
            .into_iter()
            .find(|r| named.contains(&r.as_str()))
            .ok_or_else(|| {
                invalid(format!(
                    "claim {:?} holds no vttiro role (admin, submitter, reader, metrics)",
                    self.config.role_claim
                ))
            })?;
        let issuer = claims["iss"].as_str().unwrap_or("");
        Ok(Principal {
            id: format!("jwt:{issuer}#{subject}"),
            tenant: tenant.to_string(),
            role,
            requests_per_minute: None,
            audio_minutes_per_day: None,
        })
    }
}

/// The length of `header.payload`, the part the signature covers.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}
