"""Real text that installs offline, cut into documents for system prompts: what a gist compressor trains on.

    texts = gather_texts(heldout=[doc["system"] for doc in benchmark_docs])   # list[Text], sorted, deterministic
    train, held = split_texts(texts)                                           # by the SHA-256 of each key
    system = texts[0].system()      # "Answer the user's questions using this document.\n\n" + the text

Sources (each Text names its own, so a card can count them):
    docstring   module, class and function docstrings of Python's standard library, read with `ast` from the
                source files (never imported: some stdlib modules act on import)
    readme      README files of Debian packages under /usr/share/doc (plain or gzipped)
    manpage     section-1 man pages rendered by `man` at 80 columns (when man is installed)
    changelog   Debian changelogs under /usr/share/doc, newest entries first: versions, dates, names and bug
                numbers, the kind of specifics a fact sheet holds (the benchmark's documents are fact sheets)
    copyright   Debian copyright files: who holds which files since when, under which licence

A text is cut at paragraph breaks to at most `max_words` words and kept if it has at least `min_words`.
Texts that share more than `OVERLAP` of their word 8-grams with any of `heldout` are left out, so a benchmark's
documents (a Debian README, a man page, a docstring) are never trained on, excerpts included.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sysconfig
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..validate import positive_int

FRAMING = "Answer the user's questions using this document.\n\n"  # the benchmark's framing of a document
SOURCES = ("docstring", "readme", "manpage", "changelog", "copyright")
OVERLAP = 0.05  # share of a text's word 8-grams found in a held-out text above which the text is left out
SHINGLE = 8  # words per n-gram of the overlap test
HELDOUT_EVERY = 10  # split_texts: a text is held out when its key's SHA-256, as a number, divides by this


@dataclass(frozen=True)
class Text:
    source: str  # one of SOURCES
    key: str  # where it came from: "docstring:json/decoder.py:JSONDecoder", "readme:gzip", "manpage:ls"
    text: str

    def system(self, framing: str = FRAMING) -> str:
        """The text as a system prompt: `framing` then the text."""
        return framing + self.text

    @property
    def words(self) -> int:
        return len(self.text.split())


def gather_texts(
    sources: tuple[str, ...] = SOURCES,
    heldout: list[str] = (),
    min_words: int = 120,
    max_words: int = 400,
    limit: int | None = None,
    stdlib: str | os.PathLike | None = None,
    doc_root: str | os.PathLike = "/usr/share/doc",
) -> list[Text]:
    """Texts of `sources` (see the module's docstring), each cut to `max_words` at a paragraph break and kept
    with at least `min_words`, none overlapping `heldout` and no text twice; per source, in the order of the
    SHA-256 of their keys (a spread over modules, packages and pages, the same on every machine) and at most
    `limit` of them (man pages are rendered only until then: all of them take long). `stdlib` is the
    standard library's folder (default this Python's)."""
    positive_int(min_words, "min_words")
    positive_int(max_words, "max_words")
    if limit is not None:
        positive_int(limit, "limit")
    if min_words > max_words:
        raise ValueError(f"min_words ({min_words}) must not exceed max_words ({max_words})")
    if unknown := [s for s in sources if s not in SOURCES]:
        raise ValueError(f"unknown text sources {unknown}; expected some of {SOURCES}")
    readers = {
        "docstring": lambda: stdlib_docstrings(stdlib or sysconfig.get_paths()["stdlib"]),
        "readme": lambda: debian_readmes(doc_root),
        "changelog": lambda: debian_docs(doc_root, "changelog", ("changelog.Debian.gz", "changelog.Debian")),
        "copyright": lambda: debian_docs(doc_root, "copyright", ("copyright",)),
        "manpage": lambda: man_pages(order=_by_hash),
    }
    held = set().union(*(shingles(h) for h in heldout)) if heldout else set()
    out, seen = [], set()
    for source in sources:
        kept = []
        items = readers[source]()
        if source != "manpage":  # man pages come in hash order already, rendered lazily
            items = sorted(items, key=lambda kv: _by_hash(kv[0]))
        for key, raw in items:
            text = cut_words(tidy(raw), max_words)
            if len(text.split()) < min_words or text in seen or (held and overlap(text, held) > OVERLAP):
                continue
            seen.add(text)
            kept.append(Text(source, key, text))
            if limit is not None and len(kept) >= limit:
                break
        out += kept
    return out


def _by_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_texts(texts: list[Text], every: int = HELDOUT_EVERY) -> tuple[list[Text], list[Text]]:
    """(train, held out): a text is held out when the SHA-256 of its key, read as a number, divides by
    `every`, the same on every machine."""
    positive_int(every, "every")
    held = lambda t: int(hashlib.sha256(t.key.encode()).hexdigest(), 16) % every == 0  # noqa: E731
    return [t for t in texts if not held(t)], [t for t in texts if held(t)]


def stdlib_docstrings(root: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """(key, docstring) of every module, class and function in the .py files under `root` (tests, idlelib
    and site-packages skipped), parsed with `ast`, never imported; files in sorted order."""
    root = Path(root)
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if re.search(r"(^|/)(tests?|idlelib|site-packages|lib2to3)/", rel) or "/test_" in rel:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        if doc := ast.get_docstring(tree):
            yield f"docstring:{rel}", doc
        yield from _nested_docstrings(tree, f"docstring:{rel}:")


def _nested_docstrings(node: ast.AST, prefix: str) -> Iterator[tuple[str, str]]:
    """(prefix + qualified name, docstring) of the classes and functions inside `node`, depth first."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if doc := ast.get_docstring(child):
                yield prefix + child.name, doc
            yield from _nested_docstrings(child, prefix + child.name + ".")


def debian_readmes(root: str | os.PathLike = "/usr/share/doc") -> Iterator[tuple[str, str]]:
    """(key, text) of each package's README under `root` (README, README.md, README.txt, gzipped or not); a
    package folder that is a link to another is skipped (its README is the other's)."""
    names = ("README", "README.md", "README.txt", "README.gz", "README.md.gz", "README.txt.gz")
    yield from debian_docs(root, "readme", names)


def debian_docs(root: str | os.PathLike, source: str, names: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """("source:package", text) of the first of `names` (gzipped when it ends in .gz) in each package folder
    under `root`; folders that link to another are skipped, and so is a file that is unreadable, corrupt or
    not UTF-8."""
    for folder in sorted(Path(root).glob("*")):
        if folder.is_symlink():
            continue
        for name in names:
            path = folder / name
            if not path.is_file():
                continue
            try:
                data = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
                text = data.decode("utf-8")
            except (OSError, EOFError, UnicodeDecodeError, zlib.error):
                break  # unreadable, corrupt or not UTF-8: skipped
            yield f"{source}:{folder.name}", text
            break


def man_pages(
    section: str = "/usr/share/man/man1", order: Callable[[str], str] | None = None
) -> Iterator[tuple[str, str]]:
    """(key, text) of each man page in `section` (links to other pages skipped), rendered lazily by `man` at 80
    columns in the C.UTF-8 locale; keys sorted by `order` (default: by name); none without `man`."""
    man = shutil.which("man")
    if man is None or not Path(section).is_dir():
        return
    env = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8"}
    pages = {f"manpage:{p.name.split('.')[0]}": p for p in sorted(Path(section).glob("*.1*")) if not p.is_symlink()}
    for key in sorted(pages, key=order):
        try:
            done = subprocess.run([man, "-P", "cat", "-l", str(pages[key])], capture_output=True, env=env, timeout=60)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"man took over 60 s to render {str(pages[key])!r}") from None
        except OSError:
            continue
        if done.returncode == 0:
            text = re.sub(r".\x08", "", done.stdout.decode("utf-8", "replace"))  # overstrike bold and underline
            text = "\n".join(_unjustify(line) for line in text.split("\n"))
            yield key, text


def _unjustify(line: str) -> str:
    """A rendered man page's line with its 7-space margin made 2 and its justification spaces made one."""
    body = line.lstrip(" ")
    return " " * max(0, len(line) - len(body) - 5) + re.sub(r"(?<=\S) {2,}(?=\S)", " ", body)


def tidy(text: str) -> str:
    """Lines stripped of trailing space, runs of blank lines made one, doctest lines dropped."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if not line.lstrip().startswith((">>>", "..."))]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def cut_words(text: str, max_words: int) -> str:
    """The longest run of whole paragraphs from the start with at most `max_words` words (the first paragraph
    cut at a line, then a word, when it alone is longer)."""
    out, words = [], 0
    for para in text.split("\n\n"):
        n = len(para.split())
        if words + n > max_words:
            if not out:  # one long paragraph: keep whole lines, then words
                for line in para.split("\n"):
                    if words + len(line.split()) > max_words:
                        break
                    out.append(line)
                    words += len(line.split())
                return "\n".join(out) if out else " ".join(para.split()[:max_words])
            break
        out.append(para)
        words += n
    return "\n\n".join(out)


def shingles(text: str, n: int = SHINGLE) -> set[tuple[str, ...]]:
    """The text's word n-grams, lower-cased, punctuation kept."""
    words = text.lower().split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def overlap(text: str, held: set[tuple[str, ...]]) -> float:
    """The share of `text`'s word n-grams that are in `held` (0 for a text shorter than one n-gram)."""
    mine = shingles(text)
    return len(mine & held) / len(mine) if mine else 0.0
