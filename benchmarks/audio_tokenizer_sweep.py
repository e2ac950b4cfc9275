"""A short measured sweep of audio-rvq quantizer recipes: each trained briefly, measured on held-out speech.

    python benchmarks/audio_tokenizer_sweep.py --steps 600 [--variants cosine euclidean-64 plain ...]

Every variant is the shipped recipe (16k-50hz, 8 codebooks of 1024, 1 s segments, batch 8, lr 1e-3, the kind
weights of `make audio-tokenizers`) with one change to the quantizer. Runs go through
`train_audio_tokenizer` one after another on this process's threads, into --out (a finished run is reused;
a killed one resumes). Each is measured with `benchmarks/audio_tokenizer.py`'s `measure` on --seconds of each
held-out speech set at 1, 2, 4 and 8 codebooks: mel distance, latent error (|quantized - encoder output|^2 /
|encoder output|^2: residual quantization that works shrinks it with every codebook), STOI and usage. Short
runs rank recipes by how they start, not where they end: read the table as a guide, not a verdict.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tables
import torch
from audio_tokenizer import FORMATS, heldout_clips, measure

from mmgist import load_tokenizer
from mmgist.tokenizers.train_audio import train_audio_tokenizer

VARIANTS: dict[str, dict] = {
    "cosine": {"quantizer": "rvq", "lookup": "cosine"},  # v1: 8-d cosine codes
    "euclidean-8-latent": {"quantizer": "rvq", "lookup": "euclidean", "latent_weight": 1.0},
    "euclidean-64": {"quantizer": "rvq", "lookup": "euclidean", "code_dim": 64},  # the full latent, no projection
    "cosine-latent": {"quantizer": "rvq", "lookup": "cosine", "latent_weight": 1.0},
    "euclidean-64-loudness": {"quantizer": "rvq", "lookup": "euclidean", "code_dim": 64, "loudness": -20.0},
    "plain": {"quantizer": "plain-rvq"},  # the baseline
}
WEIGHTS = {"speech-cs": 2, "speech-en": 1, "speech-synth": 1, "music": 1, "effects": 0.5}
COLUMNS = ("tokenizer", "set", "codebooks", "mel dist", "latent err", "STOI", "usage mean")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=["cosine", "euclidean-64", "plain"], choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--data", default="data/audio", help="gather_audio's folder (train/ and heldout/)")
    ap.add_argument("--out", default="runs/audio-sweep")
    ap.add_argument("--seconds", type=float, default=20.0, help="held-out audio per set")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, clips = [], None
    for name in args.variants:
        out = Path(args.out) / f"{name}-{args.steps}"
        if not (out / "config.json").is_file():
            train_audio_tokenizer(Path(args.data) / "train", out, steps=args.steps, batch_size=8, seconds=1.0,
                                  lr=1e-3, weights=WEIGHTS, progress=False, **VARIANTS[name])  # fmt: skip
        tok = load_tokenizer(out).eval()
        if clips is None:
            every = heldout_clips(Path(args.data) / "heldout", args.seconds, tok.sample_rate)
            clips = {k: v for k, v in every.items() if "speech" in k and "synth" not in k}
        rows += measure(name, tok, clips, [1, 2, 4, 8])
    print(f"{args.steps} steps each; held-out speech, {args.seconds:.0f} s per set; {args.threads} CPU thread(s)\n")
    print(tables.table(rows, COLUMNS, FORMATS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
