//! The Helm chart in deploy/helm/vttiro, checked offline with the tools its users run:
//! `helm lint --strict` against values.schema.json (helm v4, pinned by sha256 through
//! vttiro-fixtures), `helm template` for the default values and every values file, each
//! rendered object validated by kubernetes-validate against the Kubernetes 1.31 and 1.37
//! OpenAPI schemas (strict: unknown fields fail), the custom resources (KEDA, Prometheus
//! operator, External Secrets) against the upstream CRD schemas in deploy/helm/schemas, and
//! the rendered YAML parsed and held to the deployment rules: probes, bounded resources,
//! hardened security contexts, recommended labels, spreading, graceful shutdown, disruption
//! budgets, network policies, autoscaling targets, GPU scheduling and secrets referenced
//! only. What needs a real cluster is listed in docs/deploy/kubernetes.md.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_yaml::Value;

/// The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest that
/// kubernetes-validate 1.37.0 bundles.
const KUBE_VERSIONS: [&str; 2] = ["1.31.0", "1.37.0"];
const NAMESPACE: &str = "vttiro";
const RELEASE: &str = "vttiro";
const UID: i64 = 10001;

/// The values files shipped with the chart.
const VALUES_FILES: [&str; 4] = [
    "values-eks.yaml",
    "values-gke.yaml",
    "values-aks.yaml",
    "values-gpu.yaml",
];

/// Settings no shipped values file turns on, so that their templates are checked too.
const OPTIONS_VALUES: &str = r#"
secrets:
  authSecretKey: auth-secret
  externalSecret:
    enabled: true
    secretStoreRef: {kind: ClusterSecretStore, name: aws-secrets-manager}
    data:
      - secretKey: database-url
        remoteRef: {key: prod/vttiro, property: database-url}
      - secretKey: metrics-key
        remoteRef: {key: prod/vttiro, property: metrics-key}
api:
  tls: {existingSecret: vttiro-pod-tls}
  jwt: {jwks: "https://id.example.com/.well-known/jwks.json", issuer: "https://id.example.com/", audience: vttiro}
  requestsPerMinute: 600
  resultRetentionDays: 30
  podAntiAffinity: hard
serviceMesh: istio
objectStorage:
  url: s3://media/vttiro
  env: [{name: AWS_ENDPOINT, value: "https://minio.storage:9000"}]
  envFrom: [{secretRef: {name: vttiro-s3}}]
extraVolumes:
  - name: secrets-store
    csi:
      driver: secrets-store.csi.k8s.io
      readOnly: true
      volumeAttributes: {secretProviderClass: vttiro}
extraVolumeMounts:
  - name: secrets-store
    mountPath: /mnt/secrets-store
    readOnly: true
model:
  persistence: {enabled: false}
encryption: {enabled: false}
config:
  otlpEndpoint: http://otel-collector.observability:4318
metrics:
  serviceMonitor: {enabled: true}
  prometheusRule: {enabled: true}
worker:
  threads: 4
  autoscaling:
    enabled: true
    jobsPerReplica: 3
    prometheus:
      serverAddress: http://prometheus.monitoring:9090
      authenticationRef: {name: prometheus-auth}
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn chart_dir() -> PathBuf {
    repo_root().join("deploy/helm/vttiro")
}

fn schema_dir() -> PathBuf {
    repo_root().join("deploy/helm/schemas")
}

/// Runs helm with its config, cache and data homes in a throwaway directory, so neither
/// the developer's repositories nor a kubeconfig take part.
fn helm(args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("temp helm home");
    Command::new(vttiro_fixtures::helm_binary())
        .args(args)
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("KUBECONFIG", home.path().join("no-kubeconfig"))
        .output()
        .expect("run helm")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `python args…` from the pinned chart-checker venv with `stdin` as input.
fn python_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(common::pyenv::chart_python())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for python")
}

/// One way of installing the chart: a name, and the values files that make it.
struct Scenario {
    name: &'static str,
    values: Vec<PathBuf>,
}

fn options_file() -> &'static Path {
    static FILE: OnceLock<tempfile::TempPath> = OnceLock::new();
    FILE.get_or_init(|| {
        let mut file = tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile()
            .expect("temp values file");
        file.write_all(OPTIONS_VALUES.as_bytes())
            .expect("write values");
        file.into_temp_path()
    })
}

fn scenarios() -> Vec<Scenario> {
    let mut all = vec![Scenario {
        name: "values.yaml",
        values: vec![],
    }];
    for file in VALUES_FILES {
        all.push(Scenario {
            name: file,
            values: vec![chart_dir().join(file)],
        });
    }
    all.push(Scenario {
        name: "options",
        values: vec![options_file().to_path_buf()],
    });
    all
}

fn values_args(values: &[PathBuf]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| ["-f".to_string(), v.display().to_string()])
        .collect()
}

/// A scenario rendered by `helm template` (hooks included), as text and as documents.
struct Rendered {
    name: &'static str,
    yaml: String,
    docs: Vec<Value>,
}

fn render(values: &[PathBuf], extra: &[&str]) -> Output {
    let chart = chart_dir();
    let mut args: Vec<String> = [
        "template",
        RELEASE,
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSIONS[0],
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(values_args(values));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    helm(&args)
}

fn parse_documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn rendered() -> &'static [Rendered] {
    static ALL: OnceLock<Vec<Rendered>> = OnceLock::new();
    ALL.get_or_init(|| {
        scenarios()
            .into_iter()
            .map(|scenario| {
                let output = render(&scenario.values, &[]);
                assert!(
                    output.status.success(),
                    "helm template ({}) failed:\n{}",
                    scenario.name,
                    text(&output)
                );
                let yaml = String::from_utf8(output.stdout).expect("utf-8 manifest");
                let docs = parse_documents(&yaml);
                assert!(!docs.is_empty(), "{}: nothing rendered", scenario.name);
                Rendered {
                    name: scenario.name,
                    yaml,
                    docs,
                }
            })
            .collect()
    })
}

fn rendered_named(name: &str) -> &'static Rendered {
    rendered()
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn of_kind<'a>(r: &'a Rendered, wanted: &str) -> Vec<&'a Value> {
    r.docs.iter().filter(|d| kind(d) == wanted).collect()
}

fn one<'a>(r: &'a Rendered, wanted_kind: &str, wanted_name: &str) -> &'a Value {
    r.docs
        .iter()
        .find(|d| kind(d) == wanted_kind && name(d) == wanted_name)
        .unwrap_or_else(|| panic!("{}: no {wanted_kind} {wanted_name}", r.name))
}

fn api(r: &Rendered) -> &Value {
    one(r, "Deployment", "vttiro-api")
}

fn worker(r: &Rendered) -> &Value {
    one(r, "Deployment", "vttiro-worker")
}

/// Whether a rendered document is a custom resource checked against deploy/helm/schemas.
fn crd_schema(doc: &Value) -> Option<PathBuf> {
    let api_version = doc["apiVersion"].as_str()?;
    let (group, version) = api_version.rsplit_once('/')?;
    let file = schema_dir().join(format!("{group}_{version}_{}.json", kind(doc)));
    file.exists().then_some(file)
}

/// The documents of a `helm template` stream as helm wrote them (empty ones dropped).
fn raw_documents(yaml: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in yaml.split_inclusive('\n') {
        if line.trim_end() == "---" {
            docs.push(&yaml[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&yaml[start..]);
    docs.into_iter()
        .filter(|doc| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

fn to_yaml_stream(docs: &[&Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).expect("serialise")))
        .collect()
}

fn containers(pod_spec: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for key in ["initContainers", "containers"] {
        if let Some(list) = pod_spec[key].as_sequence() {
            all.extend(list.iter());
        }
    }
    all
}

fn env_value<'a>(container: &'a Value, var: &str) -> Option<&'a Value> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(var))
}

fn env_str<'a>(container: &'a Value, var: &str) -> Option<&'a str> {
    env_value(container, var)?["value"].as_str()
}

fn env_int(container: &Value, var: &str) -> i64 {
    let value = env_str(container, var).unwrap_or_else(|| panic!("{var} is not set"));
    value
        .parse()
        .unwrap_or_else(|_| panic!("{var}={value} is not an integer"))
}

/// Pod specs of every workload (Deployments and the model Job), with the workload's name.
fn pod_specs(r: &Rendered) -> Vec<(String, &Value)> {
    r.docs
        .iter()
        .filter(|d| matches!(kind(d), "Deployment" | "Job"))
        .map(|d| {
            (
                format!("{}/{}", kind(d), name(d)),
                &d["spec"]["template"]["spec"],
            )
        })
        .collect()
}

fn main_container<'a>(deployment: &'a Value, container: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .find(|c| c["name"].as_str() == Some(container))
        .unwrap_or_else(|| panic!("no container {container} in {}", name(deployment)))
}

fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an integer: {value:?}"))
}

// ---- lint --------------------------------------------------------------------------

#[test]
fn lint_strict_passes_for_the_default_values_and_every_values_file() {
    let chart = chart_dir();
    for scenario in scenarios() {
        let mut args: Vec<String> = vec![
            "lint".into(),
            "--strict".into(),
            "--kube-version".into(),
            KUBE_VERSIONS[0].into(),
            chart.display().to_string(),
        ];
        args.extend(values_args(&scenario.values));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = helm(&args);
        assert!(
            output.status.success(),
            "helm lint --strict ({}) failed:\n{}",
            scenario.name,
            text(&output)
        );
        assert!(
            text(&output).contains("0 chart(s) failed"),
            "{}",
            text(&output)
        );
    }
}

#[test]
fn lint_rejects_values_the_schema_refuses() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8 path");
    // (helm arguments, what the failure must name)
    let cases: [(&[&str], &str); 8] = [
        (
            &["--set", "worker.autoscaling.maxReplicas=lots"],
            "/worker/autoscaling/maxReplicas",
        ),
        (&["--set", "worker.replica=3"], "replica"),
        (
            &["--set", "podSecurityContext.runAsNonRoot=false"],
            "/podSecurityContext/runAsNonRoot",
        ),
        (
            &[
                "--set",
                "containerSecurityContext.readOnlyRootFilesystem=false",
            ],
            "/containerSecurityContext/readOnlyRootFilesystem",
        ),
        (
            &["--set", "secrets.existingSecret="],
            "/secrets/existingSecret",
        ),
        (&["--set", "api.resources.limits=null"], "limits"),
        (&["--set", "serviceMesh=consul"], "/serviceMesh"),
        (
            &["--set", "objectStorage.url=ftp://bucket/x"],
            "/objectStorage/url",
        ),
    ];
    for (extra, named) in cases {
        let mut args = vec![
            "lint",
            "--strict",
            "--kube-version",
            KUBE_VERSIONS[0],
            chart,
        ];
        args.extend_from_slice(extra);
        let output = helm(&args);
        let said = text(&output);
        assert!(
            !output.status.success(),
            "helm lint accepted {extra:?}:\n{said}"
        );
        assert!(
            said.contains(named),
            "helm lint refused {extra:?} without naming {named:?}:\n{said}"
        );
    }
}

/// Helm 4's lint reports a template's `fail` only as information, so the refusals that
/// need more than the schema are checked where they bite: `helm template` (and install).
#[test]
fn template_refuses_values_that_cannot_work_together() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--set", "persistence.accessModes={ReadWriteOnce}"],
            "must include ReadWriteMany",
        ),
        (
            &[
                "--set",
                "persistence.enabled=false",
                "--set",
                "objectStorage.url=s3://media/vttiro",
            ],
            "persistence.enabled=false needs objectStorage.url, secrets.authSecretKey",
        ),
        (
            &[
                "--set",
                "worker.autoscaling.enabled=true",
                "--set",
                "worker.autoscaling.minReplicas=50",
                "--set",
                "worker.autoscaling.maxReplicas=10",
            ],
            "worker.autoscaling.minReplicas is above",
        ),
        (
            &["--set", "secrets.externalSecret.enabled=true"],
            "needs secrets.externalSecret.secretStoreRef.name",
        ),
        (
            &[
                "--set",
                "model.persistence.enabled=false",
                "--set",
                "model.pull.enabled=false",
            ],
            "empty cache",
        ),
    ];
    for (extra, named) in cases {
        let output = render(&[], extra);
        let said = text(&output);
        assert!(
            !output.status.success(),
            "helm template accepted {extra:?}:\n{said}"
        );
        assert!(
            said.contains(named),
            "helm template refused {extra:?} without saying {named:?}:\n{said}"
        );
    }
}

// ---- schemas -------------------------------------------------------------------------

#[test]
fn every_rendered_object_validates_against_the_kubernetes_and_crd_schemas() {
    let crd_checker = schema_dir().join("validate_crds.py");
    for r in rendered() {
        // helm's own text, document by document, not a re-serialisation of it.
        let (crds, builtin): (Vec<&str>, Vec<&str>) = raw_documents(&r.yaml)
            .into_iter()
            .partition(|raw| crd_schema(&serde_yaml::from_str(raw).unwrap()).is_some());
        assert_eq!(crds.len() + builtin.len(), r.docs.len());

        // One run per version: the tool reads "-" (stdin) once per version.
        let stream = builtin.join("\n---\n");
        for version in KUBE_VERSIONS {
            let output = python_with_stdin(
                &[
                    "-m",
                    "kubernetes_validate",
                    "--strict",
                    "--quiet",
                    "-k",
                    version,
                    "-",
                ],
                &stream,
            );
            let said = text(&output);
            assert!(
                output.status.success(),
                "kubernetes-validate {version} ({}) failed:\n{said}",
                r.name
            );
            // A kind without a bundled schema is only a warning there; here it fails.
            assert!(
                !said.contains("WARN") && !said.contains("ERROR"),
                "kubernetes-validate {version} ({}):\n{said}",
                r.name
            );
        }

        if !crds.is_empty() {
            let output = python_with_stdin(
                &[crd_checker.to_str().expect("utf-8 path"), "-"],
                &crds.join("\n---\n"),
            );
            assert!(
                output.status.success(),
                "CRD schema check ({}) failed:\n{}",
                r.name,
                text(&output)
            );
            assert_eq!(
                text(&output)
                    .lines()
                    .filter(|l| l.starts_with("OK "))
                    .count(),
                crds.len(),
                "{}",
                text(&output)
            );
        }
    }
}

#[test]
fn the_crd_checker_refuses_unknown_fields_and_wrong_types() {
    // The checker must be able to fail, or its passes above mean nothing.
    let eks = rendered_named("values-eks.yaml");
    let mut scaled = one(eks, "ScaledObject", "vttiro-worker").clone();
    scaled["spec"]["pollingIntervall"] = Value::from(15);
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = Value::from(4);
    let output = python_with_stdin(
        &[
            schema_dir()
                .join("validate_crds.py")
                .to_str()
                .expect("utf-8 path"),
            "-",
        ],
        &to_yaml_stream(&[&scaled]),
    );
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("'pollingIntervall' was unexpected"), "{said}");
    assert!(said.contains("is not of type 'string'"), "{said}");
}

#[test]
fn crd_schemas_are_extracted_upstream_schemas_with_their_source_named() {
    let readme = std::fs::read_to_string(schema_dir().join("README.md")).expect("README");
    for entry in std::fs::read_dir(schema_dir()).expect("schemas dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read schema"))
                .expect("schema is JSON");
        let source = &schema["x-vttiro-source"];
        assert_eq!(
            format!(
                "{}_{}_{}.json",
                source["group"].as_str().unwrap(),
                source["version"].as_str().unwrap(),
                source["kind"].as_str().unwrap()
            ),
            file_name
        );
        assert!(schema["properties"]["spec"]["properties"].is_object());
        assert!(
            readme.contains(&file_name),
            "README.md names no source for {file_name}"
        );
    }
}

// ---- pods ------------------------------------------------------------------------------

#[test]
fn every_container_is_non_root_read_only_unprivileged_and_bounded() {
    for r in rendered() {
        for (workload, spec) in pod_specs(r) {
            let pod = &spec["securityContext"];
            assert_eq!(pod["runAsNonRoot"], Value::from(true), "{workload}");
            assert_eq!(pod["runAsUser"], Value::from(UID), "{workload}");
            assert_eq!(pod["fsGroup"], Value::from(UID), "{workload}");
            assert_eq!(
                pod["seccompProfile"]["type"].as_str(),
                Some("RuntimeDefault"),
                "{workload}"
            );
            assert_eq!(
                spec["automountServiceAccountToken"],
                Value::from(false),
                "{workload}: vttiro calls no Kubernetes API"
            );
            for c in containers(spec) {
                let at = format!("{} in {workload} ({})", c["name"].as_str().unwrap(), r.name);
                let sc = &c["securityContext"];
                assert_eq!(sc["runAsNonRoot"], Value::from(true), "{at}");
                assert_eq!(sc["runAsUser"], Value::from(UID), "{at}");
                assert_eq!(sc["readOnlyRootFilesystem"], Value::from(true), "{at}");
                assert_eq!(sc["allowPrivilegeEscalation"], Value::from(false), "{at}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_yaml::from_str::<Value>("[ALL]").unwrap(),
                    "{at}"
                );
                assert!(sc["capabilities"]["add"].is_null(), "{at}");
                assert_eq!(
                    sc["seccompProfile"]["type"].as_str(),
                    Some("RuntimeDefault"),
                    "{at}"
                );
                for bound in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        assert!(
                            !c["resources"][bound][resource].is_null(),
                            "{at}: no {bound}.{resource}"
                        );
                    }
                }
            }
            // With a read-only root, /tmp must be a writable volume for every main container.
            let tmp_volumes: Vec<&str> = spec["volumes"]
                .as_sequence()
                .expect("volumes")
                .iter()
                .filter(|v| !v["emptyDir"].is_null())
                .filter_map(|v| v["name"].as_str())
                .collect();
            for c in spec["containers"].as_sequence().unwrap() {
                let tmp = c["volumeMounts"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .find(|m| m["mountPath"].as_str() == Some("/tmp"))
                    .unwrap_or_else(|| panic!("{workload}: /tmp is not mounted"));
                assert!(
                    tmp_volumes.contains(&tmp["name"].as_str().unwrap()),
                    "{workload}: /tmp is not an emptyDir"
                );
            }
        }
    }
}

#[test]
fn api_and_worker_containers_have_startup_liveness_and_readiness_probes() {
    for r in rendered() {
        let scheme = if r.name == "options" { "HTTPS" } else { "HTTP" };
        let api_c = main_container(api(r), "api");
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            let get = &api_c[probe]["httpGet"];
            assert_eq!(get["path"].as_str(), Some(path), "{}: api {probe}", r.name);
            assert_eq!(get["port"].as_str(), Some("http"), "{}", r.name);
            assert_eq!(get["scheme"].as_str(), Some(scheme), "{}", r.name);
        }
        let worker_c = main_container(worker(r), "worker");
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let get = &worker_c[probe]["httpGet"];
            assert_eq!(
                get["path"].as_str(),
                Some("/healthz"),
                "{}: worker {probe}",
                r.name
            );
            assert_eq!(get["port"].as_str(), Some("metrics"), "{}", r.name);
        }
        assert_eq!(
            env_str(worker_c, "VTTIRO_METRICS_LISTEN"),
            Some("0.0.0.0:9464")
        );
        assert_eq!(
            worker_c["ports"][0]["containerPort"],
            Value::from(9464),
            "{}",
            r.name
        );
        assert_eq!(env_str(api_c, "VTTIRO_LISTEN"), Some("0.0.0.0:8080"));
        assert_eq!(api_c["ports"][0]["containerPort"], Value::from(8080));
    }
}

#[test]
fn the_api_runs_without_workers_and_workers_run_the_worker_command() {
    for r in rendered() {
        let api_c = main_container(api(r), "api");
        assert_eq!(
            api_c["args"],
            serde_yaml::from_str::<Value>("[serve, --no-workers]").unwrap()
        );
        assert_eq!(env_str(api_c, "VTTIRO_NO_WORKERS"), Some("true"));
        let worker_c = main_container(worker(r), "worker");
        assert_eq!(
            worker_c["args"],
            serde_yaml::from_str::<Value>("[worker]").unwrap()
        );
        assert!(env_str(worker_c, "VTTIRO_WORKERS").is_some(), "{}", r.name);
    }
}

#[test]
fn shutdown_outlasts_the_workers_grace_and_the_api_drains_before_sigterm() {
    for r in rendered() {
        let w = worker(r);
        let grace = env_int(main_container(w, "worker"), "VTTIRO_SHUTDOWN_GRACE_SECS");
        let termination = int(&w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]);
        assert!(
            termination >= grace + 5,
            "{}: terminationGracePeriodSeconds {termination} leaves the hand-back of jobs after the {grace} s grace no time",
            r.name
        );

        let a = api(r);
        let pod = &a["spec"]["template"]["spec"];
        let sleep = int(&main_container(a, "api")["lifecycle"]["preStop"]["sleep"]["seconds"]);
        assert!(
            (5..=30).contains(&sleep),
            "{}: preStop sleep {sleep}",
            r.name
        );
        assert!(
            int(&pod["terminationGracePeriodSeconds"]) > sleep,
            "{}",
            r.name
        );
        // Rolling updates add a ready pod before removing one.
        assert_eq!(
            int(&a["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"]),
            0,
            "{}",
            r.name
        );
        assert_eq!(
            a["spec"]["strategy"]["type"].as_str(),
            Some("RollingUpdate")
        );
    }
}

#[test]
fn pods_spread_over_zones_and_nodes_and_avoid_each_other() {
    for r in rendered() {
        for d in [api(r), worker(r)] {
            let at = format!("{} ({})", name(d), r.name);
            let spec = &d["spec"]["template"]["spec"];
            let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
            let selector = &d["spec"]["selector"]["matchLabels"];
            for (k, v) in selector.as_mapping().expect("selector") {
                assert_eq!(&pod_labels[k.as_str().unwrap()], v, "{at}: selector");
            }

            let anti = &spec["affinity"]["podAntiAffinity"];
            let term = if let Some(required) =
                anti["requiredDuringSchedulingIgnoredDuringExecution"].as_sequence()
            {
                &required[0]
            } else {
                &anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            };
            assert_eq!(
                term["topologyKey"].as_str(),
                Some("kubernetes.io/hostname"),
                "{at}"
            );
            assert_eq!(&term["labelSelector"]["matchLabels"], selector, "{at}");

            let spread = spec["topologySpreadConstraints"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{at}: no topologySpreadConstraints"));
            let zone = spread
                .iter()
                .find(|c| c["topologyKey"].as_str() == Some("topology.kubernetes.io/zone"))
                .unwrap_or_else(|| panic!("{at}: no zone spread"));
            assert_eq!(&zone["labelSelector"]["matchLabels"], selector, "{at}");
            assert!(int(&zone["maxSkew"]) >= 1, "{at}");
        }
        let hard = &api(r)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(!hard.is_null(), r.name == "options", "{}", r.name);
    }
}

// ---- labels, secrets and flags --------------------------------------------------------

#[test]
fn every_object_and_pod_carries_the_recommended_labels() {
    let recommended = [
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/component",
        "app.kubernetes.io/managed-by",
    ];
    let chart: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    let version = chart["appVersion"].as_str().unwrap();
    for r in rendered() {
        for d in &r.docs {
            let mut label_sets =
                vec![(format!("{}/{}", kind(d), name(d)), &d["metadata"]["labels"])];
            if matches!(kind(d), "Deployment" | "Job") {
                label_sets.push((
                    format!("pods of {}/{}", kind(d), name(d)),
                    &d["spec"]["template"]["metadata"]["labels"],
                ));
            }
            for (what, labels) in label_sets {
                for label in recommended {
                    assert!(
                        labels[label].as_str().is_some_and(|v| !v.is_empty()),
                        "{}: {what} lacks {label}",
                        r.name
                    );
                }
                assert_eq!(labels["app.kubernetes.io/name"].as_str(), Some("vttiro"));
                assert_eq!(labels["app.kubernetes.io/instance"].as_str(), Some(RELEASE));
                assert_eq!(
                    labels["app.kubernetes.io/managed-by"].as_str(),
                    Some("Helm")
                );
                assert_eq!(labels["app.kubernetes.io/version"].as_str(), Some(version));
            }
            assert_eq!(
                d["metadata"]["namespace"].as_str(),
                Some(NAMESPACE),
                "{}: {}/{}",
                r.name,
                kind(d),
                name(d)
            );
        }
    }
}

#[test]
fn secrets_are_referenced_never_rendered() {
    let sensitive = [
        "VTTIRO_DATABASE_URL",
        "VTTIRO_WEBHOOK_SECRET",
        "VTTIRO_MASTER_KEY",
    ];
    for r in rendered() {
        assert!(
            of_kind(r, "Secret").is_empty() && of_kind(r, "ConfigMap").is_empty(),
            "{}: the chart renders no Secret or ConfigMap",
            r.name
        );
        for (workload, spec) in pod_specs(r) {
            for c in containers(spec) {
                for e in c["env"].as_sequence().into_iter().flatten() {
                    let var = e["name"].as_str().unwrap();
                    if sensitive.contains(&var) {
                        assert!(
                            e["value"].is_null()
                                && e["valueFrom"]["secretKeyRef"]["name"].as_str().is_some(),
                            "{}: {workload} sets {var} inline",
                            r.name
                        );
                    }
                }
            }
        }
        // The queue is shared, so every vttiro process gets the database URL.
        for d in [api(r), worker(r)] {
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            let reference = &env_value(c, "VTTIRO_DATABASE_URL").expect("database url")
                ["valueFrom"]["secretKeyRef"];
            assert_eq!(reference["key"].as_str(), Some("database-url"));
        }
        for monitor in of_kind(r, "ServiceMonitor") {
            for endpoint in monitor["spec"]["endpoints"].as_sequence().unwrap() {
                let credentials = &endpoint["authorization"]["credentials"];
                assert_eq!(credentials["key"].as_str(), Some("metrics-key"));
                assert_eq!(endpoint["authorization"]["type"].as_str(), Some("Bearer"));
            }
        }
    }
}

#[test]
fn the_master_key_reaches_vttiro_as_an_owner_only_copy() {
    // Kubelet makes Secret files root's and, with fsGroup, group-readable; the binary
    // refuses a key file with any group or other bit, so an init container copies it.
    let r = rendered_named("values.yaml");
    for d in [api(r), worker(r)] {
        let spec = &d["spec"]["template"]["spec"];
        let init = spec["initContainers"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str() == Some("install-master-keys"))
            .expect("install-master-keys");
        assert_eq!(
            init["command"],
            serde_yaml::from_str::<Value>(
                "[install, -m, '0400', /run/vttiro/master-key-secret/master-keys, /run/vttiro/keys/master-keys]"
            )
            .unwrap()
        );
        let keys = spec["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some("master-keys"))
            .unwrap();
        assert_eq!(keys["emptyDir"]["medium"].as_str(), Some("Memory"));
        let main = &spec["containers"][0];
        assert_eq!(
            env_str(main, "VTTIRO_MASTER_KEY_FILE"),
            Some("/run/vttiro/keys/master-keys")
        );
        let mount = main["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["name"].as_str() == Some("master-keys"))
            .unwrap();
        assert_eq!(mount["readOnly"], Value::from(true));
    }
    let options = rendered_named("options");
    assert!(env_value(
        &api(options)["spec"]["template"]["spec"]["containers"][0],
        "VTTIRO_MASTER_KEY_FILE"
    )
    .is_none());
}

/// Every VTTIRO_* variable the chart sets is one the binary reads: a flag's `env` (as
/// `--help` shows it) or a configuration-layer variable named in the source.
#[test]
fn every_vttiro_variable_the_chart_sets_is_one_the_binary_reads() {
    let help: String = [
        ["serve", "--help"],
        ["worker", "--help"],
        ["models", "--help"],
    ]
    .iter()
    .map(|args| {
        let out = Command::new(env!("CARGO_BIN_EXE_vttiro"))
            .args(args)
            .output()
            .expect("run vttiro --help");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .collect();
    let mut sources = String::new();
    for dir in ["crates/vttiro-cli/src", "crates/vttiro-models/src"] {
        for entry in std::fs::read_dir(repo_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let mut seen = BTreeSet::new();
    for r in rendered() {
        for (_, spec) in pod_specs(r) {
            for c in containers(spec) {
                for e in c["env"].as_sequence().into_iter().flatten() {
                    let var = e["name"].as_str().unwrap();
                    if var.starts_with("VTTIRO_") {
                        seen.insert(var.to_string());
                    }
                }
            }
        }
    }
    assert!(seen.len() > 20, "{seen:?}");
    for var in seen {
        assert!(
            help.contains(&format!("env: {var}")) || sources.contains(&format!("\"{var}\"")),
            "the chart sets {var}, which vttiro does not read"
        );
    }
}

// ---- availability, scaling and traffic --------------------------------------------------

#[test]
fn disruption_budgets_and_network_policies_cover_api_and_workers() {
    for r in rendered() {
        for component in ["api", "worker"] {
            let deployment = one(r, "Deployment", &format!("vttiro-{component}"));
            let selector = &deployment["spec"]["selector"]["matchLabels"];
            let pdb = one(r, "PodDisruptionBudget", &format!("vttiro-{component}"));
            assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);
            assert!(!pdb["spec"]["maxUnavailable"].is_null());

            let policy = one(r, "NetworkPolicy", &format!("vttiro-{component}"));
            assert_eq!(&policy["spec"]["podSelector"]["matchLabels"], selector);
            assert_eq!(
                policy["spec"]["policyTypes"],
                serde_yaml::from_str::<Value>("[Ingress, Egress]").unwrap()
            );
            let egress = serde_yaml::to_string(&policy["spec"]["egress"]).unwrap();
            assert!(
                egress.contains("port: 53") && egress.contains("port: 5432"),
                "{egress}"
            );
            let ingress_ports: Vec<&str> = policy["spec"]["ingress"]
                .as_sequence()
                .unwrap()
                .iter()
                .flat_map(|rule| rule["ports"].as_sequence().unwrap())
                .map(|p| p["port"].as_str().unwrap())
                .collect();
            let port = if component == "api" {
                "http"
            } else {
                "metrics"
            };
            assert!(
                ingress_ports.iter().all(|p| *p == port),
                "{ingress_ports:?}"
            );
        }
    }
}

#[test]
fn the_api_autoscales_on_cpu_and_memory() {
    for r in rendered() {
        let hpa = one(r, "HorizontalPodAutoscaler", "vttiro-api");
        assert_eq!(
            hpa["spec"]["scaleTargetRef"]["kind"].as_str(),
            Some("Deployment")
        );
        assert_eq!(
            hpa["spec"]["scaleTargetRef"]["name"].as_str(),
            Some("vttiro-api")
        );
        let resources: Vec<&str> = hpa["spec"]["metrics"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|m| m["resource"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(resources, ["cpu", "memory"]);
        assert!(int(&hpa["spec"]["minReplicas"]) >= 2);
        // The HPA owns the replica count; a fixed one would fight it at every upgrade.
        assert!(api(r)["spec"]["replicas"].is_null(), "{}", r.name);
    }
}

#[test]
fn workers_scale_on_queue_depth_with_keda() {
    for r in rendered() {
        let scaled = of_kind(r, "ScaledObject");
        let autoscaled = r.name != "values.yaml";
        assert_eq!(scaled.len(), usize::from(autoscaled), "{}", r.name);
        assert_eq!(
            worker(r)["spec"]["replicas"].is_null(),
            autoscaled,
            "{}",
            r.name
        );
        let Some(so) = scaled.first() else { continue };
        let spec = &so["spec"];
        assert_eq!(
            spec["scaleTargetRef"]["name"].as_str(),
            Some("vttiro-worker")
        );
        assert_eq!(int(&spec["minReplicaCount"]), 2, "{}", r.name);
        assert_eq!(int(&spec["maxReplicaCount"]), 100, "{}", r.name);
        let trigger = &spec["triggers"][0];
        assert_eq!(trigger["type"].as_str(), Some("prometheus"));
        let meta = &trigger["metadata"];
        // What KEDA's prometheus scaler requires (its admission webhook checks them).
        assert!(meta["serverAddress"].as_str().unwrap().starts_with("http"));
        let query = meta["query"].as_str().unwrap();
        assert!(
            query.contains("vttiro_queue_jobs") && query.contains("queued"),
            "{query}"
        );
        assert!(
            query.contains(&format!("namespace=\"{NAMESPACE}\""))
                && query.contains("job=\"vttiro\""),
            "{query}"
        );
        let threshold: f64 = meta["threshold"].as_str().unwrap().parse().unwrap();
        let concurrency = env_int(main_container(worker(r), "worker"), "VTTIRO_WORKERS");
        let expected = if r.name == "options" { 3 } else { concurrency };
        assert_eq!(threshold, expected as f64, "{}", r.name);
        if r.name == "options" {
            assert_eq!(
                trigger["authenticationRef"]["name"].as_str(),
                Some("prometheus-auth")
            );
        }
    }
}

#[test]
fn gpu_workers_request_gpus_on_tolerated_gpu_nodes_with_the_cuda_image() {
    for r in rendered() {
        let gpu = r.name != "values.yaml" && r.name != "options";
        let spec = &worker(r)["spec"]["template"]["spec"];
        let c = main_container(worker(r), "worker");
        let limit = &c["resources"]["limits"]["nvidia.com/gpu"];
        let image = c["image"].as_str().unwrap();
        if gpu {
            assert_eq!(int(limit), 1, "{}", r.name);
            assert!(image.ends_with("-cuda"), "{}: {image}", r.name);
            assert_eq!(env_str(c, "VTTIRO_DEVICE"), Some("cuda"));
            assert!(
                spec["nodeSelector"]
                    .as_mapping()
                    .is_some_and(|m| !m.is_empty()),
                "{}: GPU workers need a GPU node selector",
                r.name
            );
            assert!(
                spec["tolerations"]
                    .as_sequence()
                    .is_some_and(|t| t.iter().any(|t| t["effect"].as_str() == Some("NoSchedule"))),
                "{}: GPU workers must tolerate the GPU taint",
                r.name
            );
        } else {
            assert!(limit.is_null(), "{}", r.name);
            assert!(!image.ends_with("-cuda"), "{}", r.name);
            assert_eq!(env_str(c, "VTTIRO_DEVICE"), Some("cpu"));
        }
        // The API never needs a GPU.
        assert!(!r.yaml.contains("nvidia.com/gpu: 1") || gpu);
        let api_c = main_container(api(r), "api");
        assert!(api_c["resources"]["limits"]["nvidia.com/gpu"].is_null());
        assert!(!api_c["image"].as_str().unwrap().ends_with("-cuda"));
    }
}

#[test]
fn the_cloud_values_files_expose_the_api_over_tls_with_shared_storage() {
    for file in ["values-eks.yaml", "values-gke.yaml", "values-aks.yaml"] {
        let r = rendered_named(file);
        let ingress = one(r, "Ingress", "vttiro-api");
        let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
        assert_eq!(backend["name"].as_str(), Some("vttiro-api"));
        assert_eq!(backend["port"]["name"].as_str(), Some("http"));
        let tls = !ingress["spec"]["tls"].is_null()
            || ingress["metadata"]["annotations"]["networking.gke.io/managed-certificates"]
                .as_str()
                .is_some();
        assert!(tls, "{file}: the Ingress terminates no TLS");
        let service = one(r, "Service", "vttiro-api");
        assert_eq!(
            &service["spec"]["selector"],
            &api(r)["spec"]["selector"]["matchLabels"]
        );
        for claim in of_kind(r, "PersistentVolumeClaim") {
            assert!(
                claim["spec"]["storageClassName"].as_str().is_some(),
                "{file}"
            );
            assert_eq!(
                claim["spec"]["accessModes"],
                serde_yaml::from_str::<Value>("[ReadWriteMany]").unwrap(),
                "{file}"
            );
        }
        assert_eq!(of_kind(r, "ServiceMonitor").len(), 1, "{file}");
        assert_eq!(of_kind(r, "PrometheusRule").len(), 1, "{file}");
    }
}

/// Each cloud's values file keeps media in that cloud's object storage, reached through
/// that cloud's workload identity; the default keeps objects on the data volume.
#[test]
fn the_cloud_values_files_keep_media_in_object_storage_with_workload_identity() {
    let clouds = [
        ("values-eks.yaml", "s3://", "eks.amazonaws.com/role-arn"),
        ("values-gke.yaml", "gs://", "iam.gke.io/gcp-service-account"),
        (
            "values-aks.yaml",
            "az://",
            "azure.workload.identity/client-id",
        ),
    ];
    for (file, scheme, identity) in clouds {
        let r = rendered_named(file);
        for (deployment, container) in [(api(r), "api"), (worker(r), "worker")] {
            let c = main_container(deployment, container);
            let store =
                env_str(c, "VTTIRO_STORE").unwrap_or_else(|| panic!("{file}: no VTTIRO_STORE"));
            assert!(store.starts_with(scheme), "{file}: {store}");
            assert!(
                c["envFrom"].is_null(),
                "{file}: static credentials rendered"
            );
        }
        let account = of_kind(r, "ServiceAccount");
        assert_eq!(account.len(), 1, "{file}");
        assert!(
            account[0]["metadata"]["annotations"][identity]
                .as_str()
                .is_some(),
            "{file}: the ServiceAccount has no {identity}"
        );
    }
    let aks = rendered_named("values-aks.yaml");
    for d in [api(aks), worker(aks)] {
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"].as_str(),
            Some("true"),
            "{}: the workload identity webhook skips unlabelled pods",
            name(d)
        );
    }
    let default = rendered_named("values.yaml");
    assert!(env_str(main_container(api(default), "api"), "VTTIRO_STORE").is_none());
    // With objects in a bucket and both secrets from the Secret, no data claim is needed.
    let volumeless = render(
        &[],
        &[
            "--set",
            "persistence.enabled=false",
            "--set",
            "objectStorage.url=s3://media/vttiro",
            "--set",
            "secrets.authSecretKey=auth-secret",
            "--set",
            "secrets.webhookSecretKey=webhook-secret",
        ],
    );
    let yaml = text(&volumeless);
    assert!(volumeless.status.success(), "{yaml}");
    let docs = parse_documents(&String::from_utf8_lossy(&volumeless.stdout));
    let claims: Vec<&str> = docs
        .iter()
        .filter(|d| kind(d) == "PersistentVolumeClaim")
        .map(name)
        .collect();
    assert!(claims.iter().all(|c| !c.ends_with("-data")), "{claims:?}");
    for d in docs.iter().filter(|d| kind(d) == "Deployment") {
        let volumes = d["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap();
        let data = volumes.iter().find(|v| v["name"] == "data").unwrap();
        assert!(data["persistentVolumeClaim"].is_null(), "{}", name(d));
        assert!(!data["emptyDir"].is_null(), "{}", name(d));
    }
    // An S3-compatible server with static keys from a Secret.
    let options = rendered_named("options");
    for (deployment, container) in [(api(options), "api"), (worker(options), "worker")] {
        let c = main_container(deployment, container);
        assert_eq!(env_str(c, "VTTIRO_STORE"), Some("s3://media/vttiro"));
        assert_eq!(
            env_str(c, "AWS_ENDPOINT"),
            Some("https://minio.storage:9000")
        );
        // The digest secret from the Secret, so no pod depends on the volume's copy.
        assert_eq!(
            env_value(c, "VTTIRO_AUTH_SECRET").unwrap()["valueFrom"]["secretKeyRef"]["key"]
                .as_str(),
            Some("auth-secret")
        );
        assert_eq!(
            c["envFrom"],
            serde_yaml::from_str::<Value>("[{secretRef: {name: vttiro-s3}}]").unwrap()
        );
    }
}

#[test]
fn the_model_is_pulled_once_by_a_hook_job_before_pods_start() {
    let r = rendered_named("values.yaml");
    let claim = one(r, "PersistentVolumeClaim", "vttiro-models");
    let job = one(r, "Job", "vttiro-model-pull");
    let hook = |d: &Value, key: &str| {
        d["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(hook(claim, "helm.sh/hook").as_deref(), Some("pre-install"));
    assert_eq!(
        hook(job, "helm.sh/hook").as_deref(),
        Some("pre-install,pre-upgrade")
    );
    let weight = |d: &Value| int(&Value::from(hook(d, "helm.sh/hook-weight").unwrap()));
    assert!(weight(claim) < weight(job));
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["args"],
        serde_yaml::from_str::<Value>("[models, pull, small, --source, auto]").unwrap()
    );
    // The pods only read the shared cache.
    for d in [api(r), worker(r)] {
        let mount = d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"].as_str() == Some("/models"))
            .unwrap()
            .clone();
        assert_eq!(mount["readOnly"], Value::from(true), "{}", name(d));
    }
    // The data volume outlives the release.
    let data = one(r, "PersistentVolumeClaim", "vttiro-data");
    assert_eq!(
        hook(data, "helm.sh/resource-policy").as_deref(),
        Some("keep")
    );
    assert!(hook(data, "helm.sh/hook").is_none());

    // Without a shared cache each worker pulls into its own emptyDir: no racing pulls.
    let options = rendered_named("options");
    assert!(of_kind(options, "Job").is_empty());
    let init = &worker(options)["spec"]["template"]["spec"]["initContainers"];
    assert!(init
        .as_sequence()
        .unwrap()
        .iter()
        .any(|c| c["name"].as_str() == Some("pull-model")));
}

// ---- monitoring ---------------------------------------------------------------------------

#[test]
fn the_chart_ships_the_monitoring_alerts_unchanged() {
    let original = std::fs::read_to_string(repo_root().join("deploy/monitoring/alerts.yml"))
        .expect("deploy/monitoring/alerts.yml");
    let copy =
        std::fs::read_to_string(chart_dir().join("files/alerts.yml")).expect("files/alerts.yml");
    assert!(
        original == copy,
        "deploy/helm/vttiro/files/alerts.yml differs from deploy/monitoring/alerts.yml: copy it again"
    );
    let original: Value = serde_yaml::from_str(&original).unwrap();
    for file in ["values-eks.yaml", "options"] {
        let r = rendered_named(file);
        let rule = one(r, "PrometheusRule", "vttiro");
        let groups = rule["spec"]["groups"].as_sequence().unwrap();
        for group in original["groups"].as_sequence().unwrap() {
            let shipped = groups
                .iter()
                .find(|g| g["name"] == group["name"])
                .unwrap_or_else(|| panic!("group {:?} missing", group["name"]));
            assert_eq!(shipped, group, "{file}");
        }
        assert!(groups
            .iter()
            .any(|g| g["name"].as_str() == Some("vttiro-kubernetes")));
    }
    // The shipped rules select job="vttiro": the ServiceMonitor must produce that job label.
    let monitor = one(
        rendered_named("values-eks.yaml"),
        "ServiceMonitor",
        "vttiro",
    );
    for endpoint in monitor["spec"]["endpoints"].as_sequence().unwrap() {
        let relabel = &endpoint["relabelings"][0];
        assert_eq!(relabel["targetLabel"].as_str(), Some("job"));
        assert_eq!(relabel["replacement"].as_str(), Some("vttiro"));
    }
    let ports: Vec<&str> = monitor["spec"]["endpoints"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["port"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["http", "metrics"]);
    // Both Services are selected, and each names the port its endpoint scrapes.
    let eks = rendered_named("values-eks.yaml");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap();
    for (service, port) in [("vttiro-api", "http"), ("vttiro-worker-metrics", "metrics")] {
        let service = one(eks, "Service", service);
        for (k, v) in selector {
            assert_eq!(&service["metadata"]["labels"][k.as_str().unwrap()], v);
        }
        assert_eq!(service["spec"]["ports"][0]["name"].as_str(), Some(port));
    }
}

#[test]
fn helm_is_the_pinned_version() {
    let output = helm(&["version", "--short"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).starts_with(vttiro_fixtures::HELM_VERSION),
        "{}",
        text(&output)
    );
}
