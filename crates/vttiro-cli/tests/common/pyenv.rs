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

/// The chart checkers for tests/helm.rs: kubernetes-validate (the Kubernetes OpenAPI
/// schemas of 1.25–1.37, bundled) and jsonschema for the CRD schemas in
/// deploy/helm/schemas, with every dependency pinned too.
pub const CHART_CHECKERS: [&str; 10] = [
    "kubernetes-validate==1.37.0",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "attrs==26.1.0",
    "PyYAML==6.0.4",
    "packaging==26.4",
    "importlib_resources==7.1.0",
    "typing_extensions==4.16.0",
];

/// The venv's python (`python -m kubernetes_validate`, `import jsonschema`).
pub fn chart_python() -> PathBuf {
    vttiro_fixtures::python_venv("chart-checkers-venv", &CHART_CHECKERS)
}
