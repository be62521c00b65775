//! vttiro-auth owns who may use the service and the record of what they did: API keys
//! (stored only as HMAC-SHA256 digests under a server secret, shown once), OIDC/JWT bearer
//! tokens checked against a JWKS, roles and what each may do, per-key request token
//! buckets and daily audio quotas, per-tenant retention settings, and the hash-chained,
//! append-only audit log that `vttiro audit verify` checks.
//!
//! It keeps its state beside the job queue — `auth.db` (SQLite) in the data directory, or
//! the queue's PostgreSQL database when the service scales out, through vttiro-sql — and
//! takes the current time as an argument wherever it matters, so tests step expiry, buckets and days instead of
//! sleeping. It must not know about HTTP frameworks, jobs, engines or storage of media.

mod audit;
mod db;
mod jwt;
mod keys;
mod limits;
mod roles;

pub use audit::{AuditEntry, AuditRecord, ChainReport, GENESIS_HASH};
pub use db::{utc_day, AuthDb, TenantPolicy};
pub use jwt::{JwksSource, JwtConfig, JwtVerifier};
pub use keys::{ApiKey, NewKey, TOKEN_PREFIX};
pub use limits::{RateDecision, RateLimiter};
pub use roles::{Permission, Principal, Role};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The wall clock, for callers that have no injected one.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Why a request could not be authenticated, or a key operation failed. Messages never
/// carry the presented token or any secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send `Authorization: Bearer <API key or token>`")]
    Missing,
    #[error("malformed credentials: {0}")]
    Malformed(String),
    #[error("unknown API key")]
    UnknownKey,
    #[error("API key {0} has been revoked")]
    Revoked(String),
    #[error("API key {0} has expired")]
    Expired(String),
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("JWT bearer tokens are not accepted: no JWKS is configured")]
    JwtNotConfigured,
    #[error("no API key {0}")]
    KeyNotFound(String),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("JWKS {source_name}: {reason}")]
    Jwks { source_name: String, reason: String },
    #[error("auth database: {0}")]
    Db(String),
}

impl AuthError {
    /// Whether the caller's credentials are at fault (401), rather than the server.
    pub fn is_credential_failure(&self) -> bool {
        matches!(
            self,
            AuthError::Missing
                | AuthError::Malformed(_)
                | AuthError::UnknownKey
                | AuthError::Revoked(_)
                | AuthError::Expired(_)
                | AuthError::InvalidToken(_)
                | AuthError::JwtNotConfigured
        )
    }
}

/// How a request proves who it is.
pub struct Authenticator {
    db: std::sync::Arc<AuthDb>,
    jwt: Option<JwtVerifier>,
    open: bool,
}

impl Authenticator {
    /// Keys from `db`, and JWTs when `jwt` is set.
    pub fn new(db: std::sync::Arc<AuthDb>, jwt: Option<JwtVerifier>) -> Authenticator {
        Authenticator {
            db,
            jwt,
            open: false,
        }
    }

    /// No authentication at all: every request acts as an administrator of the
    /// `default` tenant. Only for a service nobody else can reach.
    pub fn open(db: std::sync::Arc<AuthDb>) -> Authenticator {
        Authenticator {
            db,
            jwt: None,
            open: true,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn db(&self) -> &std::sync::Arc<AuthDb> {
        &self.db
    }

    /// Who the `Authorization` header value says the caller is.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        now: Millis,
    ) -> Result<Principal, AuthError> {
        if self.open {
            return Ok(Principal::anonymous());
        }
        let value = authorization.ok_or(AuthError::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::Malformed("expected `Bearer <token>`".into()))?;
        if token.starts_with(TOKEN_PREFIX) {
            return self.db.verify_key(token, now);
        }
        if token.split('.').count() == 3 {
            let verifier = self.jwt.as_ref().ok_or(AuthError::JwtNotConfigured)?;
            return verifier.verify(token, now);
        }
        Err(AuthError::Malformed(
            "neither an API key (vt_…) nor a JWT".into(),
        ))
    }
}

/// A new server secret for key digests: 32 random bytes as base64, for a 0600 file.
pub fn new_server_secret() -> Result<String, AuthError> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Db("the system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The bytes of a secret written by [`new_server_secret`].
pub fn parse_server_secret(text: &str) -> Result<Vec<u8>, AuthError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| AuthError::Invalid {
            what: "auth secret",
            reason: format!("not base64: {e}"),
        })
}
