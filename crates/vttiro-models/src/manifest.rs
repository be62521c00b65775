//! `vttiro-manifest.json`: what an installed model directory holds and where it came from.
//! It is written last, inside the staging directory, so a model directory that has one was
//! installed completely.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

pub const MANIFEST_FILE: &str = "vttiro-manifest.json";

/// Bumped when a field changes meaning; readers reject versions they do not know.
const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub name: String,
    /// `hf:<repo>@<revision>`, `pypi:<project>==<version>[+...]` or `import:<path>`.
    pub source: String,
    /// The exact commit the files were taken from, when the source has one.
    pub revision: Option<String>,
    pub english_only: bool,
    pub n_mels: u32,
    pub installed_at_unix: u64,
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    pub(crate) fn new(
        name: &str,
        source: String,
        revision: Option<String>,
        english_only: bool,
        n_mels: u32,
        files: Vec<ManifestFile>,
    ) -> Self {
        let installed_at_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        Manifest {
            manifest_version: MANIFEST_VERSION,
            name: name.to_owned(),
            source,
            revision,
            english_only,
            n_mels,
            installed_at_unix,
            files,
        }
    }

    pub fn read(model_dir: &Path) -> Result<Manifest, ModelError> {
        let path = model_dir.join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).map_err(ModelError::io("read", &path))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|error| ModelError::InvalidManifest {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        if manifest.manifest_version != MANIFEST_VERSION {
            return Err(ModelError::InvalidManifest {
                path,
                reason: format!(
                    "manifest_version {} is not supported (expected {MANIFEST_VERSION})",
                    manifest.manifest_version
                ),
            });
        }
        Ok(manifest)
    }

    pub(crate) fn write(&self, model_dir: &Path) -> Result<(), ModelError> {
        let path = model_dir.join(MANIFEST_FILE);
        let json =
            serde_json::to_vec_pretty(self).map_err(|error| ModelError::InvalidManifest {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        let mut file = fs::File::create(&path).map_err(ModelError::io("create", &path))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(ModelError::io("write", &path))
    }
}
