"""Registry: names, errors that list choices, entry-point plugins, and every tokenizer's save/load."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import mmgist
from mmgist.tokenizers import ModalityTokenizer, TextTokenizer, registry

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {
    "text": lambda: "héllo wörld ✓",
    "image": lambda: torch.rand(3, 16, 24),
    "audio": lambda: torch.rand(1, 640) * 2 - 1,
    "video": lambda: torch.rand(3, 3, 16, 16),
}


def _creatable():
    return [n for n in mmgist.list_tokenizers() if not registry.get_tokenizer_class(n).requires_pretrained]


def _openable():
    """Wrappers of pretrained models: opened on a tiny random model (tests/support/hf_tiny.py)."""
    return [n for n in mmgist.list_tokenizers() if registry.get_tokenizer_class(n).opens_folders]


OPEN = {"hf-audio": ("dac", {}), "hf-image": ("emu3", {"image_size": 0})}  # tiny model, options


def _instance(name, tmp_path):
    if name not in OPEN:
        return mmgist.create_tokenizer(name)
    from support.hf_tiny import save_tiny

    kind, options = OPEN[name]
    return mmgist.load_tokenizer(name, path=save_tiny(kind, tmp_path / "models"), **options)


def _encode(tok, sample):
    return (
        tok.encode(sample, sample_rate=tok.sample_rate)
        if tok.opens_folders and tok.modality == "audio"
        else tok.encode(sample)
    )


def test_builtins_are_registered_and_exported():
    names = mmgist.list_tokenizers()
    assert {"byte", "hf-text"} <= set(names)
    assert mmgist.list_tokenizers("toy-*") == ["toy-audio", "toy-image", "toy-video"]


def test_every_wrapper_of_pretrained_models_is_tested_here():
    assert set(_openable()) == set(OPEN)


@pytest.mark.parametrize("name", _creatable() + _openable())
def test_every_tokenizer_saves_and_loads_identically(name, tmp_path):
    tok = _instance(name, tmp_path)
    assert tok.modality in SAMPLES and tok.codebook_size > 0 and tok.num_codebooks >= 1
    sample = SAMPLES[tok.modality]()
    codes = _encode(tok, sample)
    assert codes.dtype == torch.long and codes.ndim == tok.code_ndim
    assert int(codes.min()) >= 0 and int(codes.max()) < tok.codebook_size
    tok.save_pretrained(tmp_path / name)
    loaded = mmgist.load_tokenizer(tmp_path / name)
    assert type(loaded) is type(tok) and loaded.fingerprint() == tok.fingerprint()
    assert torch.equal(_encode(loaded, sample), codes)
    segment = loaded.decode_segment(codes)
    assert torch.equal(segment.codes, codes)


@pytest.mark.parametrize("name", _creatable() + _openable())
def test_every_tokenizer_refuses_out_of_range_codes(name, tmp_path):
    tok = _instance(name, tmp_path)
    shape = (tok.num_codebooks, 2) if tok.modality == "audio" else (2,) * tok.code_ndim
    with pytest.raises(ValueError, match=f"code {tok.codebook_size} is outside the codebook"):
        tok.decode(torch.full(shape, tok.codebook_size))
    with pytest.raises(TypeError, match="integer tensor"):
        tok.decode(torch.zeros(shape))


@pytest.mark.parametrize("name", _creatable() + _openable())
def test_every_tokenizer_refuses_unknown_options_and_bad_values(name, tmp_path):
    tok = _instance(name, tmp_path)
    sample = SAMPLES[tok.modality]()
    rate = {"sample_rate": tok.sample_rate} if tok.modality == "audio" else {}
    with pytest.raises(TypeError, match=rf"{name}\.encode has no option\(s\) \['bogus_option'\]; its options: \["):
        tok.encode(sample, bogus_option=1, **rate)
    codes = tok.encode(sample, **rate)
    with pytest.raises(TypeError, match=rf"{name}\.decode has no option\(s\) \['bogus_option'\]; its options: \["):
        tok.decode(codes, bogus_option=1)
    for option, choices in type(tok).option_choices.items():
        with pytest.raises(ValueError, match=rf"{name}\.encode: {option}='bogus' is not one of \[{choices[0]!r}"):
            tok.encode(sample, **{option: "bogus"}, **rate)
        assert torch.equal(tok.encode(sample, **{option: None}, **rate), codes)  # None: the config's


def test_a_misspelled_option_names_the_right_one():
    image, audio = (mmgist.create_tokenizer(n, preset="tiny") for n in ("image-vq", "audio-rvq"))
    with pytest.raises(TypeError, match=r"no option\(s\) \['fitt'\]; its options: \['fit'\]"):
        image.encode(torch.rand(3, 16, 16), fitt="error")
    with pytest.raises(TypeError, match=r"\['num_codebook'\]; its options: \[.*'num_codebooks'"):
        audio.encode(torch.rand(1, 640), sample_rate=audio.sample_rate, num_codebook=4)


def test_duplicate_name_is_refused():
    with pytest.raises(ValueError, match=r"'byte' is already registered by mmgist\.tokenizers\.text\.ByteTokenizer"):

        @mmgist.register_tokenizer("byte")
        class Other(TextTokenizer):
            pass


def test_unknown_names_and_options_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown tokenizer 'nope'; registered tokenizers: \[.*'byte'"):
        mmgist.create_tokenizer("nope")
    with pytest.raises(
        TypeError, match=r"no config option\(s\) \['bogus'\]; valid options: \['codebook_size', 'patch'\]"
    ):
        mmgist.create_tokenizer("toy-image", bogus=1)
    with pytest.raises(ValueError, match="not a trained tokenizer in the zoo"):
        mmgist.load_tokenizer("nope")


def test_load_by_name_builds_tokenizers_that_need_no_training():
    assert isinstance(mmgist.load_tokenizer("byte"), mmgist.ByteTokenizer)


def test_load_from_a_zoo_folder(tmp_path, monkeypatch):
    mmgist.create_tokenizer("toy-image", codebook_size=5).save_pretrained(tmp_path / "my-image")
    monkeypatch.setenv("MMGIST_ZOO", str(tmp_path))
    assert "my-image" in registry.list_zoo()
    assert mmgist.load_tokenizer("my-image").codebook_size == 5


def test_load_refuses_a_folder_of_the_wrong_class(tmp_path):
    mmgist.create_tokenizer("toy-image").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a 'toy-image' tokenizer, not a ByteTokenizer"):
        mmgist.ByteTokenizer.from_pretrained(tmp_path)


def test_entry_point_plugins_register_without_editing_mmgist(tmp_path, monkeypatch):
    (tmp_path / "mmgist_plugin_demo.py").write_text(
        textwrap.dedent("""
        from mmgist.tokenizers import ByteTokenizer
        class ShoutTokenizer(ByteTokenizer):
            def encode(self, text, **kw):
                return super().encode(text.upper())
    """)
    )
    dist = tmp_path / "mmgist_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mmgist-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mmgist.tokenizers]\nshout = mmgist_plugin_demo:ShoutTokenizer\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    try:
        assert "shout" in mmgist.list_tokenizers()
        assert mmgist.create_tokenizer("shout").encode("a").tolist() == [65]
    finally:
        registry._REGISTRY.pop("shout", None)


def test_a_broken_plugin_warns_and_is_skipped(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mmgist.tokenizers]\nbroken = no_such_module_xyz:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    with pytest.warns(UserWarning, match="'broken'.*failed to load"):
        names = mmgist.list_tokenizers()
    assert "broken" not in names and "byte" in names


def test_top_level_tokenizers_folder_does_not_shadow_hugging_face():
    assert not (ROOT / "tokenizers" / "__init__.py").exists()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tokenizers, transformers; print(tokenizers.__file__); print(hasattr(tokenizers, 'Tokenizer'))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    path, has_class = out.stdout.split()
    assert "site-packages" in path and has_class == "True"


def test_modality_tokenizer_base_is_abstract():
    tok = ModalityTokenizer()
    with pytest.raises(NotImplementedError):
        _ = tok.codebook_size
