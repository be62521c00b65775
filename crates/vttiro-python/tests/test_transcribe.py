"""vttiro.transcribe on real speech: the transcript, its formats, progress, the GIL, and
errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import vttiro
from conftest import normalise, wer


def test_jfk_transcript_segments_and_words(jfk: Path, jfk_text: str) -> None:
    t = vttiro.transcribe(jfk, model="tiny.en")
    assert wer(jfk_text, t.text) <= 0.1, t.text
    assert "ask not what your country can do for you" in " ".join(normalise(t.text))
    assert t.language == "en"
    assert t.model == "tiny.en"
    assert t.engine == "ct2"
    assert t.duration == pytest.approx(11.0, abs=0.05)
    assert t.source == jfk
    assert t.speakers == []
    assert len(t.segments) >= 1
    assert "".join(s.text for s in t.segments).strip() == t.text
    words = t.words
    assert [w.text for w in words] == [w.text for s in t.segments for w in s.words]
    assert len(words) == len(normalise(t.text))
    for earlier, later in zip(words, words[1:]):
        assert earlier.start <= earlier.end <= later.start + 0.01
    assert 0.0 <= words[0].start < 1.0 and 10.0 < words[-1].end <= 11.0
    assert all(0.0 < w.probability <= 1.0 for w in words)
    assert set(t.timings) == {"decode", "vad", "transcribe", "total"}
    assert t.timings["total"] >= t.timings["transcribe"] > 0.0
    # No checkpoint directory: the run is one plan of one chunk, nothing resumed.
    assert (t.chunks, t.resumed_chunks) == (1, 0)


def test_formats_are_the_cli_outputs(jfk: Path, longer_speech: Path, tmp_path: Path) -> None:
    t = vttiro.transcribe(jfk, model="tiny.en")
    # The wheel's console command is the native CLI; both must write the same subtitles.
    cli = Path(sys.executable).with_name("vttiro")
    subprocess.run(
        [str(cli), "transcribe", str(jfk), "--model", "tiny.en", "--format", "vtt,srt,json,txt",
         "--output-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    assert t.to_vtt() == (tmp_path / "jfk.vtt").read_text()
    assert t.to_srt() == (tmp_path / "jfk.srt").read_text()
    assert t.to_txt() == (tmp_path / "jfk.txt").read_text()
    ours, theirs = json.loads(t.to_json()), json.loads((tmp_path / "jfk.json").read_text())
    assert ours["segments"] == theirs["segments"]
    assert ours["language"] == "en"

    # A long input too: without checkpoints it is one engine call, exactly as the CLI's.
    subprocess.run(
        [str(cli), "transcribe", str(longer_speech), "--model", "tiny.en",
         "--output-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    assert vttiro.transcribe(longer_speech, model="tiny.en").to_vtt() == (
        tmp_path / "longer.vtt"
    ).read_text()

    vtt = t.to_vtt()
    assert vtt.startswith("WEBVTT")
    assert "-->" in vtt and "your country" in vtt
    srt = t.to_srt()
    assert srt.startswith("1\n00:00:00,")
    # RTTM lists speaker turns; without diarization there are none.
    assert t.to_rttm() == ""


def test_save_picks_the_format_and_writes_whole_files(jfk: Path, tmp_path: Path) -> None:
    t = vttiro.transcribe(jfk, model="tiny.en")
    assert t.save(tmp_path / "a.vtt") == tmp_path / "a.vtt"
    assert (tmp_path / "a.vtt").read_text() == t.to_vtt()
    t.save(str(tmp_path / "b.SRT"))
    assert (tmp_path / "b.SRT").read_text() == t.to_srt()
    t.save(tmp_path / "c.subs", format="json")
    assert json.loads((tmp_path / "c.subs").read_text())["segments"]

    with pytest.raises(vttiro.VttiroError) as unknown:
        t.save(tmp_path / "d.docx")
    assert unknown.value.code == "invalid_argument"
    assert "d.docx" in str(unknown.value)
    with pytest.raises(vttiro.VttiroError) as missing_dir:
        t.save(tmp_path / "no" / "such" / "dir.vtt")
    assert missing_dir.value.code == "output_failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vtt", "b.SRT", "c.subs"]


def test_progress_reports_every_stage_in_order_on_the_calling_thread(jfk: Path) -> None:
    seen = []
    caller = threading.get_ident()

    def on_progress(p: vttiro.Progress) -> None:
        assert threading.get_ident() == caller
        seen.append(p)

    t = vttiro.transcribe(jfk, model="tiny.en", on_progress=on_progress)
    stages = []
    for p in seen:
        if not stages or stages[-1] != p.stage:
            stages.append(p.stage)
    assert stages == ["decode", "vad", "load", "transcribe"]
    overall = [p.overall for p in seen]
    assert overall == sorted(overall), "overall progress went backwards"
    assert overall[0] == 0.0 and overall[-1] >= 0.9
    assert seen[-1].stage == "transcribe" and seen[-1].fraction == 1.0
    assert all(0.0 <= p.fraction <= 1.0 for p in seen)
    elapsed = [p.elapsed for p in seen]
    assert elapsed == sorted(elapsed)
    # Finished stages carry their time; the model load is timed apart from recognition.
    assert set(seen[-1].timings) == {"decode", "vad", "load"}
    assert seen[-1].elapsed <= t.timings["total"] + 1.0


def test_a_failing_callback_stops_the_run_and_is_raised(jfk: Path) -> None:
    class Stop(Exception):
        pass

    def on_progress(p: vttiro.Progress) -> None:
        if p.stage == "vad":
            raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        vttiro.transcribe(jfk, model="tiny.en", on_progress=on_progress)


def test_the_gil_is_released_while_it_works(long_speech: Path) -> None:
    # Another Python thread keeps running while the native code transcribes.
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    started = time.monotonic()
    try:
        vttiro.transcribe(long_speech, model="tiny.en")
    finally:
        stop.set()
        counter.join()
    seconds = time.monotonic() - started
    # Held GIL: the counter would get a tick per switch interval (5 ms) at best while the
    # caller waits, and none while the native call holds it.
    assert seconds > 2.0
    assert ticks > seconds * 200, f"{ticks} ticks in {seconds:.1f} s"


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda d: d / "missing.mp4", "input_not_found"),
        (lambda d: d, "input_is_directory"),
        (lambda d: _write(d / "notes.mp4", b"these are not frames of video\n" * 40), "unsupported_media"),
        (lambda d: _write(d / "empty.wav", b""), "input_empty"),
    ],
)
def test_bad_input_is_named_with_its_code(tmp_path: Path, make, code: str) -> None:
    path = make(tmp_path)
    with pytest.raises(vttiro.VttiroError) as error:
        vttiro.transcribe(path, model="tiny.en")
    assert error.value.code == code
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)
    assert error.value.exit_code > 2


def test_bad_settings_fail_before_any_work(jfk: Path) -> None:
    with pytest.raises(vttiro.VttiroError) as model:
        vttiro.transcribe(jfk, model="no-such-model", download=False)
    assert model.value.code == "unknown_model"
    with pytest.raises(vttiro.VttiroError) as device:
        vttiro.transcribe(jfk, model="tiny.en", device="tpu")
    assert device.value.code == "invalid_argument"
    with pytest.raises(vttiro.VttiroError) as every:
        vttiro.transcribe(jfk, model="tiny.en", checkpoint_every=0)
    assert every.value.code == "invalid_argument"


def test_librivox_word_error_rate(librivox) -> None:
    errors = []
    for wav, reference in librivox:
        t = vttiro.transcribe(wav, model="tiny.en", language="en")
        errors.append(wer(reference, t.text))
    mean = sum(errors) / len(errors)
    print(f"LibriVox tiny.en WER per clip {['%.3f' % e for e in errors]}, mean {mean:.3f}")
    assert mean <= 0.15, errors


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_audio_arrays_in_memory(jfk: Path, jfk_text: str) -> None:
    import wave

    import numpy as np

    with wave.open(str(jfk)) as clip:
        rate = clip.getframerate()
        pcm = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2")
    from_file = vttiro.transcribe(jfk, model="tiny.en")
    # Two identical int16 channels mix down to the file's own samples.
    stereo = vttiro.transcribe(np.stack([pcm, pcm], axis=1), sample_rate=rate, model="tiny.en")
    assert stereo.text == from_file.text
    assert [(w.start, w.end) for w in stereo.words] == [(w.start, w.end) for w in from_file.words]
    # Float samples at 48 kHz are resampled to 16 kHz on the way in.
    floats = np.repeat(pcm.astype(np.float32) / 32768.0, 3)
    resampled = vttiro.transcribe(floats, sample_rate=48_000, model="tiny.en")
    assert wer(jfk_text, resampled.text) <= 0.1, resampled.text
    assert resampled.duration == pytest.approx(11.0, abs=0.05)

    with pytest.raises(ValueError, match="sample_rate"):
        vttiro.transcribe(pcm, model="tiny.en")
    with pytest.raises(ValueError, match="shape"):
        vttiro.transcribe(np.zeros((2, 2, 2)), sample_rate=16_000)
    with pytest.raises(ValueError, match="int16"):
        vttiro.transcribe(pcm.astype(np.int64), sample_rate=16_000)
    with pytest.raises(ValueError, match="array"):
        vttiro.transcribe(jfk, sample_rate=16_000)
