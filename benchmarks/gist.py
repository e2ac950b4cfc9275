"""Gist benchmark: fidelity by k and prefix length, task accuracy, distillation cost, and latency.

    python benchmarks/gist.py [--model models/demo-brightness] [--prefix-tokens 128 256 512 1024] [--ks 1 2 4 8 16]

1. Fidelity: mixed prefixes of held-out photographs (tokenized by the model's image tokenizer) then
   instruction text, filled to the requested length; G, agreement and cost on held-out continuations
   (see mmgist.gist.distill).
2. Task accuracy: the demo task's own prefixes (a held-out photo crop + instruction, about 350
   tokens) and its 5 region questions with their true answers, with the full prefix, the gist, its
   initialization, the truncated prefix and no prefix (see mmgist.demo_task, mmgist.scoring).
3. Latency, side by side for one prefix: (a) the full prefix recomputed with each query, (b) the
   prefix's KV cache reused, (c) the gist's cache, (d) no prefix at all; time to first token (TTFT,
   best of 20) and per-token generation latency (best of 5).
The functions are shared with notebooks/gist_benchmark.ipynb.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch
from timing import best_of

from mmgist import Prompt, distill_gist, load_model
from mmgist.datasets import split_photos
from mmgist.demo_task import REGIONS, TaskSample, make_samples
from mmgist.gist import GistConfig
from mmgist.lm import cache_kwargs, output_cache

INSTRUCTION = (" Instruction: look at the reference photo above and answer questions about how bright each "
               "region is, in one word, dark, medium or bright, without any other text.")  # fmt: skip


def make_prefix(vocab, n_tokens: int, seed: int = 0) -> list[int]:
    """About `n_tokens` ids (bos included): photos while they fit in half the budget, then instruction text."""
    ids = [vocab.bos_id]
    if "image" in vocab.tokenizers:
        from mmgist.datasets import HELDOUT, photo_paths
        from mmgist.io import image_to_tensor, load_image

        photos = [image_to_tensor(load_image(photo_paths()[n])) for n in HELDOUT]
        g = torch.Generator().manual_seed(seed)
        for size in (128, 64):
            while True:
                im = photos[int(torch.randint(0, len(photos), (1,), generator=g))]
                y = int(torch.randint(0, im.shape[1] - size + 1, (1,), generator=g))
                x = int(torch.randint(0, im.shape[2] - size + 1, (1,), generator=g))
                seg_ids = vocab.encode([im[:, y : y + size, x : x + size]])
                if len(ids) + len(seg_ids) > n_tokens // 2 + 16:
                    break
                ids += seg_ids
    text = INSTRUCTION
    while len(ids) + len(vocab.encode([text])) < n_tokens:
        text += INSTRUCTION
    text_ids = vocab.encode([text])[: n_tokens - len(ids)]
    return ids + text_ids


def kv_bytes(cache) -> int:
    total = 0
    for layer in getattr(cache, "layers", []):
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def latency(model, vocab, prefix: list[int], gist, query: list[int], new_tokens: int) -> dict[str, dict[str, float]]:
    """TTFT and per-token latency (ms) and KV-cache bytes for the four ways of serving a query."""
    with torch.no_grad():
        prefix_cache = output_cache(model(input_ids=torch.tensor([prefix]), use_cache=True))
        gist_cache = gist.cache(model)
    setups = {
        "(a) full prefix, recomputed": (None, prefix + query),
        "(b) full prefix, KV cache reused": (prefix_cache, prefix + query),
        "(c) gist cache": (gist_cache, [vocab.bos_id] + [vocab.pad_id] * gist.k + query),
        "(d) no prefix": (None, [vocab.bos_id, *query]),
    }
    rows = {}
    for name, (cache, ids) in setups.items():
        past = len(ids) - len(query) if cache is not None else 0
        x = torch.tensor([ids])

        def first(cache=cache, x=x, past=past):
            kw = cache_kwargs(model, copy.deepcopy(cache)) if cache is not None else {}
            with torch.no_grad():
                return model(input_ids=x[:, past:], attention_mask=torch.ones_like(x), **kw).logits[:, -1].argmax()

        def full(cache=cache, x=x):
            kw = cache_kwargs(model, copy.deepcopy(cache)) if cache is not None else {}
            model.generate(
                input_ids=x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=vocab.pad_id,
                **kw,
            )

        ttft = best_of(first, 20)
        total = best_of(full, 5)
        rows[name] = {
            "ttft_ms": 1e3 * ttft,
            "per_token_ms": 1e3 * (total - ttft) / max(1, new_tokens - 1),
            "total_ms": 1e3 * total,
            "kv_bytes": kv_bytes(cache) if cache is not None else 0,
        }
    return rows


def markdown(rows: list[dict], columns: dict[str, str]) -> str:
    """A markdown table of `rows`, one column per key of `columns` (key -> format spec, or "" for str)."""

    def cell(v, spec):
        return "-" if v is None else format(v, spec)

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    return "\n".join([head] + ["| " + " | ".join(cell(r[c], f) for c, f in columns.items()) + " |" for r in rows])


FIDELITY_COLUMNS = {"prefix tokens": "", "k": "", "compression": ".0f", "G gist": ".3f", "G init": ".3f",
                    "G truncated": ".3f", "agreement gist": ".3f", "agreement none": ".3f", "steps": "",
                    "steps to G=0.9 (train)": "", "distill s": ".1f"}  # fmt: skip
TASK_COLUMNS = {"k": "", "questions": "", "acc full": ".3f", "acc gist": ".3f", "acc init": ".3f",
                "acc truncated": ".3f", "acc none": ".3f", "option KL gist": ".3f", "option KL none": ".3f",
                "same answer as full": ".3f", "G gist": ".3f", "distill s": ".1f"}  # fmt: skip


def fidelity_row(prefix: list[int], gist) -> dict:
    r, b = gist.report, gist.report["baselines"]
    return {
        "prefix tokens": len(prefix),
        "k": gist.k,
        "compression": r["compression"],
        "G gist": b["gist"]["gap_closed"],
        "G init": b["init"]["gap_closed"],
        "G truncated": b["truncated"]["gap_closed"],
        "agreement gist": b["gist"]["agreement"],
        "agreement none": b["no_prefix"]["agreement"],
        "steps": r["steps"],
        "steps to G=0.9 (train)": next((h["step"] for h in r["history"] if h["train_gap_closed"] >= 0.9), None),
        "distill s": r["wall_seconds"],
    }


def task_samples(n: int, seed: int = 1) -> list[TaskSample]:
    """`n` demo-task samples cut from the held-out photos (never seen in training)."""
    return make_samples(split_photos(Path(tempfile.mkdtemp()))[1], n, seed=seed)


HEADS = {"full": "full_prefix", "gist": "gist", "init": "init", "truncated": "truncated", "none": "no_prefix"}


def task_row(model, vocab, samples: list[TaskSample], k: int, steps: int, continuations: int = 48) -> dict:
    """One gist per sample, its 5 region questions as the queries; figures averaged over the samples."""
    reports = []
    for s in samples:
        config = GistConfig(num_gist_tokens=k, steps=steps, num_continuations=max(1, continuations // len(REGIONS)))
        reports.append(distill_gist(model, vocab, s.prefix(), config, queries=s.questions()).report)

    def mean(get):
        return sum(get(r) for r in reports) / len(reports)

    return {
        "k": k,
        "questions": sum(r["task"]["questions"] for r in reports),
        **{f"acc {short}": mean(lambda r, h=head: r["task"]["rows"][h]["accuracy"]) for short, head in HEADS.items()},
        "option KL gist": mean(lambda r: r["task"]["rows"]["gist"]["option_kl"]),
        "option KL none": mean(lambda r: r["task"]["rows"]["no_prefix"]["option_kl"]),
        "same answer as full": mean(lambda r: r["task"]["rows"]["gist"]["agreement"]),
        "G gist": mean(lambda r: r["baselines"]["gist"]["gap_closed"]),
        "distill s": mean(lambda r: r["wall_seconds"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/demo-brightness")
    ap.add_argument("--prefix-tokens", type=int, nargs="+", default=[128, 256, 512, 1024])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--continuations", type=int, default=48)
    ap.add_argument("--latency-prefix", type=int, default=512)
    ap.add_argument("--latency-k", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--task-samples", type=int, default=6, help="demo-task prefixes per k for task accuracy (0: skip)")
    ap.add_argument(
        "--no-queries",
        action="store_true",
        help="sample continuations straight after the prefix instead of after the task's region queries",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, vocab = load_model(args.model)
    print(
        f"model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
        f"{args.threads} CPU threads; figures on held-out continuations\n"
    )
    print(markdown([], FIDELITY_COLUMNS))
    # The demo model answers queries about the prefix: continuations are sampled after each of them
    queries = None if args.no_queries else [Prompt([TaskSample.query(r)]) for r in REGIONS]
    per_query = args.continuations // (len(queries) if queries else 1)
    gists = {}
    for n in args.prefix_tokens:
        prefix = make_prefix(vocab, n)
        for k in args.ks:
            config = GistConfig(num_gist_tokens=k, steps=args.steps, num_continuations=per_query, early_stopping=None)
            gist = distill_gist(model, vocab, prefix, config, queries=queries)
            gists[(n, k)] = (prefix, gist)
            print(markdown([fidelity_row(prefix, gist)], FIDELITY_COLUMNS).split("\n")[-1], flush=True)
    if args.task_samples:
        samples = task_samples(args.task_samples)
        print(
            f"\ntask accuracy: {len(samples)} demo-task prefixes from held-out photos "
            f"({min(len(vocab.encode(s.prefix(), add_bos=True)) for s in samples)} to "
            f"{max(len(vocab.encode(s.prefix(), add_bos=True)) for s in samples)} tokens), 5 region questions each, "
            "one gist per prefix (early stopping at train G 0.95)\n"
        )
        print(markdown([], TASK_COLUMNS))
        for k in args.ks:
            print(
                markdown([task_row(model, vocab, samples, k, args.steps, args.continuations)], TASK_COLUMNS).split(
                    "\n"
                )[-1],
                flush=True,
            )
    key = (args.latency_prefix, args.latency_k)
    if key not in gists:
        prefix = make_prefix(vocab, args.latency_prefix)
        gists[key] = (
            prefix,
            distill_gist(model, vocab, prefix, GistConfig(num_gist_tokens=args.latency_k, steps=args.steps), queries),
        )
    prefix, gist = gists[key]
    query = vocab.encode(Prompt([" Q: top left? A:"]))
    rows = latency(model, vocab, prefix, gist, query, args.new_tokens)
    print(
        f"\nlatency, prefix {len(prefix)} tokens, gist k={gist.k}, query {len(query)} tokens, "
        f"{args.new_tokens} new tokens (TTFT best of 20, generation best of 5)\n"
    )
    print("| setup | TTFT ms | per-token ms | total ms | KV-cache bytes |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['ttft_ms']:.1f} | {r['per_token_ms']:.2f} | {r['total_ms']:.1f} | {r['kv_bytes']:,} |")
    a, b, c, d = rows.values()
    saved = (a["total_ms"] - c["total_ms"]) / 1e3
    print(
        f"\nTTFT gist / no prefix: {c['ttft_ms'] / d['ttft_ms']:.2f}x (aim: within 1.1x); "
        f"TTFT full / gist: {a['ttft_ms'] / c['ttft_ms']:.1f}x"
    )
    if c["kv_bytes"]:
        print(
            f"KV bytes prefix / gist: {b['kv_bytes'] / c['kv_bytes']:.1f}x (positions {len(prefix)} / {gist.k + 1}; "
            f"the compression ratio {gist.compression:.1f}x leaves out the <|bos|> both keep)"
        )
    payback = gist.report["wall_seconds"] / saved if saved > 0 else float("inf")
    print(
        f"distillation {gist.report['wall_seconds']:.1f} s is paid back after {payback:.0f} queries "
        f"(each saves {1e3 * saved:.0f} ms against recomputing the prefix)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
