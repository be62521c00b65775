//! API keys: `vt_<id>_<secret>`. The id is public (it names the key in lists, logs and the
//! audit trail); only an HMAC-SHA256 digest of the whole token is stored, keyed by the
//! server secret, so neither the database nor a backup of it can be replayed as a key.

use base64::Engine as _;
use ring::rand::SecureRandom;
use serde::Serialize;

use vttiro_sql::{vals, Row, RowExt};

use crate::db::small;
use crate::roles::valid_tenant;
use crate::{AuthDb, AuthError, Millis, Principal, Role};

pub const TOKEN_PREFIX: &str = "vt_";

/// What `vttiro keys create` and `POST /v1/keys` ask for.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub tenant: String,
    pub role: Role,
    pub expires_at: Option<Millis>,
    pub requests_per_minute: Option<u32>,
    pub audio_minutes_per_day: Option<u32>,
}

/// A key as lists show it: everything but the secret, which is never stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub role: Role,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub requests_per_minute: Option<u32>,
    pub audio_minutes_per_day: Option<u32>,
}

const COLUMNS: &str = "id, name, tenant, role, created_at, expires_at, revoked_at, last_used_at, \
                       requests_per_minute, audio_minutes_per_day";

/// A key from `row`, whose columns are [`COLUMNS`] from `first` on.
fn key_from_row(row: &Row, first: usize) -> ApiKey {
    ApiKey {
        id: row.text(first),
        name: row.text(first + 1),
        tenant: row.text(first + 2),
        // Rows are only written through `create_key`, which stores a known role.
        role: Role::parse(&row.text(first + 3)).unwrap_or(Role::Reader),
        created_at: row.int(first + 4),
        expires_at: row.opt_int(first + 5),
        revoked_at: row.opt_int(first + 6),
        last_used_at: row.opt_int(first + 7),
        requests_per_minute: small(row.opt_int(first + 8)),
        audio_minutes_per_day: small(row.opt_int(first + 9)),
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Db("the system random generator failed".into()))?;
    Ok(bytes)
}

/// The id part of a token, when it has the right shape.
fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 12
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    // The secret is base64url, whose alphabet includes '_': split at the first one only.
    (id_ok && secret.len() == 43).then_some(id)
}

impl AuthDb {
    /// Creates a key; the returned token is the only time the secret exists outside the caller.
    pub fn create_key(&self, new: &NewKey, now: Millis) -> Result<(ApiKey, String), AuthError> {
        if !valid_tenant(&new.tenant) {
            return Err(AuthError::Invalid {
                what: "tenant",
                reason: format!(
                    "{:?}: use 1-64 lowercase letters, digits, '-' or '_'",
                    new.tenant
                ),
            });
        }
        if new.name.trim().is_empty() || new.name.len() > 128 {
            return Err(AuthError::Invalid {
                what: "key name",
                reason: "give 1-128 characters".into(),
            });
        }
        if new.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Invalid {
                what: "expiry",
                reason: "it is in the past".into(),
            });
        }
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let id: String = random_bytes::<12>()?
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect();
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        let token = format!("{TOKEN_PREFIX}{id}_{secret}");
        let digest = ring::hmac::sign(&self.secret, token.as_bytes());
        let key_id = format!("key_{id}");
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO api_keys (id, name, tenant, role, digest, created_at, expires_at,
                                       requests_per_minute, audio_minutes_per_day)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                vals![
                    key_id.as_str(),
                    new.name.trim(),
                    new.tenant.as_str(),
                    new.role.as_str(),
                    digest.as_ref(),
                    now,
                    new.expires_at,
                    new.requests_per_minute,
                    new.audio_minutes_per_day
                ],
            )?;
            Ok(())
        })?;
        Ok((self.key(&key_id)?, token))
    }

    pub fn key(&self, id: &str) -> Result<ApiKey, AuthError> {
        self.transaction(|tx| {
            Ok(tx
                .query_one(
                    &format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"),
                    vals![id],
                )?
                .map(|row| key_from_row(&row, 0)))
        })?
        .ok_or_else(|| AuthError::KeyNotFound(id.to_string()))
    }

    /// Every key, revoked ones included, oldest first; only those of `tenant` when given.
    pub fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, AuthError> {
        self.transaction(|tx| {
            Ok(tx
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM api_keys WHERE CAST($1 AS TEXT) IS NULL OR tenant = $1
                         ORDER BY created_at, id"
                    ),
                    vals![tenant],
                )?
                .iter()
                .map(|row| key_from_row(row, 0))
                .collect())
        })
    }

    /// Revokes `id` at once (every process checks the database on each request).
    pub fn revoke_key(&self, id: &str, now: Millis) -> Result<ApiKey, AuthError> {
        let changed = self.transaction(|tx| {
            Ok(tx.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                vals![id, now],
            )?)
        })?;
        if changed == 0 {
            return Err(AuthError::KeyNotFound(id.to_string()));
        }
        self.key(id)
    }

    /// The principal a presented token stands for.
    pub fn verify_key(&self, token: &str, now: Millis) -> Result<Principal, AuthError> {
        let id = token_id(token)
            .ok_or_else(|| AuthError::Malformed("not a well-formed vttiro API key".into()))?;
        let key_id = format!("key_{id}");
        let found: Option<(Vec<u8>, ApiKey)> = self.transaction(|tx| {
            Ok(tx
                .query_one(
                    &format!("SELECT digest, {COLUMNS} FROM api_keys WHERE id = $1"),
                    vals![key_id.as_str()],
                )?
                // The key columns start after the digest.
                .map(|row| (row.blob(0), key_from_row(&row, 1))))
        })?;
        // Unknown ids and wrong secrets answer alike, so ids cannot be probed.
        let (digest, key) = found.ok_or(AuthError::UnknownKey)?;
        ring::hmac::verify(&self.secret, token.as_bytes(), &digest)
            .map_err(|_| AuthError::UnknownKey)?;
        if key.revoked_at.is_some() {
            return Err(AuthError::Revoked(key.id));
        }
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired(key.id));
        }
        // Minute resolution keeps this write from happening on every request.
        if key.last_used_at.is_none_or(|at| now - at >= 60_000) {
            let _ = self.transaction(|tx| {
                Ok(tx.execute(
                    "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
                    vals![key.id.as_str(), now],
                )?)
            });
        }
        Ok(Principal {
            id: key.id,
            tenant: key.tenant,
            role: key.role,
            requests_per_minute: key.requests_per_minute,
            audio_minutes_per_day: key.audio_minutes_per_day,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_is_checked_before_any_lookup() {
        assert_eq!(
            token_id("vt_abcdefghijk0_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_A"),
            Some("abcdefghijk0")
        );
        assert_eq!(token_id("vt_short_AAAA"), None);
        assert_eq!(token_id("sk-abcdefghijk0_x"), None);
    }
}
