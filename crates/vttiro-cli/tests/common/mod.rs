//! What every `vttiro` binary test needs: running the binary against a chosen model store
//! with the user's configuration and model environment shut out, and reading its output.
// Each test binary uses its own subset of these.
#![allow(dead_code)]

pub mod pyenv;
pub mod service;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `vttiro` in `cwd` with `store` as its model store and no user configuration.
pub fn vttiro_in(args: &[&str], cwd: &Path, store: &Path) -> Output {
    vttiro_env(args, cwd, store, &[])
}

/// [`vttiro_in`] with extra environment variables, and with every cloud provider's key and
/// endpoint variable removed first so the developer's own keys can never be used.
pub fn vttiro_env(args: &[&str], cwd: &Path, store: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vttiro"));
    command
        .args(args)
        .current_dir(cwd)
        .env("VTTIRO_MODEL_DIR", store)
        .env("XDG_CONFIG_HOME", cwd.join("no-user-config"))
        .env_remove("VTTIRO_MODEL")
        .env_remove("VTTIRO_FORMAT")
        .env_remove("VTTIRO_SPEAKER_MODEL")
        .env_remove("VTTIRO_ENGINE")
        .env_remove("VTTIRO_LOG");
    for provider in ["OPENAI", "GEMINI", "ASSEMBLYAI", "DEEPGRAM", "GOOGLE"] {
        command
            .env_remove(format!("VTTIRO_{provider}_API_KEY"))
            .env_remove(format!("{provider}_API_KEY"))
            .env_remove(format!("VTTIRO_{provider}_BASE_URL"));
    }
    command.envs(env.iter().copied());
    command.output().expect("run vttiro")
}

/// The model store holding the verified tiny.en fixture.
pub fn asr_store() -> PathBuf {
    let model = vttiro_fixtures::tiny_en_model();
    model.parent().expect("store dir").to_path_buf()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
