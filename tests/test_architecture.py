"""The package's shape (ARCHITECTURE.md): rooms import only the rooms below them, no module imports itself
back through others, and every public name of the package, and every module's old name, still imports."""

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmgist"
# the rooms, bottom first: a module imports only from its own room or the rooms before it
ROOMS = [
    ("foundation", ["validate", "metrics", "storage", "layout", "prompt"]),
    ("io", ["io"]),
    ("training loop", ["train"]),
    ("data", ["data"]),
    ("tokenizers", ["tokenizers"]),
    ("vocabulary", ["vocab", "processor"]),
    ("lm", ["lm"]),
    ("gist", ["gist"]),
    ("tasks", ["demo_task"]),
    ("entry points", ["cli", "__init__"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> int:
    first = module.split(".")[1] if "." in module else "__init__"
    return next(n for n, (_, tops) in enumerate(ROOMS) if first in tops)


def imports() -> dict[str, set[str]]:
    """module -> the mmgist modules it imports, at its top or inside a function."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names if not node.module else [None]:
                    sub = f"{target}.{alias.name}" if alias is not None else target
                    found.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() else target)
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found |= {m for m in mods if m == "mmgist" or m.startswith("mmgist.")}
        out[name] = found - {name}
    return out


def test_no_function_runs_past_80_lines_without_saying_why():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().split("\n")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if not lines[first - 2].strip().startswith("# long:"):
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert long == []


def test_every_module_sits_in_a_room():
    for name in imports():
        room(name)  # StopIteration names a module no room holds


def test_no_room_imports_a_room_above_it():
    upward = [
        f"{src} ({ROOMS[room(src)][0]}) imports {dst} ({ROOMS[room(dst)][0]})"
        for src, dsts in imports().items()
        for dst in dsts
        if dst != "mmgist" and room(dst) > room(src)
    ]
    assert upward == []


def test_no_import_cycle():
    graph = imports()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(set(stack[stack.index(nxt) :]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state and node != "mmgist":
            visit(node, [node])
    assert cycles == []


PUBLIC = [
    "Audio",
    "AudioTokenizer",
    "ByteTokenizer",
    "GistCompressor",
    "GistConfig",
    "GistPrefix",
    "HFTextTokenizer",
    "IdLayout",
    "Image",
    "ImageTokenizer",
    "LayoutConstraint",
    "ModalityTokenizer",
    "MultimodalProcessor",
    "OptionScores",
    "Prompt",
    "Question",
    "SharedVocabulary",
    "Text",
    "TextTokenizer",
    "Video",
    "VideoTokenizer",
    "build_lm",
    "compress",
    "compress_many",
    "create_tokenizer",
    "distill_gist",
    "extend_lm",
    "generate",
    "list_aliases",
    "list_tokenizers",
    "load_model",
    "load_pretrained_lm",
    "load_tokenizer",
    "register_tokenizer",
    "save_model",
    "score_options",
    "system_turn",
    "user_turn",
]
# names importable from their modules before the rooms: old module path -> names
OLD_PATHS = {
    "mmgist.lm": ["PRESETS", "build_lm", "extend_lm", "cache_kwargs", "output_cache", "check_model", "context_length",
                  "save_model", "model_dirs", "list_models", "find_model", "load_model"],
    "mmgist.lm_train": ["train_lm"],
    "mmgist.pretrained": ["load_pretrained_lm", "PRETRAINED", "is_available"],
    "mmgist.generate": ["generate", "LayoutConstraint", "StopStrings"],
    "mmgist.scoring": ["Question", "OptionScores", "score_options", "context_ids", "prefix_head", "option_logprobs"],
    "mmgist.chat": ["system_turn", "user_turn", "system_span"],
    "mmgist.manifest": ["TokenShards", "read_manifest", "jsonl_objects"],
    "mmgist.datasets": ["CropAugment", "RandomCrops", "image_files", "gather_photos"],
    "mmgist.audio_data": ["RandomSegments", "gather_audio", "audio_files"],
    "mmgist.video_data": ["RandomClips", "heldout_clips"],
    "mmgist.io": ["load_image", "save_image", "image_to_tensor", "tensor_to_image", "load_audio", "save_audio",
                  "resample", "as_waveform", "load_video", "save_video", "MAX_AUDIO_BYTES", "MAX_VIDEO_PIXELS"],
    "mmgist.video_io": ["load_video", "save_video", "MAX_VIDEO_BYTES"],
    "mmgist.gist.prefix": ["GistPrefix", "KVHead", "kv_of", "kv_cache", "bos_kv"],
    "mmgist.gist.report": ["student_forward", "student_logprobs", "option_logprobs", "fidelity", "greedy_batch"],
    "mmgist.gist.data": ["pad", "Continuations", "Teacher", "sample"],
}  # fmt: skip


def test_the_public_names_import():
    import mmgist

    assert sorted(mmgist.__all__) == sorted(PUBLIC)
    assert all(hasattr(mmgist, name) for name in PUBLIC)


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_names_import_from_their_old_modules(old):
    module = importlib.import_module(old)
    missing = [name for name in OLD_PATHS[old] if not hasattr(module, name)]
    assert missing == []
