"""Offline texts for training gist compressors: docstrings read without importing, READMEs plain or gzipped,
cut at paragraph breaks, benchmark documents left out, a split that is the same everywhere."""

import gzip
import hashlib

import pytest

from mmgist.data.texts import FRAMING, Text, _unjustify, cut_words, gather_texts, overlap, shingles, split_texts

WORDS = " ".join(f"w{i}" for i in range(60))  # 60 distinct words: one paragraph


@pytest.fixture
def sources(tmp_path):
    lib = tmp_path / "lib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "tests").mkdir()
    (lib / "pkg" / "a.py").write_text(f'"""{WORDS}\n\n{WORDS}"""\n\ndef f():\n    """short"""\n\nclass C:\n'
                                      f'    """c {WORDS}\n\n>>> C()\n{WORDS}"""\n'
                                      f'    def __init__(self):\n        """x {WORDS}"""\n')  # fmt: skip
    (lib / "tests" / "b.py").write_text(f'"""{WORDS}"""\n')  # tests are skipped
    (lib / "broken.py").write_text("def (:\n")  # unparsable: skipped, not fatal
    (lib / "boom.py").write_text(f'"""boom {WORDS}"""\nraise SystemExit("imported!")\n')  # read, never run
    (lib / "twin.py").write_text(f'"""{WORDS}"""\n')  # the same text as pkg/a.py's: kept once
    doc = tmp_path / "doc"
    (doc / "zed").mkdir(parents=True)
    (doc / "zed" / "README.gz").write_bytes(gzip.compress(f"zed {WORDS}".encode()))
    (doc / "alpha").mkdir()
    (doc / "alpha" / "README").write_text(f"alpha {WORDS}")
    (doc / "latin1").mkdir()
    (doc / "latin1" / "README").write_bytes(b"caf\xe9 " * 80)  # not UTF-8: skipped
    (doc / "corrupt").mkdir()
    (doc / "corrupt" / "README.gz").write_bytes(gzip.compress(WORDS.encode())[:-30] + b"x" * 30)  # skipped
    (doc / "link").symlink_to(doc / "alpha")  # a package folder linking to another: its README counted once
    return lib, doc


def test_docstrings_and_readmes_are_gathered_in_a_fixed_order_and_cut_at_paragraphs(sources):
    lib, doc = sources
    texts = gather_texts(("docstring", "readme"), min_words=50, max_words=100, stdlib=lib, doc_root=doc)
    by_hash = lambda keys: sorted(keys, key=lambda k: hashlib.sha256(k.encode()).hexdigest())  # noqa: E731
    keys = ["docstring:boom.py", "docstring:pkg/a.py", "docstring:pkg/a.py:C", "docstring:pkg/a.py:C.__init__"]
    twins = by_hash(["docstring:pkg/a.py", "docstring:twin.py"])  # the same text: the first in hash order kept
    docstrings = by_hash([k for k in keys if k != "docstring:pkg/a.py"] + twins[:1])
    assert [t.key for t in texts] == docstrings + by_hash(["readme:alpha", "readme:zed"])
    assert all(50 <= t.words <= 100 for t in texts)
    found = {t.key: t for t in texts}
    assert found[twins[0]].text == WORDS  # pkg/a.py: two paragraphs of 60 words, only the first fits in 100
    assert found["docstring:pkg/a.py:C"].text == "c " + WORDS  # doctest lines dropped, then cut
    assert found["readme:alpha"].system() == FRAMING + found["readme:alpha"].text
    limited = gather_texts(("docstring",), min_words=50, max_words=100, limit=2, stdlib=lib, doc_root=doc)
    assert limited == texts[:2]
    assert gather_texts(("docstring", "readme"), min_words=50, max_words=100, stdlib=lib, doc_root=doc) == texts


def test_a_text_that_overlaps_a_held_out_document_is_left_out(sources):
    lib, doc = sources
    benchmark_doc = "Answer the user's questions.\n\nzed " + " ".join(WORDS.split()[:20])  # an excerpt of a README
    (doc / "other").mkdir()
    (doc / "other" / "README").write_text(" ".join(f"v{i}" for i in range(60)))
    texts = gather_texts(("readme",), heldout=[benchmark_doc], min_words=50, doc_root=doc, stdlib=lib)
    assert [t.key for t in texts] == ["readme:other"]  # alpha's and zed's READMEs share the excerpt's 8-grams
    assert overlap("a b c d e f g h i", shingles("x a b c d e f g h")) == 0.5
    assert overlap("too short", shingles(WORDS)) == 0.0


def test_bad_settings_are_refused(sources):
    lib, doc = sources
    with pytest.raises(ValueError, match=r"unknown text sources \['emails'\]"):
        gather_texts(("emails",), stdlib=lib, doc_root=doc)
    with pytest.raises(ValueError, match=r"min_words \(200\) must not exceed max_words \(100\)"):
        gather_texts(min_words=200, max_words=100, stdlib=lib, doc_root=doc)
    with pytest.raises(ValueError, match="limit"):
        gather_texts(limit=0, stdlib=lib, doc_root=doc)


@pytest.mark.parametrize("max_words", [1, 7, 59, 60, 61, 130])
def test_a_cut_text_is_whole_paragraphs_from_the_start_within_the_limit(max_words):
    text = f"{WORDS}\n\nshort one\n\n{WORDS}"
    cut = cut_words(text, max_words)
    assert 0 < len(cut.split()) <= max_words
    if max_words >= 60:
        assert text.startswith(cut) and (cut == text or text[len(cut) :].startswith("\n\n"))


def test_the_split_is_a_partition_that_depends_on_keys_only(sources):
    lib, doc = sources
    texts = gather_texts(("docstring", "readme"), min_words=50, stdlib=lib, doc_root=doc)
    train, held = split_texts(texts, every=2)
    assert sorted(t.key for t in train + held) == sorted(t.key for t in texts)
    assert split_texts(texts[::-1], every=2) == (train[::-1], held[::-1])
    assert [t.key for t in held] == [
        t.key for t in texts if int(hashlib.sha256(t.key.encode()).hexdigest(), 16) % 2 == 0
    ]
    renamed = [Text(t.source, t.key, t.text + " changed") for t in texts]  # the split reads keys, not texts
    assert [t.key for t in split_texts(renamed, every=2)[1]] == [t.key for t in held]
    with pytest.raises(ValueError, match="every"):
        split_texts(texts, every=0)


def test_a_rendered_man_page_line_loses_its_margin_and_justification():
    assert _unjustify("       FileCheck  reads  two files") == "  FileCheck reads two files"
    assert _unjustify("NAME") == "NAME" and _unjustify("") == ""


def test_debian_changelogs_and_copyright_files_are_read_per_package_and_bad_ones_skipped(sources):
    """The fact-dense sources: a package's changelog (gzipped) and copyright file, keyed by package; a corrupt
    changelog and a folder linking to another are skipped."""
    lib, doc = sources
    (doc / "alpha" / "changelog.Debian.gz").write_bytes(gzip.compress(f"alpha (1.2-3) unstable\n\n{WORDS}".encode()))
    (doc / "zed" / "copyright").write_text(f"Files: *\nCopyright: 2020 Zed Person\n\n{WORDS}")
    (doc / "corrupt" / "changelog.Debian.gz").write_bytes(b"not gzip at all")
    texts = gather_texts(("changelog", "copyright"), min_words=50, stdlib=lib, doc_root=doc)
    assert [(t.source, t.key) for t in texts] == [("changelog", "changelog:alpha"), ("copyright", "copyright:zed")]
    assert texts[0].text.startswith("alpha (1.2-3) unstable") and "Zed Person" in texts[1].text
