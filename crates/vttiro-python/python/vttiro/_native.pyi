# Types of the compiled module (crates/vttiro-python/src/lib.rs), for editors and type
# checkers; `vttiro` re-exports what users need.
from os import PathLike
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

_Path = Union[str, PathLike[str]]

__version__: str

class VttiroError(RuntimeError):
    code: str
    exit_code: int

class Word:
    text: str
    start: float
    end: float
    probability: float
    speaker: Optional[str]

class Segment:
    id: int
    start: float
    end: float
    text: str
    speaker: Optional[str]
    words: List[Word]

class Transcript:
    @property
    def text(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def language_probability(self) -> float: ...
    @property
    def model(self) -> str: ...
    @property
    def engine(self) -> str: ...
    @property
    def duration(self) -> float: ...
    @property
    def source(self) -> Path: ...
    @property
    def segments(self) -> List[Segment]: ...
    @property
    def words(self) -> List[Word]: ...
    @property
    def speakers(self) -> List[str]: ...
    @property
    def timings(self) -> Dict[str, float]: ...
    @property
    def chunks(self) -> int: ...
    @property
    def resumed_chunks(self) -> int: ...
    def to_vtt(self) -> str: ...
    def to_srt(self) -> str: ...
    def to_json(self) -> str: ...
    def to_txt(self) -> str: ...
    def to_rttm(self) -> str: ...
    def save(self, path: _Path, format: Optional[str] = None) -> Path: ...

def transcribe(
    path: _Path,
    *,
    model: Optional[str] = None,
    language: Optional[str] = None,
    engine: Optional[str] = None,
    diarize: Optional[bool] = None,
    speakers: Optional[int] = None,
    min_speakers: Optional[int] = None,
    max_speakers: Optional[int] = None,
    speaker_names: Optional[List[str]] = None,
    speaker_model: Optional[str] = None,
    device: Optional[str] = None,
    compute_type: Optional[str] = None,
    backend: Optional[str] = None,
    threads: Optional[int] = None,
    prompt: Optional[str] = None,
    vad: Optional[bool] = None,
    download: Optional[bool] = None,
    audio_track: Optional[int] = None,
    checkpoint_dir: Optional[_Path] = None,
    checkpoint_every: Optional[float] = None,
    on_progress: Optional[Callable[[str, float, float], object]] = None,
) -> Transcript: ...
def list_models() -> List[Dict[str, object]]: ...
def pull_model(
    name: str,
    *,
    source: str = "auto",
    on_progress: Optional[Callable[[str, int, Optional[int]], object]] = None,
) -> Path: ...
def run_cli(argv: List[str]) -> int: ...
def gpu_available() -> bool: ...
def backends() -> List[str]: ...
