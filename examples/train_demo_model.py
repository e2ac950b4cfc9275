"""Train the demo language model on the region-brightness task (mmgist.demo_task) and measure it.

    python examples/train_demo_model.py --steps 1500 --out models/demo-brightness

Photos: the bundled training photographs for training samples, the held-out ones for evaluation.
Images are tokenized by the shipped image-vq-f8 (128x128 crops: 16x16 codes). Writes the model and
its vocabulary to --out, with training.json holding data, steps, wall time and the measured figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mmgist import ByteTokenizer, SharedVocabulary, build_lm, load_model, load_tokenizer
from mmgist.datasets import split_photos
from mmgist.demo_task import evaluate, make_samples, write_manifest
from mmgist.lm_train import train_lm
from mmgist.storage import write_json_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models/demo-brightness")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--train-samples", type=int, default=4000)
    ap.add_argument("--heldout-samples", type=int, default=100)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--data", default="data")
    args = ap.parse_args()

    train_photos, heldout_photos = split_photos(Path(args.data) / "photos")
    vocab = SharedVocabulary(text=ByteTokenizer(), image=load_tokenizer("image-vq-f8"))
    manifest = write_manifest(make_samples(train_photos, args.train_samples, seed=0), Path(args.data) / "demo-task")
    torch.manual_seed(0)
    model = build_lm(vocab, preset=args.preset)
    t0 = time.perf_counter()
    result = train_lm(
        model,
        vocab,
        manifest,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        cache_dir=Path(args.data) / "token-cache",
    )
    wall = time.perf_counter() - t0
    if result.steps != args.steps:
        return
    model, vocab = load_model(args.out)
    heldout = make_samples(heldout_photos, args.heldout_samples, seed=1)
    full = evaluate(model, vocab, heldout)
    bare = evaluate(model, vocab, heldout, with_prefix=False, reference=full.probs)
    figures = {
        "heldout_queries": len(full.probs),
        "accuracy_with_prefix": full.accuracy,
        "accuracy_without_prefix": bare.accuracy,
        "chance": 1 / 3,
        "option_kl_full_vs_no_prefix": bare.option_kl,
    }
    params = sum(p.numel() for p in model.parameters())
    write_json_atomic(
        Path(args.out) / "training.json",
        {
            "task": "region brightness (mmgist.demo_task)",
            "preset": args.preset,
            "parameters": params,
            "train_samples": args.train_samples,
            "queries_per_sample": 5,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "wall_seconds_this_run": round(wall, 1),
            "resumed_from": result.resumed_from,
            "final_train_metrics": result.history[-1],
            "heldout": figures,
        },
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
