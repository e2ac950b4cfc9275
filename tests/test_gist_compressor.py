"""The amortized compressor: LoRA adapters on a copy of the served model plus k gist embeddings, trained once
to turn any prefix into a KV gist in one forward pass. On the tiny Llama of conftest.py."""

import pytest
import torch

from mmgist.gist import GistConfig, distill_gist
from mmgist.gist.compressor import CompressorConfig, GistCompressor, compressor_study, train_compressor
from mmgist.gist.kv_init import rotate_keys
from mmgist.gist.prefix import GistPrefix, model_fingerprint
from mmgist.gist.report import fidelity
from mmgist.lm import output_cache
from mmgist.lm.heads import KVHead, bos_kv, kv_of, pad
from mmgist.train import TrainConfig

PREFIXES = ["the harbour opens at six and the fee is twelve coins", "the pool shuts at nine; a swim costs four"]
STUDY = GistConfig(self_study=6, self_study_length=8, num_continuations=2, continuation_length=6)


@pytest.fixture
def compressor(tiny_lm):
    model, vocab = tiny_lm
    c = GistCompressor(model, CompressorConfig(num_gist_tokens=3, lora_rank=2, rows_per_prefix=3, prefixes_per_step=2))
    c.bos_id = vocab.bos_id
    return c


def test_an_untrained_compressor_gives_the_models_own_keys_and_values_at_the_gist_positions_moved_to_1_to_k(
    tiny_lm, compressor
):
    """LoRA starts at zero: the gist is the served model's cache on <|bos|> prefix g_1..g_k at its last k
    positions, keys turned by 1 - N, so a query after it sees them at slots 1..k."""
    model, vocab = tiny_lm
    ids = vocab.encode(PREFIXES[0], add_bos=True)
    n = len(ids)
    gist = compressor.compress(vocab, ids)
    x = torch.cat([model.get_input_embeddings()(torch.tensor(ids)), compressor.gist.detach()])
    with torch.no_grad():
        cached = kv_of(output_cache(model(inputs_embeds=x[None], use_cache=True)))[:, :, :, n:]
    torch.testing.assert_close(gist.kv[:, 1], cached[:, 1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(rotate_keys(model, gist.kv[:, 0], torch.full((3,), n - 1)), cached[:, 0],
                               atol=1e-5, rtol=1e-4)  # fmt: skip
    assert gist.k == 3 and gist.prefix_length == n and gist.report["method"] == "compressor"
    gist.check(model, vocab)  # made for the served model: its fingerprint


def test_explicit_positions_compute_the_gist_keys_at_1_to_k_with_no_turn_and_agree_with_a_distilled_slot(tiny_lm):
    """positions="explicit": the gist tokens read the prefix at position ids 1..k, so their keys need no turn; a
    query after the gist sees them at the slots a distilled gist's keys sit at (KVHead after <|bos|>)."""
    model, vocab = tiny_lm
    c = GistCompressor(model, CompressorConfig(num_gist_tokens=3, lora_rank=2, positions="explicit"))
    ids = vocab.encode(PREFIXES[1], add_bos=True)
    n = len(ids)
    gist = c.compress(vocab, ids)
    x = torch.cat([model.get_input_embeddings()(torch.tensor(ids)), c.gist.detach()])
    position_ids = torch.cat([torch.arange(n), torch.arange(1, 4)])[None]
    with torch.no_grad():
        cached = kv_of(output_cache(model(inputs_embeds=x[None], position_ids=position_ids, use_cache=True)))
    torch.testing.assert_close(gist.kv, cached[:, :, :, n:], atol=1e-5, rtol=1e-4)
    rotated = GistCompressor(model, CompressorConfig(num_gist_tokens=3, lora_rank=2)).compress(vocab, ids)
    torch.testing.assert_close(gist.kv[0], rotated.kv[0], atol=1e-5, rtol=1e-4)  # layer 0: its own token only
    assert (gist.kv[1:] - rotated.kv[1:]).abs().max() > 1e-5  # later layers read the prefix at other offsets
    with pytest.raises(ValueError, match=r"positions must be one of \('rotate', 'explicit'\), got 'left'"):
        CompressorConfig(positions="left")


def test_the_served_model_is_never_changed(tiny_lm, compressor, tmp_path):
    model, vocab = tiny_lm
    names = [name for name, _ in model.named_parameters()]
    flags = [p.requires_grad for p in model.parameters()]
    before = model_fingerprint(model)
    ids = torch.tensor([vocab.encode(PREFIXES[0] + " Q:", add_bos=True)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    study = compressor_study(model, vocab, PREFIXES, STUDY)
    train_compressor(compressor, vocab, study, TrainConfig(steps=2, warmup_steps=0), tmp_path, progress=False)
    assert [name for name, _ in model.named_parameters()] == names  # no adapter was injected into it
    assert model_fingerprint(model) == before and not model.training
    assert [p.requires_grad for p in model.parameters()] == flags and all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, logits)  # its outputs with a full prefix, bit for bit
    assert set(compressor.state_dict()) == set(compressor.trainable()) and "gist" in compressor.state_dict()
    assert all("lora_" in name for name in compressor.state_dict() if name != "gist")


def test_training_brings_the_compressed_gist_closer_to_the_full_prefix(tiny_lm, compressor, tmp_path):
    model, vocab = tiny_lm
    study = compressor_study(model, vocab, PREFIXES, STUDY)
    assert [s.prefix[0] for s in study] == [vocab.bos_id] * 2 and all(s.rows.mask.any() for s in study)

    def kl() -> float:  # the served model after each prefix's compressed gist, on all its rows
        heads = [compressor.compress(vocab, s.prefix).head(model) for s in study]
        return sum(fidelity(model, h, s.rows)["kl"] for h, s in zip(heads, study)) / len(study)

    start = kl()
    result = train_compressor(compressor, vocab, study, TrainConfig(steps=30, lr=1e-2, warmup_steps=0), tmp_path,
                              progress=False)  # fmt: skip
    assert result.steps == 30 and kl() < 0.8 * start


def test_a_saved_compressor_loads_to_the_same_gists_and_only_for_its_model(tiny_lm, compressor, tmp_path):
    model, vocab = tiny_lm
    with torch.no_grad():
        for p in compressor.trainable().values():
            p.add_(0.01 * torch.randn_like(p))  # not the initial state: a real round trip
    compressor.save(tmp_path / "c")
    loaded = GistCompressor.load(tmp_path / "c", model)
    a, b = compressor.compress(vocab, PREFIXES[1]), loaded.compress(vocab, PREFIXES[1])
    torch.testing.assert_close(a.kv, b.kv)
    a.save(tmp_path / "g.gist")  # a compressed gist is a gist file like any other
    back = GistPrefix.load(tmp_path / "g.gist", model=model, vocab=vocab)
    assert back.report["method"] == "compressor" and torch.equal(back.kv, a.kv)
    other = type(model)(model.config)  # same shapes, other weights
    with pytest.raises(ValueError, match="was trained for another model"):
        GistCompressor.load(tmp_path / "c", other)


def test_a_compressed_gist_serves_queries_as_a_kv_head(tiny_lm, compressor):
    """The served model reads the compressed gist exactly as KVHead(<|bos|>, gist): the same cache layout."""
    model, vocab = tiny_lm
    gist = compressor.compress(vocab, PREFIXES[0])
    head = gist.head(model)
    assert isinstance(head, KVHead) and len(head) == 4
    torch.testing.assert_close(head.kv[:, :, :, :1], bos_kv(model, vocab.bos_id))


def test_bad_compressor_settings_are_refused(tiny_lm):
    model, _ = tiny_lm
    with pytest.raises(ValueError, match="no modules named"):
        GistCompressor(model, CompressorConfig(target_modules=("nope_proj",)))
    with pytest.raises(ValueError, match="num_gist_tokens"):
        CompressorConfig(num_gist_tokens=0)


def test_distillation_refines_a_compressed_gist_from_where_it_is(tiny_lm, compressor):
    model, vocab = tiny_lm
    ids = vocab.encode(PREFIXES[0], add_bos=True)
    compressed = compressor.compress(vocab, ids)
    config = GistConfig(num_gist_tokens=3, steps=1, lr=1e-9, num_continuations=4, continuation_length=4, self_study=0,
                        hidden_weight=0.0)  # fmt: skip
    refined = distill_gist(model, vocab, ids, config, queries=[" Q:"], start=compressed)
    torch.testing.assert_close(refined.kv.float(), compressed.kv.float(), atol=1e-6, rtol=1e-5)  # lr ~ 0: unmoved
    assert refined.report["method"] == "distilled from a compressor gist"
    with pytest.raises(ValueError, match="start is a kv gist of k=3"):
        distill_gist(model, vocab, ids, GistConfig(num_gist_tokens=2), start=compressed)


def test_a_corrupt_or_partial_compressor_folder_is_refused_by_name(tiny_lm, compressor, tmp_path):
    model, _ = tiny_lm
    compressor.save(tmp_path / "c")
    weights = tmp_path / "c" / "compressor.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # truncated
    with pytest.raises(ValueError, match=r"compressor\.safetensors"):
        GistCompressor.load(tmp_path / "c", model)
    (tmp_path / "c" / "compressor.json").unlink()  # no header
    with pytest.raises((FileNotFoundError, ValueError), match=r"compressor\.json"):
        GistCompressor.load(tmp_path / "c", model)


def test_an_empty_prefix_cannot_be_compressed(tiny_lm, compressor):
    _, vocab = tiny_lm
    with pytest.raises(ValueError, match="empty prefix"):
        compressor.compress(vocab, [vocab.bos_id])


def test_the_shipped_compressor_loads_by_name_and_its_gist_stands_in_for_a_held_out_photo():
    """models/demo-photo-qa-compressor, for the demo model: a held-out photo's prefix compressed in one pass
    is closer to the full prefix than no prefix, on rows the model writes after it."""
    from mmgist import load_model
    from mmgist.data.images import photo_paths
    from mmgist.demo_task import CROP, STYLES, TaskSample
    from mmgist.gist import data as gist_data
    from mmgist.io import image_to_tensor, load_image
    from mmgist.lm.scoring import head_embeddings

    model, vocab = load_model("demo-photo-qa")
    compressor = GistCompressor.load("demo-photo-qa-compressor", model)
    photo = image_to_tensor(load_image(photo_paths()["chelsea"]))[:, 96 : 96 + CROP, 64 : 64 + CROP]
    prefix = vocab.encode(TaskSample(photo, STYLES[0]).prefix(), add_bos=True)
    gist = compressor.compress(vocab, prefix)
    assert gist.k == 4 and gist.report["method"] == "compressor"
    config = GistConfig(num_continuations=8, continuation_length=12)
    rows = gist_data.sample(model, vocab, prefix, [vocab.encode(" Q: centre colour? A:")], config)
    ids, real, mask = pad(rows, [len(vocab.encode(" Q: centre colour? A:"))] * len(rows))
    teacher = gist_data.teacher_logprobs(model, prefix, ids, real, config.teacher_top_k)
    data = gist_data.Continuations(ids, real, mask, teacher)
    compressed, none = (fidelity(model, h, data)["kl"] for h in (gist.head(model), head_embeddings(model, vocab)))
    assert compressed < 0.5 * none, (compressed, none)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_prefixes_compressed_together_get_the_gists_they_get_alone(tiny_lm, compressor, batch_size):
    """Left-padded rows of different lengths, each at its own positions: the same gist as one at a time."""
    _, vocab = tiny_lm
    with torch.no_grad():
        for p in compressor.trainable().values():
            p.add_(0.05 * torch.randn_like(p))  # adapters that do something
    prefixes = [*PREFIXES, "six"]  # three lengths
    together = compressor.compress_many(vocab, prefixes, batch_size=batch_size)
    for prefix, gist in zip(prefixes, together):
        alone = compressor.compress(vocab, prefix)
        assert gist.prefix_length == alone.prefix_length
        torch.testing.assert_close(gist.kv, alone.kv, atol=1e-5, rtol=1e-4)


def test_a_query_after_a_compressed_gist_reads_the_same_from_its_cache_as_from_its_keys_and_values(tiny_lm, compressor):
    from mmgist.lm.heads import student_logprobs
    from mmgist.lm.model import cache_kwargs

    model, vocab = tiny_lm
    gist = compressor.compress(vocab, PREFIXES[0])
    query = torch.tensor([vocab.encode(" Q: fee? A:")])
    with torch.no_grad():
        out = model(input_ids=query, **cache_kwargs(model, gist.cache(model)))
    cached = out.logits[0, :-1].log_softmax(-1)
    direct = student_logprobs(model, gist.head(model), query, torch.ones_like(query, dtype=torch.bool))[0, 1:]
    torch.testing.assert_close(cached, direct, atol=1e-5, rtol=1e-4)


def test_compress_by_name_or_object_and_its_refusals(tiny_lm, compressor, tmp_path):
    from mmgist import compress, compress_many

    model, vocab = tiny_lm
    compressor.longest_prefix = len(vocab.encode(PREFIXES[0], add_bos=True))
    compressor.save(tmp_path / "c")
    a = compress(model, vocab, PREFIXES[0], compressor)
    b = compress(model, vocab, PREFIXES[0], tmp_path / "c")  # a folder: loaded for this model
    torch.testing.assert_close(a.kv, b.kv)
    assert len(compress_many(model, vocab, PREFIXES, compressor)) == 2
    with pytest.warns(UserWarning, match=r"longer than any the compressor was trained on \(\d+\)"):
        compress(model, vocab, PREFIXES[0] + " and more words after it", compressor)
    with pytest.raises(ValueError, match="exceed the model's context of 512"):
        compress(model, vocab, [vocab.bos_id] + [5] * 600, compressor)
    with pytest.raises(TypeError, match="prefixes must be a list"):
        compressor.compress_many(vocab, PREFIXES[0])
    other = type(model)(model.config)  # same shapes, other weights
    with pytest.raises(ValueError, match="trained for another model"):
        compress(other, vocab, PREFIXES[0], compressor)


def test_each_prefix_is_studied_with_its_own_queries_as_well_as_the_shared_ones(tiny_lm):
    model, vocab = tiny_lm
    config = GistConfig(self_study=0, num_continuations=2, continuation_length=4)
    own = [[" Q: fee? A:"], [" Q: when? A:", " Q: cost? A:"]]
    study = compressor_study(model, vocab, PREFIXES, config, queries=[" Q: what? A:"], per_prefix=own)
    assert [len(s.rows) for s in study] == [2 * (1 + 1), 2 * (1 + 2)]  # continuations x (shared + own) queries
    last = vocab.encode(" Q: cost? A:")
    assert study[1].rows.ids[-1, : len(last)].tolist() == last and study[1].rows.start[-1] == len(last)
    with pytest.raises(ValueError, match=r"queries for 1 prefixes, expected one list per prefix \(2\)"):
        compressor_study(model, vocab, PREFIXES, config, per_prefix=own[:1])


def test_a_study_saved_and_loaded_is_the_same_and_another_file_is_refused(tiny_lm, tmp_path):
    from mmgist.gist.compressor import load_study, save_study
    from mmgist.storage import save_tensors_atomic

    model, vocab = tiny_lm
    study = compressor_study(model, vocab, PREFIXES[:1], STUDY)[0]
    save_study(study, tmp_path / "s.safetensors")
    back = load_study(tmp_path / "s.safetensors")
    assert back.prefix == study.prefix
    for name in ("ids", "real", "mask", "start"):
        assert torch.equal(getattr(back.rows, name), getattr(study.rows, name))
    t, u = study.rows.teacher, back.rows.teacher
    assert torch.equal(t.logp, u.logp) and torch.equal(t.ids, u.ids) and torch.equal(t.rest, u.rest)
    save_tensors_atomic({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="is not a mmgist-prefix-study v1 file"):
        load_study(tmp_path / "other.safetensors")


def test_a_chat_study_is_cached_per_prompt_and_read_back_instead_of_made_again(chat, tmp_path, monkeypatch):
    from mmgist.gist import chat_compressor_study, compressor
    from mmgist.gist.self_study import StudyConfig

    model, vocab = chat
    systems = ["the harbour opens at six", "the fee is twelve coins"]
    study = StudyConfig(questions=2, chunk_questions=0, reconstruction=False)
    config = GistConfig(num_continuations=1, continuation_length=4, self_study=0)
    first = chat_compressor_study(model, vocab, systems, study, config, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2 and [len(s.rows) for s in first] == [2, 2]

    def no_new_study(*args, **kwargs):
        raise AssertionError("a cached prompt was studied again")

    monkeypatch.setattr(compressor, "chat_study", no_new_study)
    again = chat_compressor_study(model, vocab, systems, study, config, cache_dir=tmp_path)
    assert [torch.equal(a.rows.teacher.logp, b.rows.teacher.logp) for a, b in zip(first, again)] == [True, True]
    with pytest.raises(AssertionError, match="studied again"):  # another setting is another cache entry
        chat_compressor_study(model, vocab, systems[:1], study, GistConfig(num_continuations=2, self_study=0),
                              cache_dir=tmp_path)  # fmt: skip


def test_a_compressor_without_adapters_trains_only_its_gist_embeddings_on_the_served_model_itself(tiny_lm, tmp_path):
    """lora_rank=0: no copy of the model and no adapters; the frozen served model reads prefix + gist tokens, the k
    embeddings are all that train, and they still bring the gist closer to the full prefix."""
    model, vocab = tiny_lm
    c = GistCompressor(model, CompressorConfig(num_gist_tokens=3, lora_rank=0, rows_per_prefix=3, prefixes_per_step=2))
    c.bos_id = vocab.bos_id
    assert c.encoder is model and list(c.state_dict()) == ["gist"] and list(c.trainable()) == ["gist"]
    before = model_fingerprint(model)
    study = compressor_study(model, vocab, PREFIXES, STUDY)

    def kl() -> float:
        heads = [c.compress(vocab, s.prefix).head(model) for s in study]
        return sum(fidelity(model, h, s.rows)["kl"] for h, s in zip(heads, study)) / len(study)

    start = kl()
    train_compressor(c, vocab, study, TrainConfig(steps=30, lr=1e-2, warmup_steps=0), tmp_path / "run", progress=False)
    assert kl() < 0.9 * start and model_fingerprint(model) == before and not model.training
    assert all(p.grad is None for p in model.parameters())
    c.save(tmp_path / "c")
    loaded = GistCompressor.load(tmp_path / "c", model)
    torch.testing.assert_close(loaded.compress(vocab, PREFIXES[0]).kv, c.compress(vocab, PREFIXES[0]).kv)
    with pytest.raises(ValueError, match="lora_rank must be an int >= 0, got -1"):
        CompressorConfig(lora_rank=-1)
