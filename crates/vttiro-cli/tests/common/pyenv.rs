//! Python clients no one here wrote — the official `openai` SDK, `schemathesis`,
//! `standardwebhooks` — pinned and installed from PyPI into a cached venv, so the service
//! is checked by the tools its users run.

use std::path::PathBuf;

/// The pins; changing one rebuilds the venv.
pub const SERVICE_CLIENTS: [&str; 3] = [
    "openai==3.57.0",
    "schemathesis==4.32.5",
    "standardwebhooks==1.1.0",
];

/// The venv's python (`python -m schemathesis.cli`, `import openai`, ...).
pub fn service_python() -> PathBuf {
    vttiro_fixtures::python_venv("service-clients-venv", &SERVICE_CLIENTS)
}
