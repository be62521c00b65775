//! The audit log: one row per security-relevant act, each carrying the SHA-256 of its own
//! content and of the entry before it. Changing, removing or reordering any entry breaks
//! every hash after it, which [`AuthDb::verify_audit`] finds. Appends hold SQLite's write
//! lock (or, on PostgreSQL, a transaction-scoped advisory lock) before reading the previous
//! hash, so processes sharing the database never fork the chain.

use serde::Serialize;
use vttiro_sql::{vals, Row, RowExt};

use crate::db::AUDIT_LOCK;
use crate::{AuthDb, AuthError, Millis};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the caller records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditRecord {
    /// The principal id (`key_…`, `jwt:…`, `anonymous`), `cli` for local commands, or
    /// `unauthenticated` when credentials failed.
    pub actor: String,
    pub tenant: Option<String>,
    /// A stable verb: `job.create`, `job.read`, `key.revoke`, `auth.failure`, ...
    pub action: String,
    /// What it was done to: a job id, a key id, a tenant.
    pub target: Option<String>,
    /// Where the request came from (the peer address).
    pub source: Option<String>,
    /// `ok`, or the refusal's error code.
    pub outcome: String,
    /// Extra context without secrets or transcript text (a role granted, an HTTP status).
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: Millis,
    #[serde(flatten)]
    pub record: AuditRecord,
    pub prev_hash: String,
    pub hash: String,
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainReport {
    pub entries: u64,
    /// The hash of the last entry, to keep elsewhere: a chain cut short after that point
    /// verifies on its own, but no longer ends at the kept hash.
    pub head: String,
    /// The first entry whose stored hashes do not match its content or its predecessor.
    pub first_broken: Option<i64>,
    pub reason: Option<String>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// The hash an entry must carry: over the previous hash and a fixed-order JSON of its fields.
fn entry_hash(prev_hash: &str, seq: i64, at: Millis, record: &AuditRecord) -> String {
    let canonical = serde_json::json!([
        seq,
        at,
        record.actor,
        record.tenant,
        record.action,
        record.target,
        record.source,
        record.outcome,
        record.detail
    ]);
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(prev_hash.as_bytes());
    context.update(b"\n");
    context.update(canonical.to_string().as_bytes());
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn entry_from_row(row: &Row) -> AuditEntry {
    AuditEntry {
        seq: row.int(0),
        at: row.int(1),
        record: AuditRecord {
            actor: row.text(2),
            tenant: row.opt_text(3),
            action: row.text(4),
            target: row.opt_text(5),
            source: row.opt_text(6),
            outcome: row.text(7),
            detail: row.opt_text(8),
        },
        prev_hash: row.text(9),
        hash: row.text(10),
    }
}

const COLUMNS: &str =
    "seq, at, actor, tenant, action, target, source, outcome, detail, prev_hash, hash";

impl AuthDb {
    pub fn append_audit(&self, record: &AuditRecord, at: Millis) -> Result<AuditEntry, AuthError> {
        let serialize = self.serialize_sql();
        self.transaction(|tx| {
            if let Some(serialize) = serialize {
                tx.execute(serialize, vals![AUDIT_LOCK])?;
            }
            let (last_seq, prev_hash) = tx
                .query_one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?
                .map_or((0, GENESIS_HASH.to_string()), |row| (row.int(0), row.text(1)));
            let seq = last_seq + 1;
            let hash = entry_hash(&prev_hash, seq, at, record);
            tx.execute(
                &format!(
                    "INSERT INTO audit ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ),
                vals![
                    seq,
                    at,
                    record.actor.as_str(),
                    record.tenant.as_deref(),
                    record.action.as_str(),
                    record.target.as_deref(),
                    record.source.as_deref(),
                    record.outcome.as_str(),
                    record.detail.as_deref(),
                    prev_hash.as_str(),
                    hash.as_str()
                ],
            )?;
            Ok(AuditEntry {
                seq,
                at,
                record: record.clone(),
                prev_hash: prev_hash.clone(),
                hash,
            })
        })
    }

    /// Entries after `after_seq`, oldest first, at most `limit`.
    pub fn audit_entries(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuthError> {
        self.transaction(|tx| {
            Ok(tx
                .query(
                    &format!("SELECT {COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
                    vals![after_seq, limit as i64],
                )?
                .iter()
                .map(entry_from_row)
                .collect())
        })
    }

    /// Calls `visit` with every entry after `after_seq`, oldest first, a page at a time so
    /// a long log never sits in memory whole.
    pub fn each_audit_entry(
        &self,
        after_seq: i64,
        mut visit: impl FnMut(AuditEntry),
    ) -> Result<(), AuthError> {
        let mut after = after_seq;
        loop {
            let page = self.audit_entries(after, 1000)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.seq;
            page.into_iter().for_each(&mut visit);
        }
    }

    /// Recomputes every hash from the first entry on.
    pub fn verify_audit(&self) -> Result<ChainReport, AuthError> {
        let mut report = ChainReport {
            entries: 0,
            head: GENESIS_HASH.to_string(),
            first_broken: None,
            reason: None,
        };
        let mut expected_seq = 1;
        self.each_audit_entry(0, |entry| {
            report.entries += 1;
            if report.first_broken.is_some() {
                return;
            }
            let broken = if entry.seq != expected_seq {
                Some(format!(
                    "entry {expected_seq} is missing (next is {})",
                    entry.seq
                ))
            } else if entry.prev_hash != report.head {
                Some("its prev_hash does not match the entry before it".to_string())
            } else if entry.hash != entry_hash(&entry.prev_hash, entry.seq, entry.at, &entry.record)
            {
                Some("its content does not match its hash".to_string())
            } else {
                None
            };
            if let Some(reason) = broken {
                report.first_broken = Some(entry.seq);
                report.reason = Some(reason);
            }
            report.head = entry.hash.clone();
            expected_seq = entry.seq + 1;
        })?;
        Ok(report)
    }
}
