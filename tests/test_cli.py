"""The CLI is a thin layer: round trip through files, errors on stderr with exit code 2."""

import json
from pathlib import Path

import pytest
from PIL import Image as PILImage

from mmgist.cli import main
from mmgist.lm import find_model


def test_vocab_encode_decode_through_files(tmp_path, capsys):
    assert main(["vocab", "--image", "toy-image", "--out", str(tmp_path / "v")]) == 0
    assert main(["vocab", "--out", str(tmp_path / "v")]) == 2
    assert "pass --force" in capsys.readouterr().err
    PILImage.new("RGB", (8, 8), (200, 200, 200)).save(tmp_path / "im.png")
    (tmp_path / "p.json").write_text(json.dumps(["Hi ", {"image": "im.png"}, " there"]))
    assert main(["encode", "--vocab", str(tmp_path / "v"), str(tmp_path / "p.json")]) == 0
    ids = json.loads(capsys.readouterr().out)
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    assert (
        main(["decode", "--vocab", str(tmp_path / "v"), str(tmp_path / "ids.json"), "--media-dir", str(tmp_path / "m")])
        == 0
    )
    out = capsys.readouterr().out
    assert "[0] text: 'Hi '" in out and "[1] image: codes (2, 2)" in out and "[2] text: ' there'" in out
    assert (tmp_path / "m" / "segment1.png").exists()


def test_an_audio_prompt_through_files(tmp_path, capsys):
    from test_audio_tokenizer import sound, tiny

    from mmgist.io import save_audio

    tiny().save_pretrained(tmp_path / "tok")
    assert main(["vocab", "--audio", str(tmp_path / "tok"), "--out", str(tmp_path / "v")]) == 0
    capsys.readouterr()
    save_audio(tmp_path / "a.wav", sound(16000, 0.05), 16000)
    (tmp_path / "p.json").write_text(json.dumps(["Listen: ", {"audio": "a.wav"}]))
    assert main(["encode", "--vocab", str(tmp_path / "v"), str(tmp_path / "p.json")]) == 0
    (tmp_path / "ids.json").write_text(capsys.readouterr().out)
    args = ["decode", "--vocab", str(tmp_path / "v"), str(tmp_path / "ids.json"), "--media-dir", str(tmp_path / "m")]
    assert main(args) == 0
    assert "[1] audio: codes (3, 25)" in capsys.readouterr().out
    assert (tmp_path / "m" / "segment1.wav").exists()


def test_a_pretrained_codec_folder_is_a_tokenizer_for_the_cli(tmp_path, capsys):
    from support.hf_tiny import save_tiny
    from test_audio_tokenizer import sound

    from mmgist.io import save_audio

    folder = save_tiny("dac", tmp_path)  # a transformers folder: hf-audio, referred to by path and SHA-256
    assert main(["vocab", "--audio", str(folder), "--out", str(tmp_path / "v")]) == 0
    capsys.readouterr()
    save_audio(tmp_path / "a.wav", sound(16000, 0.1), 16000)
    (tmp_path / "p.json").write_text(json.dumps(["Listen: ", {"audio": "a.wav"}]))
    assert main(["encode", "--vocab", str(tmp_path / "v"), str(tmp_path / "p.json")]) == 0
    (tmp_path / "ids.json").write_text(capsys.readouterr().out)
    args = ["decode", "--vocab", str(tmp_path / "v"), str(tmp_path / "ids.json"), "--media-dir", str(tmp_path / "m")]
    assert main(args) == 0
    assert "[1] audio: codes (4, 4)" in capsys.readouterr().out and (tmp_path / "m" / "segment1.wav").exists()


def test_bad_prompt_file_is_reported(tmp_path, capsys):
    assert main(["vocab", "--out", str(tmp_path / "v")]) == 0
    (tmp_path / "p.json").write_text(json.dumps([{"audio": "x.wav", "extra": 1}]))
    assert main(["encode", "--vocab", str(tmp_path / "v"), str(tmp_path / "p.json")]) == 2
    assert "item 0" in capsys.readouterr().err


def test_tokenizers_lists_names(capsys):
    assert main(["tokenizers"]) == 0
    out = capsys.readouterr().out
    assert "byte" in out and "hf-audio" in out and "encodec-24khz (facebook/encodec_24khz)" in out


def test_train_tokenizer_writes_a_loadable_tokenizer_and_refuses_to_overwrite(tmp_path, capsys):
    import torch

    from mmgist import load_tokenizer
    from mmgist.io import save_image

    for i in range(2):
        save_image(torch.rand(3, 24, 20), tmp_path / "images" / f"{i}.png")
    args = [
        "train-tokenizer",
        "image",
        "--data",
        str(tmp_path / "images"),
        "--preset",
        "tiny",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--crop-size",
        "8",
        "--out",
        str(tmp_path / "tok"),
    ]
    assert main(args) == 0
    assert load_tokenizer(tmp_path / "tok").encode(torch.rand(3, 8, 8)).shape == (4, 4)
    assert main(args) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["train-tokenizer", "image", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "t2")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_lm_from_a_vocabulary_folder(tmp_path, capsys):
    (tmp_path / "m.jsonl").write_text('{"prompt": ["ab"], "completion": ["c"]}\n{"prompt": ["hello"]}\n')
    assert main(["vocab", "--out", str(tmp_path / "v")]) == 0
    args = [
        "train-lm",
        "--manifest",
        str(tmp_path / "m.jsonl"),
        "--vocab",
        str(tmp_path / "v"),
        "--preset",
        "tiny",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--out",
        str(tmp_path / "lm"),
    ]
    assert main(args) == 0
    assert (tmp_path / "lm" / "mmgist_vocab.json").exists()
    assert main(args) == 2 and "pass --force" in capsys.readouterr().err
    assert main([*args[:5], "--model", str(tmp_path / "lm"), "--out", str(tmp_path / "x")]) == 2
    assert "exactly one of --vocab" in capsys.readouterr().err


def test_distill_and_generate_with_a_gist(tmp_path, capsys):
    import torch

    from mmgist import ByteTokenizer, SharedVocabulary, build_lm, save_model

    torch.manual_seed(0)
    vocab = SharedVocabulary(text=ByteTokenizer())
    save_model(build_lm(vocab, preset="tiny"), vocab, tmp_path / "lm")
    (tmp_path / "p.json").write_text(json.dumps(["A long instruction that the gist replaces."]))
    args = ["distill", str(tmp_path / "p.json"), "--model", str(tmp_path / "lm"), "--k", "2", "--steps", "3",
            "--heldout-query", " B:", "--out", str(tmp_path / "g.safetensors")]  # fmt: skip
    assert main(args) == 0
    assert "no_prefix" in capsys.readouterr().out
    assert main(args) == 2 and "pass --force" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path / "lm"), "--gist", str(tmp_path / "g.safetensors"),
                 "--max-new-tokens", "4", "Q:"]) == 0  # fmt: skip
    kv = [*args[:-1], str(tmp_path / "kv.safetensors"), "--target", "kv", "--self-study", "4"]
    kv += ["--stopping", "validation"]
    assert main(kv) == 0
    from mmgist import GistPrefix

    kv_gist = GistPrefix.load(tmp_path / "kv.safetensors")
    assert kv_gist.target == "kv" and kv_gist.report["config"]["self_study"] == 4
    assert kv_gist.report["config"]["stopping"] == "validation"
    question = {"query": " Q:", "options": [" x", " y"], "answer": 1}
    lines = [
        {"id": "a", "prefix": ["first long prefix"]},
        {"id": "b", "prefix": ["second long prefix"], "queries": [" Z"], "questions": [question],
         "heldout_queries": [" W", {**question, "query": " R:"}]},
    ]  # fmt: skip
    (tmp_path / "many.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main([*args[:1], str(tmp_path / "many.jsonl"), *args[2:-1], str(tmp_path / "gists")]) == 0
    assert sorted(p.name for p in (tmp_path / "gists").iterdir()) == ["a.safetensors", "b.safetensors"]

    report = GistPrefix.load(tmp_path / "gists" / "b.safetensors").report
    assert (
        report["task"]["answered"] == 1 and report["heldout_task"]["answered"] == 1 and report["heldout_queries"] == 2
    )
    assert "task" not in GistPrefix.load(tmp_path / "gists" / "a.safetensors").report


def test_batch_distillation_shards_by_rank_and_checks_its_lines(tmp_path, monkeypatch):
    import torch

    from mmgist import ByteTokenizer, SharedVocabulary, build_lm
    from mmgist.gist import GistConfig, batch

    torch.manual_seed(0)
    vocab = SharedVocabulary(text=ByteTokenizer())
    model = build_lm(vocab, preset="tiny")
    lines = [json.dumps({"id": f"p{n}", "prefix": [f"prefix number {n} to compress"]}) for n in range(5)]
    (tmp_path / "many.jsonl").write_text("\n".join(lines) + "\n")
    config = GistConfig(num_gist_tokens=2, steps=1, num_continuations=4, continuation_length=2)
    written = {}
    for rank in (0, 1):  # what two torchrun processes do, one after the other
        monkeypatch.setattr(batch, "init_distributed", lambda rank=rank: (rank, 2))
        written[rank] = {
            p.name for p in batch.distill_many(model, vocab, tmp_path / "many.jsonl", tmp_path / "g", config)
        }
    assert written[0] == {"p0.safetensors", "p2.safetensors", "p4.safetensors"}
    assert written[1] == {"p1.safetensors", "p3.safetensors"}
    monkeypatch.setattr(batch, "init_distributed", lambda: (0, 1))
    assert batch.distill_many(model, vocab, tmp_path / "many.jsonl", tmp_path / "g", config) == []  # all done: resumed
    bad = {"id": "q", "prefix": ["x y z w"], "questions": [{"query": " Q:", "options": [" a"]}]}
    (tmp_path / "bad.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl.*at least 2 options"):
        batch.read_prefixes(tmp_path / "bad.jsonl")


def test_train_lm_with_a_seed_is_reproducible_bit_for_bit(tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    (tmp_path / "m.jsonl").write_text('{"prompt": ["ab"], "completion": ["c"]}\n{"prompt": ["hello"]}\n')
    assert main(["vocab", "--out", str(tmp_path / "v")]) == 0
    weights = []
    for run in ("a", "b"):
        torch.manual_seed(1234 + len(run) * ord(run))  # whatever the global state was, --seed decides
        args = ["train-lm", "--manifest", str(tmp_path / "m.jsonl"), "--vocab", str(tmp_path / "v"), "--preset",
                "tiny", "--steps", "2", "--batch-size", "2", "--seed", "0", "--out", str(tmp_path / run)]  # fmt: skip
        assert main(args) == 0, capsys.readouterr().err
        weights.append(load_file(tmp_path / run / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_every_argument_explains_itself_with_its_default(capsys):
    from mmgist.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # the subcommands' own parsers
    assert len(commands) == 10  # the README and docs/command-line.md list every one
    for name, sub in commands.items():
        for action in sub._actions:
            if action.help != "==SUPPRESS==":
                assert action.help, f"mmgist {name} {action.dest} has no help"
    with pytest.raises(SystemExit):
        main(["encode", "--help"])
    out = capsys.readouterr().out
    assert (
        "A prompt file is a JSON list" in out and '{"image": "cat.jpg"}' in out and "relative to the prompt file" in out
    )
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert "(default: 32)" in capsys.readouterr().out


def test_generate_takes_a_prompt_file_and_stops_where_told(tmp_path, capsys):
    import torch
    from conftest import make_vocab

    from mmgist import build_lm, save_model
    from mmgist.lm.generate import generate

    vocab = make_vocab()
    torch.manual_seed(0)
    model = build_lm(vocab, preset="tiny").eval()
    save_model(model, vocab, tmp_path / "lm")
    PILImage.new("RGB", (8, 8), (200, 100, 50)).save(tmp_path / "im.png")
    (tmp_path / "p.json").write_text(json.dumps(["Look: ", {"image": "im.png"}, " Q: colour? A:"]))
    assert main(["generate", "--model", str(tmp_path / "lm"), str(tmp_path / "p.json"), "--max-new-tokens", "12"]) == 0
    whole = capsys.readouterr().out.rstrip("\n")
    assert whole and "p.json" not in whole  # the file was read as a prompt, not taken as text
    free = generate(model, vocab, ["Hi"], max_new_tokens=12).text()
    stop = next(c for c in free[1:] if c.strip())  # a character the tiny model writes after its first
    cut = generate(model, vocab, ["Hi"], max_new_tokens=12, stop=stop).text()
    assert cut == free[: free.index(stop)] and stop not in cut
    with pytest.raises(ValueError, match="stop must be a non-empty string"):
        generate(model, vocab, ["Hi"], stop=[""])


def test_tokenizers_filters_every_list_and_commands_say_what_they_wrote(tmp_path, capsys):
    assert main(["tokenizers", "image*"]) == 0
    out = capsys.readouterr().out
    assert "encodec" not in out and "audio-rvq" not in out and "image-vq" in out
    assert main(["vocab", "--out", str(tmp_path / "v")]) == 0
    assert f"wrote {tmp_path / 'v'}" in capsys.readouterr().out


def test_the_shipped_model_loads_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    from mmgist.lm import find_model, list_models

    monkeypatch.chdir(tmp_path)  # not the repository: "models/demo-photo-qa" is not here
    assert "demo-photo-qa" in list_models() and (find_model("demo-photo-qa") / "config.json").is_file()
    assert main(["generate", "--model", "demo-photo-qa", "Q: top left colour? A:", "--max-new-tokens", "8",
                 "--stop", " Q:"]) == 0  # fmt: skip
    assert " Q:" not in capsys.readouterr().out
    assert main(["generate", "--model", "no-such-model", "hi"]) == 2
    err = capsys.readouterr().err
    assert "'no-such-model' is neither a model folder, a shipped model (['demo-photo-qa'" in err


def test_a_newcomer_walks_encode_decode_distill_generate_with_the_demo_model(tmp_path, monkeypatch, capsys):
    """The command-line flow of the README, from a folder outside the repository: a photo prompt file, the
    shipped model by name, a gist of it, and the same question after the gist and after the full prompt."""
    from mmgist.data.images import photo_paths

    monkeypatch.chdir(tmp_path)
    PILImage.open(photo_paths()["chelsea"]).crop((100, 50, 164, 114)).save("cat.png")  # 64x64: a quick prompt
    Path("photo.json").write_text(json.dumps(["Reference photo: ", {"image": "cat.png"}, " Describe it."]))
    Path("asked.json").write_text(json.dumps(["Reference photo: ", {"image": "cat.png"}, " Q: top left colour? A:"]))
    assert main(["encode", "--vocab", str(find_model("demo-photo-qa")), "photo.json"]) == 0
    Path("ids.json").write_text(capsys.readouterr().out)
    assert main(["decode", "--vocab", str(find_model("demo-photo-qa")), "ids.json", "--media-dir", "decoded"]) == 0
    assert "wrote decoded/segment1.png" in capsys.readouterr().out and Path("decoded/segment1.png").is_file()
    assert main(["distill", "photo.json", "--model", "demo-photo-qa", "--k", "4", "--steps", "2", "--self-study", "4",
                 "--out", "photo.gist"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("wrote photo.gist: k=4")  # the bar goes to stderr
    for argv in (["--gist", "photo.gist", "Q: top left colour? A:"], ["asked.json"]):
        assert main(["generate", "--model", "demo-photo-qa", *argv, "--stop", " Q:", "--max-new-tokens", "8"]) == 0
        assert " Q:" not in capsys.readouterr().out


def test_train_a_compressor_then_compress_a_prompt_file_in_one_pass(tmp_path, capsys):
    import torch

    from mmgist import ByteTokenizer, GistPrefix, SharedVocabulary, build_lm, save_model

    torch.manual_seed(0)
    vocab = SharedVocabulary(text=ByteTokenizer())
    save_model(build_lm(vocab, preset="tiny"), vocab, tmp_path / "lm")
    lines = [{"id": str(n), "prefix": [f"prefix number {n}: the fee is {n} coins"]} for n in range(3)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["train-compressor", str(tmp_path / "train.jsonl"), "--model", str(tmp_path / "lm"), "--k", "2",
            "--steps", "3", "--self-study", "2", "--lora-rank", "2", "--out", str(tmp_path / "comp")]  # fmt: skip
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'comp'}: a compressor of k=2 from 3 prefixes")
    assert main(args) == 2 and "pass --force" in capsys.readouterr().err
    (tmp_path / "p.json").write_text(json.dumps(["A long instruction that the gist replaces."]))
    assert main(["compress", str(tmp_path / "p.json"), "--model", str(tmp_path / "lm"), "--compressor",
                 str(tmp_path / "comp"), "--out", str(tmp_path / "g.gist")]) == 0  # fmt: skip
    assert "compressed from" in capsys.readouterr().out
    gist = GistPrefix.load(tmp_path / "g.gist")
    assert gist.k == 2 and gist.report["method"] == "compressor"
    assert main(["generate", "--model", str(tmp_path / "lm"), "--gist", str(tmp_path / "g.gist"),
                 "--max-new-tokens", "2", "Q:"]) == 0  # fmt: skip
