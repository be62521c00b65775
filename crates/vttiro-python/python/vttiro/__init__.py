"""vttiro: video and audio to broadcast-quality WebVTT subtitles with speaker labels.

>>> import vttiro
>>> t = vttiro.transcribe("talk.mp4", model="small.en", diarize=True)
>>> t.save("talk.vtt")

The work happens in vttiro's native engine (the same code as the ``vttiro`` command):
the GIL is released while it runs, Ctrl-C or a notebook's interrupt stops it after the
30-s window it is decoding, and with ``checkpoint_dir`` a run cut off by a disconnect resumes where it
stopped.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Union

from . import models
from ._native import (
    Segment,
    Transcript,
    VttiroError,
    Word,
    __version__,
    backends,
    gpu_available,
)
from ._native import transcribe as _transcribe

__all__ = [
    "Progress",
    "Segment",
    "Transcript",
    "VttiroError",
    "Word",
    "__version__",
    "backends",
    "gpu_available",
    "models",
    "transcribe",
]

PathLike = Union[str, "os.PathLike[str]"]
ArrayLike = Any  # a NumPy array or anything numpy.asarray takes


@contextlib.contextmanager
def _media_file(source: Union[PathLike, ArrayLike], sample_rate: Optional[int]) -> Iterator[str]:
    """The file to transcribe: ``source`` itself, or an audio array written to a temporary
    WAV that is removed afterwards."""
    if isinstance(source, (str, bytes, os.PathLike)) or not hasattr(source, "__array__"):
        if sample_rate is not None:
            raise ValueError("sample_rate is for audio given as an array; a file carries its own")
        yield os.fspath(source)
        return
    with tempfile.TemporaryDirectory(prefix="vttiro-array-") as scratch:
        wav = Path(scratch) / "audio.wav"
        _write_wav(wav, source, sample_rate)
        yield str(wav)


def _write_wav(path: Path, audio: ArrayLike, sample_rate: Optional[int]) -> None:
    """Audio samples as a 16-bit PCM WAV file, channels kept (vttiro mixes them down)."""
    try:
        import numpy as np
    except ImportError as missing:
        raise ImportError(
            'audio arrays need NumPy: pip install "vttiro[local]"'
        ) from missing
    if not sample_rate or sample_rate <= 0:
        raise ValueError("sample_rate: give the array's sampling rate in Hz, e.g. 16000")
    samples = np.asarray(audio)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or samples.shape[1] > 8 or samples.shape[0] == 0:
        raise ValueError(
            f"audio array of shape {samples.shape}: expected (samples,) or (samples, channels)"
        )
    if samples.dtype.kind == "f":
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    elif samples.dtype == np.int16:
        pcm = samples.astype("<i2")
    else:
        raise ValueError(f"audio array of {samples.dtype}: use float samples in [-1, 1] or int16")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(pcm.shape[1])
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(np.ascontiguousarray(pcm).tobytes())


@dataclass
class Progress:
    """What ``on_progress`` receives while a transcription runs.

    ``stage`` is ``download`` (a missing model being fetched; ``fraction`` is per file),
    ``decode``, ``vad``, ``load`` (the models being loaded), ``transcribe`` or
    ``diarize``; ``fraction`` is how far that stage is (0..1) and ``overall`` how far the
    whole run is (0..1, never going back). ``timings`` holds the seconds each finished
    stage took, ``elapsed`` the seconds since the run started and ``stage_elapsed`` those
    since this stage started.
    """

    stage: str
    fraction: float
    overall: float
    elapsed: float
    stage_elapsed: float
    timings: Dict[str, float] = field(default_factory=dict)


class _StageClock:
    """Turns the engine's (stage, fraction, overall) reports into ``Progress`` values with
    per-stage timings measured here, on the caller's side."""

    def __init__(self, callback: Callable[[Progress], object]):
        self.callback = callback
        self.started = time.monotonic()
        self.stage: Optional[str] = None
        self.stage_started = self.started
        self.timings: Dict[str, float] = {}

    def __call__(self, stage: str, fraction: float, overall: float) -> None:
        now = time.monotonic()
        if stage != self.stage:
            if self.stage is not None:
                self.timings[self.stage] = self.timings.get(self.stage, 0.0) + (
                    now - self.stage_started
                )
            self.stage = stage
            self.stage_started = now
        self.callback(
            Progress(
                stage=stage,
                fraction=fraction,
                overall=overall,
                elapsed=now - self.started,
                stage_elapsed=now - self.stage_started,
                timings=dict(self.timings),
            )
        )


def transcribe(
    path: Union[PathLike, "ArrayLike"],
    *,
    sample_rate: Optional[int] = None,
    model: Optional[str] = None,
    language: Optional[str] = None,
    diarize: Optional[bool] = None,
    speakers: Optional[int] = None,
    min_speakers: Optional[int] = None,
    max_speakers: Optional[int] = None,
    speaker_names: Optional[Sequence[str]] = None,
    speaker_model: Optional[str] = None,
    engine: Optional[str] = None,
    device: Optional[str] = None,
    compute_type: Optional[str] = None,
    backend: Optional[str] = None,
    threads: Optional[int] = None,
    prompt: Optional[str] = None,
    vad: Optional[bool] = None,
    download: Optional[bool] = None,
    audio_track: Optional[int] = None,
    checkpoint_dir: Optional[PathLike] = None,
    checkpoint_every: Optional[float] = None,
    on_progress: Optional[Callable[[Progress], object]] = None,
) -> Transcript:
    """Transcribes one video or audio file and returns its :class:`Transcript`.

    ``path`` may also be audio already in memory: a NumPy array (``pip install
    "vttiro[local]"``) of samples, mono or ``(samples, channels)``, float in [-1, 1] or
    16-bit integers, with its ``sample_rate``; any rate is resampled to 16 kHz.

    Arguments left as ``None`` come from vttiro's configuration (``vttiro.toml``,
    ``~/.config/vttiro/config.toml``, ``VTTIRO_*`` variables), as for the CLI.

    - ``model``: a local model name (``tiny.en`` … ``large-v3``; downloaded on first use
      into ``VTTIRO_MODEL_DIR``) or directory, or the cloud model of ``engine``.
    - ``language``: ISO 639-1 code, or ``None``/``"auto"`` to detect it.
    - ``diarize``: label every word and cue with its speaker; ``speakers`` (exact),
      ``min_speakers``/``max_speakers`` and ``speaker_names`` imply it.
    - ``engine``: ``local`` (default), ``openai``, ``gemini``, ``assemblyai``,
      ``deepgram``, or a comma-separated fallback chain such as ``"deepgram,local"``;
      keys come from ``VTTIRO_<PROVIDER>_API_KEY``.
    - ``device``: ``auto`` (GPU when this build and the machine have one), ``cpu``, ``gpu``.
    - ``checkpoint_dir``: keep a checkpoint after every chunk there (a Google Drive folder
      in Colab); calling again with the same file, settings and directory resumes from
      them. They are removed once the transcript is complete. Without it the input goes
      to the engine in one call, exactly as the CLI does (faster on long inputs).
    - ``checkpoint_every``: seconds of speech per checkpoint (default 30, about a chunk;
      larger is faster on CPUs, where a long group decodes in parallel streams).
    - ``on_progress``: called with a :class:`Progress` on the calling thread; an
      exception it raises stops the run and is re-raised.

    Raises :class:`VttiroError` (with ``.code`` and ``.exit_code``) for bad input or a
    failed engine, and ``KeyboardInterrupt`` when interrupted; finished chunks stay in
    ``checkpoint_dir``.
    """
    with _media_file(path, sample_rate) as media:
        return _transcribe(
            media,
            model=model,
            language=language,
            engine=engine,
            diarize=diarize,
            speakers=speakers,
            min_speakers=min_speakers,
            max_speakers=max_speakers,
            speaker_names=list(speaker_names) if speaker_names is not None else None,
            speaker_model=speaker_model,
            device=device,
            compute_type=compute_type,
            backend=backend,
            threads=threads,
            prompt=prompt,
            vad=vad,
            download=download,
            audio_track=audio_track,
            checkpoint_dir=os.fspath(checkpoint_dir) if checkpoint_dir is not None else None,
            checkpoint_every=checkpoint_every,
            on_progress=_StageClock(on_progress) if on_progress is not None else None,
        )
