//! Which local backend runs a transcription. The rule follows what was measured: on CPU
//! and on NVIDIA GPUs CTranslate2 is about 3x faster than whisper.cpp at the same WER, so
//! it wins wherever it can run; whisper.cpp is chosen for the GPUs only it drives (Metal,
//! ROCm, Vulkan) and when it is the only backend compiled in. Explicit `--backend` and
//! `--device` requests are honoured or refused with the rebuild that would satisfy them,
//! never silently downgraded.

use crate::{AsrError, Device};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Ct2,
    WhisperCpp,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Ct2 => "ct2",
            BackendKind::WhisperCpp => "whispercpp",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What this binary was compiled with and what the machine offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub ct2: bool,
    /// CTranslate2 built with CUDA.
    pub ct2_cuda: bool,
    /// An NVIDIA driver is present.
    pub nvidia_gpu: bool,
    pub whispercpp: bool,
    /// whisper.cpp built with Metal, hipBLAS, Vulkan or CUDA.
    pub whispercpp_gpu: bool,
}

impl Capabilities {
    pub fn detect() -> Capabilities {
        Capabilities {
            ct2: cfg!(feature = "ct2"),
            ct2_cuda: cfg!(feature = "cuda"),
            nvidia_gpu: std::path::Path::new("/dev/nvidiactl").exists(),
            whispercpp: cfg!(feature = "whispercpp"),
            whispercpp_gpu: cfg!(any(
                feature = "metal",
                feature = "hipblas",
                feature = "vulkan",
                feature = "whispercpp-cuda"
            )),
        }
    }
}

/// The backend and concrete device (never `Auto`) a transcription will use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    pub backend: BackendKind,
    pub device: Device,
}

const CT2_MISSING: &str =
    "this vttiro build has no CTranslate2 backend; rebuild with `--features ct2` or use --backend whispercpp";
const WHISPERCPP_MISSING: &str =
    "this vttiro build has no whisper.cpp backend; rebuild with `--features whispercpp` (add `metal`, `hipblas`, `vulkan` or `whispercpp-cuda` for a GPU) or use --backend ct2";

/// Picks the backend for `requested` (`None` = auto) on `device`.
pub fn select_backend(
    requested: Option<BackendKind>,
    device: Device,
    caps: &Capabilities,
) -> Result<Selection, AsrError> {
    let ct2_gpu = caps.ct2 && caps.ct2_cuda && caps.nvidia_gpu;
    let pick = |backend, gpu: bool| Selection {
        backend,
        device: if gpu { Device::Gpu } else { Device::Cpu },
    };
    match requested {
        Some(BackendKind::Ct2) => {
            if !caps.ct2 {
                return Err(AsrError::Unavailable(format!("--backend ct2: {CT2_MISSING}")));
            }
            match device {
                Device::Gpu if !caps.ct2_cuda => Err(AsrError::Unavailable(
                    "--device gpu: this vttiro build's CTranslate2 has no CUDA support; rebuild with `--features cuda` or use --device cpu".into(),
                )),
                Device::Gpu if !caps.nvidia_gpu => Err(AsrError::Unavailable(
                    "--device gpu: no NVIDIA GPU driver found (/dev/nvidiactl is missing); use --device cpu".into(),
                )),
                Device::Gpu => Ok(pick(BackendKind::Ct2, true)),
                Device::Auto => Ok(pick(BackendKind::Ct2, ct2_gpu)),
                Device::Cpu => Ok(pick(BackendKind::Ct2, false)),
            }
        }
        Some(BackendKind::WhisperCpp) => {
            if !caps.whispercpp {
                return Err(AsrError::Unavailable(format!(
                    "--backend whispercpp: {WHISPERCPP_MISSING}"
                )));
            }
            match device {
                Device::Gpu if !caps.whispercpp_gpu => Err(AsrError::Unavailable(
                    "--device gpu: this vttiro build's whisper.cpp has no GPU backend; rebuild with `--features metal`, `hipblas`, `vulkan` or `whispercpp-cuda`, or use --device cpu".into(),
                )),
                Device::Gpu => Ok(pick(BackendKind::WhisperCpp, true)),
                Device::Auto => Ok(pick(BackendKind::WhisperCpp, caps.whispercpp_gpu)),
                Device::Cpu => Ok(pick(BackendKind::WhisperCpp, false)),
            }
        }
        None => match device {
            Device::Gpu if ct2_gpu => Ok(pick(BackendKind::Ct2, true)),
            Device::Gpu if caps.whispercpp && caps.whispercpp_gpu => {
                Ok(pick(BackendKind::WhisperCpp, true))
            }
            Device::Gpu => Err(AsrError::Unavailable(
                if caps.ct2_cuda {
                    "--device gpu: no NVIDIA GPU driver found (/dev/nvidiactl is missing) and whisper.cpp has no GPU backend in this build; use --device cpu"
                } else {
                    "--device gpu: this is a CPU-only build; rebuild with `--features cuda` (NVIDIA) or `--features metal|hipblas|vulkan` (whisper.cpp), or use --device cpu"
                }
                .into(),
            )),
            Device::Auto if ct2_gpu => Ok(pick(BackendKind::Ct2, true)),
            Device::Auto if caps.whispercpp && caps.whispercpp_gpu => {
                Ok(pick(BackendKind::WhisperCpp, true))
            }
            Device::Auto | Device::Cpu if caps.ct2 => Ok(pick(BackendKind::Ct2, false)),
            Device::Auto | Device::Cpu if caps.whispercpp => {
                Ok(pick(BackendKind::WhisperCpp, false))
            }
            Device::Auto | Device::Cpu => Err(AsrError::Unavailable(
                "this vttiro build has no local backend; rebuild with `--features ct2` or `--features whispercpp`".into(),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU_ONLY: Capabilities = Capabilities {
        ct2: true,
        ct2_cuda: false,
        nvidia_gpu: false,
        whispercpp: true,
        whispercpp_gpu: false,
    };

    fn chosen(requested: Option<BackendKind>, device: Device, caps: Capabilities) -> Selection {
        select_backend(requested, device, &caps).expect("a backend")
    }

    #[test]
    fn ct2_wins_on_cpu_because_it_measured_faster() {
        let s = chosen(None, Device::Auto, CPU_ONLY);
        assert_eq!((s.backend, s.device), (BackendKind::Ct2, Device::Cpu));
    }

    #[test]
    fn nvidia_goes_to_ct2_and_other_gpus_to_whispercpp() {
        let nvidia = Capabilities {
            ct2_cuda: true,
            nvidia_gpu: true,
            whispercpp_gpu: true,
            ..CPU_ONLY
        };
        let s = chosen(None, Device::Auto, nvidia);
        assert_eq!((s.backend, s.device), (BackendKind::Ct2, Device::Gpu));
        let metal = Capabilities {
            whispercpp_gpu: true,
            ..CPU_ONLY
        };
        let s = chosen(None, Device::Auto, metal);
        assert_eq!(
            (s.backend, s.device),
            (BackendKind::WhisperCpp, Device::Gpu)
        );
        // A CUDA build on a machine without the driver falls back to the CPU.
        let no_driver = Capabilities {
            ct2_cuda: true,
            ..CPU_ONLY
        };
        assert_eq!(chosen(None, Device::Auto, no_driver).device, Device::Cpu);
    }

    #[test]
    fn only_compiled_backend_is_used() {
        let only_whispercpp = Capabilities {
            ct2: false,
            ..CPU_ONLY
        };
        assert_eq!(
            chosen(None, Device::Cpu, only_whispercpp).backend,
            BackendKind::WhisperCpp
        );
    }

    #[test]
    fn impossible_requests_name_the_missing_build() {
        let err = |requested, device, caps| {
            select_backend(requested, device, &caps)
                .unwrap_err()
                .to_string()
        };
        let no_whispercpp = Capabilities {
            whispercpp: false,
            ..CPU_ONLY
        };
        assert!(
            err(Some(BackendKind::WhisperCpp), Device::Auto, no_whispercpp)
                .contains("--features whispercpp")
        );
        assert!(err(None, Device::Gpu, CPU_ONLY).contains("CPU-only build"));
        assert!(err(Some(BackendKind::Ct2), Device::Gpu, CPU_ONLY).contains("--features cuda"));
        assert!(err(Some(BackendKind::WhisperCpp), Device::Gpu, CPU_ONLY).contains("metal"));
        let cuda_without_driver = Capabilities {
            ct2_cuda: true,
            ..CPU_ONLY
        };
        assert!(
            err(Some(BackendKind::Ct2), Device::Gpu, cuda_without_driver).contains("nvidiactl")
        );
    }
}
