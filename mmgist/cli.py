"""mmgist from the shell: tokenize prompts, train tokenizers and models, distill gists and generate.

Every error is one line on stderr (`mmgist CMD: error: ...`) and exit code 2; `mmgist --debug CMD ...`
shows the traceback instead. Arguments (numbers, input files, output paths) are checked before
any work starts, so a long run never fails at its end for a bad --out.

    mmgist tokenizers [PATTERN]                         registered tokenizers and the trained zoo
    mmgist vocab --text byte --image image-vq-f8 --out DIR   build and save a shared vocabulary
    mmgist encode --vocab DIR PROMPT.json               ids of a prompt, as JSON
    mmgist decode --vocab DIR IDS.json [--media-dir D]  the prompt behind ids; media written to D
    mmgist train-tokenizer image --data DIR --preset f8 --steps N --out DIR    train an image tokenizer
    mmgist train-tokenizer audio --data DIR --steps N --out DIR                train an audio tokenizer
    mmgist train-tokenizer video --data DIR --init image-vq-f8 --out DIR      train a video tokenizer (photo clips)
    mmgist train-lm --manifest M.jsonl (--vocab DIR | --model DIR) --steps N --out DIR   train the LM
    mmgist distill PREFIX.json --model DIR --k 4 --out gist.safetensors        compress a prefix into k gist tokens
    mmgist distill PREFIXES.jsonl --model DIR --k 4 --out DIR                   one gist per line (torchrun shards)
    mmgist generate --model DIR [--gist G.safetensors] "query"                continue a query (after a gist)

A prompt file is a JSON list of text and media paths (PROMPT_FILES, printed below). The --model of
distill and generate is a model folder or the name of a pretrained LM (`mmgist.pretrained.PRETRAINED`,
e.g. smollm2-135m-instruct).
With --chat (an instruct model), the prefix is a UTF-8 text file that becomes the system turn and each
query a user turn of the model's chat template; `distill` has the model study its system turn first
(`chat_study`: questions it writes, from openers and about each chunk, and reconstruction rows that quote
the turn back; --study-questions, --chunk-questions, --no-reconstruction, --no-study) and k follows the
turn's length unless --k is given:

    mmgist distill doc.txt --model smollm2-135m-instruct --chat --out doc.gist
    mmgist generate --model smollm2-135m-instruct --chat --gist doc.gist "What does it say about X?"
    mmgist generate --model smollm2-135m-instruct --chat --system doc.txt "What does it say about X?"
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import math
import shutil
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import Prompt, SharedVocabulary, list_aliases, list_tokenizers, load_tokenizer
from .data.images import CropAugment
from .gist import (
    CompressorConfig,
    GistCompressor,
    GistConfig,
    GistPrefix,
    StudyConfig,
    chat_config,
    chat_study,
    compressor_study,
    distill_gist,
    gist_tokens_for,
    train_compressor,
)
from .gist.batch import distill_many, read_prefixes
from .gist.report import summary
from .io import image_to_tensor, load_audio, load_image, load_video, save_audio, save_image, save_video
from .lm.chat import system_turn, user_turn
from .lm.generate import generate
from .lm.model import PRESETS, build_lm, find_model, list_models, load_model
from .lm.pretrained import PRETRAINED, load_pretrained_lm
from .lm.train import train_lm
from .prompt import Audio, Video
from .storage import read_json
from .tokenizers.code_space import CodeSpaceCollapsedError
from .tokenizers.registry import list_zoo
from .tokenizers.train_audio import train_audio_tokenizer
from .tokenizers.train_image import train_image_tokenizer
from .tokenizers.train_video import train_video_tokenizer
from .train import TrainConfig
from .validate import existing_dir, existing_file, writable

PROMPT_FILES = """\
A prompt file is a JSON list of its segments in order: strings, and {"image": PATH}, {"audio": PATH} or
{"video": PATH} objects. Paths are relative to the prompt file; a video is read at 8 frames per second.
For example, photo.json beside cat.jpg:
    ["Q: what colour is the cat? ", {"image": "cat.jpg"}, " A:"]
"""

# What a user can cause: reported as one line. Anything else is a bug in mmgist, reported the same way
# but with its type and a pointer to --debug.
# errors a user's input or settings cause (ModuleNotFoundError: an extra to install; CodeSpaceCollapsedError: a
# training run stopped by its own check, with the figures), printed as their message alone
USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError, ModuleNotFoundError, CodeSpaceCollapsedError)


def _load_prompt(path: Path) -> Prompt:
    items = read_json(path, "prompt file")
    if not isinstance(items, list):
        raise ValueError(f"{str(path)!r} must hold a JSON list of strings and {{'image': path}} objects")
    out = []
    for k, item in enumerate(items):
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and set(item) == {"image"} and isinstance(item["image"], str):
            out.append(image_to_tensor(load_image(path.parent / item["image"])))
        elif isinstance(item, dict) and set(item) == {"audio"} and isinstance(item["audio"], str):
            out.append(Audio(*load_audio(path.parent / item["audio"])))
        elif isinstance(item, dict) and set(item) == {"video"} and isinstance(item["video"], str):
            out.append(Video(*load_video(path.parent / item["video"], fps=8)))
        else:
            raise ValueError(
                f"item {k} of {str(path)!r} is {item!r}; expected a string, {{'image': path}}, {{'audio': path}} "
                "or {'video': path}"
            )
    return Prompt(out)


MODEL_HELP = "a model folder, a shipped model's name (demo-photo-qa) or a pretrained LM's name (smollm2-135m-instruct)"


def _load_model(name_or_folder: str):
    """(model, vocab) from a model folder, a shipped model's name or a pretrained LM's name."""
    if name_or_folder in PRETRAINED and not Path(name_or_folder).exists():
        return load_pretrained_lm(name_or_folder)
    try:
        folder = find_model(name_or_folder)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"--model {name_or_folder!r} is neither a model folder, a shipped model ({list_models()}) nor a "
            f"pretrained LM ({sorted(PRETRAINED)})"
        ) from None
    return load_model(existing_dir(folder, "--model"))


def _read_text(path: str, what: str) -> str:
    file = existing_file(path, what)
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {str(file)!r} is not UTF-8 text: {e}") from e


def cmd_tokenizers(args: argparse.Namespace) -> None:
    match = lambda name: fnmatch.fnmatchcase(name, args.pattern)  # noqa: E731
    print("registered:", " ".join(list_tokenizers(args.pattern)) or "(none)")
    print("trained (zoo):", " ".join(n for n in list_zoo() if match(n)) or "(none)")
    aliases = ", ".join(f"{a} ({o['path']})" for a, (_, o) in list_aliases().items() if match(a)) or "(none)"
    print("pretrained aliases (from your Hugging Face cache, never downloaded):", aliases)


def cmd_vocab(args: argparse.Namespace) -> None:
    out = writable(args.out, "--out", folder=True)
    if (out / "mmgist_vocab.json").exists() and not args.force:
        raise FileExistsError(f"{str(out)!r} already holds a vocabulary; pass --force to overwrite")
    toks = {m: load_tokenizer(getattr(args, m)) for m in ("text", "image", "audio", "video") if getattr(args, m)}
    vocab = SharedVocabulary(**toks)
    vocab.save_pretrained(out)
    print(f"wrote {out}: {vocab}")
    print(vocab.layout.describe())


def cmd_encode(args: argparse.Namespace) -> None:
    prompt_file = existing_file(args.prompt, "prompt file")
    vocab = SharedVocabulary.from_pretrained(existing_dir(args.vocab, "--vocab"))
    print(json.dumps(vocab.encode(_load_prompt(prompt_file), add_bos=args.bos, add_eos=args.eos)))


def cmd_decode(args: argparse.Namespace) -> None:
    ids_file = existing_file(args.ids, "ids file")
    if args.media_dir is not None:
        writable(args.media_dir, "--media-dir", folder=True)
    vocab = SharedVocabulary.from_pretrained(existing_dir(args.vocab, "--vocab"))
    ids = read_json(ids_file, "ids file")
    if not isinstance(ids, list):
        raise ValueError(f"ids file {str(ids_file)!r} must hold a JSON list of ints, got {type(ids).__name__}")
    prompt = vocab.decode(ids, media=args.media_dir is not None)
    for k, seg in enumerate(prompt):
        if seg.modality == "text":
            print(f"[{k}] text: {seg.text!r}")
        else:
            print(f"[{k}] {seg.modality}: codes {tuple(seg.codes.shape)}")
            if args.media_dir is None:
                continue
            path = (
                Path(args.media_dir) / f"segment{k}.{ {'image': 'png', 'audio': 'wav', 'video': 'gif'}[seg.modality] }"
            )
            if seg.modality == "image":
                save_image(seg.pixels, path)
            elif seg.modality == "audio":
                save_audio(path, seg.waveform, seg.sample_rate)
            else:
                save_video(path, seg.frames, seg.fps)
            print(f"    wrote {path}")


def _training_output(args: argparse.Namespace, marker: str, what: str) -> Path:
    """--out of a training command: refused if it holds `what` unless --force, which also starts the run over."""
    out = writable(args.out, "--out", folder=True)
    if (out / marker).exists() and not args.force:
        raise FileExistsError(f"{str(out)!r} already holds {what}; pass --force to overwrite")
    if args.force:  # start over: an earlier run's checkpoint (out/../.NAME-run) must not be resumed
        shutil.rmtree(out.parent / f".{out.name}-run", ignore_errors=True)
    return out


def cmd_train_tokenizer(args: argparse.Namespace) -> None:
    existing_dir(args.data, "--data")
    out = _training_output(args, "config.json", "a tokenizer")
    if args.modality == "video":
        _train_video(args, out)
        return
    quantizers = {"image": ("vq", "fsq", "plain-vq"), "audio": ("rvq", "rfsq", "plain-rvq")}[args.modality]
    if args.quantizer and args.quantizer not in quantizers:
        raise ValueError(
            f"--quantizer {args.quantizer!r} is not an {args.modality} quantizer; choose one of {quantizers}"
        )
    extra = {"quantizer": args.quantizer} if args.quantizer else {}
    if args.codebook_size:
        extra["codebook_size"] = args.codebook_size
    if args.code_dim:
        extra["code_dim"] = args.code_dim
    if args.channels:
        try:
            extra["channels"] = tuple(int(c) for c in args.channels.split(","))
        except ValueError:
            raise ValueError(
                f"--channels must be comma-separated ints such as 48,96,128, got {args.channels!r}"
            ) from None
    if args.lookup:
        extra["lookup"] = args.lookup
    if args.latent_weight is not None:
        extra["latent_weight"] = args.latent_weight
    if args.modality == "audio":
        _train_audio(args, out, extra)
        return
    if args.lab_weight is not None:
        extra["lab_weight"] = args.lab_weight
    if args.spread_weight is not None:
        extra["spread_weight"] = args.spread_weight

    if args.loss == "mse":
        extra.update(l1_weight=0.0, colour_weight=0.0, edge_weight=0.0, mse_weight=1.0)
    augments = {"colour": CropAugment.colour(), "natural": CropAugment.natural(), "scale": CropAugment(min_scale=0.25)}
    augment = augments.get(args.augment)  # "none": None
    result = train_image_tokenizer(
        args.data,
        out,
        preset=args.preset or "f8",
        steps=args.steps,
        batch_size=args.batch_size or 16,
        crop_size=args.crop_size,
        lr=args.lr,
        seed=args.seed,
        augment=augment,
        init=args.init,
        min_live_dims=args.min_live_dims,
        min_colour_r2=args.min_colour_r2,
        **extra,
    )
    _print_done(result.train)


def _print_done(train) -> None:
    if train.history:
        print(f"done: {train.steps} steps, {train.wall_seconds:.0f} s; last: {train.history[-1]}")


def _train_audio(args: argparse.Namespace, out: Path, extra: dict) -> None:
    if args.num_codebooks:
        extra["num_codebooks"] = args.num_codebooks
    weights = None
    if args.kind_weights:
        try:
            weights = {k: float(v) for k, v in (item.split("=") for item in args.kind_weights.split(","))}
        except ValueError:
            raise ValueError(f"--kind-weights must look like speech-en=2,music=1, got {args.kind_weights!r}") from None
    result = train_audio_tokenizer(
        args.data,
        out,
        preset=args.preset or "16k-50hz",
        steps=args.steps,
        batch_size=args.batch_size or 8,
        seconds=args.seconds,
        lr=args.lr,
        seed=args.seed,
        weights=weights,
        **extra,
    )
    _print_done(result.train)


def _train_video(args: argparse.Namespace, out: Path) -> None:
    result = train_video_tokenizer(
        args.data,
        out,
        init=args.init or "image-vq-f8",
        preset=args.preset or "f8t4",
        steps=args.steps,
        batch_size=args.batch_size or 8,
        frames=args.frames,
        size=args.crop_size,
        lr=args.lr,
        seed=args.seed,
        start=args.start,
        train_decoder=args.train_decoder,
        **({"pixel_weight": args.pixel_weight} if args.pixel_weight is not None else {}),
    )
    _print_done(result.train)


def cmd_train_lm(args: argparse.Namespace) -> None:
    import torch

    if (args.vocab is None) == (args.model is None):
        raise ValueError("pass exactly one of --vocab (a new model) or --model (continue training a saved one)")
    if args.preset not in PRESETS:
        raise ValueError(f"unknown --preset {args.preset!r}; choose one of {list(PRESETS)}")
    existing_file(args.manifest, "--manifest")
    existing_dir(args.model or args.vocab, "--model" if args.model else "--vocab")
    out = _training_output(args, "mmgist_vocab.json", "a model")
    torch.manual_seed(args.seed)  # before the model is built: its initial weights follow --seed
    if args.model:
        model, vocab = load_model(args.model)
    else:
        vocab = SharedVocabulary.from_pretrained(args.vocab)
        model = build_lm(vocab, preset=args.preset)
    result = train_lm(
        model, vocab, args.manifest, out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed
    )
    if result.history:
        print(f"done: {result.steps} steps, {result.wall_seconds:.0f} s; last: {result.history[-1]}")


def cmd_distill(args: argparse.Namespace) -> None:
    names = ("target", "self_study", "stopping", "steps", "lr", "hidden_weight")
    chosen = {name: getattr(args, name) for name in names}
    extra = {name: value for name, value in chosen.items() if value is not None}  # else the config's defaults
    make = chat_config if args.chat else GistConfig  # chat: the model's own questions are the data
    config = make(num_gist_tokens=args.k or 4, seed=args.seed, **extra)
    study_options = {
        "--study-questions": args.study_questions,
        "--chunk-questions": args.chunk_questions,
        "--no-reconstruction": args.no_reconstruction or None,
        "--no-study": args.no_study or None,
    }
    if not args.chat and (given := [name for name, v in study_options.items() if v is not None]):
        raise ValueError(f"{given[0]} needs --chat (an instruct model studying its own system turn)")
    if args.chat and args.no_study and not args.query:
        raise ValueError("--chat needs questions to learn from: leave out --no-study (the model studies its system "
                         "turn) or give --query")  # fmt: skip
    study_config = None
    if args.chat and not args.no_study:
        fields = {"questions": args.study_questions, "chunk_questions": args.chunk_questions}
        study_config = StudyConfig(**{name: v for name, v in fields.items() if v is not None},
                                   **({"reconstruction": False} if args.no_reconstruction else {}))  # fmt: skip
    prefix_file = existing_file(args.prefix, "prefix file")
    many = args.prefix.endswith(".jsonl")
    if many and args.chat:
        raise ValueError("--chat takes one text file as the system prompt, not a .jsonl of prefixes")
    out = writable(args.out, "--out", folder=many)  # checked before the model is loaded and anything distilled
    if not many and out.exists() and not args.force:
        raise FileExistsError(f"{str(out)!r} exists; pass --force to overwrite")
    prefix = _read_text(args.prefix, "prefix file") if args.chat else None
    model, vocab = _load_model(args.model)
    if many:
        written = distill_many(model, vocab, prefix_file, out, config)
        print(f"wrote {len(written)} gist files to {out}")
        return
    wrap = (lambda q: user_turn(vocab, q)) if args.chat else (lambda q: Prompt([q]))
    queries = [wrap(q) for q in args.query]
    forced = None
    if args.chat:
        system, prefix = prefix, system_turn(vocab, prefix)
        if args.k is None:  # one position per TOKENS_PER_GIST prompt tokens
            k = gist_tokens_for(len(vocab.encode(prefix)), model=model)
            config = dataclasses.replace(config, num_gist_tokens=k)
        if study_config is not None:
            study = chat_study(model, vocab, system, study_config)
            queries += study.queries
            forced = study.forced
            print(f"studied the system turn in {study.seconds:.0f} s: {len(study.questions)} questions, "
                  f"{len(study.forced)} reconstruction rows; k = {config.num_gist_tokens}")  # fmt: skip
        if len(queries) < 8:  # one answer per question leaves too few rows to hold one out: sample more of each
            config = dataclasses.replace(config, num_continuations=-(-8 // len(queries)))
    gist = distill_gist(
        model,
        vocab,
        prefix if args.chat else _load_prompt(prefix_file),
        config,
        queries=queries or None,
        heldout_queries=[wrap(q) for q in args.heldout_query] or None,
        progress=True,
        forced=forced,
    )
    gist.save(out)

    print(f"wrote {out}: " + summary(gist.report))


def cmd_train_compressor(args: argparse.Namespace) -> None:
    existing_file(args.prefixes, "prefixes file")
    out = writable(args.out, "--out", folder=True)
    if (out / "compressor.json").exists() and not args.force:
        raise FileExistsError(f"{str(out)!r} holds a compressor; pass --force to overwrite")
    prefixes = [prefix for _, prefix, _, _ in read_prefixes(args.prefixes)]
    model, vocab = _load_model(args.model)
    study = compressor_study(model, vocab, prefixes, GistConfig(self_study=args.self_study), exclude=args.exclude,
                             progress=True)  # fmt: skip
    compressor = GistCompressor(model, CompressorConfig(num_gist_tokens=args.k, lora_rank=args.lora_rank,
                                                        seed=args.seed))  # fmt: skip
    train = TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=min(20, args.steps - 1), seed=args.seed)
    result = train_compressor(compressor, vocab, study, train, out / "run")
    compressor.save(out)
    print(f"wrote {out}: a compressor of k={args.k} from {len(prefixes)} prefixes, {result.steps} steps, final KL "
          f"{result.history[-1]['kl']:.3f} (checkpoint in {out / 'run'}: rerun to resume)")  # fmt: skip


def cmd_compress(args: argparse.Namespace) -> None:
    prompt_file = existing_file(args.prompt, "prompt file")
    out = writable(args.out, "--out")
    if out.exists() and not args.force:
        raise FileExistsError(f"{str(out)!r} exists; pass --force to overwrite")
    model, vocab = _load_model(args.model)
    gist = GistCompressor.load(args.compressor, model).compress(vocab, _load_prompt(prompt_file))
    gist.save(out)
    print(f"wrote {out}: k={gist.k} compressed from {gist.prefix_length} prefix tokens in one pass")


def cmd_generate(args: argparse.Namespace) -> None:
    if args.gist:
        existing_file(args.gist, "--gist")
    if args.system and not args.chat:
        raise ValueError("--system needs --chat (it becomes the system turn of the model's chat template)")
    if args.system and args.gist:
        raise ValueError("give --system or --gist, not both: the gist stands in for the system turn")
    prompt_file = args.query.endswith(".json") and Path(args.query).is_file()
    if prompt_file and args.chat:
        raise ValueError(f"--chat takes the user's message as text, not the prompt file {args.query!r}")
    system = _read_text(args.system, "--system") if args.system else None
    model, vocab = _load_model(args.model)
    gist = GistPrefix.load(args.gist, model=model, vocab=vocab) if args.gist else None
    query = _load_prompt(Path(args.query)) if prompt_file else args.query
    if args.chat:
        query = user_turn(vocab, query)
    if system is not None:
        query = system_turn(vocab, system) + query
    out = generate(model, vocab, query, max_new_tokens=args.max_new_tokens, gist=gist, stop=args.stop or None)
    print(out.text() if all(s.modality == "text" for s in out) else out)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line on stderr (and exit code 2) like every other error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, minimum: float, what: str):
    """An argparse type: an int or a finite float >= minimum (> 0 when minimum is 0.0 for floats)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if (kind is float and not math.isfinite(value)) or value < minimum or (kind is float and value <= 0):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


POSITIVE_INT = _number(int, 1, "a positive int")
NON_NEGATIVE_INT = _number(int, 0, "an int >= 0")
POSITIVE_FLOAT = _number(float, 0.0, "a positive finite number")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Help that keeps the epilog's layout and shows each option's default where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _tokenizers_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="only names matching this glob, e.g. 'image*' (default *)")


def _vocab_arguments(p: argparse.ArgumentParser) -> None:
    for m in ("text", "image", "audio", "video"):
        p.add_argument(f"--{m}", default="byte" if m == "text" else None, help=f"{m} tokenizer: a name or a folder")
    p.add_argument("--out", required=True, help="the vocabulary folder to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing vocabulary")


def _encode_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help="a prompt file (see below)")
    p.add_argument("--vocab", required=True, help="a vocabulary folder (mmgist vocab), or a model folder")
    p.add_argument("--bos", action="store_true", help="begin the ids with <|bos|>")
    p.add_argument("--eos", action="store_true", help="end the ids with <|eos|>")


def _decode_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", help="a JSON file holding a list of ids (what encode prints)")
    p.add_argument("--vocab", required=True, help="the vocabulary folder the ids are of")
    p.add_argument("--media-dir", help="decode media segments and write them here (png, wav, gif)")


def _train_tokenizer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("modality", choices=["image", "audio", "video"], help="what the tokenizer codes")
    p.add_argument("--data", required=True, help="folder of training images (also for video clips) or audio files")
    p.add_argument("--out", required=True, help="the tokenizer folder to write")
    p.add_argument("--preset", help="image: f8 (default), f16; audio: 16k-50hz (default); video: f8t4 (default)")
    p.add_argument("--quantizer", help="image: vq (default), fsq, plain-vq; audio: rvq (default), rfsq, plain-rvq")
    p.add_argument("--codebook-size", type=POSITIVE_INT, help="codes per codebook (default: the preset's)")
    p.add_argument("--code-dim", type=POSITIVE_INT, help="lookup dimension of the 'vq' quantizer (default 8)")
    p.add_argument("--channels", help="encoder/decoder widths per level, comma-separated (default: the preset's)")
    p.add_argument("--lookup", choices=["cosine", "euclidean"], help="'vq' and 'rvq': how a latent finds its code")
    p.add_argument("--latent-weight", type=float, help="'vq' and 'rvq': weight of a code's error on what it stands for")
    p.add_argument("--lab-weight", type=float, help="image: weight of the CIELAB a*b* term on 4x4 local means")
    p.add_argument("--spread-weight", type=float, help="image: weight of the term that keeps every lookup dimension "
                   "alive (uncorrelated, equal variances)")  # fmt: skip
    p.add_argument("--min-live-dims", type=POSITIVE_INT, help="image: stop once fewer lookup dimensions are live")
    p.add_argument("--min-colour-r2", type=float, help="image: stop once the lookup keeps less of a* or b* (R^2 on a "
                   "fixed batch, e.g. 0.3)")  # fmt: skip
    p.add_argument(
        "--augment",
        choices=["colour", "natural", "scale", "none"],
        default="colour",
        help="crop augmentation: rescaling + hue over the whole wheel/saturation/brightness/grey (colour), "
        "the same with small hue nudges (natural), rescaling only (scale), or none",
    )
    p.add_argument("--loss", choices=["v2", "mse"], default="v2", help="v2: L1 + local colour + edges; mse: v1's")
    p.add_argument(
        "--init",
        help="start from this trained tokenizer's weights (zoo name or folder); video: the "
        "image tokenizer whose spatial layers and latents it uses (default image-vq-f8)",
    )
    p.add_argument("--steps", type=POSITIVE_INT, default=3000, help="optimizer steps")
    p.add_argument("--batch-size", type=POSITIVE_INT, help="per process (image 16, audio 8)")
    p.add_argument("--crop-size", type=POSITIVE_INT, default=64, help="image crops and video clip sides, pixels")
    p.add_argument("--frames", type=POSITIVE_INT, default=9, help="video: frames per training clip (1 + 4n)")
    p.add_argument("--start", help="video: continue from this trained video-vq (a second stage)")
    p.add_argument("--train-decoder", action="store_true", help="video: also train the spatial decoder")
    p.add_argument("--pixel-weight", type=POSITIVE_FLOAT, help="video: weight of the loss on decoded frames")
    p.add_argument("--seconds", type=POSITIVE_FLOAT, default=1.0, help="audio segment length")
    p.add_argument("--num-codebooks", type=POSITIVE_INT, help="audio: most codebooks per frame (default 8)")
    p.add_argument("--kind-weights", help="audio: draw the data's subfolders in proportion, e.g. speech-en=2,music=1")
    p.add_argument("--lr", type=POSITIVE_FLOAT, default=1e-3, help="peak learning rate")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="data order, augmentation and initial weights")
    p.add_argument("--force", action="store_true", help="overwrite an existing tokenizer")


def _train_lm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="a JSONL file of {prompt, completion} examples")
    p.add_argument("--vocab", help="vocabulary folder (a new model of --preset)")
    p.add_argument("--model", help="saved model folder to continue training")
    p.add_argument("--preset", default="small", help="size of a new model: tiny, small, ... (mmgist.lm.PRESETS)")
    p.add_argument("--out", required=True, help="the model folder to write")
    p.add_argument("--steps", type=POSITIVE_INT, default=1000, help="optimizer steps")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=16, help="per process")
    p.add_argument("--lr", type=POSITIVE_FLOAT, default=1e-3, help="peak learning rate")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="data order and initial weights")
    p.add_argument("--force", action="store_true", help="overwrite an existing model")


def _distill_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prefix", help="a prompt file (see below), a .jsonl of {id, prefix, queries}, or with --chat a "
                   "text file (the system prompt)")  # fmt: skip
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--k", type=POSITIVE_INT, help="gist positions (default: 4; with --chat one per 16 prompt "
                   "tokens, gist_tokens_for)")  # fmt: skip
    p.add_argument("--query", action="append", default=[], help="a query the gist must serve (repeatable)")
    p.add_argument(
        "--heldout-query",
        action="append",
        default=[],
        help="a query never trained on, to measure the gist (repeatable)",
    )
    p.add_argument("--target", choices=["embeddings", "kv"], help="what is trained (default: GistConfig's)")
    p.add_argument("--self-study", type=NON_NEGATIVE_INT, help="samples the model writes after the prefix, trained on")
    p.add_argument("--stopping", choices=["fixed", "validation"], help="all steps, or the best validation step")
    p.add_argument("--chat", action="store_true", help="PREFIX is a text file: the system turn; queries are user turns")
    p.add_argument("--study-questions", type=NON_NEGATIVE_INT,
                   help="with --chat: questions the model writes about its system turn from openers (default: "
                   "StudyConfig's, 64)")  # fmt: skip
    p.add_argument(
        "--chunk-questions",
        type=NON_NEGATIVE_INT,
        help="with --chat: questions the model writes about each chunk of it (default: StudyConfig's, 1)",
    )
    p.add_argument(
        "--no-reconstruction",
        action="store_true",
        help="with --chat: no reconstruction rows (the system turn's own text, quoted back)",
    )
    p.add_argument("--no-study", action="store_true", help="with --chat: learn from the --query questions alone")
    p.add_argument("--steps", type=POSITIVE_INT, help="default: GistConfig's (200), with --chat chat_config's (100)")
    p.add_argument("--lr", type=POSITIVE_FLOAT, help="default: GistConfig's (3e-2)")
    p.add_argument("--hidden-weight", type=float, help="weight of the hidden-state term, 0 for the KL alone "
                   "(default: GistConfig's)")  # fmt: skip
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="sampling and initialization")
    p.add_argument("--out", required=True, help="gist file (or folder, for a .jsonl)")
    p.add_argument("--force", action="store_true", help="overwrite an existing gist file")


def _compress_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help="a prompt file (see below): the prefix to compress")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--compressor", required=True, help="a compressor folder (mmgist train-compressor)")
    p.add_argument("--out", required=True, help="the gist file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing gist file")


def _train_compressor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prefixes", help="a .jsonl of {id, prefix} lines, as distill takes (queries are not used)")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--out", required=True, help="the compressor folder to write (its checkpoint goes in OUT/run)")
    p.add_argument("--k", type=POSITIVE_INT, default=4, help="gist positions")
    p.add_argument("--steps", type=POSITIVE_INT, default=300, help="optimizer steps")
    p.add_argument("--lr", type=POSITIVE_FLOAT, default=1e-3, help="peak learning rate")
    p.add_argument("--lora-rank", type=NON_NEGATIVE_INT, default=8, help="rank of each LoRA adapter (0: none, "
                   "only the gist embeddings train)")  # fmt: skip
    p.add_argument("--self-study", type=POSITIVE_INT, default=16, help="teacher rows per prefix")
    p.add_argument("--exclude", action="append", default=[], help="cut every row where this text first appears, "
                   "so that what follows is never trained on (repeatable)")  # fmt: skip
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="data order, sampling and initial embeddings")
    p.add_argument("--force", action="store_true", help="overwrite an existing compressor")


def _generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", help="text, or a prompt file (.json, see below) such as a photo and a question")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--gist", help="a gist file (mmgist distill) standing in for the prefix the query follows")
    p.add_argument("--chat", action="store_true", help="the query is a user turn of the model's chat template")
    p.add_argument("--system", help="with --chat: a text file, the system turn before the query (not with --gist; "
                   "with neither, no system turn at all: the template's default one is not added)")  # fmt: skip
    p.add_argument("--max-new-tokens", type=POSITIVE_INT, default=32, help="most tokens generated")
    p.add_argument("--stop", action="append", default=[], help="end the answer where this text appears, e.g. "
                   "'Q:' for the demo model (repeatable); <|eos|> always ends it")  # fmt: skip


@dataclass(frozen=True)
class Command:
    name: str
    summary: str  # one line: the help's list of commands and the command's own description
    run: Callable[[argparse.Namespace], None]
    arguments: Callable[[argparse.ArgumentParser], None]  # adds the command's own arguments
    epilog: str | None = None  # said after its arguments' help


COMMANDS = [
    Command(
        "tokenizers",
        "list registered tokenizers, the trained zoo and pretrained aliases",
        cmd_tokenizers,
        _tokenizers_arguments,
    ),
    Command("vocab", "build a shared vocabulary of tokenizers and save it as a folder", cmd_vocab, _vocab_arguments),
    Command("encode", "print the ids of a prompt file as JSON", cmd_encode, _encode_arguments, epilog=PROMPT_FILES),
    Command("decode", "print the prompt behind a JSON list of ids", cmd_decode, _decode_arguments),
    Command(
        "train-tokenizer", "train a tokenizer on a folder of media", cmd_train_tokenizer, _train_tokenizer_arguments
    ),
    Command("train-lm", "train the language model on a JSONL manifest", cmd_train_lm, _train_lm_arguments),
    Command(
        "distill",
        "compress a prefix (prompt JSON, or a JSONL of them) into gist tokens",
        cmd_distill,
        _distill_arguments,
        epilog=PROMPT_FILES,
    ),
    Command(
        "compress",
        "gist a prompt file in one forward pass of a trained compressor",
        cmd_compress,
        _compress_arguments,
        epilog=PROMPT_FILES,
    ),
    Command(
        "train-compressor",
        "train a compressor that gists any prefix in one forward pass (LoRA adapters "
        "on a copy of the model plus k gist embeddings)",
        cmd_train_compressor,
        _train_compressor_arguments,
    ),
    Command(
        "generate",
        "continue a query with the model, after a gist if given",
        cmd_generate,
        _generate_arguments,
        epilog=PROMPT_FILES,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__.split("\n\n")
    epilog = "\n\n".join([*doc[1:], PROMPT_FILES])
    parser = _Parser(prog="mmgist", description=doc[0], epilog=epilog, formatter_class=_Help)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    for c in COMMANDS:
        p = sub.add_parser(c.name, help=c.summary, description=c.summary, epilog=c.epilog, formatter_class=_Help)
        p.set_defaults(func=c.run)
        c.arguments(p)
    for p in sub.choices.values():  # `mmgist CMD ... --debug` as well as `mmgist --debug CMD ...`
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print(f"mmgist {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"mmgist {args.command}: error: {error_line(e)}", file=sys.stderr)
        return 2
    return 0


def error_line(e: BaseException) -> str:
    """One line saying what went wrong: the message of an error a user can cause, or the type and message
    of an unexpected one (a bug in mmgist), with a pointer to --debug."""
    message = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, USER_ERRORS):
        return message
    return f"{type(e).__name__}: {message} (an unexpected error: run with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
