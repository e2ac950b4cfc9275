"""Amortized gists on the demo model: a compressor trained once against per-prompt distillation.

    python benchmarks/gist_compressor.py [--train-prefixes 64] [--steps 300] [--samples 3] [--quick]

Trains a GistCompressor (LoRA adapters plus k gist embeddings, `mmgist.gist.compressor`) on photo crops plus
instructions from the demo task's training photos (self-study rows made once, cut before the question
types kept for the report), then on held-out photo prefixes compares, on the rows after questions of types
neither ever trained on (describe, main colour):
- the compressed gist (one forward pass),
- the distilled gist (distill_gist with GistConfig's defaults, per prefix),
- the compressed gist refined by --refine-steps of the same distillation (start=),
- another photo's full prefix (the control: what any prefix with this instruction gives) and no prefix.
G = 1 - KL(full || head) / KL(full || no prefix), G_content = 1 - KL(full || head) / KL(full || control), pooled
over the prefixes' tokens; and the seconds each gist took.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from gist import SERVED_PER_PREFIX, UNSEEN_PER_PREFIX, benchmark_samples, distill, markdown

from mmgist import distill_gist, load_model
from mmgist.data.images import split_photos
from mmgist.demo_task import GIST_HELDOUT_MARKERS, gist_questions, make_samples
from mmgist.gist import CompressorConfig, GistCompressor, GistConfig, compressor_study, train_compressor
from mmgist.gist import data as gist_data
from mmgist.gist.compressor import POSITIONS
from mmgist.gist.report import fidelity
from mmgist.lm.scoring import context_ids, head_embeddings, to_ids
from mmgist.train import TrainConfig

COLUMNS = {"gist": "", "G": ".3f", "G_content": ".3f", "agreement": ".3f", "seconds per gist": ".2f"}


def unseen_rows(model, vocab, sample, seed: int = 1) -> gist_data.Continuations:
    """The teacher's answers after the sample's questions of held-out types, with the full prefix."""
    _, unseen = gist_questions(sample, SERVED_PER_PREFIX, UNSEEN_PER_PREFIX)
    ids = context_ids(vocab, sample.prefix())
    queries = [to_ids(vocab, q.query, what="query") for q in unseen]
    config = GistConfig(num_continuations=8)
    rows = gist_data.sample(model, vocab, ids, queries, config, seed=seed)
    starts = [len(q) for q in queries for _ in range(config.num_continuations)]
    padded, real, mask = gist_data.pad(rows, [max(s, 1) for s in starts])  # a KV head predicts from the 2nd token
    teacher = gist_data.teacher_logprobs(model, ids, padded, real, config.teacher_top_k)
    return gist_data.Continuations(padded, real, mask, teacher, torch.tensor(starts))


def measure(
    model, vocab, compressor: GistCompressor, pairs, config: GistConfig, refine_steps: list[int], distilled: bool = True
) -> list[dict]:
    """Rows (gist, G, G_content, agreement, seconds per gist) over held-out (sample, control) `pairs`, pooled over
    their tokens: the compressed gist, it refined by each of `refine_steps`, the distilled gist (`config`; unless
    `distilled` is False), the control and no prefix."""
    refined_names = {n: f"compressed + {n} steps" for n in refine_steps}
    done = ("distilled",) if distilled else ()
    kl = {h: 0.0 for h in ("compressed", *refined_names.values(), *done, "control", "no prefix")}
    agree = dict.fromkeys(kl, 0.0)
    seconds = {"compressed": 0.0, **dict.fromkeys(refined_names.values(), 0.0), **dict.fromkeys(done, 0.0)}
    for sample, control in pairs:
        rows = unseen_rows(model, vocab, sample)
        t0 = time.perf_counter()
        compressed = compressor.compress(vocab, sample.prefix())
        compress_s = time.perf_counter() - t0
        seconds["compressed"] += compress_s
        if distilled:
            t0 = time.perf_counter()
            heads_distilled = distill(model, vocab, sample, control, config).head(model)
            seconds["distilled"] += time.perf_counter() - t0
        served, _ = gist_questions(sample, SERVED_PER_PREFIX, UNSEEN_PER_PREFIX)
        heads = {"compressed": compressed.head(model)}
        for steps, name in refined_names.items():
            t0 = time.perf_counter()
            refined = distill_gist(model, vocab, sample.prefix(), replace(config, steps=steps), queries=served,
                                   self_study_exclude=list(GIST_HELDOUT_MARKERS), start=compressed)  # fmt: skip
            seconds[name] += time.perf_counter() - t0 + compress_s
            heads[name] = refined.head(model)
        if distilled:
            heads["distilled"] = heads_distilled
        heads["control"] = head_embeddings(model, vocab, prefix=control.prefix())
        heads["no prefix"] = head_embeddings(model, vocab)
        n = int(rows.mask.sum())
        for name, head in heads.items():
            f = fidelity(model, head, rows)
            kl[name] += f["kl"] * n
            agree[name] += f["agreement"] * n
        agree = {**agree, "_n": agree.get("_n", 0) + n}
    table = []
    for name in kl:
        row = {"gist": name, "G": 1 - kl[name] / kl["no prefix"], "G_content": 1 - kl[name] / kl["control"],
               "agreement": agree[name] / agree["_n"]}  # fmt: skip
        if name in seconds:
            row["seconds per gist"] = seconds[name] / len(pairs)
        table.append(row)
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/demo-photo-qa")
    ap.add_argument("--photos", default="data/photos", help="folder with train/ and heldout/ (make data); "
                    "without it, the bundled photos")  # fmt: skip
    ap.add_argument("--train-prefixes", type=int, default=64, help="training photo crops (each with an instruction)")
    ap.add_argument("--self-study", type=int, default=16, help="teacher rows per training prefix")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--lora-rank", type=int, nargs="+", default=[8], help="LoRA rank (0: the gist embeddings alone); "
                    "several: one compressor each, measured in turn")  # fmt: skip
    ap.add_argument("--samples", type=int, default=3, help="held-out prefixes")
    ap.add_argument(
        "--refine-steps",
        type=int,
        nargs="*",
        default=[50, 100],
        help="distillation steps from the compressed gist (one row each; the default distills 200)",
    )
    ap.add_argument("--out", default="out/gist_compressor", help="the trained compressor and its checkpoint")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--positions",
        nargs="+",
        choices=POSITIONS,
        default=["rotate"],
        help="the gist keys' rotary "
        "positions (CompressorConfig.positions); several: one compressor each, measured in turn",
    )
    ap.add_argument("--no-distilled", action="store_true", help="leave out the per-prefix distillation row")
    ap.add_argument("--quick", action="store_true", help="8 prefixes, 20 steps, 1 held-out prefix: a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.train_prefixes, args.steps, args.samples, args.self_study, args.refine_steps = 8, 20, 1, 4, [5]
    torch.set_num_threads(args.threads)
    model, vocab = load_model(args.model)
    photos = Path(args.photos)
    if not (photos / "train").is_dir():
        photos = Path(tempfile.mkdtemp())
        split_photos(photos)
    train = make_samples(photos / "train", args.train_prefixes, seed=0)
    t0 = time.perf_counter()
    study_config = GistConfig(self_study=args.self_study, self_study_length=GistConfig.self_study_length)
    study = compressor_study(model, vocab, [s.prefix() for s in train], study_config,
                             exclude=list(GIST_HELDOUT_MARKERS), progress=True)  # fmt: skip
    study_s = time.perf_counter() - t0
    pairs = benchmark_samples(photos / "heldout", args.samples)
    settings = [(p, r) for p in args.positions for r in args.lora_rank]
    for positions, rank in settings:  # one compressor per rotary handling and rank, on the same study
        config = CompressorConfig(num_gist_tokens=args.k, lora_rank=rank, positions=positions)
        compressor = GistCompressor(model, config)
        named = [positions] * (len(args.positions) > 1) + [f"rank-{rank}"] * (len(args.lora_rank) > 1)
        out = Path(args.out, *named)
        result = train_compressor(compressor, vocab, study, TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=20,
                                  checkpoint_every=50), out / "run")  # fmt: skip
        compressor.save(out / "compressor")
        print(f"compressor ({positions} positions, LoRA rank {rank}): {args.train_prefixes} training prefixes x "
              f"{args.self_study} rows ({study_s:.0f} s), {result.steps} steps ({result.wall_seconds:.0f} s this run), "
              f"k={args.k}; final KL {result.history[-1]['kl']:.3f}")  # fmt: skip
        table = measure(model, vocab, compressor, pairs, GistConfig(num_gist_tokens=args.k, num_continuations=8),
                        args.refine_steps, distilled=not args.no_distilled)  # fmt: skip
        print(f"\n{args.samples} held-out photo prefixes, rows after questions of types never trained on "
              f"({positions} positions, LoRA rank {rank})\n")  # fmt: skip
        print(markdown(table, COLUMNS))
        seconds = {r["gist"]: r.get("seconds per gist") for r in table}
        if "distilled" in seconds:
            print(f"\ncompressed / distilled time per gist: {seconds['compressed'] / seconds['distilled']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
