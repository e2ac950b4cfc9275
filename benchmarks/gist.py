"""Gist benchmark: fidelity by k and prefix length, task accuracy, distillation cost, and latency.

    python benchmarks/gist.py [--model models/demo-brightness] [--prefix-tokens 128 256 512 1024] [--ks 1 2 4 8 16]

1. Fidelity: mixed prefixes of held-out photographs (tokenized by the model's image tokenizer) then
   instruction text, filled to the requested length; G, agreement and cost on held-out continuation
   positions (see mmgist.gist.data: rows held out at random, minus positions whose context was
   trained on, plus every row after 2 held-out region queries the gist never saw).
2. Task accuracy: the demo task's own prefixes (a held-out photo crop + instruction, about 350
   tokens) and its 5 region questions with their true answers: each gist is trained after 3 of them
   (served) and also scored on the other 2 (unseen), with the full prefix, the gist, the truncated
   prefix and no prefix (see mmgist.demo_task, mmgist.scoring).
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
    """TTFT and per-token latency (ms) and KV-cache bytes for the four ways of serving a query.

    A reused cache is copied before each call (a forward extends it), outside the clock. Per-token
    latency is (time for `new_tokens` - time for 1) / (new_tokens - 1), so generate()'s fixed setup
    cost is left out of it."""
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

        def fresh(cache=cache):
            return cache_kwargs(model, copy.deepcopy(cache)) if cache is not None else {}

        def first(kw, x=x, past=past):
            with torch.no_grad():
                return model(input_ids=x[:, past:], attention_mask=torch.ones_like(x), **kw).logits[:, -1].argmax()

        def run(kw, n, x=x):
            model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=vocab.pad_id, **kw)  # fmt: skip

        ttft = best_of(first, 20, prepare=fresh)
        one = best_of(lambda kw: run(kw, 1), 10, prepare=fresh)
        total = best_of(lambda kw: run(kw, new_tokens), 5, prepare=fresh)
        rows[name] = {
            "ttft_ms": 1e3 * ttft,
            "per_token_ms": 1e3 * (total - one) / max(1, new_tokens - 1),
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
                    "G truncated": ".3f", "agreement gist": ".3f", "agreement none": ".3f", "greedy match": ".2f",
                    "G gist (served, held-out rows)": ".3f", "served held-out positions": "", "steps": "",
                    "steps to G=0.9": "", "distill s": ".1f"}  # fmt: skip
TASK_COLUMNS = {"k": "", "served q": "", "served acc full": ".3f", "served acc gist": ".3f", "served acc none": ".3f",
                "served same as full": ".3f", "unseen q": "", "unseen acc full": ".3f", "unseen acc gist": ".3f",
                "unseen acc truncated": ".3f", "unseen acc none": ".3f", "unseen same as full": ".3f",
                "unseen option KL gist": ".3f", "unseen option KL none": ".3f", "G gist (unseen)": ".3f",
                "distill s": ".1f"}  # fmt: skip


def fidelity_row(prefix: list[int], gist) -> dict:
    """G, agreement and greedy match on the unseen queries (or, without them, on the held-out rows)."""
    r = gist.report
    part, key = (
        ("unseen_queries", "unseen_queries_gap_closed") if r["unseen_queries"] else ("baselines", "heldout_gap_closed")
    )
    b, served = r[part] or {}, r["baselines"]

    def get(head, field):
        return b[head][field] if b else None

    return {
        "prefix tokens": len(prefix),
        "k": gist.k,
        "compression": r["compression"],
        "G gist": get("gist", "gap_closed"),
        "G init": get("init", "gap_closed"),
        "G truncated": get("truncated", "gap_closed"),
        "agreement gist": get("gist", "agreement"),
        "agreement none": get("no_prefix", "agreement"),
        "greedy match": get("gist", "greedy_exact_match"),
        "G gist (served, held-out rows)": served["gist"]["gap_closed"] if served else None,
        "served held-out positions": r["heldout_positions"],
        "steps": r["steps"],
        "steps to G=0.9": next((h["step"] for h in r["history"] if h.get(key, -1) >= 0.9), None),
        "distill s": r["wall_seconds"],
    }


def task_samples(n: int, seed: int = 1) -> list[TaskSample]:
    """`n` demo-task samples cut from the held-out photos (never seen in training)."""
    return make_samples(split_photos(Path(tempfile.mkdtemp()))[1], n, seed=seed)


UNSEEN_PER_SAMPLE = 2  # region questions held out from each prefix's gist (rotating), the other 3 served


def task_row(model, vocab, samples: list[TaskSample], k: int, steps: int, continuations: int = 48) -> dict:
    """One gist per sample, trained after 3 of its region questions (served) and scored on those and on
    the other 2 (unseen: never sampled after); figures averaged over the samples."""
    reports = []
    for n, s in enumerate(samples):
        questions = s.questions()
        unseen = {(n * UNSEEN_PER_SAMPLE + j) % len(questions) for j in range(UNSEEN_PER_SAMPLE)}
        served = [q for j, q in enumerate(questions) if j not in unseen]
        config = GistConfig(num_gist_tokens=k, steps=steps, num_continuations=max(1, continuations // len(served)))
        gist = distill_gist(model, vocab, s.prefix(), config, queries=served,
                            heldout_queries=[questions[j] for j in sorted(unseen)])  # fmt: skip
        reports.append(gist.report)

    def mean(section, head, key):
        return sum(r[section]["rows"][head][key] for r in reports) / len(reports)

    return {
        "k": k,
        "served q": sum(r["task"]["questions"] for r in reports),
        "served acc full": mean("task", "full_prefix", "accuracy"),
        "served acc gist": mean("task", "gist", "accuracy"),
        "served acc none": mean("task", "no_prefix", "accuracy"),
        "served same as full": mean("task", "gist", "agreement"),
        "unseen q": sum(r["heldout_task"]["questions"] for r in reports),
        "unseen acc full": mean("heldout_task", "full_prefix", "accuracy"),
        "unseen acc gist": mean("heldout_task", "gist", "accuracy"),
        "unseen acc truncated": mean("heldout_task", "truncated", "accuracy"),
        "unseen acc none": mean("heldout_task", "no_prefix", "accuracy"),
        "unseen same as full": mean("heldout_task", "gist", "agreement"),
        "unseen option KL gist": mean("heldout_task", "gist", "option_kl"),
        "unseen option KL none": mean("heldout_task", "no_prefix", "option_kl"),
        "G gist (unseen)": sum(r["unseen_queries"]["gist"]["gap_closed"] for r in reports) / len(reports),
        "distill s": sum(r["wall_seconds"] for r in reports) / len(reports),
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
    ap.add_argument("--task-samples", type=int, default=10, help="demo-task prefixes per k for task accuracy (0: skip)")
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
    # The demo model answers queries about the prefix: continuations are sampled after 3 region queries
    # (served) and after the other 2 (held out: never trained on, they measure the answer positions)
    regions = [Prompt([TaskSample.query(r)]) for r in REGIONS]
    queries, heldout = (None, None) if args.no_queries else (regions[:3], regions[3:])
    per_query = args.continuations // (len(queries) if queries else 1)
    gists = {}
    for n in args.prefix_tokens:
        prefix = make_prefix(vocab, n)
        for k in args.ks:
            config = GistConfig(num_gist_tokens=k, steps=args.steps, num_continuations=per_query, early_stopping=None)
            gist = distill_gist(model, vocab, prefix, config, queries=queries, heldout_queries=heldout)
            gists[(n, k)] = (prefix, gist)
            print(markdown([fidelity_row(prefix, gist)], FIDELITY_COLUMNS).split("\n")[-1], flush=True)
    if args.task_samples:
        samples = task_samples(args.task_samples)
        print(
            f"\ntask accuracy: {len(samples)} demo-task prefixes from held-out photos "
            f"({min(len(vocab.encode(s.prefix(), add_bos=True)) for s in samples)} to "
            f"{max(len(vocab.encode(s.prefix(), add_bos=True)) for s in samples)} tokens), one gist per prefix "
            f"trained after 3 of its 5 region questions (served); the other {UNSEEN_PER_SAMPLE} are unseen. "
            "True answers are never trained on. Early stopping at train G 0.95\n"
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
            distill_gist(
                model,
                vocab,
                prefix,
                GistConfig(num_gist_tokens=args.latency_k, steps=args.steps),
                queries,
                heldout_queries=heldout,
            ),
        )
    prefix, gist = gists[key]
    query = vocab.encode(Prompt([" Q: top left? A:"]))
    rows = latency(model, vocab, prefix, gist, query, args.new_tokens)
    print(
        f"\nlatency, prefix {len(prefix)} tokens, gist k={gist.k}, query {len(query)} tokens, "
        f"{args.new_tokens} new tokens (TTFT best of 20; per-token from 1 vs {args.new_tokens} new tokens; "
        "cache copies outside the clock)\n"
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
