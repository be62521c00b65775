"""Runs faster-whisper on one file with fixed settings and prints a JSON line.

Used by bench/compare.sh so both engines see the same audio, weights and thread count.
"""
import json
import resource
import sys
import time

from faster_whisper import WhisperModel


def main() -> None:
    model_dir, media, beam, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    started = time.perf_counter()
    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
    segments, _info = model.transcribe(media, beam_size=beam, vad_filter=True, word_timestamps=True)
    text = " ".join(s.text.strip() for s in segments)
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall_s": elapsed, "peak_rss_mib": peak_kib / 1024, "text": text}))


if __name__ == "__main__":
    main()
