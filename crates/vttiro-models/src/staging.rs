//! All-or-nothing installs: files are assembled in `<store>/.staging-<name>` and the whole
//! directory is renamed to `<store>/<name>` only once every file is verified and the
//! manifest is written, so a crash or error never leaves a half-installed model behind.
//!
//! The one directory that may already exist at the target is one holding only ggml files
//! (pulled before the CTranslate2 model); its files are carried into the new install.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::ModelError;
use crate::ggml_store::GGML_MANIFEST_FILE;
use crate::manifest::{Manifest, MANIFEST_FILE};

pub(crate) struct Staging {
    dir: PathBuf,
    target: PathBuf,
    name: String,
    committed: bool,
}

impl Staging {
    pub(crate) fn begin(store_dir: &Path, name: &str) -> Result<Staging, ModelError> {
        let dir = store_dir.join(format!(".staging-{name}"));
        // A leftover from a crashed run holds nothing worth keeping: it was never verified.
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(ModelError::io("remove stale staging dir", &dir))?;
        }
        fs::create_dir_all(&dir).map_err(ModelError::io("create staging dir", &dir))?;
        Ok(Staging {
            dir,
            target: store_dir.join(name),
            name: name.to_owned(),
            committed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn commit(mut self, manifest: &Manifest) -> Result<PathBuf, ModelError> {
        manifest.write(&self.dir)?;
        if self.target.exists() {
            if !holds_only_ggml(&self.target) {
                return Err(ModelError::AlreadyInstalled {
                    name: self.name.clone(),
                    path: self.target.clone(),
                });
            }
            // A crash after this point loses the carried ggml files with the staging dir;
            // they are caches of downloads or conversions and can be fetched again.
            self.adopt_entries_of_target()?;
        }
        fs::rename(&self.dir, &self.target).map_err(ModelError::io("install", &self.target))?;
        self.committed = true;
        Ok(self.target.clone())
    }

    fn adopt_entries_of_target(&self) -> Result<(), ModelError> {
        let entries = fs::read_dir(&self.target).map_err(ModelError::io("list", &self.target))?;
        for entry in entries {
            let entry = entry.map_err(ModelError::io("list", &self.target))?;
            let destination = self.dir.join(entry.file_name());
            if destination.exists() {
                continue;
            }
            fs::rename(entry.path(), &destination).map_err(ModelError::io("move", entry.path()))?;
        }
        fs::remove_dir_all(&self.target).map_err(ModelError::io("replace", &self.target))
    }
}

/// A model directory with ggml files but no CTranslate2 install.
fn holds_only_ggml(dir: &Path) -> bool {
    dir.join(GGML_MANIFEST_FILE).is_file() && !dir.join(MANIFEST_FILE).exists()
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the next `begin` for this name clears whatever is left.
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
