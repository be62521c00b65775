"""Ctrl-C / kernel interrupts and resuming from per-chunk checkpoints.

The interrupted run is a separate Python process that receives a real SIGINT, as a
notebook kernel does when its interrupt button is pressed, so the test covers the
signal path and not only the cancel flag."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vttiro
from conftest import interrupted_child

# Seconds of speech per checkpoint: below a planned chunk (up to 30 s), so every chunk is
# checkpointed on its own.
EVERY = 5.0

INTERRUPTED_RUN = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from pathlib import Path
    import vttiro

    media, checkpoints, every = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    state = {"signalled_at": None, "progress_after_signal": 0}

    def saved():
        return sorted(checkpoints.rglob("*.json"))

    def on_progress(p):
        if state["signalled_at"] is not None:
            state["progress_after_signal"] += 1
        # Once a chunk is safely saved: what the interrupt button sends.
        elif p.stage == "transcribe" and saved():
            state["signalled_at"] = time.monotonic()
            os.kill(os.getpid(), signal.SIGINT)

    try:
        vttiro.transcribe(media, model="tiny.en", checkpoint_dir=checkpoints,
                          checkpoint_every=every, on_progress=on_progress)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
    print(json.dumps({
        "outcome": outcome,
        "stop_seconds": time.monotonic() - state["signalled_at"],
        "checkpoints": [str(p.relative_to(checkpoints)) for p in saved()],
    }))
    """
)


def interrupted_run(media: Path, checkpoints: Path) -> dict:
    return interrupted_child(INTERRUPTED_RUN, str(media), str(checkpoints), str(EVERY))


def test_interrupt_stops_cleanly_and_a_rerun_resumes(long_speech: Path, tmp_path: Path) -> None:
    reference = vttiro.transcribe(long_speech, model="tiny.en", checkpoint_every=EVERY,
                                  checkpoint_dir=tmp_path / "reference")
    assert reference.chunks >= 4, "the input must make several chunks"
    assert reference.resumed_chunks == 0
    # A finished run leaves no checkpoints behind.
    assert list((tmp_path / "reference").rglob("*.json")) == []

    checkpoints = tmp_path / "drive" / "checkpoints"
    report = interrupted_run(long_speech, checkpoints)
    saved = report["checkpoints"]
    assert 1 <= len(saved) < reference.chunks, saved
    # The run stopped at the next chunk boundary, not at the end of the input.
    assert report["stop_seconds"] < 30
    # Whole files only: every checkpoint parses, and no temporary file is left.
    for name in saved:
        assert name.startswith("asr/")
        json.loads((checkpoints / name).read_text())
    assert [p for p in checkpoints.rglob("*") if p.is_file() and p.suffix != ".json"] == []

    # Rerunning the cell after the disconnect: finished chunks come from the checkpoints.
    seen_stages = []
    resumed = vttiro.transcribe(long_speech, model="tiny.en", checkpoint_dir=checkpoints,
                                checkpoint_every=EVERY,
                                on_progress=lambda p: seen_stages.append(p.stage))
    assert resumed.resumed_chunks == len(saved)
    assert resumed.chunks == reference.chunks
    assert resumed.to_vtt() == reference.to_vtt()
    assert [s.text for s in resumed.segments] == [s.text for s in reference.segments]
    assert list(checkpoints.rglob("*.json")) == []
    assert "transcribe" in seen_stages


PROMPT_STOP = textwrap.dedent(
    """
    import json, os, signal, sys, time
    import vttiro

    media = sys.argv[1]
    # Uninterrupted first, which also leaves the model loaded for the second run.
    whole = vttiro.transcribe(media, model="tiny.en").timings["transcribe"]
    state = {"signalled_at": None}

    def on_progress(p):
        # The first window is done: the rest of the input is still ahead of the engine.
        if state["signalled_at"] is None and p.stage == "transcribe" and p.fraction > 0:
            state["signalled_at"] = time.monotonic()
            os.kill(os.getpid(), signal.SIGINT)

    try:
        vttiro.transcribe(media, model="tiny.en", on_progress=on_progress)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
    print(json.dumps({"outcome": outcome, "whole": whole,
                      "stop": time.monotonic() - state["signalled_at"]}))
    """
)


def test_without_checkpoints_an_interrupt_stops_the_engine_between_windows(
    longer_speech: Path,
) -> None:
    # No checkpoint directory: the input is one engine call, as in the CLI, and only the
    # engine itself can stop early.
    report = interrupted_child(PROMPT_STOP, str(longer_speech))
    # Stopped within a window or two, not after the rest of the 4.5 minutes.
    assert report["stop"] < report["whole"] / 3, report


def test_checkpoints_from_other_settings_are_not_used(long_speech: Path, tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    interrupted_run(long_speech, checkpoints)
    # A prompt changes what the model writes: another plan, so nothing may be taken from
    # the first one's files.
    other = vttiro.transcribe(long_speech, model="tiny.en", checkpoint_dir=checkpoints,
                              checkpoint_every=EVERY, prompt="Sense and Sensibility.")
    assert other.resumed_chunks == 0
    # The interrupted plan's checkpoints are still there for its own rerun.
    assert list(checkpoints.rglob("*.json"))


def test_the_console_command_is_the_native_cli(jfk: Path, tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    version = subprocess.run([str(bin_dir / "vttiro"), "--version"], capture_output=True,
                             text=True, check=True)
    assert version.stdout.strip() == f"vttiro {vttiro.__version__}"
    module = subprocess.run([sys.executable, "-m", "vttiro", "version"], capture_output=True,
                            text=True, check=True)
    assert "backends: ct2" in module.stdout
    missing = subprocess.run([str(bin_dir / "vttiro"), "transcribe", str(tmp_path / "nope.mp4")],
                             capture_output=True, text=True)
    with pytest.raises(vttiro.VttiroError) as expected:
        vttiro.transcribe(tmp_path / "nope.mp4")
    assert missing.returncode == expected.value.exit_code
    assert missing.stderr.strip().splitlines()[-1].startswith("error: ")
    assert str(tmp_path / "nope.mp4") in missing.stderr


def test_ctrl_c_stops_the_console_command(long_speech: Path, tmp_path: Path) -> None:
    cli = subprocess.Popen(
        [str(Path(sys.executable).parent / "vttiro"), "transcribe", str(long_speech),
         "--model", "tiny.en", "-o", str(tmp_path / "long.vtt")],
        stderr=subprocess.PIPE,
        env={**os.environ, "VTTIRO_LOG": "vttiro_pipeline=info"},
    )
    # Wait until it is working, then interrupt it as a terminal's Ctrl-C would.
    assert cli.stderr is not None
    for line in cli.stderr:
        if b"planned" in line:
            break
    cli.send_signal(signal.SIGINT)
    assert cli.wait(timeout=30) == -signal.SIGINT
    assert not (tmp_path / "long.vtt").exists()
