"""The demo task: facts follow the pixels (a hand-made image with known answers), turns are written in
the instruction's style, manifests train, evaluation scores options."""

import random

import pytest
import torch

from mmgist.demo_task import (
    COLOURS,
    CROP,
    REGIONS,
    STYLES,
    TYPES,
    Facts,
    Style,
    TaskSample,
    chance,
    describe,
    describe_questions,
    evaluate,
    family,
    make_samples,
    pixel_colours,
    training_rows,
    write_manifest,
)
from mmgist.demo_task import turns as all_turns
from mmgist.io import save_image
from mmgist.lm import build_lm
from mmgist.lm.manifest import read_manifest

# the nine regions of the hand-made image, row by row: (fill, brightness, colour, texture)
HAND_MADE = [
    ((1, 0, 0), 0, "red", 0),  # luma 0.299: dark
    ((1, 1, 1), 2, "grey", 0),
    ("checker", 1, "grey", 1),  # black and white pixels: luma 0.5, busy
    ((0, 1, 0), 2, "green", 0),  # 0.587
    ((0, 0, 1), 0, "blue", 0),  # 0.114: the darkest
    ((0.45, 0.45, 0.45), 1, "grey", 0),
    ((1, 1, 0), 2, "yellow", 0),  # 0.886
    ((0.5, 0, 1), 0, "purple", 0),  # hue 270
    ((1, 0.5, 0), 2, "orange", 0),  # hue 30, luma 0.59
]


def hand_made() -> torch.Tensor:
    image = torch.zeros(3, CROP, CROP)
    cell = CROP // 3
    for k, (fill, *_) in enumerate(HAND_MADE):
        y, x = (k // 3) * cell, (k % 3) * cell
        if fill == "checker":
            yy, xx = torch.meshgrid(torch.arange(cell), torch.arange(cell), indexing="ij")
            image[:, y : y + cell, x : x + cell] = ((yy + xx) % 2).float()
        else:
            image[:, y : y + cell, x : x + cell] = torch.tensor(fill, dtype=torch.float)[:, None, None]
    return image


def test_facts_of_a_hand_made_image():
    facts = Facts.of(hand_made())
    assert facts.brightness == tuple(b for _, b, _, _ in HAND_MADE)
    assert [COLOURS[c] for c in facts.colour] == [c for _, _, c, _ in HAND_MADE]
    assert facts.texture == tuple(t for *_, t in HAND_MADE)
    assert COLOURS[facts.main_colour] == "grey"  # three grey regions out of nine
    with pytest.raises(ValueError, match=r"\(3, 96, 96\)"):
        Facts.of(torch.zeros(3, 64, 64))


def test_pixel_colours_wrap_red_and_name_grey():
    pixels = torch.tensor([[1, 0, 0.1], [1, 0.1, 0], [0.5, 0.5, 0.52], [0, 1, 1], [1, 0, 1]]).T[:, None, :]  # (3, 1, 5)
    assert [COLOURS[i] for i in pixel_colours(pixels)[0]] == ["red", "red", "grey", "blue", "purple"]


@pytest.mark.parametrize("style", STYLES)
def test_turns_answer_from_the_facts_in_the_style(style):
    facts = Facts.of(hand_made())
    turns = {t.type: t for t in all_turns(facts, style, random.Random(0))}
    assert set(turns) == set(TYPES)  # the hand-made image answers every type clearly
    centre = turns["centre brightness"]
    word = "1" if style.numbers else "dark"
    assert centre.options[centre.answer] == " " + (f"the centre brightness is {word}" if style.verbose else word) + "."
    assert turns["top left colour"].options[turns["top left colour"].answer].endswith(" red.")  # colours stay words
    assert (
        turns["brightest"]
        .options[turns["brightest"].answer]
        .rstrip(".")
        .endswith("top is brightest" if style.verbose else " top")
    )
    assert "centre" in turns["darkest"].options[turns["darkest"].answer]
    a, b = turns["brighter"].question.removeprefix("brighter, ").rstrip("?").split(" or ")
    luma = dict(zip(REGIONS, facts.luma))
    assert (turns["brighter"].answer == 0) == (luma[a] > luma[b])
    assert (a, b)[turns["brighter"].answer] in turns["brighter"].options[turns["brighter"].answer]
    assert all(len(set(t.options)) == len(t.options) for t in turns.values())  # options differ
    assert all(t.text.startswith(" Q: ") and t.text.endswith(".") for t in turns.values())


def test_describe_lists_every_region_and_its_questions_rebuild_the_answer():
    facts = Facts.of(hand_made())
    assert describe(facts, Style(False, False)).text == (
        " Q: describe? A: dark bright medium, bright dark medium, bright dark bright."
    )
    for style in STYLES:
        questions = describe_questions(facts, style)
        assert [q.answer for q in questions] == list(facts.brightness)
        last = questions[-1]
        assert last.query + last.options[last.answer] + "." == describe(facts, style).text


def test_manifest_turns_and_evaluation(vocab, tmp_path):
    for k in range(2):
        save_image(torch.rand(3, 200, 210) * (k + 1) / 2, tmp_path / "photos" / f"{k}.png")
    samples = make_samples(tmp_path / "photos", 4)
    assert [s.style for s in samples] == list(STYLES)
    assert all(s.image.shape == (3, CROP, CROP) for s in samples)
    manifest = write_manifest(samples, tmp_path / "task", max_turns=5)
    rows = read_manifest(manifest)
    assert len(rows) == 4 and rows[0][0].modalities == ["image", "text"]
    for (prompt, completion), s in zip(rows, samples):
        text = completion.text()
        turns = [t for t in s.turns(seed=rows.index((prompt, completion))) if t.text in text]
        assert 1 <= text.count(" Q: ") <= 5 and len(turns) == text.count(" Q: ")  # every turn is a true one
    model = build_lm(vocab, preset="tiny").eval()
    with_prefix = evaluate(model, vocab, samples[:2])
    without = evaluate(model, vocab, samples[:2], with_prefix=False)
    n = sum(len(s.questions()) for s in samples[:2])
    assert with_prefix.questions == without.questions == n and len(with_prefix.probs) == n
    assert all(torch.allclose(p.sum(), torch.tensor(1.0)) for p in with_prefix.probs)
    assert set(with_prefix.per_type) == {family(t) for s in samples[:2] for t, _ in s.questions()}
    assert set(chance(samples[:2])) == set(with_prefix.per_type)
    assert family("top left colour") == "region colour" and family("main colour") == "main colour"


def test_samples_are_deterministic(tmp_path):
    save_image(torch.rand(3, 300, 300), tmp_path / "p.png")
    a, b = make_samples(tmp_path, 3, seed=5), make_samples([tmp_path / "p.png"], 3, seed=5)
    assert all(torch.equal(x.image, y.image) for x, y in zip(a, b))
    assert TaskSample(a[0].image, STYLES[0]).facts == a[0].facts


def test_sample_streams_resume_at_start_and_colour_augmentation_keeps_facts_true(tmp_path):
    save_image(torch.rand(3, 300, 300), tmp_path / "p.png")
    whole, tail = make_samples(tmp_path, 5, seed=3), make_samples(tmp_path, 2, seed=3, start=3)
    assert all(torch.equal(x.image, y.image) and x.style == y.style for x, y in zip(whole[3:], tail))
    coloured = make_samples(tmp_path, 5, seed=3, colour=True)
    assert any(not torch.equal(x.image, y.image) for x, y in zip(whole, coloured))
    assert all(TaskSample(s.image, s.style).facts == s.facts for s in coloured)  # read after the augmentation


def test_training_rows_are_what_the_manifest_holds(tmp_path):
    save_image(torch.rand(3, 300, 300), tmp_path / "p.png")
    samples = make_samples(tmp_path, 6, seed=1)
    rows = training_rows(samples, max_turns=4, seed=2)
    stored = read_manifest(write_manifest(samples, tmp_path / "task", max_turns=4, seed=2))
    for (prompt, completion), (p, c), s in zip(rows, stored, samples):
        assert completion.text() == c.text() and prompt.text() == p.text() == " " + s.style.instruction
        assert torch.equal(prompt[0].pixels, s.image)
