//! `vttiro keys`, `vttiro audit` and `vttiro storage`: administration that works on the data
//! directory directly, so the first admin key can be made before any exists, and the audit
//! chain and encryption keys can be checked and rotated with the server stopped or running.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vttiro_auth::{AuditRecord, NewKey, Role};
use vttiro_core::ErrorCode;

use crate::serve_cmd::{open_auth, resolve_data_dir, Database};

#[derive(Args, Debug)]
pub struct DataDirArg {
    /// The service's data directory (default: the user data dir, as `vttiro serve` uses).
    #[arg(long, env = "VTTIRO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The service's PostgreSQL database, when it runs on one (as `vttiro serve
    /// --database-url`): keys and the audit log live there.
    #[arg(long, env = "VTTIRO_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Verify the database's TLS certificate against this PEM CA bundle.
    #[arg(long, env = "VTTIRO_DATABASE_CA_FILE", requires = "database_url")]
    pub database_ca_file: Option<PathBuf>,
}

impl DataDirArg {
    pub(crate) fn database(&self) -> Database<'_> {
        Database {
            url: self.database_url.as_deref(),
            ca_file: self.database_ca_file.as_deref(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key and print its token (shown this once only).
    Create {
        #[command(flatten)]
        data: DataDirArg,
        /// The tenant the key acts in.
        #[arg(long)]
        tenant: String,
        /// admin, submitter, reader or metrics.
        #[arg(long)]
        role: String,
        /// What the key is for.
        #[arg(long, default_value = "created by vttiro keys create")]
        name: String,
        /// Days until it stops working.
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// This key's requests a minute (overrides the server's).
        #[arg(long)]
        requests_per_minute: Option<u32>,
        /// This key's audio minutes per UTC day (overrides the server's).
        #[arg(long)]
        audio_minutes_per_day: Option<u32>,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once, in every process on this data directory.
    Revoke {
        #[command(flatten)]
        data: DataDirArg,
        /// The key's id (`key_…`).
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 0 when intact, 53 when any entry was altered.
    Verify {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Print the log as JSON lines.
    Export {
        #[command(flatten)]
        data: DataDirArg,
        /// Only entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Print a new random master key entry (`id:base64key`) to put first in the key file.
    NewKey {
        /// The key's id (1-32 of A-Z a-z 0-9 _ -).
        #[arg(long)]
        id: String,
    },
    /// Re-wrap every object's data key under the key file's first (current) master key,
    /// and encrypt objects stored before encryption was turned on. Data is not re-encrypted.
    RotateKeys {
        #[command(flatten)]
        data: DataDirArg,
        /// The master key file: the new key first, the old ones after it.
        #[arg(long, env = "VTTIRO_MASTER_KEY_FILE")]
        master_key_file: PathBuf,
        /// The store to rotate, when the service uses a bucket (as `serve --store`).
        #[arg(long, env = "VTTIRO_STORE")]
        store: Option<String>,
    },
}

fn fail(code: ErrorCode, message: impl std::fmt::Display) -> i32 {
    eprintln!("error: {message}");
    code.exit_code()
}

fn open(data: &DataDirArg) -> Result<vttiro_auth::AuthDb, i32> {
    let dir = resolve_data_dir(data.data_dir.as_deref());
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail(ErrorCode::StorageFailed, format!("{}: {e}", dir.display())))?;
    open_auth(&dir, data.database()).map_err(|message| fail(ErrorCode::StorageFailed, message))
}

/// Local administration is audited like the API's, as the `cli` actor.
fn audit(
    db: &vttiro_auth::AuthDb,
    action: &str,
    tenant: Option<&str>,
    target: &str,
    detail: String,
) {
    let record = AuditRecord {
        actor: format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        ),
        tenant: tenant.map(str::to_string),
        action: action.into(),
        target: Some(target.into()),
        source: Some("local".into()),
        outcome: "ok".into(),
        detail: Some(detail),
    };
    if let Err(e) = db.append_audit(&record, vttiro_auth::now_ms()) {
        eprintln!("warning: could not write the audit log: {e}");
    }
}

pub fn keys(command: &KeysCommand) -> i32 {
    match command {
        KeysCommand::Create {
            data,
            tenant,
            role,
            name,
            expires_in_days,
            requests_per_minute,
            audio_minutes_per_day,
        } => {
            let Some(role) = Role::parse(role) else {
                return fail(
                    ErrorCode::InvalidArgument,
                    format!("--role {role}: expected admin, submitter, reader or metrics"),
                );
            };
            if expires_in_days == &Some(0) {
                return fail(ErrorCode::InvalidArgument, "--expires-in-days: at least 1");
            }
            let db = match open(data) {
                Ok(db) => db,
                Err(code) => return code,
            };
            let now = vttiro_auth::now_ms();
            let new = NewKey {
                name: name.clone(),
                tenant: tenant.clone(),
                role,
                expires_at: expires_in_days.map(|d| now + i64::from(d) * 86_400_000),
                requests_per_minute: *requests_per_minute,
                audio_minutes_per_day: *audio_minutes_per_day,
            };
            match db.create_key(&new, now) {
                Ok((key, token)) => {
                    audit(
                        &db,
                        "key.create",
                        Some(tenant),
                        &key.id,
                        format!("role {role}"),
                    );
                    eprintln!(
                        "created {} ({role} of tenant {tenant}); the token below is shown only now:",
                        key.id
                    );
                    println!("{token}");
                    0
                }
                Err(e) => fail(ErrorCode::InvalidArgument, e),
            }
        }
        KeysCommand::List { data, tenant, json } => {
            let db = match open(data) {
                Ok(db) => db,
                Err(code) => return code,
            };
            match db.list_keys(tenant.as_deref()) {
                Ok(keys) if *json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&keys).unwrap_or_default()
                    );
                    0
                }
                Ok(keys) => {
                    println!(
                        "{:<18} {:<10} {:<16} {:<8} name",
                        "id", "role", "tenant", "state"
                    );
                    let now = vttiro_auth::now_ms();
                    for key in keys {
                        let state = if key.revoked_at.is_some() {
                            "revoked"
                        } else if key.expires_at.is_some_and(|at| at <= now) {
                            "expired"
                        } else {
                            "active"
                        };
                        println!(
                            "{:<18} {:<10} {:<16} {:<8} {}",
                            key.id, key.role, key.tenant, state, key.name
                        );
                    }
                    0
                }
                Err(e) => fail(ErrorCode::StorageFailed, e),
            }
        }
        KeysCommand::Revoke { data, id } => {
            let db = match open(data) {
                Ok(db) => db,
                Err(code) => return code,
            };
            match db.revoke_key(id, vttiro_auth::now_ms()) {
                Ok(key) => {
                    audit(&db, "key.revoke", Some(&key.tenant), &key.id, String::new());
                    eprintln!("revoked {}", key.id);
                    0
                }
                Err(e @ vttiro_auth::AuthError::KeyNotFound(_)) => fail(ErrorCode::JobNotFound, e),
                Err(e) => fail(ErrorCode::StorageFailed, e),
            }
        }
    }
}

pub fn audit_cmd(command: &AuditCommand) -> i32 {
    match command {
        AuditCommand::Verify { data } => {
            let db = match open(data) {
                Ok(db) => db,
                Err(code) => return code,
            };
            match db.verify_audit() {
                Ok(report) if report.intact() => {
                    println!(
                        "audit log intact: {} entries, head {}",
                        report.entries, report.head
                    );
                    0
                }
                Ok(report) => fail(
                    ErrorCode::StorageFailed,
                    format!(
                        "audit log tampered: entry {} fails: {} ({} entries)",
                        report.first_broken.unwrap_or(0),
                        report.reason.unwrap_or_default(),
                        report.entries
                    ),
                ),
                Err(e) => fail(ErrorCode::StorageFailed, e),
            }
        }
        AuditCommand::Export { data, after } => {
            let db = match open(data) {
                Ok(db) => db,
                Err(code) => return code,
            };
            let printed = db.each_audit_entry(*after, |entry| {
                println!("{}", serde_json::to_string(&entry).unwrap_or_default());
            });
            match printed {
                Ok(()) => 0,
                Err(e) => fail(ErrorCode::StorageFailed, e),
            }
        }
    }
}

pub fn storage(command: &StorageCommand) -> i32 {
    match command {
        StorageCommand::NewKey { id } => match vttiro_storage::KeyRing::generate(id) {
            Ok((_, spec)) => {
                println!("{spec}");
                0
            }
            Err(e) => fail(ErrorCode::InvalidArgument, e),
        },
        StorageCommand::RotateKeys {
            data,
            master_key_file,
            store,
        } => {
            let keys = match vttiro_storage::KeyRing::load_file(master_key_file) {
                Ok(keys) => std::sync::Arc::new(keys),
                Err(e) => return fail(ErrorCode::InvalidArgument, e),
            };
            let dir = resolve_data_dir(data.data_dir.as_deref());
            let current = keys.current_id().to_string();
            let opened = match store {
                Some(location) => vttiro_storage::Store::open_location(location, Some(keys)),
                None => vttiro_storage::Store::open_directory(&dir.join("store"), Some(keys)),
            };
            let store = match opened {
                Ok(store) => store,
                Err(e) => return fail(ErrorCode::StorageFailed, e),
            };
            match store.rotate() {
                Ok(report) => {
                    if let Ok(db) = open_auth(&dir, data.database()) {
                        audit(
                            &db,
                            "storage.rotate_keys",
                            None,
                            &current,
                            format!(
                                "rewrapped {}, sealed {}, unchanged {}",
                                report.rewrapped, report.sealed, report.unchanged
                            ),
                        );
                    }
                    println!(
                        "rotated to master key {current}: {} re-wrapped, {} newly encrypted, {} already current",
                        report.rewrapped, report.sealed, report.unchanged
                    );
                    0
                }
                Err(e) => fail(ErrorCode::StorageFailed, e),
            }
        }
    }
}
