//! What every `vttiro` binary test needs: running the binary against a chosen model store
//! with the user's configuration and model environment shut out, and reading its output.
// Each test binary uses its own subset of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `vttiro` in `cwd` with `store` as its model store and no user configuration.
pub fn vttiro_in(args: &[&str], cwd: &Path, store: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vttiro"))
        .args(args)
        .current_dir(cwd)
        .env("VTTIRO_MODEL_DIR", store)
        .env("XDG_CONFIG_HOME", cwd.join("no-user-config"))
        .env_remove("VTTIRO_MODEL")
        .env_remove("VTTIRO_FORMAT")
        .env_remove("VTTIRO_SPEAKER_MODEL")
        .output()
        .expect("run vttiro")
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
