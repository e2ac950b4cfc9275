"""The demo task: labels follow the pixels, manifests train, evaluation scores options."""

import pytest
import torch

from mmgist.demo_task import INSTRUCTIONS, REGIONS, TaskSample, evaluate, level, make_samples, write_manifest
from mmgist.io import save_image
from mmgist.lm import build_lm
from mmgist.manifest import read_manifest


def test_levels_follow_luminance():
    image = torch.zeros(3, 128, 128)
    image[:, :64, 64:] = 1.0  # top right white
    image[:, 32:96, 32:96] = 0.4  # centre grey (overwrites part of the others)
    assert level(image, "top right") == 2 and level(image, "bottom left") == 0 and level(image, "centre") == 1


def test_manifest_and_evaluation(vocab, tmp_path):
    for k in range(2):
        save_image(torch.rand(3, 140, 150) * (k + 1) / 2, tmp_path / "photos" / f"{k}.png")
    samples = make_samples(tmp_path / "photos", 4)
    assert [s.instruction for s in samples] == [0, 1, 0, 1]
    assert all(set(s.answers) == set(REGIONS) for s in samples)
    assert all(a in INSTRUCTIONS[s.instruction][1] for s in samples for a in s.answers.values())
    manifest = write_manifest(samples, tmp_path / "task", queries_per_sample=2)
    rows = read_manifest(manifest)
    assert len(rows) == 8 and rows[0][1].text() == " " + samples[0].answers["top left"]
    assert rows[0][0].modalities == ["image", "text", "text"]
    model = build_lm(vocab, preset="tiny").eval()
    with_prefix = evaluate(model, vocab, samples[:2])
    without = evaluate(model, vocab, samples[:2], with_prefix=False, reference=with_prefix.probs)
    assert with_prefix.probs.shape == (10, 3) and torch.allclose(with_prefix.probs.sum(-1), torch.ones(10))
    # option probabilities agree with scoring each option by hand from one forward pass each
    context = vocab.encode(samples[0].prefix(), add_bos=True) + vocab.encode([TaskSample.query("top left")])
    options = [vocab.encode([" " + w]) for w in INSTRUCTIONS[0][1]]
    by_hand = []
    for o in options:
        logp = model(torch.tensor([context + o])).logits[0].log_softmax(-1)
        by_hand.append(sum(logp[len(context) + t - 1, tok] for t, tok in enumerate(o)))
    assert torch.allclose(with_prefix.probs[0], torch.stack(by_hand).softmax(0), atol=1e-5)
    expected_kl = (with_prefix.probs * (with_prefix.probs.log() - without.probs.log())).sum(-1).mean()
    assert without.option_kl == pytest.approx(expected_kl.item(), rel=1e-4)
    assert TaskSample.query("centre") == " Q: centre? A:"
