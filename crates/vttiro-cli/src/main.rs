//! The `vttiro` binary; everything but the exit status lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = vttiro::run_cli(std::env::args_os());
    ExitCode::from(code.clamp(0, 255) as u8)
}
