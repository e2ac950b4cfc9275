"""The demo task: many questions about a reference photo, answered from its pixels in the instruction's format.

A sample is a prefix (a 96x96 crop of a real photograph, then an instruction that sets the answer
format) followed by question/answer turns. The photo decides the facts, the instruction decides how
they are written, the question decides which fact, so without the prefix the best guess is chance:

    prefix  <image> " Instruction: answer in single words."
    turns   " Q: top left colour? A: green." " Q: brighter, centre or right? A: right." ...
    prefix  <image> " Instruction: answer brightness as 1 dark, 2 medium, 3 bright and texture as 1 smooth,
                       2 busy; in full sentences."
    turns   " Q: bottom brightness? A: the bottom brightness is 3." ...

Facts, all computed from the pixels of a 3x3 grid of 32x32 regions (`Facts.of`):
- brightness: mean luma (Rec. 601): dark below 0.36, bright from 0.56 (the tertiles of training regions);
- colour: the most common pixel colour, each pixel named from its hue, or grey when its chroma
  (max - min of RGB) is under 0.1 (39% of training regions are grey);
- texture: busy when the mean absolute luma difference between neighbouring pixels is at least 0.011
  (the median of training regions), else smooth.

Question types (`TYPES`, 33): every region x {brightness, colour, texture} (27); "brighter, A or B?"
and "busier, A or B?" (asked only where the two differ clearly); "brightest?" and "darkest?" (asked
only where one region leads clearly); "main colour?" (the most common pixel colour of the crop); and
"describe?", a multi-word answer: every region's brightness, row by row.

Training sequences (`write_manifest`): the prefix, then a random number of turns in random order, so
that the model also learns to ask, and text sampled from it right after a prefix is a stream of
questions and answers about that prefix: the self-study data of gist distillation.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data.images import CropAugment, RandomCrops
from .io import save_image
from .lm.scoring import Question, prefix_head, score_options
from .prompt import Prompt

CROP = 96  # 12x12 codes at f8: a prefix of about 200 tokens with the instruction
CELL = CROP // 3
REGIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
LEVELS = ("dark", "medium", "bright")
TEXTURES = ("smooth", "busy")
COLOURS = ("grey", "red", "orange", "yellow", "green", "blue", "purple")
HUE_EDGES = (15, 45, 70, 165, 260, 330)  # degrees: red below 15 (and from 330), orange, yellow, green, blue, purple
BRIGHTNESS_THRESHOLDS = (0.36, 0.56)  # calibrate("data/photos/train"): the tertiles of region luma
GREY_CHROMA = 0.1
BUSY_THRESHOLD = 0.011  # calibrate(...): the median region busyness
MARGINS = {"brighter": 0.05, "busier": 0.01}  # comparisons and extremes are asked only where one side leads by this
ATTRIBUTES = ("brightness", "colour", "texture")
# Question types a gist is never trained on in the benchmark and the demo (a type is held out when its
# name holds one of these), and how their questions start: self-study samples are cut there. Their
# facts are asked in other forms by the served types (describe lists the nine region brightnesses,
# the main colour follows the region colours), so a gist that kept what the photo shows can answer
# them; a type whose facts no served type asks (texture) measures what a gist keeps unasked (the card
# of models/demo-photo-qa has that run: nothing). The demo model reads both from the photo (held-out
# accuracy with / without the prefix: describe 0.81 / 0.68, main colour 0.80 / 0.00)
GIST_HELDOUT_TYPES = ("describe", "main colour")
GIST_HELDOUT_MARKERS = (" describe?", " main colour?")


@dataclass(frozen=True)
class Style:
    """How answers are written: brightness/texture as words or numbers, terse or as a full sentence."""

    numbers: bool
    verbose: bool

    @property
    def instruction(self) -> str:
        scale = (
            "answer brightness as 1 dark, 2 medium, 3 bright and texture as 1 smooth, 2 busy;"
            if self.numbers
            else "answer in words,"
        )
        return f"Instruction: {scale} {'in full sentences' if self.verbose else 'single words'}."


STYLES = (Style(False, False), Style(False, True), Style(True, False), Style(True, True))
TYPES = (
    *(f"{r} {a}" for r in REGIONS for a in ATTRIBUTES),
    "brighter",
    "busier",
    "brightest",
    "darkest",
    "main colour",
    "describe",
)


@dataclass(frozen=True)
class Facts:
    """What the pixels of one crop say: per region (in REGIONS order) and for the whole crop."""

    luma: tuple[float, ...]  # (9,) mean luma per region
    busyness: tuple[float, ...]  # (9,) mean |luma difference| between neighbours per region
    colour: tuple[int, ...]  # (9,) index into COLOURS: the most common pixel colour per region
    main_colour: int

    @property
    def brightness(self) -> tuple[int, ...]:
        return tuple(int(y >= BRIGHTNESS_THRESHOLDS[0]) + int(y >= BRIGHTNESS_THRESHOLDS[1]) for y in self.luma)

    @property
    def texture(self) -> tuple[int, ...]:
        return tuple(int(b >= BUSY_THRESHOLD) for b in self.busyness)

    @staticmethod
    def of(image: torch.Tensor) -> Facts:
        """The facts of a (3, 96, 96) image in [0, 1]."""
        if image.shape != (3, CROP, CROP):
            raise ValueError(f"the demo task reads (3, {CROP}, {CROP}) crops, got {tuple(image.shape)}")
        luma = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]  # (96, 96)
        dx = (luma[:, 1:] - luma[:, :-1]).abs()
        dy = (luma[1:] - luma[:-1]).abs()
        names = pixel_colours(image)  # (96, 96)
        lum, busy, col = [], [], []
        for k in range(9):
            y, x = (k // 3) * CELL, (k % 3) * CELL
            lum.append(luma[y : y + CELL, x : x + CELL].mean().item())
            busy.append(
                (dx[y : y + CELL, x : x + CELL - 1].mean().item() + dy[y : y + CELL - 1, x : x + CELL].mean().item())
                / 2
            )
            col.append(_most_common(names[y : y + CELL, x : x + CELL]))
        return Facts(tuple(lum), tuple(busy), tuple(col), _most_common(names))


def calibrate(photos: str | os.PathLike, n: int = 1500, seed: int = 0) -> dict[str, Any]:
    """Where the thresholds come from: region statistics over `n` training crops (1,500 of
    data/photos/train, seed 0, gave luma tertiles 0.356 and 0.557, busyness median 0.0106)."""
    facts = [s.facts for s in make_samples(photos, n, seed)]
    luma = torch.tensor([y for f in facts for y in f.luma])
    busy = torch.tensor([b for f in facts for b in f.busyness])
    grey = sum(c == 0 for f in facts for c in f.colour) / (9 * len(facts))
    return {"luma_tertiles": luma.quantile(torch.tensor([1 / 3, 2 / 3])).tolist(), "busy_median": busy.median().item(),
            "grey_share": grey}  # fmt: skip


def pixel_colours(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (H, W) index into COLOURS of every pixel (hue name, or grey below GREY_CHROMA)."""
    mx, arg = image.max(0)
    chroma = mx - image.min(0).values
    r, g, b = image
    safe = chroma.clamp_min(1e-8)
    hue = (
        torch.where(arg == 0, ((g - b) / safe) % 6, torch.where(arg == 1, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    )  # degrees, as HSV's hue
    named = torch.bucketize(hue, torch.tensor(HUE_EDGES, dtype=hue.dtype), right=True) + 1  # 1 red .. 6 purple (wraps)
    named = torch.where(named == len(COLOURS), torch.ones_like(named), named)  # from 330 degrees: red again
    return torch.where(chroma < GREY_CHROMA, torch.zeros_like(named), named)


def _most_common(names: torch.Tensor) -> int:
    return int(torch.bincount(names.flatten(), minlength=len(COLOURS)).argmax())  # ties: the first in COLOURS


@dataclass
class Turn:
    """One question with its options written in a style; `answer` indexes the true option."""

    type: str  # one of TYPES
    question: str  # e.g. "top left colour?"
    options: list[str]  # every possible answer, as written after " A:"
    answer: int

    @property
    def query(self) -> str:
        return f" Q: {self.question} A:"

    @property
    def text(self) -> str:
        return self.query + self.options[self.answer]

    def as_question(self) -> Question:
        return Question(self.query, self.options, self.answer)


def _value(attribute: str, index: int, style: Style) -> str:
    words = {"brightness": LEVELS, "colour": COLOURS, "texture": TEXTURES}[attribute]
    return str(index + 1) if style.numbers and attribute != "colour" else words[index]


def _options(subject_values: list[str], sentence: str, style: Style) -> list[str]:
    """Each value written tersely (' green.') or as the sentence with the value filled in."""
    return [" " + (sentence.format(v) if style.verbose else v) + "." for v in subject_values]


def turns(facts: Facts, style: Style, rng: random.Random) -> list[Turn]:
    """Every question the facts answer clearly, one Turn per type (pairs for comparisons drawn from rng)."""
    out = []
    for k, region in enumerate(REGIONS):
        for attribute, truth, n in (
            ("brightness", facts.brightness[k], 3),
            ("colour", facts.colour[k], len(COLOURS)),
            ("texture", facts.texture[k], 2),
        ):
            values = [_value(attribute, i, style) for i in range(n)]
            sentence = f"the {region} {attribute} is {{}}"
            out.append(
                Turn(f"{region} {attribute}", f"{region} {attribute}?", _options(values, sentence, style), truth)
            )
    for kind, values, adjective in (("brighter", facts.luma, "brighter"), ("busier", facts.busyness, "busier")):
        margin = MARGINS[kind]
        pairs = [(a, b) for a in range(9) for b in range(9) if a != b and abs(values[a] - values[b]) >= margin]
        if pairs:
            a, b = rng.choice(pairs)
            truth = 0 if values[a] > values[b] else 1
            opts = _options([REGIONS[a], REGIONS[b]], f"the {{}} is {adjective}", style)
            out.append(Turn(kind, f"{kind}, {REGIONS[a]} or {REGIONS[b]}?", opts, truth))
    order = sorted(range(9), key=lambda k: facts.luma[k])
    for kind, best, runner_up in (("brightest", order[-1], order[-2]), ("darkest", order[0], order[1])):
        if abs(facts.luma[best] - facts.luma[runner_up]) >= MARGINS["brighter"]:
            out.append(Turn(kind, f"{kind}?", _options(list(REGIONS), f"the {{}} is {kind}", style), best))
    out.append(
        Turn("main colour", "main colour?", _options(list(COLOURS), "the image is mostly {}", style), facts.main_colour)
    )
    out.append(describe(facts, style))
    return out


def describe(facts: Facts, style: Style) -> Turn:
    """Every region's brightness, row by row: ' dark dark medium, medium bright bright, dark dark dark.'
    Its one option is the truth: score it word by word with `describe_questions`."""
    rows = [" ".join(_value("brightness", facts.brightness[3 * r + c], style) for c in range(3)) for r in range(3)]
    answer = ", ".join(rows)
    return Turn("describe", "describe?", [" " + ("row by row: " + answer if style.verbose else answer) + "."], 0)


def describe_questions(facts: Facts, style: Style) -> list[Question]:
    """Nine multiple-choice questions, one per region's word in the describe answer, each after the true words
    before it (teacher forcing): the describe answer's accuracy is the share of them answered right."""
    questions, text = [], describe(facts, style).query + (" row by row:" if style.verbose else "")
    for k in range(9):
        sep = "" if k == 0 else ("," if k % 3 == 0 else "")
        values = [_value("brightness", i, style) for i in range(3)]
        questions.append(Question(text + sep, [" " + v for v in values], facts.brightness[k]))
        text += sep + " " + values[facts.brightness[k]]
    return questions


@dataclass
class TaskSample:
    image: torch.Tensor  # (3, 96, 96) in [0, 1]
    style: Style
    facts: Facts = field(init=False)

    def __post_init__(self) -> None:
        self.facts = Facts.of(self.image)

    def prefix(self) -> Prompt:
        return Prompt([self.image, " " + self.style.instruction])

    def turns(self, seed: int = 0) -> list[Turn]:
        return turns(self.facts, self.style, random.Random(seed))

    def questions(self, types: Sequence[str] | None = None, seed: int = 0) -> list[tuple[str, Question]]:
        """(type, Question) for every type this crop answers clearly (all, or those in `types`); the
        describe answer as its nine word questions."""
        out = []
        for t in self.turns(seed):
            if types is not None and t.type not in types:
                continue
            if t.type == "describe":
                out += [("describe", q) for q in describe_questions(self.facts, self.style)]
            else:
                out.append((t.type, t.as_question()))
        return out


def make_samples(
    photos: str | os.PathLike | Sequence[str | os.PathLike],
    n: int,
    seed: int = 0,
    crop_scales: tuple[float, float] = (0.125, 0.5),
    start: int = 0,
    colour: bool = False,
) -> list[TaskSample]:
    """`n` samples from random crops (flips, rescaling: a crop covers 96/scale pixels) of the photos in a
    folder or list of files; the styles take turns. Sample k depends only on (photos, seed, k), so
    `start` gives samples start..start + n - 1 of the same stream (for parallel workers). `colour`
    (for training) also rotates hues (half the crops, any amount) and scales saturation and brightness
    (up to 1.4x either way): the facts are read after, so a model cannot answer from which photo it is."""
    augment = CropAugment(min_scale=crop_scales[0], max_scale=crop_scales[1])
    if colour:
        augment = CropAugment(augment.min_scale, augment.max_scale, hue=0.5, saturation=1.4, brightness=1.4)
    crops = RandomCrops(photos, CROP, seed=seed, augment=augment)
    return [TaskSample(crops.crops(k, 0, 1)[0], STYLES[k % len(STYLES)]) for k in range(start, start + n)]


def training_rows(samples: list[TaskSample], max_turns: int = 6, seed: int = 0) -> list[tuple[Prompt, Prompt]]:
    """(prompt, completion) per sample: the crop and instruction, then 1 to `max_turns` of its turns in
    random order (the loss covers the questions too: the model learns to ask). Deterministic in `seed`."""
    rng = random.Random(seed)
    rows = []
    for k, s in enumerate(samples):
        available = s.turns(seed=seed * 1_000_003 + k)
        chosen = rng.sample(available, min(len(available), rng.randint(1, max_turns)))
        rows.append((s.prefix(), Prompt(["".join(t.text for t in chosen)])))
    return rows


def write_manifest(samples: list[TaskSample], folder: str | os.PathLike, max_turns: int = 6, seed: int = 0) -> Path:
    """`training_rows` as a training manifest (see mmgist.manifest), the crops saved as PNG beside it."""
    folder = Path(folder)
    lines = []
    for k, (s, (_, completion)) in enumerate(zip(samples, training_rows(samples, max_turns, seed))):
        save_image(s.image, folder / "images" / f"{k:05d}.png")
        prompt = [{"image": f"images/{k:05d}.png"}, " " + s.style.instruction]
        lines.append(json.dumps({"prompt": prompt, "completion": [completion.text()]}))
    path = folder / "train.jsonl"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def gist_questions(sample: TaskSample, served: int = 6, unseen: int = 4, seed: int = 0) -> tuple[list, list]:
    """(served, unseen) multiple-choice Questions about one sample for gist distillation: `served` of the
    types a gist may train on, `unseen` of GIST_HELDOUT_TYPES, the held-out types taking turns (describe
    as its word questions: each word after the true words before it)."""
    rng = random.Random(seed)
    held: dict[str, list[Question]] = {}
    rest = []
    for t in sample.turns(seed):
        if any(h in t.type for h in GIST_HELDOUT_TYPES):
            words = describe_questions(sample.facts, sample.style) if t.type == "describe" else [t.as_question()]
            held.setdefault(t.type, []).extend(words)
        elif len(t.options) > 1:
            rest.append(t.as_question())
    rng.shuffle(rest)
    for questions in held.values():
        rng.shuffle(questions)
    interleaved = [q for group in itertools.zip_longest(*held.values()) for q in group if q is not None]
    return rest[:served], interleaved[:unseen]


@dataclass
class TaskScore:
    accuracy: float  # mean over question types of each type's accuracy
    per_type: dict[str, float]  # type family (region brightness, brighter, describe, ...) -> accuracy
    varied_accuracy: float  # the same, only on crops whose nine regions are not all equally bright
    probs: list[torch.Tensor]  # per question, (options,) probabilities, in the order asked
    questions: int


def family(type_: str) -> str:
    """'top left colour' -> 'region colour'; other types are their own family."""
    for a in ATTRIBUTES:
        if type_.endswith(" " + a) and type_ != "main colour":
            return f"region {a}"
    return type_


def evaluate(model, vocab, samples: list[TaskSample], with_prefix: bool = True, gists: list | None = None) -> TaskScore:
    """Multiple-choice accuracy per question family, with the prefix, without it, or with `gists[i]` for
    sample i instead of its prefix."""
    right: dict[str, list[int]] = {}
    varied: dict[str, list[int]] = {}
    probs = []
    for i, s in enumerate(samples):
        if gists is not None:
            context = {"gist": gists[i]}
        elif with_prefix:  # the prefix read once per sample, as keys and values, not once per question
            context = {"head": prefix_head(model, vocab, s.prefix())}
        else:
            context = {}
        differ = len(set(s.facts.brightness)) > 1
        for type_, q in s.questions():
            scores = score_options(model, vocab, q.query, q.options, **context)
            probs.append(scores.probs)
            ok = int(scores.best == q.answer)
            right.setdefault(family(type_), []).append(ok)
            if differ:
                varied.setdefault(family(type_), []).append(ok)
    per_type = {k: sum(v) / len(v) for k, v in right.items()}
    mean = sum(per_type.values()) / max(len(per_type), 1)
    varied_mean = sum(sum(v) / len(v) for v in varied.values()) / max(len(varied), 1)
    return TaskScore(mean, per_type, varied_mean, probs, len(probs))


def chance(samples: list[TaskSample]) -> dict[str, float]:
    """Accuracy of guessing uniformly among the options, per family (what a model without the prefix can reach)."""
    sums: dict[str, list[float]] = {}
    for s in samples:
        for type_, q in s.questions():
            sums.setdefault(family(type_), []).append(1 / len(q.options))
    return {k: sum(v) / len(v) for k, v in sums.items()}
