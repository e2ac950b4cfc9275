"""The demo task, where the prefix decides the answer: region brightness of a reference photo.

A sample is a prefix (a 128x128 crop of a real photograph, then an instruction) and queries about
regions of it. The photo decides the value, the instruction decides how it is written, the query
decides where to look, so without the prefix the best guess is chance (1 in 3):

    prefix   <image> "Instruction: for the region asked, answer dark, medium or bright."
    query    " Q: top left? A:"        answer " bright"
    prefix   <image> "Instruction: for the region asked, answer 1 (dark), 2 (medium) or 3 (bright)."
    query    " Q: centre? A:"          answer " 1"

Brightness is the mean luminance (Rec. 601) of the region: dark below 0.3, bright from 0.47.
Training samples come from the training photos, held-out samples from mmgist.datasets.HELDOUT.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .datasets import RandomCrops
from .io import save_image
from .prompt import Prompt
from .scoring import Question, score_options

CROP = 128
LEVELS = ("dark", "medium", "bright")
THRESHOLDS = (0.3, 0.47)  # about the tertiles of region luminance over training crops: balanced classes
INSTRUCTIONS = (
    ("Instruction: for the region asked, answer dark, medium or bright.", ("dark", "medium", "bright")),
    ("Instruction: for the region asked, answer 1 (dark), 2 (medium) or 3 (bright).", ("1", "2", "3")),
)
REGIONS = {  # name -> (top, left) of a 64x64 window in the 128x128 crop
    "top left": (0, 0), "top right": (0, 64), "bottom left": (64, 0), "bottom right": (64, 64), "centre": (32, 32),
}  # fmt: skip


@dataclass
class TaskSample:
    image: torch.Tensor  # (3, 128, 128) in [0, 1]
    instruction: int  # index into INSTRUCTIONS
    answers: dict[str, str]  # region -> answer word

    def prefix(self) -> Prompt:
        return Prompt([self.image, " " + INSTRUCTIONS[self.instruction][0]])

    @staticmethod
    def query(region: str) -> str:
        return f" Q: {region}? A:"

    def questions(self) -> list[Question]:
        """One multiple-choice question per region, its options written as the instruction asks."""
        words = INSTRUCTIONS[self.instruction][1]
        return [Question(self.query(r), [" " + w for w in words], words.index(self.answers[r])) for r in REGIONS]


def level(image: torch.Tensor, region: str) -> int:
    """0 dark, 1 medium, 2 bright: the mean luminance of a region of a (3, 128, 128) image."""
    top, left = REGIONS[region]
    r, g, b = image[:, top : top + 64, left : left + 64].mean(dim=(1, 2)).tolist()
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return int(y >= THRESHOLDS[0]) + int(y >= THRESHOLDS[1])


def make_samples(photos: str | os.PathLike, n: int, seed: int = 0) -> list[TaskSample]:
    """`n` samples from random crops of the photos in a folder (deterministic in `seed`)."""
    crops = RandomCrops(photos, CROP, seed=seed)
    out = []
    for k in range(n):
        image = crops.crops(k, 0, 1)[0]
        instruction = k % len(INSTRUCTIONS)
        words = INSTRUCTIONS[instruction][1]
        out.append(TaskSample(image, instruction, {r: words[level(image, r)] for r in REGIONS}))
    return out


def write_manifest(samples: list[TaskSample], folder: str | os.PathLike, queries_per_sample: int = 5) -> Path:
    """A training manifest (see mmgist.manifest): prefix + query as the prompt, the answer as the completion."""
    folder = Path(folder)
    lines = []
    for k, s in enumerate(samples):
        save_image(s.image, folder / "images" / f"{k:05d}.png")
        for region in list(REGIONS)[:queries_per_sample]:
            prompt = [{"image": f"images/{k:05d}.png"}, " " + INSTRUCTIONS[s.instruction][0], TaskSample.query(region)]
            lines.append(json.dumps({"prompt": prompt, "completion": [" " + s.answers[region]]}))
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class TaskScore:
    accuracy: float  # share of (sample, region) queries whose most likely answer option is right
    option_kl: float  # mean KL(reference || this) over the answer options, 0 if no reference was given
    probs: torch.Tensor  # (queries, 3) probabilities of the three answer options


def evaluate(
    model, vocab, samples: list[TaskSample], with_prefix: bool = True, reference: torch.Tensor | None = None
) -> TaskScore:
    """Accuracy over every (sample, region) query, with or without the prefix in front of the query."""
    probs, right = [], 0
    for s in samples:
        prefix = s.prefix() if with_prefix else None
        for q in s.questions():
            scores = score_options(model, vocab, q.query, q.options, prefix=prefix)
            probs.append(scores.probs)
            right += int(scores.best == q.answer)
    probs_t = torch.stack(probs)
    kl = 0.0
    if reference is not None:
        kl = (reference * (reference.clamp_min(1e-12).log() - probs_t.clamp_min(1e-12).log())).sum(-1).mean().item()
    return TaskScore(right / len(probs), kl, probs_t)
