"""Audio tokenizer benchmark on held-out real speech and non-speech sounds: audio-rvq and its plain-RVQ baseline.

    make audio-data                                  # once: installs the sound packages, gathers data/audio
    python benchmarks/audio_tokenizer.py [--tokenizers audio-rvq audio-rvq-plain] [--codebooks 1 2 4 8]
                                         [--seconds 90] [--spectrograms tokenizers/audio-rvq/spectrograms.png]
                                         [--update-card tokenizers/audio-rvq/README.md]
                                         [--hf /models/encodec_24khz [--hf /models/dac_16khz ...]]

`--hf PATH` adds rows for a pretrained transformers codec on your disk (hf-audio: EnCodec, DAC, Mimi,
X-codec; never downloaded). The held-out clips are read at the first tokenizer's rate; a codec at
another rate gets them resampled to its rate, and its output is resampled back before scoring. Its
latent error is left blank (the column measures our quantizers).

Every row is measured in this one run, on the held-out files of `mmgist.data.audio.gather_audio`
(never trained on), by set: real speech in English and in Czech (Fish Fillets NG's voice lines, rooms
never trained on), synthesized speech (espeak-ng, sentences never trained on) and non-speech (a
music track and sound effects). Each set is capped at --seconds of audio (files in sorted order).
Per row: bitrate; mel distance (mean L1 of log10-mel spectrograms over 5 window sizes, lower is
better); latent error (|quantized - encoder output|^2 / |encoder output|^2: how much of the latent
the codes keep; residual quantization that works shrinks it with every codebook); SI-SNR (dB);
STOI (pystoi, speech only, over the files long enough to measure: pystoi needs about 1 s of
non-silent speech); wide-band PESQ (speech only, when the `pesq` package is installed); codebook
usage (share of each codebook's codes seen over every set, the least-used codebook and the mean)
and the usage a uniform draw of as many codes would reach; encode and decode speed as multiples of
real time (audio seconds per CPU second, whole files one at a time, --threads CPU threads), and the
two together. Those are steady-state: each file is encoded and decoded once before the timed pass,
as oneDNN builds its convolution kernels once per input length (a cold first call on a new length
took about twice as long); that first pass is timed too ("first pass x RT", encode and decode together,
what a user converting a folder once sees; on the rows after the first codebook count the process has
seen each length already).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import tables
import torch

from mmgist import load_tokenizer
from mmgist.io import load_audio
from mmgist.metrics import mel_distance, si_snr, stoi

SETS = {"English speech": ("speech-en",), "Czech speech": ("speech-cs",), "synthesized speech": ("speech-synth",),
        "non-speech": ("music", "effects")}  # fmt: skip
SPEECH = ("English speech", "Czech speech", "synthesized speech")
DEFAULT_TOKENIZERS = ("audio-rvq", "audio-rvq-plain")
MAX_CLIP = 20.0  # seconds read from each file (a music track is minutes long)
COLUMNS = ("tokenizer", "set", "codebooks", "kbps", "mel dist", "latent err", "SI-SNR dB", "STOI", "STOI files",
           "PESQ", "usage min", "usage mean", "uniform usage", "encode x RT", "decode x RT",
           "enc+dec x RT", "first pass x RT")  # fmt: skip
FORMATS = {"kbps": "{:.2f}", "mel dist": "{:.3f}", "latent err": "{:.3f}", "SI-SNR dB": "{:.1f}", "STOI": "{:.3f}",
           "PESQ": "{:.2f}",
           "usage min": "{:.3f}", "usage mean": "{:.3f}", "uniform usage": "{:.3f}", "encode x RT": "{:.0f}",
           "decode x RT": "{:.0f}", "enc+dec x RT": "{:.0f}", "first pass x RT": "{:.0f}"}  # fmt: skip


def heldout_clips(folder: Path, seconds: float, rate: int) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """Per set: (name, waveform (1, S) at `rate`) of held-out files in sorted order, interleaving the set's
    kinds, until `seconds` of audio (at least one file per kind)."""
    out = {}
    for name, kinds in SETS.items():
        per_kind = [sorted((folder / k).glob("*.flac")) if (folder / k).is_dir() else [] for k in kinds]
        order = [p for group in _interleave(per_kind) for p in group]
        clips, total = [], 0.0
        for path in order:
            if total >= seconds:
                break
            wave, _ = load_audio(path, sample_rate=rate, mono=True, max_seconds=MAX_CLIP)
            if wave.shape[-1] < rate // 2:  # under half a second: too short for STOI
                continue
            clips.append((path.stem, wave))
            total += wave.shape[-1] / rate
        if clips:
            out[name] = clips
    return out


def _interleave(groups: list[list[Path]]) -> list[list[Path]]:
    """[[a1, a2], [b1]] -> [[a1, b1], [a2]]: take from each kind in turn."""
    longest = max((len(g) for g in groups), default=0)
    return [[g[i] for g in groups if i < len(g)] for i in range(longest)]


def pesq_wb(estimate: torch.Tensor, reference: torch.Tensor, rate: int) -> float | None:
    try:
        from pesq import pesq
    except ImportError:
        return None
    try:
        return float(pesq(rate, reference.reshape(-1).numpy(), estimate.reshape(-1).numpy(), "wb"))
    except Exception:  # pesq refuses silent or too-short signals
        return None


def measure(
    name: str, tok, clips: dict[str, list[tuple[str, torch.Tensor]]], ns: list[int], rate: int | None = None
) -> list[dict]:
    """One row per (set, number of codebooks); the clips are at `rate` (default: the tokenizer's)."""
    rate = rate or tok.sample_rate
    rows = []
    for n in ns:
        seen = [torch.zeros(tok.codebook_size, dtype=torch.bool) for _ in range(n)]
        drawn = 0
        for set_name, items in clips.items():
            mel, snr, st, pq, lat, enc_s, dec_s, first_s, audio_s = [], [], [], [], [], 0.0, 0.0, 0.0, 0.0
            for _, wave in items:
                t0 = time.perf_counter()
                tok.decode(tok.encode(wave, rate, num_codebooks=n))  # the first pass, timed apart (docstring)
                first_s += time.perf_counter() - t0
                if hasattr(tok, "latent_error"):
                    lat.append(tok.latent_error(tok.preprocess(wave, tok.sample_rate), n))
                t0 = time.perf_counter()
                codes = tok.encode(wave, rate, num_codebooks=n)
                t1 = time.perf_counter()
                recon = tok.decode(codes)
                t2 = time.perf_counter()
                recon = at_rate(recon, tok.sample_rate, rate, wave.shape[-1])
                enc_s, dec_s, audio_s = enc_s + t1 - t0, dec_s + t2 - t1, audio_s + wave.shape[-1] / rate
                for c in range(n):
                    seen[c][codes[c]] = True
                drawn += codes.shape[-1]
                mel.append(mel_distance(recon[None], wave[None], rate).item())
                snr.append(si_snr(recon[None], wave[None]).item())
                if set_name in SPEECH:
                    st.append(stoi(recon, wave, rate))
                    pq.append(pesq_wb(recon, wave, rate))
            st, pq = [s for s in st if s is not None], [p for p in pq if p is not None]
            rows.append({
                "tokenizer": name, "set": f"{set_name} ({len(items)} files, {audio_s:.0f} s)", "codebooks": n,
                "kbps": tok.bitrate(n) / 1000, "mel dist": _mean(mel), "SI-SNR dB": _mean(snr),
                "latent err": _mean(lat) if lat else None, "STOI": _mean(st) if st else None,
                "STOI files": len(st) if set_name in SPEECH else None,
                "PESQ": _mean(pq) if pq else None,
                "encode x RT": audio_s / enc_s, "decode x RT": audio_s / dec_s,
                "enc+dec x RT": audio_s / (enc_s + dec_s), "first pass x RT": audio_s / first_s,
            })  # fmt: skip
        usage = [float(s.float().mean()) for s in seen]
        uniform = 1 - (1 - 1 / tok.codebook_size) ** drawn  # expected share seen by as many uniform draws
        for row in rows[-len(clips) :]:
            row.update({"usage min": min(usage), "usage mean": _mean(usage), "uniform usage": uniform})
    return rows


def at_rate(recon: torch.Tensor, from_rate: int, rate: int, length: int) -> torch.Tensor:
    """A reconstruction (1, S') at `from_rate` as (1, length) at `rate` (resampled, trimmed or zero-padded)."""
    if from_rate != rate:
        import torchaudio.functional as AF

        recon = AF.resample(recon, from_rate, rate)
    return torch.nn.functional.pad(recon[:, :length], (0, max(0, length - recon.shape[-1])))


@torch.no_grad()
def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def spectrograms(tok, wave: torch.Tensor, ns: list[int], path: Path, title: str) -> None:
    """A PNG: the log-mel spectrogram of `wave`, then of its reconstruction with each number of codebooks."""
    import matplotlib.pyplot as plt  # headless: matplotlib picks a non-interactive backend itself

    from mmgist.metrics import mel_spectrogram

    rate = tok.sample_rate
    panels = [("original", wave)]
    for n in ns:
        recon = tok.decode(tok.encode(wave, rate, num_codebooks=n))[:, : wave.shape[-1]]
        panels.append((f"{n} codebooks ({tok.bitrate(n) / 1000:.1f} kbps)", recon))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.6 * len(panels)), sharex=True)
    for ax, (label, w) in zip(axes, panels):
        ax.imshow(mel_spectrogram(w[0], rate, 1024, 80).numpy(), origin="lower", aspect="auto", vmin=-5, vmax=1)
        ax.set_ylabel("mel bin")
        ax.set_title(label, fontsize=9)
    axes[-1].set_xlabel(f"frame (hop 256 at {rate} Hz)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizers", nargs="+", default=list(DEFAULT_TOKENIZERS), help="zoo names or folders")
    ap.add_argument("--codebooks", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--audio", default="data/audio", help="where `make audio-data` (gather_audio) wrote the audio")
    ap.add_argument("--seconds", type=float, default=90.0, help="audio per set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--spectrograms", help="write a PNG of one held-out speech clip's spectrograms per codebook count")
    ap.add_argument("--update-card", help="rewrite the measured table between the markers in this README")
    ap.add_argument("--hf", action="append", default=[], metavar="PATH", help="add a pretrained codec (see above)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.tokenizers += args.hf
    toks = [load_tokenizer(t).eval() for t in args.tokenizers]
    folder = Path(args.audio) / "heldout"
    if not (Path(args.audio) / "manifest.json").is_file():
        raise SystemExit(f"no gathered audio in {args.audio}: run `make audio-data` first")
    clips = heldout_clips(folder, args.seconds, toks[0].sample_rate)
    rows = []
    for where, tok in zip(args.tokenizers, toks):
        ns = [n for n in args.codebooks if n <= tok.num_codebooks]
        rows += measure(Path(str(where)).name, tok, clips, ns, toks[0].sample_rate)
    out = (f"held-out audio from {folder}; {args.threads} CPU threads; usage over every set's codes\n\n"
           f"{tables.table(rows, COLUMNS, FORMATS)}")  # fmt: skip
    print(out)
    if args.spectrograms:
        name, wave = next(items[0] for s, items in clips.items() if s in SPEECH)
        spectrograms(toks[0], wave, [n for n in (1, 2, 4, 8) if n <= toks[0].num_codebooks], Path(args.spectrograms),
                     f"{args.tokenizers[0]} on held-out speech '{name}'")  # fmt: skip
        print(f"wrote {args.spectrograms}")
    if args.update_card:
        tables.update_card(Path(args.update_card), out, "python benchmarks/audio_tokenizer.py")
        print(f"updated {args.update_card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
