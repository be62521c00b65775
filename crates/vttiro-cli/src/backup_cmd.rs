//! `vttiro backup` and `vttiro restore`: a consistent copy of a data directory and its way
//! back. The databases are snapshotted live (`VACUUM INTO` reads one consistent state while
//! the service keeps writing), then the store's objects and the data directory's secrets
//! are copied, and a manifest records every file's size and SHA-256. Restore checks every
//! checksum before it writes anything, builds the data directory beside the target and
//! renames it into place, so a failed restore leaves nothing half-done.
//!
//! Objects encrypted at rest are copied as they are: the backup holds ciphertext, and the
//! master keys (kept outside the data directory) are needed to read it after a restore.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde_json::{json, Value};
use vttiro_core::ErrorCode;
use vttiro_jobs::{QueuePolicy, SqliteQueue, SystemClock};

use crate::admin_cmd::DataDirArg;
use crate::serve_cmd::{open_auth, resolve_data_dir, Database};

const MANIFEST: &str = "manifest.json";
/// Files of the data directory copied as they are (secrets; mode kept owner-only).
const SECRETS: [&str; 2] = ["auth-secret", "webhook-secret"];

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Where to write the backup (a new directory).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup directory `vttiro backup` wrote.
    #[arg(long)]
    pub from: PathBuf,
    #[command(flatten)]
    pub data: DataDirArg,
}

fn fail(code: ErrorCode, message: impl std::fmt::Display) -> i32 {
    eprintln!("error: {message}");
    code.exit_code()
}

/// The file's SHA-256 as lowercase hex; errors name the file.
fn sha256(path: &Path) -> Result<String, String> {
    vttiro_models::sha256_file(path)
        .map(|(_, hex)| hex)
        .map_err(|e| e.to_string())
}

/// Every regular file under `root`, as paths relative to it, skipping writers' part files.
fn files_under(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && !(name.starts_with('.') && name.contains(".part-")) {
                found.push(
                    entry
                        .path()
                        .strip_prefix(root)
                        .unwrap_or(&entry.path())
                        .to_path_buf(),
                );
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(unix)]
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn owner_only(_: &Path) -> std::io::Result<()> {
    Ok(())
}

pub fn backup(args: &BackupArgs) -> i32 {
    let dir = resolve_data_dir(args.data.data_dir.as_deref());
    if args.data.database_url.is_some() {
        return fail(
            ErrorCode::InvalidArgument,
            "the queue, keys and audit log are in PostgreSQL (--database-url): back them up with pg_dump or point-in-time recovery (docs/deploy/backup.md)",
        );
    }
    if !dir.join("jobs.db").is_file() {
        return fail(
            ErrorCode::InputNotFound,
            format!(
                "{}: no vttiro data directory (jobs.db is missing)",
                dir.display()
            ),
        );
    }
    if args.out.exists() {
        return fail(
            ErrorCode::InvalidArgument,
            format!(
                "{}: already exists; back up into a new directory",
                args.out.display()
            ),
        );
    }
    // Written beside the target and renamed at the end: an interrupted backup is never
    // mistaken for a whole one.
    let partial = args.out.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    match write_backup(&dir, &partial) {
        Ok(summary) => match std::fs::rename(&partial, &args.out) {
            Ok(()) => {
                println!(
                    "backed up {} to {}: {summary}",
                    dir.display(),
                    args.out.display()
                );
                0
            }
            Err(e) => fail(
                ErrorCode::OutputFailed,
                format!("{}: {e}", args.out.display()),
            ),
        },
        Err(message) => {
            let _ = std::fs::remove_dir_all(&partial);
            fail(ErrorCode::StorageFailed, message)
        }
    }
}

/// Names the file an I/O error is about.
fn io(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

fn write_backup(dir: &Path, out: &Path) -> Result<String, String> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    owner_only(out).map_err(io(out))?;
    let queue = SqliteQueue::open(
        &dir.join("jobs.db"),
        Arc::new(SystemClock),
        QueuePolicy::default(),
    )
    .map_err(|e| e.to_string())?;
    queue
        .snapshot(&out.join("jobs.db"))
        .map_err(|e| e.to_string())?;
    let auth = open_auth(dir, Database::default())?;
    auth.snapshot(&out.join("auth.db"))
        .map_err(|e| e.to_string())?;
    for secret in SECRETS {
        let from = dir.join(secret);
        if from.is_file() {
            std::fs::copy(&from, out.join(secret)).map_err(io(&from))?;
            owner_only(&out.join(secret)).map_err(io(out))?;
        }
    }
    // Absent when the objects live in a bucket (`--store s3://…`), which has its own
    // versioning and replication (docs/deploy/object-storage.md).
    let store = dir.join("store");
    let objects = if store.is_dir() {
        files_under(&store).map_err(io(&store))?
    } else {
        Vec::new()
    };
    for relative in &objects {
        let (from, to) = (store.join(relative), out.join("store").join(relative));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        match std::fs::copy(&from, &to) {
            Ok(_) => {}
            // Deleted (by a user or retention) since it was listed: not in this backup.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", from.display())),
        }
    }
    let mut files = Vec::new();
    let mut bytes = 0u64;
    for relative in files_under(out).map_err(io(out))? {
        let path = out.join(&relative);
        let size = std::fs::metadata(&path).map_err(io(&path))?.len();
        bytes += size;
        files.push(json!({
            "path": relative.to_string_lossy(),
            "size": size,
            "sha256": sha256(&path)?,
        }));
    }
    let count = files.len();
    let manifest = json!({
        "format": 1,
        "vttiro": env!("CARGO_PKG_VERSION"),
        "created_at": vttiro_auth::now_ms(),
        "source": dir.to_string_lossy(),
        "files": files,
    });
    let manifest_path = out.join(MANIFEST);
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )
    .map_err(io(&manifest_path))?;
    Ok(format!("{count} files, {bytes} bytes"))
}

pub fn restore(args: &RestoreArgs) -> i32 {
    let dir = resolve_data_dir(args.data.data_dir.as_deref());
    let manifest_path = args.from.join(MANIFEST);
    let manifest: Value = match std::fs::read(&manifest_path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(manifest) => manifest,
        Err(e) => {
            return fail(
                ErrorCode::InputNotFound,
                format!("{}: not a vttiro backup: {e}", manifest_path.display()),
            )
        }
    };
    if manifest["format"] != 1 {
        return fail(
            ErrorCode::InvalidArgument,
            format!(
                "{}: unknown backup format {}",
                manifest_path.display(),
                manifest["format"]
            ),
        );
    }
    let occupied = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return fail(
            ErrorCode::InvalidArgument,
            format!(
                "{}: not empty; restore into a new or empty data directory (stop the service first)",
                dir.display()
            ),
        );
    }
    let files = manifest["files"].as_array().cloned().unwrap_or_default();
    // Every file is checked before anything is written.
    for file in &files {
        let relative = file["path"].as_str().unwrap_or_default();
        let safe = !relative.is_empty()
            && Path::new(relative)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return fail(
                ErrorCode::InvalidArgument,
                format!("{}: unsafe path {relative:?}", manifest_path.display()),
            );
        }
        let path = args.from.join(relative);
        let actual = sha256(&path);
        if actual.as_deref() != Ok(file["sha256"].as_str().unwrap_or_default()) {
            return fail(
                ErrorCode::StorageFailed,
                format!(
                    "{}: does not match the backup's manifest ({}); the backup is damaged",
                    path.display(),
                    actual.unwrap_or_else(|e| e)
                ),
            );
        }
    }
    let staging = dir.with_extension("restoring");
    let _ = std::fs::remove_dir_all(&staging);
    let copied = (|| -> std::io::Result<()> {
        for file in &files {
            let relative = file["path"].as_str().unwrap_or_default();
            let to = staging.join(relative);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(args.from.join(relative), &to)?;
            if SECRETS.contains(&relative) {
                owner_only(&to)?;
            }
        }
        if dir.exists() {
            std::fs::remove_dir(&dir)?;
        }
        std::fs::rename(&staging, &dir)
    })();
    match copied {
        Ok(()) => {
            println!(
                "restored {} files into {} from {}",
                files.len(),
                dir.display(),
                args.from.display()
            );
            0
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            fail(ErrorCode::OutputFailed, format!("{}: {e}", dir.display()))
        }
    }
}
