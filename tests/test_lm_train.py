"""LM training: manifest parsing, token shards (cached equals fresh), loss goes down, resume, 2-process DDP."""

import json
from pathlib import Path

import pytest
import torch
from support.ddp import run_ddp

from mmgist.io import save_image
from mmgist.lm import build_lm
from mmgist.lm.manifest import TokenShards, read_manifest
from mmgist.lm.train import CausalLMStep, collate, train_lm, validation_loss
from mmgist.prompt import Image, Prompt


def write_manifest(folder: Path, n: int = 12) -> Path:
    """A toy task where the image decides the answer: dark image -> ' dark', bright -> ' light'."""
    lines = []
    for k in range(n):
        bright = k % 2 == 0
        save_image(torch.full((3, 8, 8), 0.9 if bright else 0.1), folder / "img" / f"{k}.png")
        lines.append(
            {"prompt": [{"image": f"img/{k}.png"}, "Q: shade?"], "completion": [" light" if bright else " dark"]}
        )
    lines.append({"prompt": ["plain text sample"]})
    path = folder / "train.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_cached_shards_equal_fresh_tokenization_and_skip_the_encoders(vocab, tmp_path, monkeypatch):
    manifest = write_manifest(tmp_path)
    fresh = TokenShards.tokenize(read_manifest(manifest), vocab)
    built = TokenShards.build(manifest, vocab, tmp_path / "cache")
    prompt, completion = read_manifest(manifest)[0]  # the shared-media shortcut changes no id
    assert fresh.sample(0)[0] == [*vocab.encode(prompt, add_bos=True), *vocab.encode(completion), vocab.eos_id]
    monkeypatch.setattr(type(vocab.tokenizers["image"]), "encode", lambda *a, **k: pytest.fail("encoder ran again"))
    cached = TokenShards.build(manifest, vocab, tmp_path / "cache")
    for a in (built, cached):
        assert torch.equal(a.ids, fresh.ids) and torch.equal(a.offsets, fresh.offsets)
        assert torch.equal(a.prompt_lengths, fresh.prompt_lengths)
    ids, prompt_len = cached.sample(0)
    assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
    assert vocab.decode(ids[prompt_len:]).text() == " light"
    assert cached.sample(len(cached) - 1)[1] == 0  # no completion: loss on every token


def test_batched_image_encoding_equals_one_at_a_time(vocab):
    g = torch.Generator().manual_seed(0)
    shared = Image(torch.rand(3, 16, 16, generator=g))  # one segment in two samples: encoded once
    rows = [([Image(torch.rand(3, 16, 16, generator=g)), "Q: shade?"], [" dark"]) for _ in range(5)]
    rows += [([shared, "a"], None), (["b", shared], [" c"]), ([Image(torch.rand(3, 8, 24, generator=g))], None)]
    rows = [(Prompt(p), None if c is None else Prompt(c)) for p, c in rows]
    batched, single = TokenShards.tokenize(rows, vocab, batch_size=3), TokenShards.tokenize(rows, vocab, batch_size=1)
    assert torch.equal(batched.offsets, single.offsets) and torch.equal(batched.prompt_lengths, single.prompt_lengths)
    assert torch.equal(batched.ids, single.ids)
    for k, (prompt, completion) in enumerate(rows):
        expected = vocab.encode(prompt, add_bos=True) + (vocab.encode(completion) if completion else [])
        assert batched.sample(k)[0] == [*expected, vocab.eos_id]


def test_collate_masks_prompt_and_padding(vocab, tmp_path):
    shards = TokenShards.tokenize(read_manifest(write_manifest(tmp_path)), vocab)
    batch = collate(shards, [0, len(shards) - 1], vocab.pad_id)
    ids0, p0 = shards.sample(0)
    assert (batch["labels"][0, :p0] == -100).all()
    assert batch["labels"][0, p0 : len(ids0)].tolist() == ids0[p0:]
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_validation_loss_is_the_mean_over_loss_positions_whatever_the_batching(vocab, tmp_path):
    shards = TokenShards.tokenize(read_manifest(write_manifest(tmp_path)), vocab)
    torch.manual_seed(0)
    model = build_lm(vocab, preset="tiny").train()
    whole = validation_loss(model, vocab, shards, batch_size=len(shards))
    assert model.training  # the mode it was in is restored
    with torch.no_grad():  # one batch of everything: the training step's own mean
        expected = CausalLMStep(model.eval(), vocab)(collate(shards, list(range(len(shards))), vocab.pad_id)).loss
    for batch_size in (1, 5):  # smaller batches, weighted by their positions, give the same mean
        assert validation_loss(model, vocab, shards, batch_size=batch_size)["loss"] == pytest.approx(
            expected.item(), rel=1e-5
        )
    assert whole["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert whole["positions"] == sum(len(ids) - 1 - max(p - 1, 0) for ids, p in map(shards.sample, range(len(shards))))


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "train.jsonl:1: not valid JSON"),
        ('{"prompt": []}', "train.jsonl:1: expected"),
        ('{"prompt": [{"smell": "x"}]}', "must be a string or"),
        ('{"prompt": ["a"], "completion": "b"}', "'completion' must be a non-empty list"),
    ],
)
def test_bad_manifest_lines_are_named(tmp_path, line, message):
    (tmp_path / "train.jsonl").write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        read_manifest(tmp_path / "train.jsonl")


def test_training_lowers_the_loss_and_resume_matches(vocab, tmp_path):
    manifest = write_manifest(tmp_path)

    def run(run_dir, stop_at=None):
        torch.manual_seed(0)
        model = build_lm(vocab, preset="tiny")
        result = train_lm(
            model,
            vocab,
            manifest,
            tmp_path / "out",
            steps=40,
            batch_size=4,
            lr=3e-3,
            cache_dir=tmp_path / "cache",
            run_dir=run_dir,
            progress=False,
            stop_at=stop_at,
            log_every=1,
            checkpoint_every=10,
        )
        return model, result

    model, whole = run(tmp_path / "a")
    first, last = (sum(h["loss"] for h in part) / 5 for part in (whole.history[:5], whole.history[-5:]))
    assert last < 0.6 * first
    assert "loss_text" in whole.history[0] and (tmp_path / "out" / "mmgist_vocab.json").exists()
    run(tmp_path / "b", stop_at=10)
    resumed, second = run(tmp_path / "b")
    assert second.resumed_from == 10
    assert [h["loss"] for h in second.history] == [h["loss"] for h in whole.history]
    for (k, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_training_on_shards_in_memory_equals_training_on_the_manifest(vocab, tmp_path):
    manifest = write_manifest(tmp_path)
    histories = []
    for name, data in (("m", manifest), ("s", TokenShards.tokenize(read_manifest(manifest), vocab))):
        torch.manual_seed(0)
        model = build_lm(vocab, preset="tiny")
        result = train_lm(model, vocab, data, tmp_path / name, steps=5, batch_size=4, cache_dir=tmp_path / "cache",
                          progress=False, log_every=1)  # fmt: skip
        histories.append([h["loss"] for h in result.history])
    assert histories[0] == histories[1] and len(histories[0]) == 5


def test_two_process_ddp_lm(tmp_path):
    write_manifest(tmp_path)
    ranks = run_ddp("lm", tmp_path, tmp_path)
    assert ranks[0] == ranks[1] and ranks[0][0] == "2"  # same weights on both ranks
    assert (tmp_path / "lm" / "model.safetensors").exists()
