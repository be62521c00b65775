"""Ctrl-C during a model download from the Hugging Face hub, served by a local stand-in
that speaks the hub's protocol: the repository listing, an LFS redirect carrying the
sha256 and size, and a CDN that honours Range with If-Range. The interrupted pull runs in
a child process that receives a real SIGINT."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

import vttiro
from conftest import interrupted_child

REPO = "Systran/faster-whisper-tiny.en"
COMMIT = "d90ca5fe260221311c53c58e660288d3deb8d356"
FILES = ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
# While throttled the CDN sends 64 KiB every 50 ms: the 75 MB weights would take a minute.
PIECE = 64 * 1024
PAUSE = 0.05


class LocalHub:
    def __init__(self, model: Path) -> None:
        self.files: Dict[str, bytes] = {name: (model / name).read_bytes() for name in FILES}
        self.sha = {name: hashlib.sha256(data).hexdigest() for name, data in self.files.items()}
        self.throttled = True
        self.ranges: List[Optional[str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
                hub.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.timeout = 0.2
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _serve(self) -> None:
        # Bounded: a few hundred requests at most, and it stops when the test ends.
        for _ in range(500):
            if self.stop.is_set():
                break
            self.server.handle_request()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.server.server_close()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path
        if path == f"/api/models/{REPO}/revision/main":
            listing = {"sha": COMMIT, "siblings": [{"rfilename": f} for f in FILES]}
            return self._send(request, 200, json.dumps(listing).encode(), {})
        prefix = f"/{REPO}/resolve/{COMMIT}/"
        if path.startswith(prefix) and path[len(prefix):] in self.files:
            name = path[len(prefix):]
            if name != "model.bin":
                return self._send(request, 200, self.files[name], {"ETag": f'"{self.sha[name]}"'})
            # Large files are LFS: the hub redirects to its CDN and announces them.
            return self._send(request, 302, b"", {
                "Location": f"/cdn/{self.sha[name]}",
                "X-Linked-Etag": f'"{self.sha[name]}"',
                "X-Linked-Size": str(len(self.files[name])),
            })
        if path == f"/cdn/{self.sha['model.bin']}":
            return self._serve_cdn(request, self.files["model.bin"])
        self._send(request, 404, b"not found", {})

    def _serve_cdn(self, request: BaseHTTPRequestHandler, data: bytes) -> None:
        etag = '"cdn-model-bin"'
        wanted = request.headers.get("Range")
        self.ranges.append(wanted)
        start = 0
        if wanted and request.headers.get("If-Range") == etag:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
        body = data[start:]
        request.send_response(206 if start else 200)
        request.send_header("ETag", etag)
        request.send_header("Content-Length", str(len(body)))
        if start:
            request.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        request.end_headers()
        try:
            for offset in range(0, len(body), PIECE):
                request.wfile.write(body[offset:offset + PIECE])
                if self.throttled:
                    time.sleep(PAUSE)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what an interrupted pull does

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes,
              headers: Dict[str, str]) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


@pytest.fixture
def local_hub(model_dir: Path) -> Iterator[LocalHub]:
    hub = LocalHub(model_dir / "tiny.en")
    try:
        yield hub
    finally:
        hub.close()


INTERRUPTED_PULL = textwrap.dedent(
    """
    import json, os, signal, time
    import vttiro

    state = {"signalled_at": None}

    def on_progress(file, done, total):
        # Two MiB of the weights are on disk: what the interrupt button sends.
        if state["signalled_at"] is None and file == "model.bin" and done >= 2 << 20:
            state["signalled_at"] = time.monotonic()
            os.kill(os.getpid(), signal.SIGINT)

    try:
        vttiro.models.pull("tiny.en", source="hf", on_progress=on_progress)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
    print(json.dumps({
        "outcome": outcome,
        "stop_seconds": time.monotonic() - state["signalled_at"],
    }))
    """
)


def test_interrupting_a_hub_pull_keeps_its_part_and_the_next_pull_resumes_it(
    local_hub: LocalHub, tmp_path: Path, monkeypatch
) -> None:
    models = tmp_path / "models"
    env = dict(os.environ, HF_ENDPOINT=local_hub.endpoint, VTTIRO_MODEL_DIR=str(models))
    report = interrupted_child(INTERRUPTED_PULL, env=env, timeout=120)
    # Throttled, the whole file takes a minute: the pull stopped at the next read.
    assert report["stop_seconds"] < 5, report
    weights = len(local_hub.files["model.bin"])
    part = models / ".partial" / "tiny.en" / "model.bin.part"
    kept = part.stat().st_size
    assert 2 << 20 <= kept < weights // 2, (kept, weights)
    assert not (models / "tiny.en").exists()
    assert local_hub.ranges == [None]
    print(f"pull stopped {report['stop_seconds']:.2f} s after SIGINT, "
          f"{kept} of {weights} bytes kept")

    # Running the cell again resumes from the part instead of starting over.
    local_hub.throttled = False
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    monkeypatch.setenv("VTTIRO_MODEL_DIR", str(models))
    progress = []
    path = vttiro.models.pull("tiny.en", source="hf",
                              on_progress=lambda f, done, total: progress.append((f, done)))
    assert local_hub.ranges == [None, f"bytes={kept}-"]
    assert min(done for f, done in progress if f == "model.bin") >= kept
    assert hashlib.sha256((path / "model.bin").read_bytes()).hexdigest() \
        == local_hub.sha["model.bin"]
    assert not part.exists()
    installed = {m.name: m for m in vttiro.models.list()}["tiny.en"]
    assert installed.installed and installed.source == f"hf:{REPO}@main"
