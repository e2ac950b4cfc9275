"""Training the LM on a manifest (see `mmgist.manifest`) through the shared loop in `mmgist.train`.

    train_lm(model, vocab, "data/train.jsonl", out="models/my-lm", steps=2000)
    train_lm(model, vocab, TokenShards.tokenize(rows, vocab), out="models/my-lm")  # rows held in memory
    mmgist train-lm --manifest data/train.jsonl --vocab my_vocab --preset small --steps 2000 --out models/my-lm

Samples are drawn at random per step (a pure function of the step, so resume and DDP are exact),
padded on the right, and trained with next-token cross-entropy on the completion (or every token).
The progress bar shows the loss per modality of the predicted token: loss_text, loss_image, ...
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..train import StepOutput, TrainResult, init_distributed, schedule, train_and_save
from ..validate import positive_int
from ..vocab import SharedVocabulary
from .manifest import TokenShards
from .model import check_model, context_length, save_model

KINDS = ("text", "image", "audio", "video", "special")


class CausalLMStep(nn.Module):
    """A causal LM whose forward is one training step: batch dict -> StepOutput with per-modality losses."""

    def __init__(self, model: nn.Module, vocab: SharedVocabulary) -> None:
        super().__init__()
        self.model = model
        kinds = torch.tensor([KINDS.index(vocab.segment_of(i)) for i in range(len(vocab))])
        self.register_buffer("kinds", kinds, persistent=False)  # (V,) modality index of each id

    def forward(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]  # (B, T - 1): token t + 1 is predicted at t
        ce = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets.clamp_min(0), reduction="none")
        valid = targets != -100
        loss = ce[valid].mean()
        metrics = {}
        kinds = self.kinds[targets.clamp_min(0)]
        for k, name in enumerate(KINDS[:-1]):
            sel = valid & (kinds == k)
            if sel.any():
                metrics[f"loss_{name}"] = ce[sel].mean().item()
        return StepOutput(loss, metrics)


def collate(shards: TokenShards, indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask (B, L) and labels (-100 where no loss)."""
    rows = [shards.sample(k) for k in indices]
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, (ids, prompt_len) in enumerate(rows):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        mask[b, : len(ids)] = 1
        labels[b, prompt_len : len(ids)] = input_ids[b, prompt_len : len(ids)]
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def validation_loss(
    model: nn.Module, vocab: SharedVocabulary, shards: TokenShards, batch_size: int = 16
) -> dict[str, float]:
    """{"loss": mean next-token cross-entropy over every loss position of `shards`, as training counts
    them, "positions": how many}; the model is left in the mode it was in."""
    was_training = model.training
    step = CausalLMStep(model, vocab).to(next(model.parameters()).device).eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for start in range(0, len(shards), batch_size):
            batch = collate(shards, list(range(start, min(start + batch_size, len(shards)))), vocab.pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += step(batch).loss.item() * n  # the batch's mean, weighted by its positions
            count += n
    finally:
        model.train(was_training)
    return {"loss": total / max(count, 1), "positions": count}


def train_lm(
    model: nn.Module,
    vocab: SharedVocabulary,
    data: str | os.PathLike | TokenShards,
    out: str | os.PathLike,
    steps: int = 1000,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    progress: bool = True,
    stop_at: int | None = None,
    **train: Any,
) -> TrainResult:
    """Train `model` on `data` (a manifest path, or shards already tokenized); saves model + vocabulary to
    `out` (rank 0) when all steps are done."""
    check_model(model, vocab)
    positive_int(batch_size, "train_lm batch_size")
    out = Path(out)
    _, world = init_distributed()
    if isinstance(data, TokenShards):
        shards, data_key = data, {"shards_sha256": data.fingerprint()}
    else:
        shards = TokenShards.build(data, vocab, cache_dir or out.parent / ".token-cache")
        data_key = {"manifest_sha256": hashlib.sha256(Path(data).read_bytes()).hexdigest()}
    longest = int((shards.offsets[1:] - shards.offsets[:-1]).max())
    if longest > context_length(model):
        raise ValueError(f"the longest sample is {longest} tokens, over the model's context of {context_length(model)}")
    device = next(model.parameters()).device
    step_module = CausalLMStep(model, vocab).to(device)

    def batches(step: int, r: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step * 1009 + r)
        picks = torch.randint(0, len(shards), (batch_size,), generator=g).tolist()
        return {k: v.to(device) for k, v in collate(shards, picks, vocab.pad_id).items()}

    run = {**data_key, "vocab": vocab.fingerprint(), "batch_size": batch_size, "processes": world}
    return train_and_save(
        step_module,
        batches,
        schedule(steps, lr, seed, warmup=100, **train),
        out,
        save=lambda folder: save_model(model, vocab, folder),
        record={"data": {**data_key, "batch_size_per_process": batch_size, "processes": world}},
        run_dir=run_dir,
        progress=progress,
        stop_at=stop_at,
        description="lm",
        run=run,
    )
