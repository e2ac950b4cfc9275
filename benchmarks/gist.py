"""Gist benchmark on the demo task: fidelity and accuracy on question types the gist never saw, by k and
target; self-study data; stopping; latency.

    make data                                     # once: the held-out photos in data/photos/heldout
    python benchmarks/gist.py [--model models/demo-photo-qa] [--samples 3] [--ks 1 4 16] [--targets embeddings kv]

Prefixes are the demo task's own (mmgist.demo_task): a 96x96 crop of a held-out photo (never trained on
by the model or its image tokenizer) and an instruction, about 200 tokens. Question types are split:
demo_task.GIST_HELDOUT_TYPES are never trained on. Each gist is distilled from (a) self-study samples, which the model
writes itself straight after the full prefix (questions and answers about the photo), cut before any
unseen type's question, and (b) the continuations after SERVED questions of the other types. It is
then measured after UNSEEN questions of the unseen types: G = 1 - KL(full||gist) / KL(full||none) on the
continuations sampled after them; G_content = 1 - KL(full||gist) / KL(full||control) (KLs pooled over
the prefixes), where the control is the same instruction with another held-out photo (what the gist
keeps of *this* photo);
multiple-choice accuracy with the full prefix, the gist, its initialization, the truncated prefix
(last k tokens), the control and no prefix; greedy exact match. Figures are means over --samples prefixes.

Tables: 1. by target and k; 2. G against the number of self-study samples; 3. the hidden-state term
(GistConfig.hidden_weight) against the KL alone; 4. initialization; 5. stopping (fixed steps against the
best validation step); 6. latency for one prefix (full prefix recomputed, its KV cache reused, the gist's
cache, no prefix) with a long in-distribution prefix (photo, instruction and earlier question/answer
turns), and an out-of-distribution stress row.
The functions are shared with notebooks/gist_benchmark.ipynb.
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import tempfile
from pathlib import Path

import torch
from timing import best_of

from mmgist import Prompt, distill_gist, load_model
from mmgist.data.images import split_photos
from mmgist.demo_task import GIST_HELDOUT_MARKERS, GIST_HELDOUT_TYPES, TaskSample, gist_questions, make_samples
from mmgist.gist import GistConfig
from mmgist.lm import cache_kwargs, output_cache
from mmgist.storage import write_json_atomic

SERVED_PER_PREFIX = 6
UNSEEN_PER_PREFIX = 4
HEADS = ("full_prefix", "gist", "init", "truncated", "control", "no_prefix")


def benchmark_samples(photos: str | Path | None, n: int, seed: int = 1) -> list[tuple[TaskSample, TaskSample]]:
    """`n` (sample, control) pairs from held-out photos (None: the bundled held-out ones, which need no
    `make data`): the control has the same style (instruction) and another crop's image."""
    if photos is None or not Path(photos).is_dir():
        photos = split_photos(Path(tempfile.mkdtemp()))[1]
    samples = make_samples(photos, 2 * n, seed=seed)
    return [(s, TaskSample(samples[n + i].image, s.style)) for i, s in enumerate(samples[:n])]


def distill(model, vocab, sample: TaskSample, control: TaskSample, config: GistConfig):
    served, unseen = gist_questions(sample, SERVED_PER_PREFIX, UNSEEN_PER_PREFIX)
    return distill_gist(
        model, vocab, sample.prefix(), config, queries=served, heldout_queries=unseen,
        control_prefix=control.prefix(), self_study_exclude=list(GIST_HELDOUT_MARKERS),
    )  # fmt: skip


def reports(model, vocab, pairs: list[tuple[TaskSample, TaskSample]], config: GistConfig) -> list[dict]:
    """One gist per (sample, control) pair with `config`; their reports."""
    return [distill(model, vocab, s, c, config).report for s, c in pairs]


def row(reports: list[dict], **label) -> dict:
    """Means over the prefixes' reports of the figures on unseen question types."""

    def mean(get):
        values = [get(r) for r in reports]
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    out = dict(label)
    out["G gist"] = mean(lambda r: r["unseen_queries"]["gist"]["gap_closed"])
    out["G init"] = mean(lambda r: r["unseen_queries"]["init"]["gap_closed"])
    out["G truncated"] = mean(lambda r: r["unseen_queries"]["truncated"]["gap_closed"])
    out["G control"] = mean(lambda r: r["unseen_queries"]["control"]["gap_closed"])
    # pooled over the prefixes (1 - sum KL_gist / sum KL_control): a prefix whose control happens to be close
    # (KL_control near 0) would swing a mean of per-prefix ratios by tens
    kl = {h: [r["unseen_queries"][h]["kl"] for r in reports if r["unseen_queries"] and h in r["unseen_queries"]]
          for h in ("gist", "control")}  # fmt: skip
    out["G_content gist"] = 1 - sum(kl["gist"]) / max(sum(kl["control"]), 1e-12) if kl["control"] else None
    out["agreement gist"] = mean(lambda r: r["unseen_queries"]["gist"]["agreement"])
    out["greedy match"] = mean(lambda r: r["unseen_queries"]["gist"]["greedy_exact_match"])
    for head in HEADS:
        out[f"acc {head}"] = mean(lambda r, h=head: r["heldout_task"]["rows"][h]["accuracy"])
    out["option KL gist"] = mean(lambda r: r["heldout_task"]["rows"]["gist"]["option_kl"])
    out["option KL control"] = mean(lambda r: r["heldout_task"]["rows"]["control"]["option_kl"])
    out["steps"] = mean(lambda r: r["best_step"])
    out["distill s"] = mean(lambda r: r["wall_seconds"])
    return out


MAIN_COLUMNS = {"target": "", "k": "", "G gist": ".3f", "G_content gist": ".3f", "G init": ".3f", "G truncated": ".3f",
                "G control": ".3f", "agreement gist": ".3f", "greedy match": ".2f", "acc full_prefix": ".3f",
                "acc gist": ".3f", "acc truncated": ".3f", "acc control": ".3f", "acc no_prefix": ".3f",
                "option KL gist": ".3f", "option KL control": ".3f", "steps": ".0f", "distill s": ".1f"}  # fmt: skip


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
    return "\n".join([head] + ["| " + " | ".join(cell(r.get(c), f) for c, f in columns.items()) + " |" for r in rows])


def print_row(r: dict, columns: dict[str, str]) -> None:
    print(markdown([r], columns).split("\n")[-1], flush=True)


def long_prefix(sample: TaskSample, turns: int = 5, seed: int = 3) -> Prompt:
    """In distribution and longer: the sample's prefix followed by `turns` of its own question/answer turns
    (the demo model was trained on 1 to 6 turns and ends its answer there: more would leave nothing to sample)."""
    chosen = random.Random(seed).sample(sample.turns(seed), turns)
    return Prompt([sample.image, " " + sample.style.instruction + "".join(t.text for t in chosen)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/demo-photo-qa")
    ap.add_argument("--photos", default="data/photos/heldout", help="held-out photos (make data gathers them; "
                    "without them, the bundled held-out photos)")  # fmt: skip
    ap.add_argument("--samples", type=int, default=3, help="prefixes per configuration")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--targets", nargs="+", default=["embeddings", "kv"], choices=["embeddings", "kv"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=GistConfig.lr)
    ap.add_argument("--self-study", type=int, default=64)
    ap.add_argument("--self-study-sweep", type=int, nargs="*", default=[0, 16, 64])
    ap.add_argument("--sections", nargs="+", default=["main", "self-study", "hidden", "init", "stopping", "latency"])
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write every gist report here (JSON), for analysis beyond the tables")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, vocab = load_model(args.model)
    pairs = benchmark_samples(args.photos, args.samples)
    lengths = [len(vocab.encode(s.prefix(), add_bos=True)) for s, _ in pairs]
    print(
        f"model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
        f"{args.threads} CPU threads; {len(pairs)} prefixes of held-out photos ({min(lengths)}-{max(lengths)} "
        f"tokens), each with {SERVED_PER_PREFIX} served questions and up to {UNSEEN_PER_PREFIX} of unseen types "
        f"({', '.join(GIST_HELDOUT_TYPES)}); {args.self_study} self-study samples cut before unseen types; "
        f"{args.steps} steps\n"
    )

    done: dict[str, list[dict]] = {}  # a configuration asked for by two tables is distilled once

    def run(**overrides):
        fixed = {"steps": args.steps, "lr": args.lr, "self_study": args.self_study, "num_continuations": 8}
        config = GistConfig(**{**fixed, **overrides})
        if repr(config) not in done:
            done[repr(config)] = reports(model, vocab, pairs, config)
            if args.json:  # every report so far, rewritten after each configuration
                write_json_atomic(args.json, [{"config": c, "reports": r} for c, r in done.items()])
        return done[repr(config)]

    best_target = args.targets[-1]
    if "main" in args.sections:
        print("1. by target and k (unseen question types)\n")
        print(markdown([], MAIN_COLUMNS))
        for target in args.targets:
            for k in args.ks:
                print_row(row(run(target=target, num_gist_tokens=k), target=target, k=k), MAIN_COLUMNS)
    if "self-study" in args.sections:
        print(f"\n2. G against the number of self-study samples (target {best_target}, k=4)\n")
        columns = {"self-study samples": "", **{c: MAIN_COLUMNS[c] for c in list(MAIN_COLUMNS)[2:]}}
        print(markdown([], columns))
        for n in args.self_study_sweep:
            print_row(row(run(target=best_target, self_study=n), **{"self-study samples": n}), columns)
    if "hidden" in args.sections:
        print("\n3. the hidden-state term (k=4): the KL alone (0, the seed's objective) against KL + hidden states\n")
        columns = {"target": "", "hidden_weight": "", **{c: MAIN_COLUMNS[c] for c in list(MAIN_COLUMNS)[2:]}}
        print(markdown([], columns))
        for target in args.targets:
            for weight in (0.0, GistConfig.hidden_weight):
                print_row(row(run(target=target, hidden_weight=weight), target=target, hidden_weight=weight), columns)
    if "init" in args.sections:
        print("\n4. initialization (k=4)\n")
        columns = {"target": "", "init": "", **{c: MAIN_COLUMNS[c] for c in list(MAIN_COLUMNS)[2:]}}
        print(markdown([], columns))
        for target in args.targets:
            for init in ("prefix_mean", "last_tokens"):
                print_row(row(run(target=target, init=init), target=target, init=init), columns)
    if "stopping" in args.sections:
        print(f"\n5. stopping (target {best_target}, k=4): all steps, or the best of every 25 on validation rows\n")
        columns = {"stopping": "", **{c: MAIN_COLUMNS[c] for c in list(MAIN_COLUMNS)[2:]}}
        print(markdown([], columns))
        for stopping in ("fixed", "validation"):
            print_row(row(run(target=best_target, stopping=stopping), stopping=stopping), columns)
    if "latency" in args.sections:
        sample, control = pairs[0]
        query = vocab.encode(Prompt([" Q: centre brightness? A:"]))
        print(f"\n6. latency (target {best_target}, k=4, {args.new_tokens} new tokens; TTFT best of 20; per-token "
              f"from 1 vs {args.new_tokens} new tokens; cache copies outside the clock)\n")  # fmt: skip
        print("| prefix | setup | TTFT ms | per-token ms | total ms | KV-cache bytes |\n|---|---|---|---|---|---|")
        stress = Prompt([sample.image, control.image, pairs[-1][0].image, " " + sample.style.instruction])
        for label, prefix in (("photo + instruction + 5 turns", long_prefix(sample)), ("3 photos (stress: never "
                              "trained on)", stress)):  # fmt: skip
            ids = vocab.encode(prefix, add_bos=True)
            config = GistConfig(target=best_target, steps=args.steps, lr=args.lr, num_gist_tokens=4,
                                self_study=args.self_study)  # fmt: skip
            gist = distill_gist(model, vocab, ids, config)
            rows = latency(model, vocab, ids, gist, query, args.new_tokens)
            for name, r in rows.items():
                print(f"| {label}, {len(ids)} tokens | {name} | {r['ttft_ms']:.1f} | {r['per_token_ms']:.2f} | "
                      f"{r['total_ms']:.1f} | {r['kv_bytes']:,} |")  # fmt: skip
            a, _, c, d = rows.values()
            saved = (a["total_ms"] - c["total_ms"]) / 1e3
            payback = gist.report["wall_seconds"] / saved if saved > 0 else float("inf")
            print(f"| {label} | TTFT full / gist {a['ttft_ms'] / c['ttft_ms']:.1f}x, gist / none "
                  f"{c['ttft_ms'] / d['ttft_ms']:.2f}x; distillation {gist.report['wall_seconds']:.0f} s paid back "
                  f"after {payback:.0f} queries | | | | |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
