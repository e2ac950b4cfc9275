"""LM throughput on this machine: training tokens/s and model FLOPs utilization, generation with and without a KV cache.

    python benchmarks/lm.py [--model models/demo-photo-qa] [--preset small] [--threads 2]

MFU is measured against the CPU's own float32 matrix-multiply rate, timed in the same run
(a 1024 x 1024 x 1024 matmul, best of 5). Training FLOPs per token use the usual estimate
6 N + 12 n_layer d_model L (N: parameters in matmuls, the tied output head included; L: sequence length).
"""

from __future__ import annotations

import argparse
import sys

import torch
from timing import best_of

from mmgist import ByteTokenizer, SharedVocabulary, build_lm, load_model, load_tokenizer
from mmgist.lm.train import CausalLMStep


def matmul_gflops(n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    return 2 * n**3 / best_of(lambda: torch.mm(a, b), 5) / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a saved model folder (default: a fresh --preset model)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model:
        model, vocab = load_model(args.model)
    else:
        vocab = SharedVocabulary(text=ByteTokenizer(), image=load_tokenizer("image-vq-f8"))
        model = build_lm(vocab, preset=args.preset)
    cfg = model.config
    n_matmul = sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and "embed" not in n)
    n_matmul += cfg.vocab_size * cfg.hidden_size  # the output head (tied to the embedding, still a matmul)
    peak = matmul_gflops()

    step = CausalLMStep(model.train(), vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, len(vocab), (args.batch_size, args.seq_len))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        step(batch).loss.backward()
        opt.step()

    train_step()
    t = best_of(train_step, 3)
    tokens = args.batch_size * args.seq_len
    flops_per_token = 6 * n_matmul + 12 * cfg.num_hidden_layers * cfg.hidden_size * args.seq_len
    achieved = tokens * flops_per_token / t / 1e9

    model.eval()
    prompt = torch.randint(0, vocab.layout.text_size, (1, args.prompt_len))
    gen = {}
    for cache in (True, False):

        def run(cache: bool = cache) -> None:
            model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                do_sample=False,
                use_cache=cache,
                pad_token_id=vocab.pad_id,
            )

        gen[cache] = args.new_tokens / best_of(run, 2)

    params = sum(p.numel() for p in model.parameters())
    print(
        f"model: {params / 1e6:.2f} M parameters ({n_matmul / 1e6:.2f} M in matmuls), {cfg.num_hidden_layers} "
        f"layers, d={cfg.hidden_size}, vocab {len(vocab)}; {args.threads} CPU threads"
    )
    print(f"CPU float32 matmul rate (1024^3, best of 5): {peak:.1f} GFLOP/s\n")
    rows = [
        ("training tokens/s", f"{tokens / t:,.0f}", f"batch {args.batch_size} x {args.seq_len}, fwd+bwd+AdamW"),
        ("training GFLOP/s", f"{achieved:.1f}", f"{flops_per_token / 1e6:.1f} MFLOP per token"),
        ("model FLOPs utilization", f"{achieved / peak:.1%}", "of the matmul rate above"),
        ("generation tokens/s, KV cache", f"{gen[True]:.1f}", f"greedy, {args.prompt_len}-token prompt, "
         f"{args.new_tokens} new"),
        ("generation tokens/s, no cache", f"{gen[False]:.1f}", "same, recomputing the whole sequence per token"),
        ("KV-cache speedup", f"{gen[True] / gen[False]:.2f}x", ""),
    ]  # fmt: skip
    print("| measure | value | setting |\n|---|---|---|")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
