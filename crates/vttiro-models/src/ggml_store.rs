//! ggml files inside the model cache. They live beside the CTranslate2 files of the same
//! model (`<dir>/<name>/ggml-model[-q8_0|-q5_0].bin`) and are listed in their own
//! manifest, `vttiro-ggml.json`, so the CTranslate2 manifest keeps describing exactly the
//! CTranslate2 install. A ggml file pulled before its CTranslate2 model leaves a directory
//! holding only ggml files; a later CTranslate2 install adopts them (see `staging`).
//!
//! Files reach the cache either converted from the installed CTranslate2 model
//! ([`ModelStore::convert_to_ggml`]) or downloaded from whisper.cpp's own conversions on
//! the Hugging Face hub ([`ModelStore::pull_ggml`]). Each is written under a temporary
//! name and renamed into place before its manifest entry is written, so an entry always
//! names a complete file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::convert::convert_ct2_to_ggml;
use crate::digest;
use crate::error::ModelError;
use crate::ggml::{inspect_ggml, GgmlModelInfo, GgmlQuant};
use crate::hub::{DownloadProgress, RepoFiles};
use crate::manifest::Manifest;
use crate::registry::{spec_for, FileRule};
use crate::store::{ModelStore, PARTIAL_DIR};

pub const GGML_MANIFEST_FILE: &str = "vttiro-ggml.json";
/// whisper.cpp's own ggml conversions of the OpenAI checkpoints.
pub const GGML_HUB_REPO: &str = "ggerganov/whisper.cpp";
const GGML_HUB_REVISION: &str = "main";
const GGML_MANIFEST_VERSION: u32 = 1;

/// One ggml file of an installed model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GgmlFile {
    pub quant: GgmlQuant,
    pub file: String,
    /// `convert:<CTranslate2 source>` or `hf:ggerganov/whisper.cpp@main`.
    pub source: String,
    /// The CTranslate2 model's revision for conversions, the hub commit for downloads.
    pub revision: Option<String>,
    pub english_only: bool,
    pub n_mels: u32,
    pub size: u64,
    pub sha256: String,
    pub created_at_unix: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GgmlManifest {
    pub manifest_version: u32,
    pub name: String,
    pub files: Vec<GgmlFile>,
}

impl GgmlManifest {
    /// The manifest in `model_dir`, or an empty one when there is none yet.
    pub fn read_or_empty(model_dir: &Path, name: &str) -> Result<GgmlManifest, ModelError> {
        let path = model_dir.join(GGML_MANIFEST_FILE);
        if !path.is_file() {
            return Ok(GgmlManifest {
                manifest_version: GGML_MANIFEST_VERSION,
                name: name.to_owned(),
                files: Vec::new(),
            });
        }
        let text = fs::read_to_string(&path).map_err(ModelError::io("read", &path))?;
        let manifest: GgmlManifest =
            serde_json::from_str(&text).map_err(|error| ModelError::InvalidManifest {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        if manifest.manifest_version != GGML_MANIFEST_VERSION {
            return Err(ModelError::InvalidManifest {
                path,
                reason: format!(
                    "manifest_version {} is not supported (expected {GGML_MANIFEST_VERSION})",
                    manifest.manifest_version
                ),
            });
        }
        Ok(manifest)
    }

    pub fn get(&self, quant: GgmlQuant) -> Option<&GgmlFile> {
        self.files.iter().find(|file| file.quant == quant)
    }

    /// Replaces the manifest atomically (temporary file, then rename).
    fn write(&self, model_dir: &Path) -> Result<(), ModelError> {
        let path = model_dir.join(GGML_MANIFEST_FILE);
        let json =
            serde_json::to_vec_pretty(self).map_err(|error| ModelError::InvalidManifest {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        let mut temp = tempfile::Builder::new()
            .prefix(".ggml-manifest-")
            .tempfile_in(model_dir)
            .map_err(ModelError::io("create a temporary file in", model_dir))?;
        temp.write_all(&json)
            .and_then(|()| temp.as_file().sync_all())
            .map_err(ModelError::io("write", temp.path()))?;
        temp.persist(&path)
            .map_err(|error| ModelError::io("write", &path)(error.error))?;
        Ok(())
    }

    fn record(&mut self, entry: GgmlFile) {
        self.files.retain(|file| file.quant != entry.quant);
        self.files.push(entry);
        self.files.sort_by_key(|file| file.quant);
    }
}

/// A ggml file ready for the whisper.cpp engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledGgml {
    pub name: String,
    pub quant: GgmlQuant,
    pub path: PathBuf,
    pub source: String,
    pub english_only: bool,
    pub n_mels: u32,
}

#[derive(Debug)]
pub struct GgmlPullReport {
    pub model: InstalledGgml,
    pub already_installed: bool,
}

struct GgmlHubFiles {
    model: &'static str,
    f16: &'static [FileRule],
    q8_0: &'static [FileRule],
    q5_0: &'static [FileRule],
}

/// whisper.cpp's file names for every registry model: `ggml-<name>[-q8_0|-q5_0].bin`. Not
/// every quantisation is published for every model; the hub listing says which are.
macro_rules! ggml_hub_files {
    ($($model:literal),* $(,)?) => {
        &[$(GgmlHubFiles {
            model: $model,
            f16: &[FileRule::Required(concat!("ggml-", $model, ".bin"))],
            q8_0: &[FileRule::Required(concat!("ggml-", $model, "-q8_0.bin"))],
            q5_0: &[FileRule::Required(concat!("ggml-", $model, "-q5_0.bin"))],
        }),*]
    };
}

const GGML_HUB_FILES: &[GgmlHubFiles] = ggml_hub_files!(
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "large-v3",
    "large-v3-turbo",
);

/// The hub file whisper.cpp publishes for `name` at `quant`, if the registry knows it.
pub fn ggml_hub_file(name: &str, quant: GgmlQuant) -> Option<&'static str> {
    ggml_hub_rules(name, quant).and_then(|rules| match rules {
        [FileRule::Required(file)] => Some(*file),
        _ => None,
    })
}

fn ggml_hub_rules(name: &str, quant: GgmlQuant) -> Option<&'static [FileRule]> {
    let files = GGML_HUB_FILES.iter().find(|files| files.model == name)?;
    Some(match quant {
        GgmlQuant::F16 => files.f16,
        GgmlQuant::Q8_0 => files.q8_0,
        GgmlQuant::Q5_0 => files.q5_0,
    })
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Refuses a ggml file that is not what its name promises: whisper.cpp would load it, but
/// as the wrong model or the wrong precision.
fn check_ggml_identity(
    info: &GgmlModelInfo,
    quant: GgmlQuant,
    english_only: bool,
    n_mels: u32,
) -> Result<(), String> {
    let hparams = &info.hparams;
    if hparams.matrix_type() != Some(quant.matrix_type()) {
        return Err(format!(
            "it stores {:?} weights, not {quant}",
            hparams.matrix_type()
        ));
    }
    if hparams.english_only() != english_only {
        return Err(format!(
            "its {} tokens make it {}",
            hparams.n_vocab,
            if hparams.english_only() {
                "English-only"
            } else {
                "multilingual"
            }
        ));
    }
    if hparams.n_mels as u32 != n_mels {
        return Err(format!(
            "it expects {} mel bins, not {n_mels}",
            hparams.n_mels
        ));
    }
    if info.tensors.len() != hparams.expected_tensor_count() {
        return Err(format!(
            "it has {} tensors where whisper.cpp loads {}",
            info.tensors.len(),
            hparams.expected_tensor_count()
        ));
    }
    Ok(())
}

impl ModelStore {
    /// Converts the installed CTranslate2 model `name` into a ggml file beside it
    /// (`<dir>/<name>/ggml-model[-q8_0|-q5_0].bin`), replacing an earlier conversion of
    /// the same quantisation atomically, and records it in `vttiro-ggml.json`.
    pub fn convert_to_ggml(&self, name: &str, quant: GgmlQuant) -> Result<PathBuf, ModelError> {
        let model_dir = self.require_installed(name)?;
        let manifest = Manifest::read(&model_dir)?;
        let dst = model_dir.join(quant.file_name());
        let info = convert_ct2_to_ggml(&model_dir, &dst, quant)?;
        if let Err(reason) =
            check_ggml_identity(&info, quant, manifest.english_only, manifest.n_mels)
        {
            let _ = fs::remove_file(&dst);
            return Err(ModelError::ConversionFailed {
                path: model_dir,
                reason: format!("the converted file disagrees with the manifest: {reason}"),
            });
        }
        let (size, sha256) = digest::sha256_file(&dst)?;
        let mut ggml = GgmlManifest::read_or_empty(&model_dir, name)?;
        ggml.record(GgmlFile {
            quant,
            file: quant.file_name().to_owned(),
            source: format!("convert:{}", manifest.source),
            revision: manifest.revision.clone(),
            english_only: manifest.english_only,
            n_mels: manifest.n_mels,
            size,
            sha256,
            created_at_unix: now_unix(),
        });
        ggml.write(&model_dir)?;
        Ok(dst)
    }

    /// The ggml files recorded for `name` (empty when there are none).
    pub fn ggml_files(&self, name: &str) -> Result<Vec<GgmlFile>, ModelError> {
        crate::store::validate_name(name)?;
        let model_dir = self.dir().join(name);
        if !model_dir.is_dir() {
            return Ok(Vec::new());
        }
        Ok(GgmlManifest::read_or_empty(&model_dir, name)?.files)
    }

    /// The ggml file of `name` at `quant`, or with `None` the most precise one present
    /// (f16, then q8_0, then q5_0).
    pub fn resolve_ggml(
        &self,
        name: &str,
        quant: Option<GgmlQuant>,
    ) -> Result<InstalledGgml, ModelError> {
        let files = self.ggml_files(name)?;
        let candidates: Vec<GgmlQuant> = match quant {
            Some(quant) => vec![quant],
            None => GgmlQuant::ALL.to_vec(),
        };
        let model_dir = self.dir().join(name);
        for wanted in candidates {
            if let Some(file) = files.iter().find(|file| file.quant == wanted) {
                let path = model_dir.join(&file.file);
                if path.is_file() {
                    return Ok(InstalledGgml {
                        name: name.to_owned(),
                        quant: file.quant,
                        path,
                        source: file.source.clone(),
                        english_only: file.english_only,
                        n_mels: file.n_mels,
                    });
                }
            }
        }
        Err(ModelError::GgmlNotInstalled {
            name: name.to_owned(),
            quant: quant.unwrap_or(GgmlQuant::F16).to_string(),
            dir: self.dir().to_path_buf(),
        })
    }

    /// Downloads whisper.cpp's own ggml conversion of the registry model `name` from the
    /// Hugging Face hub (`ggerganov/whisper.cpp`, `ggml-<name>[-q8_0|-q5_0].bin`),
    /// verified against the hub's sha256 and checked to be the model and precision it
    /// claims, into `<dir>/<name>/`. Interrupted downloads resume on the next call.
    pub fn pull_ggml(
        &self,
        name: &str,
        quant: GgmlQuant,
        progress: &mut dyn FnMut(DownloadProgress<'_>),
    ) -> Result<GgmlPullReport, ModelError> {
        let spec = spec_for(name)?;
        if let Ok(model) = self.resolve_ggml(name, Some(quant)) {
            return Ok(GgmlPullReport {
                model,
                already_installed: true,
            });
        }
        let rules = ggml_hub_rules(name, quant).ok_or_else(|| ModelError::SourceUnavailable {
            name: name.to_owned(),
            source_kind: "whisper.cpp ggml",
            available: "CTranslate2 sources only; convert it with `vttiro models convert`".into(),
        })?;
        // Beside the CTranslate2 partials but under a dot name no model can have.
        let partial = self.dir().join(PARTIAL_DIR).join(".ggml").join(name);
        let (info, mut fetched) = self.hub().download_files(
            name,
            RepoFiles {
                repo: GGML_HUB_REPO,
                revision: GGML_HUB_REVISION,
                rules,
            },
            &partial,
            self.cancel(),
            progress,
        )?;
        let file = fetched.pop().expect("one rule yields one file");
        let checked = inspect_ggml(&file.path).and_then(|ggml| {
            check_ggml_identity(&ggml, quant, spec.english_only, spec.n_mels).map_err(|reason| {
                ModelError::InvalidGgml {
                    path: file.path.clone(),
                    reason: format!("{} from {GGML_HUB_REPO}: {reason}", file.name),
                }
            })
        });
        if let Err(error) = checked {
            let _ = fs::remove_dir_all(&partial);
            return Err(error);
        }
        let model_dir = self.dir().join(name);
        fs::create_dir_all(&model_dir).map_err(ModelError::io("create", &model_dir))?;
        let target = model_dir.join(quant.file_name());
        fs::rename(&file.path, &target).map_err(ModelError::io("move", &file.path))?;
        let mut ggml = GgmlManifest::read_or_empty(&model_dir, name)?;
        let entry = GgmlFile {
            quant,
            file: quant.file_name().to_owned(),
            source: format!("hf:{GGML_HUB_REPO}@{GGML_HUB_REVISION}"),
            revision: Some(info.commit),
            english_only: spec.english_only,
            n_mels: spec.n_mels,
            size: file.size,
            sha256: file.sha256,
            created_at_unix: now_unix(),
        };
        ggml.record(entry.clone());
        ggml.write(&model_dir)?;
        // Only resume state is left there.
        let _ = fs::remove_dir_all(&partial);
        Ok(GgmlPullReport {
            model: InstalledGgml {
                name: name.to_owned(),
                quant,
                path: target,
                source: entry.source,
                english_only: entry.english_only,
                n_mels: entry.n_mels,
            },
            already_installed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::REGISTRY;

    #[test]
    fn every_registry_model_has_whisper_cpp_file_names() {
        for spec in REGISTRY {
            for quant in GgmlQuant::ALL {
                let file = ggml_hub_file(spec.name, quant).expect("hub file name");
                assert!(file.starts_with(&format!("ggml-{}", spec.name)), "{file}");
                assert!(file.ends_with(".bin"));
            }
        }
        assert_eq!(
            ggml_hub_file("large-v3-turbo", GgmlQuant::Q5_0),
            Some("ggml-large-v3-turbo-q5_0.bin")
        );
        assert_eq!(
            ggml_hub_file("tiny.en", GgmlQuant::F16),
            Some("ggml-tiny.en.bin")
        );
        assert_eq!(ggml_hub_file("nope", GgmlQuant::F16), None);
    }
}
