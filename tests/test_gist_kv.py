"""KV gists (target="kv"): keys and values at the gist positions, through the same GistPrefix, file and paths."""

import json

import pytest
import torch

from mmgist import Prompt, Question, generate
from mmgist.gist import GistConfig, GistPrefix, distill_gist, model_fingerprint
from mmgist.gist.data import pad
from mmgist.gist.report import greedy
from mmgist.lm import cache_kwargs
from mmgist.lm.heads import kv_of, student_logprobs

PREFIX = Prompt(["The secret word is zebra. ", torch.rand(3, 16, 16), " Always answer with the secret word."])
KV = dict(num_gist_tokens=2, target="kv", self_study=0, steps=30, lr=3e-2, num_continuations=16, continuation_length=8,
          eval_every=10)  # fmt: skip


@pytest.fixture(scope="module")
def setup(tiny_lm):
    model, vocab = tiny_lm
    served, unseen = [" Q: word?", " Again:"], [Question(" Name it:", [" zebra", " horse"], 0), " More:"]
    gist = distill_gist(model, vocab, PREFIX, GistConfig(**KV), queries=served, heldout_queries=unseen)
    return model, vocab, gist


def _logprobs_after_cache(model, gist, queries: torch.Tensor) -> torch.Tensor:
    """(B, T, V) log-probs of the next token after each query prefix, the head from gist.cache_for."""
    attn = torch.ones(len(queries), gist.k + 1 + queries.shape[1], dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=queries, attention_mask=attn, **cache_kwargs(model, gist.cache_for(model, len(queries))))
    return out.logits.float().log_softmax(-1)


def test_a_kv_gist_is_trained_and_reported_like_an_embeddings_gist(setup):
    _, _, gist = setup
    assert gist.target == "kv" and gist.embeddings is None and gist.k == 2
    assert gist.kv.shape == (2, 2, 2, 2, 8)  # (layers, keys/values, kv heads, k, head_dim) of the tiny llama
    history, rows = gist.report["history"], gist.report["unseen_queries"]
    assert history[-1]["train_kl"] < history[0]["train_kl"]
    assert rows["gist"]["kl"] < rows["init"]["kl"] and rows["no_prefix"]["gap_closed"] == 0.0
    assert 0 <= rows["gist"]["greedy_exact_match"] <= 1  # greedy decoding after a KV head
    assert set(gist.report["heldout_task"]["rows"]) == {"full_prefix", "gist", "init", "truncated", "no_prefix"}
    assert gist.report["config"]["target"] == "kv"


@pytest.mark.parametrize("batch", [1, 3])
def test_kv_gist_cached_and_uncached_logits_agree(setup, batch):
    model, vocab, trained = setup
    # a KV gist holding the model's own keys and values for some gist embeddings is that embeddings gist
    fingerprints = (model_fingerprint(model), vocab.fingerprint())
    emb = GistPrefix(torch.randn(3, 32) * 0.05, *fingerprints, 40, vocab.bos_id)
    as_kv = GistPrefix(None, *fingerprints, 40, vocab.bos_id, kv=kv_of(emb.cache(model))[:, :, :, 1:])
    queries = torch.randint(0, 256, (batch, 5))
    with torch.no_grad():
        uncached = model(inputs_embeds=emb.inputs_embeds(model, queries)).logits[:, emb.k + 1 :].log_softmax(-1)
    assert torch.allclose(_logprobs_after_cache(model, as_kv, queries), uncached, atol=1e-5)
    # the trained KV gist: the cache (generation) and the training path (right-padded, ragged) agree
    rows = [torch.randint(0, 256, (n,)).tolist() for n in (5, 3, 4)[:batch]]
    ids, real, _ = pad(rows)
    with torch.no_grad():
        training = student_logprobs(model, trained.head(model), ids, real)  # position t predicts ids[:, t]
    for b, row in enumerate(rows):
        cached = _logprobs_after_cache(model, trained, torch.tensor([row]))[0]  # position t predicts ids[:, t + 1]
        assert torch.allclose(training[b, 1 : len(row)], cached[:-1], atol=1e-5)
    same = _logprobs_after_cache(model, trained, ids[:, :3])  # a batch from cache_for equals one row at a time
    for b, row in enumerate(rows):
        assert torch.allclose(same[b], _logprobs_after_cache(model, trained, torch.tensor([row[:3]]))[0], atol=1e-5)


def test_kv_gist_save_load_gives_identical_logits(setup, tmp_path):
    model, vocab, gist = setup
    gist.save(tmp_path / "kv.safetensors")
    loaded = GistPrefix.load(tmp_path / "kv.safetensors", model=model, vocab=vocab)
    assert loaded.target == "kv" and torch.equal(loaded.kv, gist.kv) and loaded.report == gist.report
    queries = torch.randint(0, 256, (2, 4))
    assert torch.equal(_logprobs_after_cache(model, loaded, queries), _logprobs_after_cache(model, gist, queries))
    from safetensors import safe_open

    with safe_open(str(tmp_path / "kv.safetensors"), framework="pt") as f:
        header = json.loads(f.metadata()["mmgist"])
    assert header["format_version"] == 2 and header["target"] == "kv"


def test_a_version_1_embeddings_file_still_loads(setup, tmp_path):
    from safetensors.torch import save_file

    model, vocab, _ = setup
    embeddings = torch.randn(2, 32)
    header = {"format": "mmgist-gist", "format_version": 1, "model_fingerprint": model_fingerprint(model),
              "vocab_fingerprint": vocab.fingerprint(), "prefix_length": 40, "bos_id": vocab.bos_id, "k": 2,
              "dtype": "torch.float32", "report": {"config": {"early_stopping": 0.95}}}  # fmt: skip
    save_file({"embeddings": embeddings}, str(tmp_path / "v1.safetensors"), metadata={"mmgist": json.dumps(header)})
    old = GistPrefix.load(tmp_path / "v1.safetensors", model=model, vocab=vocab)
    assert old.target == "embeddings" and torch.equal(old.embeddings, embeddings) and old.kv is None
    header.update(format_version=2, target="prompt")
    save_file({"embeddings": embeddings}, str(tmp_path / "bad.safetensors"), metadata={"mmgist": json.dumps(header)})
    with pytest.raises(ValueError, match=r"target 'prompt' \(one of \['embeddings', 'kv'\]\)"):
        GistPrefix.load(tmp_path / "bad.safetensors")


def test_a_kv_gist_of_the_wrong_shape_is_refused(setup, tmp_path):
    model, _, gist = setup
    fields = {**vars(gist), "report": {}}
    with pytest.raises(ValueError, match="has 1 layers of 2 key/value heads x 8 dims; the model has 2 layers of 2 x 8"):
        GistPrefix(**{**fields, "kv": gist.kv[:1]}).check(model)
    with pytest.raises(ValueError, match="has 2 layers of 2 key/value heads x 4 dims; the model has 2 layers of 2 x 8"):
        GistPrefix(**{**fields, "kv": gist.kv[..., :4]}).check(model)
    GistPrefix(**{**fields, "kv": gist.kv[:, :, :1]}).save(tmp_path / "heads.safetensors")
    with pytest.raises(ValueError, match="has 2 layers of 1 key/value heads x 8 dims"):
        GistPrefix.load(tmp_path / "heads.safetensors", model=model)
    with pytest.raises(ValueError, match=r"a KV gist is \(layers, 2, kv_heads, k, head_dim\), got \(2, 2, 8\)"):
        GistPrefix(**{**fields, "kv": gist.kv[0, 0]})
    with pytest.raises(ValueError, match="holds exactly one of embeddings"):
        GistPrefix(**{**fields, "embeddings": torch.zeros(2, 32)})
    with pytest.raises(ValueError, match=r"not input embeddings: use gist\.cache_for"):
        gist.inputs_embeds(model, torch.zeros(1, 2, dtype=torch.long))


def test_generate_after_a_kv_gist_is_greedy_decoding_over_its_cache(setup):
    model, vocab, gist = setup
    query = vocab.encode(Prompt([" Q: word?"]))
    expected = greedy(model, gist.head(model), query, 6, vocab.eos_id)
    out = generate(model, vocab, " Q: word?", max_new_tokens=6, gist=gist, sizes={"image": (1, 1)})
    assert out.text() == vocab.decode(expected).text()
    cache = gist.cache(model)  # reused across calls, never modified by them
    for _ in range(2):
        assert generate(model, vocab, " Q: word?", max_new_tokens=6, gist=gist, gist_cache=cache).text() == out.text()
    with pytest.raises(ValueError, match="straight after a KV gist needs a query"):
        generate(model, vocab, "", max_new_tokens=3, gist=gist)


def test_without_a_query_a_kv_gist_is_measured_from_the_second_sampled_token(setup):
    model, vocab, _ = setup
    config = GistConfig(**{**KV, "steps": 4, "eval_every": 2, "self_study": 4, "self_study_length": 6})
    r = distill_gist(model, vocab, PREFIX, config).report
    assert r["by_position"]["heldout"]["count"][0] == 0 and r["by_position"]["heldout"]["count"][1] > 0


@pytest.mark.parametrize("arch", ["gpt2", "qwen2", "gemma", "gpt_neox"])
def test_kv_gists_on_other_hugging_face_architectures(setup, arch):
    from test_gist import _tiny

    _, vocab, _ = setup
    model = _tiny(arch, len(vocab))
    gist = distill_gist(model, vocab, PREFIX, GistConfig(**{**KV, "steps": 6, "eval_every": 3, "num_continuations": 8}))
    assert gist.report["history"][-1]["train_kl"] < gist.report["history"][0]["train_kl"]
    ids, real, _ = pad([[5, 6, 7, 8], [9, 10]])
    with torch.no_grad():
        training = student_logprobs(model, gist.head(model), ids, real)
    cached = _logprobs_after_cache(model, gist, ids[:, :2])
    assert torch.allclose(training[:, 1:2], cached[:, :1], atol=1e-4)


def test_score_options_after_a_kv_gist_agree_with_scoring_by_hand(setup):
    from mmgist import score_options

    model, vocab, gist = setup
    query, options = vocab.encode([" Name it:"]), [vocab.encode([" zebra"]), vocab.encode([" horse"])]
    scores = score_options(model, vocab, query, options, gist=gist)
    by_hand = []
    for o in options:
        ids = torch.tensor([query + o])
        logp = _logprobs_after_cache(model, gist, ids)[0]  # position t predicts token t + 1
        by_hand.append(sum(logp[len(query) + j - 1, tok] for j, tok in enumerate(o)))
    assert torch.allclose(scores.logprobs, torch.stack(by_hand), atol=1e-4)
