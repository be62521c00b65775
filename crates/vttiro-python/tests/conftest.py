"""Fixtures for the Python package's tests: the same pinned speech and model as the Rust
tests, located (and fetched and verified on first use) by the `vttiro-fixtures` binary."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest


def _fixtures_bin() -> str:
    explicit = os.environ.get("VTTIRO_FIXTURES_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/vttiro/target")
    return os.path.join(target, "release", "vttiro-fixtures")


def _fixture(*args: str) -> str:
    return subprocess.run(
        [_fixtures_bin(), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def normalise(text: str) -> List[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise(reference), normalise(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hyp)] / max(len(ref), 1)


def interrupted_child(script: str, *args: str, env: Optional[Dict[str, str]] = None,
                      timeout: float = 300) -> dict:
    """Runs `script` in a child Python that sends itself SIGINT, as a notebook's interrupt
    button does, and returns the JSON report it prints, which must say it was
    interrupted."""
    child = subprocess.run([sys.executable, "-c", script, *args], env=env,
                           capture_output=True, text=True, timeout=timeout)
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    assert report["outcome"] == "interrupted", report
    return report


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The fixture cache's model store, holding tiny.en installed from its pinned wheel;
    every test resolves models there."""
    tiny = Path(_fixture("tiny-en-model"))
    return tiny.parent


@pytest.fixture(autouse=True)
def _model_env(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VTTIRO_MODEL_DIR", str(model_dir))


@pytest.fixture(scope="session")
def jfk() -> Path:
    return Path(_fixture("jfk"))


@pytest.fixture(scope="session")
def jfk_text() -> str:
    return _fixture("jfk-text")


@pytest.fixture(scope="session")
def librivox() -> List[Tuple[Path, str]]:
    clips = []
    for line in _fixture("librivox").splitlines():
        wav, text = line.split("\t", 1)
        clips.append((Path(wav), text))
    return clips


@pytest.fixture(scope="session")
def long_speech(tmp_path_factory: pytest.TempPathFactory, jfk: Path, librivox) -> Path:
    """About 90 s: JFK and the five LibriVox clips, twice, with pauses between them: four
    chunks of up to 30 s to interrupt and resume between."""
    sox = shutil.which("sox")
    assert sox, "sox is installed by scripts/deps.sh"
    out_dir = tmp_path_factory.mktemp("long")
    pause = out_dir / "pause.wav"
    subprocess.run(
        [sox, "-n", "-r", "16000", "-c", "1", "-b", "16", str(pause), "trim", "0", "1.5"],
        check=True,
    )
    parts: List[str] = []
    for _ in range(2):
        for clip in [jfk, *[wav for wav, _ in librivox]]:
            parts += [str(clip), str(pause)]
    out = out_dir / "long.wav"
    subprocess.run([sox, *parts, str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def longer_speech(tmp_path_factory: pytest.TempPathFactory, long_speech: Path) -> Path:
    """About 4.5 minutes (`long_speech` three times): long enough for the CLI's parallel
    decoding streams and for an interrupt to land well before the end."""
    out = tmp_path_factory.mktemp("longer") / "longer.wav"
    subprocess.run(["sox", *[str(long_speech)] * 3, str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def pyannote_sample() -> Tuple[Path, Path]:
    wav, rttm = _fixture("pyannote-sample").split("\t")
    return Path(wav), Path(rttm)


@pytest.fixture(scope="session")
def resemblyzer_weights() -> Path:
    return Path(_fixture("resemblyzer"))
