"""An independent GE2E forward pass in NumPy, for checking vttiro's Rust encoder.

Reads the safetensors file itself, computes librosa-style mel power frames (centred,
zero-padded, periodic Hann, Slaney mel filters built here from the formulas) from raw
samples, runs the three PyTorch-convention LSTM layers step by step in float64, and prints
one JSON list of embeddings.

usage: python ge2e_reference.py MODEL.safetensors WINDOWS.f32 FRAMES
       python ge2e_reference.py MODEL.safetensors UTTERANCE.f32 utterance
WINDOWS.f32 holds consecutive windows of FRAMES*160 little-endian float32 samples; in the
second form the file is one utterance, embedded the way Resemblyzer's embed_utterance
does it (volume raised to -30 dBFS if quieter, 1.6-s partials at 1.3 per second, the last
kept if it covers 75%, the mean of the partial embeddings normalised).
"""
import json
import struct
import sys

import numpy as np


def load_safetensors(path):
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    return {
        name: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4")
        .reshape(v["shape"]).astype(np.float64)
        for name, v in header.items() if name != "__metadata__"
    }


def slaney_mel(n_mels=40, n_fft=400, sr=16000):
    def hz_to_mel(f):
        f = np.asarray(f, float)
        return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27), f * 3 / 200)

    def mel_to_hz(m):
        m = np.asarray(m, float)
        return np.where(m >= 15, 1000 * np.exp((np.log(6.4) / 27) * (m - 15)), m * 200 / 3)

    edges = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(sr / 2), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    bank = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, mid, hi = edges[i:i + 3]
        bank[i] = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid))) * 2 / (hi - lo)
    return bank


def mel_frames(wav, frames):
    padded = np.pad(wav, (200, 200))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    stack = np.stack([padded[i * 160:i * 160 + 400] * window for i in range(frames)])
    return (np.abs(np.fft.rfft(stack, axis=1)) ** 2) @ slaney_mel().T


def embed(weights, mel):
    sigmoid = lambda x: 1 / (1 + np.exp(-x))
    x = mel
    for layer in range(3):
        w_ih, w_hh = weights[f"lstm.weight_ih_l{layer}"], weights[f"lstm.weight_hh_l{layer}"]
        bias = weights[f"lstm.bias_ih_l{layer}"] + weights[f"lstm.bias_hh_l{layer}"]
        h, c, outputs = np.zeros(256), np.zeros(256), []
        for step in x:
            g = w_ih @ step + w_hh @ h + bias
            i, f, cand, o = sigmoid(g[:256]), sigmoid(g[256:512]), np.tanh(g[512:768]), sigmoid(g[768:])
            c = f * c + i * cand
            h = o * np.tanh(c)
            outputs.append(h)
        x = np.array(outputs)
    e = np.maximum(0, weights["linear.weight"] @ h + weights["linear.bias"])
    return e / np.linalg.norm(e)


def embed_utterance(weights, wav):
    rms = np.sqrt(np.mean((wav * 32767) ** 2))
    change = -30 - 20 * np.log10(rms / 32767)
    if change > 0:
        wav = wav * 10 ** (change / 20)
    n_frames = int(np.ceil((len(wav) + 1) / 160))
    step = int(np.round((16000 / 1.3) / 160))
    starts = list(range(0, max(1, n_frames - 160 + step + 1), step))
    coverage = (len(wav) - starts[-1] * 160) / (160 * 160)
    if coverage < 0.75 and len(starts) > 1:
        starts.pop()
    end = (starts[-1] + 160) * 160
    if end >= len(wav):
        wav = np.pad(wav, (0, end - len(wav)))
    mel = mel_frames(wav, 1 + len(wav) // 160)
    partials = np.array([embed(weights, mel[s:s + 160]) for s in starts])
    mean = partials.mean(axis=0)
    return mean / np.linalg.norm(mean)


def main():
    weights = load_safetensors(sys.argv[1])
    samples = np.fromfile(sys.argv[2], dtype="<f4").astype(np.float64)
    if sys.argv[3] == "utterance":
        print(json.dumps([embed_utterance(weights, samples).tolist()]))
        return
    frames = int(sys.argv[3])
    windows = samples.reshape(-1, frames * 160)
    print(json.dumps([embed(weights, mel_frames(w, frames)).tolist() for w in windows]))


main()
