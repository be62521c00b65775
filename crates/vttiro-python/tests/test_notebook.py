"""notebooks/vttiro_colab.ipynb run headless, as CI runs it: on the CPU, outside Colab
(so the Drive and google.colab parts are skipped by detection), on a JFK video."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import vttiro
from conftest import normalise

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "vttiro_colab.ipynb"


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        for key in ("text/plain", "text/html"):
            value = out.get("data", {}).get(key)
            if value:
                parts.append(value)
    return "".join(parts)


def test_notebook_runs_end_to_end(jfk: Path, jfk_text: str, tmp_path: Path, monkeypatch) -> None:
    assert os.environ.get("VTTIRO_WHEEL"), "scripts/python.sh names the wheel under test"
    video = tmp_path / "talk.mp4"
    subprocess.run(
        [shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", "color=c=navy:s=320x180:r=25", "-i", str(jfk), "-shortest",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "64k", str(video)],
        check=True,
    )
    monkeypatch.setenv("VTTIRO_NOTEBOOK_SOURCE", str(video))
    monkeypatch.setenv("VTTIRO_NOTEBOOK_MODEL", "tiny.en")
    # Checkpoints and uploads go to a private cache, not the user's.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    cells = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    setup, storage, _, run, preview = (outputs_text(c) for c in cells)
    assert f"vttiro {vttiro.__version__}" in setup
    # Detection: no GPU on the CI machine, and it says so.
    assert "no NVIDIA GPU - transcribing on the CPU" in setup
    assert f"checkpoints: {tmp_path / 'cache' / 'vttiro' / 'checkpoints'}" in storage
    assert f"saved:\n  {tmp_path / 'talk.vtt'}\n  {tmp_path / 'talk.srt'}" in run
    assert "timings (s): {'decode'" in run
    # The preview: the video with the subtitles as its default track, then the WebVTT.
    assert "<video" in preview and '<track kind="subtitles"' in preview and " default " in preview
    vtt_start = preview.index("WEBVTT")
    printed_vtt = preview[vtt_start:]
    assert "source: talk.mp4" in printed_vtt
    saved = (tmp_path / "talk.vtt").read_text()
    assert printed_vtt.strip() == saved.strip()
    cue_text = " ".join(
        line for line in saved.splitlines()
        if line and "-->" not in line and not line.isdigit() and not line.startswith(("WEBVTT", "NOTE", "source:", "vttiro ", "Language:"))
    )
    assert "ask not what your country can do for you" in " ".join(normalise(cue_text))
    assert (tmp_path / "talk.srt").read_text().startswith("1\n")
    # A finished run leaves no checkpoint behind.
    assert list((tmp_path / "cache" / "vttiro" / "checkpoints").rglob("*.json")) == []


def test_large_media_is_previewed_by_a_short_low_quality_copy(jfk: Path, tmp_path: Path) -> None:
    import base64
    import re

    from vttiro import colab

    video = tmp_path / "big.mp4"
    # A large, hard-to-compress picture makes the file big; the preview re-encodes it small.
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         "testsrc2=s=1280x720:r=30", "-i", str(jfk), "-shortest", "-c:v", "libx264",
         "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", str(video)],
        check=True,
    )
    t = vttiro.transcribe(video, model="tiny.en")
    size = video.stat().st_size
    limit = size // 4
    page = colab.preview_html(video, t, max_bytes=limit)
    assert "the first 2 minutes" in page
    embedded = re.search(r'<source src="data:video/mp4;base64,([^"]+)"', page)
    assert embedded and 0 < len(base64.b64decode(embedded.group(1))) <= limit
    track = re.search(r'src="data:text/vtt;base64,([^"]+)"', page)
    assert track and base64.b64decode(track.group(1)).decode() == t.to_vtt()
    # Nothing small enough: a note instead of a page too heavy to save.
    assert "too large to preview" in colab.preview_html(video, t, max_bytes=1000)
