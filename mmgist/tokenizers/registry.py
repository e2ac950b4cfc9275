"""The tokenizer registry: names to classes, and names to trained folders in the zoo.

    @register_tokenizer("image-vq")
    class ImageVQTokenizer(ImageTokenizer): ...

    create_tokenizer("image-vq", preset="f8")   # a fresh, untrained instance
    load_tokenizer("image-vq-f8")               # a trained one from the zoo (or any folder path)
    list_tokenizers("image-*")                  # registered names

Third-party packages add tokenizers without editing mmgist by declaring an entry point in the
group `mmgist.tokenizers` (pyproject: `[project.entry-points."mmgist.tokenizers"] my-tok =
"my_pkg.tok:MyTokenizer"`). Entry points are loaded the first time the registry is read; a class
that is not already registered is registered under the entry point's name.

Pretrained models that transformers implements are tokenizers too (hf_audio, hf_image): give the
wrapper's name and the model folder, or the folder alone, or an alias of a well-known model that the
user already has in the local Hugging Face cache (never downloaded):

    load_tokenizer("hf-audio", path="/models/encodec_24khz", bandwidth=1.5)
    load_tokenizer("/models/encodec_24khz")      # a transformers folder: its model_type picks the wrapper
    load_tokenizer("encodec-24khz")               # alias: hf-audio, path="facebook/encodec_24khz"
    list_aliases()

A tokenizer loaded from the zoo remembers its name (`tok.zoo_name`): a saved vocabulary then refers to
it by name and fingerprint instead of copying its weights.

The zoo: trained tokenizers live in folders named after them (`config.json`, `model.safetensors`,
`README.md`). Searched in order: the folders in $MMGIST_ZOO (os.pathsep-separated), the repository's
top-level `tokenizers/` (a checkout or editable install), and `<prefix>/share/mmgist/tokenizers`
(a wheel install).
"""

from __future__ import annotations

import fnmatch
import os
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .base import ModalityTokenizer
from .hf_folder import read_model_config

ENTRY_POINT_GROUP = "mmgist.tokenizers"
_REGISTRY: dict[str, type[ModalityTokenizer]] = {}
_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {}  # alias -> (registered name, options)
_plugins_loaded = False


def register_tokenizer(name: str):
    """Class decorator: make `cls` available as `name`. A name can be registered once."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"tokenizer name must be a non-empty string without surrounding spaces, got {name!r}")

    def decorator(cls: type[ModalityTokenizer]) -> type[ModalityTokenizer]:

        if not (isinstance(cls, type) and issubclass(cls, ModalityTokenizer)):
            raise TypeError(f"@register_tokenizer({name!r}) needs a ModalityTokenizer subclass, got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            old = _REGISTRY[name]
            raise ValueError(f"tokenizer name {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def register_alias(alias: str, name: str, **options: Any) -> None:
    """Make `load_tokenizer(alias)` mean `load_tokenizer(name, **options)` (options given there win).
    A zoo tokenizer of the same name is found first."""
    if name not in _REGISTRY:
        raise ValueError(f"alias {alias!r} names {name!r}, which is not a registered tokenizer {sorted(_REGISTRY)}")
    if alias in _ALIASES and _ALIASES[alias] != (name, options):
        raise ValueError(f"tokenizer alias {alias!r} is already registered as {_ALIASES[alias]}")
    _ALIASES[alias] = (name, options)


def list_aliases(pattern: str = "*") -> dict[str, tuple[str, dict[str, Any]]]:
    """Aliases matching `pattern`: alias -> (registered name, options)."""
    _load_plugins()
    return {a: v for a, v in sorted(_ALIASES.items()) if fnmatch.fnmatchcase(a, pattern)}


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as e:  # a broken plugin must not break mmgist for everyone else
            warnings.warn(f"mmgist tokenizer plugin {ep.name!r} ({ep.value}) failed to load: {e}", stacklevel=2)
            continue
        if isinstance(obj, type) and issubclass(obj, ModalityTokenizer) and obj not in _REGISTRY.values():
            register_tokenizer(ep.name)(obj)


def list_tokenizers(pattern: str = "*") -> list[str]:
    """Registered tokenizer names matching a shell-style `pattern`, sorted."""
    _load_plugins()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_tokenizer_class(name: str) -> type[ModalityTokenizer]:
    """The class registered as `name`; an unknown name lists the valid ones."""
    _load_plugins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown tokenizer {name!r}; registered tokenizers: {list_tokenizers()}")
    return _REGISTRY[name]


def create_tokenizer(name: str, **config: Any) -> ModalityTokenizer:
    """A new (untrained) tokenizer of registered type `name`, configured by keyword arguments."""
    cls = get_tokenizer_class(name)
    return cls(cls.make_config(**config))


def zoo_dirs() -> list[Path]:
    """The folders searched for trained tokenizers, in order."""
    dirs = [Path(p) for p in os.environ.get("MMGIST_ZOO", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "tokenizers")
    dirs.append(Path(sys.prefix) / "share" / "mmgist" / "tokenizers")
    return dirs


def list_zoo() -> list[str]:
    """Names of the trained tokenizers found in the zoo folders."""
    names = {p.name for d in zoo_dirs() if d.is_dir() for p in d.iterdir() if (p / "config.json").is_file()}
    return sorted(names)


def load_tokenizer(name_or_path: str | os.PathLike[str], **options: Any) -> ModalityTokenizer:
    """Load a tokenizer from a folder path, a zoo name, an alias, or a registered name: one that needs no
    saved files, or a wrapper of pretrained models given `path=` and its options (see the module docstring)."""

    if not isinstance(name_or_path, (str, os.PathLike)) or str(name_or_path) == "":
        raise TypeError(f"load_tokenizer takes a tokenizer name or a folder path, got {name_or_path!r:.60}")
    _load_plugins()
    path = Path(name_or_path)
    name = str(name_or_path)
    if path.is_dir() and ((path / "config.json").is_file() or name not in _ALIASES):
        if _is_transformers_folder(path):
            if "path" in options:
                raise TypeError(f"load_tokenizer({name!r}) takes the model folder as its argument; drop path=")
            return _wrapper_for(path).open(path=str(path), **options)
        tok = ModalityTokenizer.from_pretrained(path, **options)
        if any(path.resolve().parent == d.resolve() for d in zoo_dirs() if d.is_dir()):
            tok.zoo_name = path.name  # a zoo folder given by path is still a zoo tokenizer
        return tok
    for d in zoo_dirs():
        if (d / name / "config.json").is_file():
            tok = ModalityTokenizer.from_pretrained(d / name, **options)
            tok.zoo_name = name
            return tok
    if name in _ALIASES:
        target, preset = _ALIASES[name]
        return load_tokenizer(target, **{**preset, **options})
    if name in _REGISTRY and _REGISTRY[name].opens_folders:
        return _REGISTRY[name].open(**options)
    if name in _REGISTRY and not _REGISTRY[name].requires_pretrained:
        return create_tokenizer(name, **options)
    untrained = [n for n, c in sorted(_REGISTRY.items()) if not c.requires_pretrained]
    wrappers = [n for n, c in sorted(_REGISTRY.items()) if c.opens_folders]
    raise ValueError(
        f"cannot load tokenizer {name!r}: it is not a folder, not a trained tokenizer in the zoo "
        f"{list_zoo()} (searched {[str(d) for d in zoo_dirs()]}), not an alias {sorted(_ALIASES)}, not a "
        f"wrapper of pretrained models {wrappers} (which take path=), and not a registered tokenizer that "
        f"can be built without saved files {untrained}"
    )


def _is_transformers_folder(path: Path) -> bool:
    """A folder whose config.json is a transformers model config (model_type), not an mmgist header."""
    import json

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and "model_type" in config and "format" not in config


def _wrapper_for(path: Path) -> type[ModalityTokenizer]:
    """The registered wrapper whose `model_types` include the folder's model_type."""

    model_type, _ = read_model_config(path)
    for cls in _REGISTRY.values():
        if model_type in getattr(cls, "model_types", ()):
            return cls
    supported = {n: list(getattr(c, "model_types", ())) for n, c in sorted(_REGISTRY.items()) if c.opens_folders}
    raise ValueError(
        f"{str(path)!r} holds a transformers {model_type!r} model, which no tokenizer wraps; supported model "
        f"types: {supported}"
    )


ModalityTokenizer.class_named = staticmethod(get_tokenizer_class)  # what from_pretrained on the base class uses
