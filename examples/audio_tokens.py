"""Tokenize an audio file with the shipped audio tokenizer and hear what 1, 2, 4 and all codebooks keep.

    python examples/audio_tokens.py [AUDIO] [--tokenizer audio-rvq] [--out out/audio_tokens]

With no AUDIO, the bundled espeak-ng sentence (examples/data/espeak-sentence.flac, never trained on) is
used, or a synthesized chirp if that file is missing. Prints codes per second, bitrate, mel distance
(lower is better), SI-SNR and STOI for each number of codebooks; writes every reconstruction as a wav
file into --out, with the original, and a PNG of their log-mel spectrograms side by side.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from mmgist import load_tokenizer
from mmgist.io import load_audio, save_audio
from mmgist.metrics import mel_distance, mel_spectrogram, si_snr, stoi

BUNDLED = Path(__file__).parent / "data" / "espeak-sentence.flac"


def chirp(rate: int, seconds: float = 3.0) -> torch.Tensor:
    """A sine sweeping from 100 Hz to 4 kHz, exponentially: (1, S)."""
    t = torch.arange(int(rate * seconds)) / rate
    f0, f1 = 100.0, 4000.0
    k = math.log(f1 / f0) / seconds
    return 0.5 * torch.sin(2 * math.pi * f0 * (torch.exp(k * t) - 1) / k)[None]


def plot_spectrograms(panels: list[tuple[str, torch.Tensor]], rate: int, path: Path) -> None:
    """One log-mel spectrogram per (label, waveform (1, S)), side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3), sharey=True)
    for ax, (label, wave) in zip(axes, panels):
        ax.imshow(mel_spectrogram(wave[0], rate).numpy(), origin="lower", aspect="auto", vmin=-5, vmax=1)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("frame")
    axes[0].set_ylabel("mel bin")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("audio", nargs="?", help="an audio file (default: a bundled espeak-ng sentence)")
    ap.add_argument("--tokenizer", default="audio-rvq", help="zoo name or folder")
    ap.add_argument("--out", default="out/audio_tokens", help="folder for the wav files and the PNG")
    args = ap.parse_args()

    tok = load_tokenizer(args.tokenizer).eval()
    rate = tok.sample_rate
    if args.audio or BUNDLED.exists():
        path = Path(args.audio or BUNDLED)
        wave, _ = load_audio(path, sample_rate=rate, mono=True)  # (1, S) at the codec's rate
        name = path.stem
    else:
        wave, name = chirp(rate), "chirp"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_audio(out / f"{name}.wav", wave, rate)
    print(f"audio      {name}: {wave.shape[-1] / rate:.2f} s at {rate} Hz")
    print(f"tokenizer  {args.tokenizer}: {tok.frame_rate:g} frames per second, codebooks of {tok.codebook_size}")
    print()
    print("codebooks  codes/s    kbps  mel dist  SI-SNR dB   STOI")

    panels = [("original", wave)]
    ns = sorted({n for n in (1, 2, 4) if n < tok.num_codebooks} | {tok.num_codebooks})
    with torch.no_grad():
        for n in ns:
            codes = tok.encode(wave, rate, num_codebooks=n)  # (n, frames)
            recon = tok.decode(codes)[:, : wave.shape[-1]]  # (1, S): whole frames, cut to the input's length
            mel = mel_distance(recon[None], wave[None], rate).item()
            snr = si_snr(recon[None], wave[None]).item()
            intelligibility = stoi(recon, wave, rate)  # None: too little speech to measure
            print(
                f"{n:>9}  {n * tok.frame_rate:>7.0f}  {tok.bitrate(n) / 1000:>6.2f}  {mel:>8.3f}  {snr:>9.1f}  "
                + (f"{intelligibility:>5.3f}" if intelligibility is not None else "    —")
            )
            save_audio(out / f"{name}-{n}cb.wav", recon, rate)
            panels.append((f"{n} codebooks ({tok.bitrate(n) / 1000:.1f} kbps)", recon))

    png = out / f"{name}-spectrograms.png"
    plot_spectrograms(panels, rate, png)
    print()
    print(f"wrote      {name}.wav (the input) and {name}-<n>cb.wav (the reconstructions) into {out}/")
    print(f"wrote      {png} (left: input, then each number of codebooks)")


if __name__ == "__main__":
    main()
