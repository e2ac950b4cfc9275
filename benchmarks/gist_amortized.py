"""Amortized gists on SmolLM2-135M-Instruct: a compressor trained once on real offline texts, against
per-prompt distillation, on the benchmark's documents (never trained on). The demo model's side: gist_compressor.py.

    make pretrained                                                   # once: the model
    python benchmarks/gist_amortized.py --phase study --texts 200     # teacher rows per text, cached: resumable
    python benchmarks/gist_amortized.py --phase study --texts 200 --shard 1/2   # or two processes, one share each
    python benchmarks/gist_amortized.py --phase study --texts 200 --shard 2/2   # (same --texts and --questions)
    python benchmarks/gist_amortized.py --phase train --steps 400     # the shared loop's checkpoints: resumable
    python benchmarks/gist_amortized.py --phase eval [--refine 25 50 100] [--distill]
    python benchmarks/gist_amortized.py --phase eval --compressor FOLDER   # a compressor saved elsewhere
    python benchmarks/gist_amortized.py --phase eval --in-distribution 8 --docs   # G on training-like prompts
    python benchmarks/gist_amortized.py --quick                       # every phase, tiny (its slow test)

Training texts (`mmgist.data.texts`): Python standard-library docstrings, Debian READMEs and man pages (with
--sources also Debian changelogs and copyright files, dense in names, dates and versions), cut to at most
--max-words at paragraph breaks, each framed as the benchmark frames a document ("Answer the user's questions
using this document."), taken in turn from each source; texts sharing word 8-grams with any benchmark document
are left out, and so is split_texts' held-out tenth. Each text gets the questions SmolLM2 writes about it
(COMPRESSOR_STUDY: 16, the specifics family included) and the teacher's answer after each with the full prompt
(chat_config: up to 32 tokens, top-32 log-probs), made once and cached in
OUT/study. The compressor (LoRA on q/k/v/o plus k gist embeddings) trains on the KL of those answers.

Rows per held-out document, measured as gist_pretrained.py measures a gist (its `Document`: A = the written
questions, B = 8 self-study questions of another seed; G against no prefix, G_content against another
document's prompt; facts kept on A's factual questions):
- compressed: one forward pass of the compressor;
- compressed + N%: distill_gist from the compressed gist (the facts recipe's study), N% of chat_config's steps;
- distilled (--distill): distill_gist at its defaults, from the attended start.
"seconds" is the wall time per document of making the gist (the study's questions included for refinement
and distillation).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from itertools import zip_longest
from pathlib import Path

import torch
from gist import markdown, print_row
from gist_pretrained import DOCS, RECIPES, TUNING, Document, evaluate, gist_config, row

from mmgist.data.texts import SOURCES, gather_texts, split_texts
from mmgist.gist import CompressorConfig, GistCompressor, chat_compressor_study, distill_gist, train_compressor
from mmgist.gist.compressor import COMPRESSOR_STUDY
from mmgist.gist.report import fidelity
from mmgist.lm.pretrained import load_pretrained_lm
from mmgist.lm.scoring import head_embeddings
from mmgist.storage import write_json_atomic
from mmgist.train import TrainConfig

COLUMNS = {"document": "", "gist": "", "k": "", "facts kept": ".2f", "hits full": ".2f", "hits gist": ".2f",
           "hits none": ".2f", "G A": ".3f", "G B": ".3f", "G_content": ".3f", "agreement": ".3f",
           "ROUGE-L": ".3f", "ROUGE-L none": ".3f", "seconds": ".1f"}  # fmt: skip
FIRST_SOURCES = ("docstring", "readme", "manpage")  # the first run's texts (docs/gists.md); SOURCES adds fact-dense
IN_DISTRIBUTION = {"prompts": "", "tokens": "d", "KL no prompt": ".3f", "KL compressed": ".3f", "G": ".3f"}
TEST_DOCS = ("ferncliff-pool-hours", "tern-weather-station-spec", "alderbrook-library-rules")


def training_texts(limit: int, max_words: int, sources: tuple[str, ...] = FIRST_SOURCES) -> list[str]:
    """The first `limit` training prompts: gather_texts' train split, taken in turn from each of `sources` that has
    texts on this machine (a source may be missing: no man, no /usr/share/doc)."""
    docs = json.loads(DOCS.read_text())["documents"]
    margin = limit // 2 + limit // 5 + 4  # per source: enough for split_texts' tenth and a source missing here
    every = gather_texts(sources, heldout=[d["system"] for d in docs], max_words=max_words, limit=margin)
    texts, _ = split_texts(every)
    by_source = [[t for t in texts if t.source == s] for s in sources]
    mixed = [t for group in zip_longest(*by_source) for t in group if t is not None]
    if len(mixed) < limit:
        raise SystemExit(f"only {len(mixed)} training texts on this machine, asked for {limit}")
    return [t.system() for t in mixed[:limit]]


def train(model, vocab, args) -> GistCompressor | None:
    out = Path(args.out)
    systems = training_texts(args.texts, args.max_words, tuple(args.sources))
    if args.phase == "study" and args.shard:
        part, parts = args.shard
        systems = systems[part - 1 :: parts]  # this process's share; the cache joins the shares for training
    t0 = time.perf_counter()
    study = chat_compressor_study(model, vocab, systems, progress=True, cache_dir=out / "study",
                                  study=replace(COMPRESSOR_STUDY, questions=args.questions))  # fmt: skip
    study_s = time.perf_counter() - t0
    print(f"study: {len(study)} prompts ({sum(len(s.prefix) for s in study) / len(study):.0f} tokens on average, "
          f"longest {max(len(s.prefix) for s in study)}), {sum(len(s.rows) for s in study)} rows; {study_s:.0f} s "
          "this run (cached prompts are read back)", flush=True)  # fmt: skip
    if args.phase == "study":
        return None
    config = CompressorConfig(num_gist_tokens=args.k, lora_rank=args.lora_rank, rows_per_prefix=4,
                              prefixes_per_step=args.prefixes_per_step)  # fmt: skip
    compressor = GistCompressor(model, config)
    schedule = TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=min(20, args.steps // 10),
                           checkpoint_every=args.checkpoint_every, log_every=5)  # fmt: skip
    result = train_compressor(compressor, vocab, study, schedule, out / "run")
    compressor.save(out / "compressor")
    write_json_atomic(out / "compressor" / "training.json", {
        "prompts": len(study), "rows": sum(len(s.rows) for s in study), "steps": result.steps,
        "wall_seconds_this_run": result.wall_seconds, "threads": args.threads, "history": result.history,
        "command": " ".join(sys.argv)})  # fmt: skip
    print(f"compressor: {len(study)} prompts, {result.steps} steps ({result.wall_seconds:.0f} s this run, resumed "
          f"from step {result.resumed_from}), k={args.k}, LoRA rank {args.lora_rank}; final KL "
          f"{result.history[-1]['kl']:.3f}", flush=True)  # fmt: skip
    return compressor


def in_distribution(model, vocab, compressor: GistCompressor, args) -> None:
    """G of the compressed gist on texts like its training ones: on the study rows of the first
    --in-distribution training prompts, and of as many prompts that come after --texts (never trained on;
    studied now and cached beside the others). G = 1 - KL(full || compressed) / KL(full || no prompt), over
    each prompt's own rows. The same --texts, --sources and --questions as training pick the same prompts."""
    n = args.in_distribution
    systems = training_texts(args.texts + n, args.max_words, tuple(args.sources))
    study = replace(COMPRESSOR_STUDY, questions=args.questions)
    none = head_embeddings(model, vocab)
    rows = []
    for label, picked in (("trained on", systems[:n]), ("never seen", systems[args.texts :])):
        for s in chat_compressor_study(model, vocab, picked, study=study, cache_dir=Path(args.out) / "study"):
            kl_none = fidelity(model, none, s.rows)["kl"]
            kl_gist = fidelity(model, compressor.compress(vocab, s.prefix).head(model), s.rows)["kl"]
            rows.append({"prompts": label, "tokens": len(s.prefix), "KL no prompt": kl_none,
                         "KL compressed": kl_gist, "G": 1 - kl_gist / kl_none})  # fmt: skip
    print(f"\ncompressed gists of training-like prompts, on their own study rows ({args.questions} questions each)\n")
    print(markdown(rows, IN_DISTRIBUTION))
    for label in ("trained on", "never seen"):
        g = [r["G"] for r in rows if r["prompts"] == label]
        print(f"{label}: mean G {sum(g) / len(g):.3f} over {len(g)} prompts")


def evaluate_all(model, vocab, compressor: GistCompressor, args) -> None:
    every = json.loads(DOCS.read_text())["documents"]
    docs = [d for d in every if d["id"] in args.docs]
    control = {d["id"]: every[(every.index(d) + 1) % len(every)] for d in docs}
    steps = gist_config("kv", args.k).steps
    study_fields, _ = RECIPES["facts"]
    results: dict[str, list[dict]] = {}
    print(f"\nheld-out documents: {', '.join(d['id'] for d in docs)}; k={args.k}; refinement from the compressed "
          f"gist at {args.refine}% of {steps} steps\n")  # fmt: skip
    print(markdown([], COLUMNS))
    for doc in docs:
        d = Document(model, vocab, doc, control[doc["id"]], questions=args.eval_questions,
                     answer_tokens=args.answer_tokens, heldout_study=args.heldout_study)  # fmt: skip
        t0 = time.perf_counter()
        compressed = compressor.compress(vocab, d.prefix)
        compress_s = time.perf_counter() - t0
        heads = [("compressed", compressed, compress_s)]
        if args.refine or args.distill:
            study = d.study(model, vocab, study_fields)
        for pct in args.refine:
            config = gist_config("kv", args.k, max(1, round(steps * pct / 100)), answer_tokens=args.answer_tokens)
            t0 = time.perf_counter()
            gist = distill_gist(model, vocab, d.prefix, config, queries=study.queries, forced=study.forced,
                                start=compressed)  # fmt: skip
            heads.append((f"compressed + {pct}%", gist, compress_s + study.seconds + time.perf_counter() - t0))
        if args.distill:
            config = gist_config("kv", args.k, answer_tokens=args.answer_tokens)
            t0 = time.perf_counter()
            gist = distill_gist(model, vocab, d.prefix, config, queries=study.queries, forced=study.forced)
            heads.append(("distilled", gist, study.seconds + time.perf_counter() - t0))
        for name, gist, seconds in heads:
            r = evaluate(model, vocab, d, gist.head(model), args.k, 0.0, seconds)
            results.setdefault(name, []).append(r)
            print_row({**row([r], document=d.id, gist=name, k=args.k), "seconds": seconds}, COLUMNS)
        if args.json:
            write_json_atomic(args.json, {name: [{k: v for k, v in r.items() if k != "gist"} for r in rs]
                                          for name, rs in results.items()})  # fmt: skip
    for label, keep in (("test", lambda r: r["doc"] not in TUNING), ("tuning", lambda r: r["doc"] in TUNING)):
        pooled = [{**row(picked, document=f"pooled ({len(picked)})", gist=name, k=args.k),
                   "seconds": sum(r["distill_s"] for r in picked) / len(picked)}
                  for name, rs in results.items() if (picked := [r for r in rs if keep(r)])]  # fmt: skip
        if pooled:
            print(f"\n{label} documents, pooled over documents and tokens:\n")
            print(markdown(pooled, COLUMNS))
    seconds = {name: sum(r["distill_s"] for r in rs) for name, rs in results.items()}
    if "distilled" in seconds:
        print(f"\ncompressed / distilled seconds per prompt: {seconds['compressed'] / seconds['distilled']:.4f}")


def shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), with 1 <= I <= N."""
    try:
        part, parts = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 2/3, got {text!r}") from None
    if not 1 <= part <= parts:
        raise argparse.ArgumentTypeError(f"expected 1 <= I <= N in I/N, got {text!r}")
    return part, parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", choices=["study", "train", "eval", "all"], default="all",
                    help="study: the teacher rows; train: study (cached) then training; eval: a trained "
                         "compressor (OUT/compressor) on the held-out documents; all: each in turn")  # fmt: skip
    ap.add_argument("--out", default="runs/smollm2-compressor", help="study cache, checkpoint and compressor")
    ap.add_argument("--texts", type=int, default=200, help="training prompts")
    ap.add_argument(
        "--sources",
        nargs="+",
        choices=SOURCES,
        default=list(FIRST_SOURCES),
        help="text sources, taken in turn (changelog and copyright: Debian's, dense in names, dates and versions)",
    )
    ap.add_argument("--max-words", type=int, default=300, help="a training text's length at most")
    ap.add_argument("--questions", type=int, default=COMPRESSOR_STUDY.questions, help="study questions per prompt")
    ap.add_argument("--shard", type=shard, metavar="I/N", help="study only every N-th prompt from the "
                    "I-th, so N processes share a study (cached per prompt; training reads every share back). "
                    "Every process needs the same --texts, --max-words and --questions")  # fmt: skip
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--k", type=int, default=32, help="gist positions (chat_config's default: 32)")
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--prefixes-per-step", type=int, default=2)
    ap.add_argument("--checkpoint-every", type=int, default=10)
    ap.add_argument("--compressor", help="eval: this compressor (a folder, or a shipped one's name) "
                    "instead of OUT/compressor")  # fmt: skip
    ap.add_argument("--docs", nargs="*", default=list(TEST_DOCS), help="held-out benchmark documents (ids; none: "
                    "skip them)")  # fmt: skip
    ap.add_argument("--in-distribution", type=int, default=0, metavar="N", help="eval: also G on N training "
                    "prompts and N unseen ones of their sources (same --texts, --sources, --questions)")  # fmt: skip
    ap.add_argument("--refine", nargs="*", type=int, default=[25], help="refinement rows: %% of chat_config's steps")
    ap.add_argument("--distill", action="store_true", help="add per-prompt distillation at its defaults")
    ap.add_argument("--heldout-study", type=int, default=8)
    ap.add_argument("--eval-questions", type=int, help="the facts study's questions for refinement and "
                    "distillation (default: gist_pretrained's)")  # fmt: skip
    ap.add_argument("--answer-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--quick", action="store_true", help="4 texts of 4 questions, 3 steps at k=4, the library "
                    "rules, 4 study questions, refine 5%%: a smoke run of every phase")  # fmt: skip
    args = ap.parse_args(argv)
    if args.quick:
        args.texts, args.questions, args.steps, args.k, args.max_words, args.refine = 4, 4, 3, 4, 150, [5]
        args.docs, args.heldout_study, args.answer_tokens, args.checkpoint_every = [TEST_DOCS[2]], 2, 8, 2
        args.eval_questions, args.in_distribution = 4, 1
    if args.shard and args.phase != "study":
        ap.error(f"--shard splits a study between processes: it needs --phase study, got --phase {args.phase}")
    if args.shard and args.shard[1] > args.texts:
        ap.error(f"--shard {args.shard[0]}/{args.shard[1]} has more shares than --texts {args.texts}")
    known = {d["id"] for d in json.loads(DOCS.read_text())["documents"]}
    if unknown := sorted(set(args.docs) - known):
        ap.error(f"unknown document ids {unknown}; known: {sorted(known)}")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, vocab = load_pretrained_lm("smollm2-135m-instruct")
    compressor = None
    if args.phase in ("study", "train", "all"):
        compressor = train(model, vocab, args)
    if args.phase in ("eval", "all"):
        compressor = compressor or GistCompressor.load(args.compressor or Path(args.out) / "compressor", model)
        args.k = compressor.config.num_gist_tokens
        if args.in_distribution:
            in_distribution(model, vocab, compressor, args)
        if args.docs:
            evaluate_all(model, vocab, compressor, args)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
