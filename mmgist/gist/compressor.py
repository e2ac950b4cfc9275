"""Amortized gists: a trained compressor turns any prefix into a KV gist in one forward pass.

    compressor = GistCompressor(model, CompressorConfig(num_gist_tokens=4))
    study = compressor_study(model, vocab, prefixes)          # teacher rows per prefix, made once
    train_compressor(compressor, study, TrainConfig(steps=300), out_dir="runs/compressor")
    gist = compressor.compress(vocab, prefix)                  # a GistPrefix(target "kv"), as distill_gist's
    mmgist.generate(model, vocab, query, gist=gist)            # the served model, frozen and unchanged

The compressor is a copy of the served model with LoRA adapters (peft) plus k learned gist embeddings
(ICAE, 500xCompressor). It reads `<|bos|> prefix g_1 .. g_k`; the keys and values of every layer at the k
gist positions are the gist. Those keys were computed at positions N .. N + k - 1 (N = the prefix's length,
<|bos|> included), and are turned back by 1 - N to the slots 1 .. k where a gist sits (rotary rotations
compose), so a query after a compressed gist sees the offsets it sees after a distilled one
(`CompressorConfig(positions="explicit")` computes them at position ids 1 .. k instead; measured in docs/gists.md).

Training is distill_gist's objective over many prefixes at once: the KL from the full-prefix teacher (its
top-k log-probs, computed once per row by `compressor_study`) to the frozen served model reading the
compressed gist. Gradients reach only the adapters and the gist embeddings.

Why a copy and not adapters injected into the served model: peft injects its layers into the model it is
given, which would rename the served model's parameters (and so change its fingerprint, refusing every gist
made before) and leave it to every caller to switch the adapters off. The copy costs one more set of
weights in memory (0.5 GB for SmolLM2-135M in float32) and keeps the served model untouched.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..lm.heads import KVHead, bos_kv
from ..lm.model import context_length, frozen, model_dirs, output_cache
from ..lm.scoring import context_ids, to_ids
from ..storage import (
    load_tensors,
    read_versioned_json,
    save_tensors_atomic,
    sha256_json,
    versioned,
    write_json_atomic,
)
from ..train import StepOutput, TrainConfig, TrainResult, fit
from ..validate import non_negative_int, positive_int
from . import data
from .config import GistConfig
from .kv_init import rotate_keys
from .prefix import GistPrefix, model_fingerprint
from .report import kl, student_forward
from .self_study import StudyConfig, chat_config, chat_study

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..vocab import SharedVocabulary

FORMAT, VERSION = "mmgist-gist-compressor", 3  # 2: the longest prefix trained on; 3: CompressorConfig.positions
LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")  # attention projections of Llama-style models
POSITIONS = ("rotate", "explicit")  # CompressorConfig.positions
# a chat prompt's study for a compressor: fewer questions than one gist's (many prompts share the training),
# the specifics family kept (numbers, names), no chunk questions or reconstruction rows
COMPRESSOR_STUDY = StudyConfig(questions=16, specifics=True, chunk_questions=0, reconstruction=False)


@dataclass
class CompressorConfig:
    num_gist_tokens: int = 4  # k: the gist's positions, as GistConfig.num_gist_tokens
    lora_rank: int = 8  # rank of each LoRA adapter; 0: no adapters, only the k gist embeddings train, read by the
    # frozen model itself (measured on the demo model: held-out G falls with the rank, docs/gists.md)
    lora_alpha: float = 16.0  # LoRA scale numerator (the update is alpha / rank * B A)
    target_modules: tuple[str, ...] = LORA_MODULES  # module names that get adapters
    rows_per_prefix: int = 4  # teacher rows of one prefix in each training example
    prefixes_per_step: int = 4  # prefixes (each compressed once) per optimizer step
    seed: int = 0
    # where the gist tokens' keys get their rotary positions: "rotate" computes them after the prefix (N .. N+k-1)
    # and turns them back to 1 .. k; "explicit" computes them at position ids 1 .. k directly (after a prefix at
    # 0 .. N-1, so a gist token sits at a position the prefix also used)
    positions: str = "rotate"

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ValueError(f"CompressorConfig.positions must be one of {POSITIONS}, got {self.positions!r}")
        for name in ("num_gist_tokens", "rows_per_prefix", "prefixes_per_step"):
            positive_int(getattr(self, name), f"CompressorConfig.{name}")
        non_negative_int(self.lora_rank, "CompressorConfig.lora_rank")
        non_negative_int(self.seed, "CompressorConfig.seed")
        self.target_modules = tuple(self.target_modules)
        if not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules):
            raise ValueError(f"CompressorConfig.target_modules must name modules, got {self.target_modules!r}")


@dataclass
class PrefixStudy:
    """One prefix and the teacher's rows after it: what the compressor learns to stand in for."""

    prefix: list[int]  # <|bos|> + the prefix's ids
    rows: data.Continuations  # query + continuation rows, the teacher's top-k log-probs after the full prefix


STUDY_FORMAT, STUDY_VERSION = "mmgist-prefix-study", 1


def save_study(study: PrefixStudy, path: str | os.PathLike) -> None:
    """One prefix's study as safetensors (atomic): the prefix ids, the rows and the teacher's top-k."""
    r, t = study.rows, study.rows.teacher
    if t.ids is None or r.start is None:
        raise ValueError("save_study keeps top-k teachers with row starts only (compressor_study's form)")
    tensors = {"prefix": torch.tensor(study.prefix), "ids": r.ids, "real": r.real, "mask": r.mask,
               "start": r.start, "logp": t.logp, "top": t.ids, "rest": t.rest}  # fmt: skip
    save_tensors_atomic(tensors, path, {"mmgist": json.dumps(versioned(STUDY_FORMAT, STUDY_VERSION))})


def load_study(path: str | os.PathLike) -> PrefixStudy:
    """A study written by `save_study`; a clear error for another, corrupt or truncated file or a missing tensor."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            header = json.loads((f.metadata() or {}).get("mmgist", "{}"))
        x = load_tensors(path)
    except Exception as e:
        raise ValueError(f"{str(path)!r} is not a readable study file: {type(e).__name__}: {e}") from e
    kind = (header.get("format"), header.get("format_version")) if isinstance(header, dict) else None
    if kind != (STUDY_FORMAT, STUDY_VERSION):
        raise ValueError(f"{str(path)!r} is not a {STUDY_FORMAT} v{STUDY_VERSION} file (header {header})")
    if missing := {"prefix", "ids", "real", "mask", "start", "logp", "top", "rest"} - set(x):
        raise ValueError(f"{str(path)!r} lacks the tensors {sorted(missing)}")
    teacher = data.Teacher(x["logp"], x["top"], x["rest"])
    return PrefixStudy(x["prefix"].tolist(), data.Continuations(x["ids"], x["real"], x["mask"], teacher, x["start"]))


class GistCompressor(nn.Module):
    """LoRA adapters on a frozen copy of `model` plus k gist embeddings (with lora_rank=0 the embeddings alone, read
    by `model` itself); `compress` makes a KV gist."""

    def __init__(self, model: PreTrainedModel, config: CompressorConfig | None = None) -> None:
        from peft import LoraConfig, get_peft_model

        super().__init__()
        self.config = config = CompressorConfig() if config is None else config
        self.__dict__["served"] = model  # not a submodule: never trained, never in the state dict
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        if missing := [m for m in config.target_modules if m not in names]:
            raise ValueError(f"the model has no modules named {missing} for LoRA (CompressorConfig.target_modules)")
        if config.lora_rank:
            base = copy.deepcopy(model).requires_grad_(False)
            lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                              target_modules=list(config.target_modules))  # fmt: skip
            self.encoder = get_peft_model(base, lora)
        else:  # no adapters: the served model itself reads the prefix (no copy), kept out of the state dict
            self.__dict__["encoder"] = model
        emb = model.get_input_embeddings().weight.detach().float()
        g = torch.Generator().manual_seed(config.seed)
        start = emb[torch.randint(0, emb.shape[0], (config.num_gist_tokens,), generator=g)]  # k real token embeddings
        self.gist = nn.Parameter(start.to(emb.device))  # (k, d) fp32
        self.fingerprint = model_fingerprint(model)
        self.bos_id: int | None = None  # the vocabulary's <|bos|>: set by `train_compressor` (or `load`)
        self.longest_prefix: int | None = None  # the longest prefix trained on (tokens, <|bos|> included)

    def trainable(self) -> dict[str, torch.Tensor]:
        """name -> tensor of what training changes: the adapters and the gist embeddings."""
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # checkpoints hold only these
        return {name: p.detach() for name, p in self.trainable().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True, assign: bool = False) -> Any:
        mine = self.trainable()
        if strict and set(state) != set(mine):
            raise ValueError(
                f"compressor state names differ: missing {sorted(set(mine) - set(state))[:3]}, "
                f"unexpected {sorted(set(state) - set(mine))[:3]}"
            )
        with torch.no_grad():
            for name, value in state.items():
                if mine[name].shape != value.shape:
                    raise ValueError(f"compressor tensor {name}: shape {tuple(value.shape)}, "
                                     f"expected {tuple(mine[name].shape)}")  # fmt: skip
                mine[name].copy_(value)
        return None

    def kv(self, prefix_ids: list[int]) -> torch.Tensor:
        """(layers, 2, kv_heads, k, head_dim): the gist of `prefix_ids` (<|bos|> first), differentiable in the
        adapters and gist embeddings; its keys at the slots 1 .. k (CompressorConfig.positions says how)."""
        return self.kv_batch([prefix_ids])[0]

    def kv_batch(self, prefixes: list[list[int]]) -> list[torch.Tensor]:
        """`kv` of several prefixes in one forward pass: rows left-padded (masked), each at its own positions
        0 .. N + k - 1, so every row's gist equals its own `kv` up to float summation order."""
        emb = self.encoder.get_input_embeddings()
        device, k = emb.weight.device, self.config.num_gist_tokens
        lengths = [len(p) for p in prefixes]
        width = max(lengths) + k
        gist = self.gist.to(emb.weight.dtype)
        x = torch.zeros(len(prefixes), width, gist.shape[1], dtype=gist.dtype, device=device)  # (B, width, d)
        mask = torch.zeros(len(prefixes), width, dtype=torch.long)
        positions = torch.zeros(len(prefixes), width, dtype=torch.long)
        for b, ids in enumerate(prefixes):
            pad = width - len(ids) - k
            x[b, pad:] = torch.cat([emb(torch.tensor(ids, device=device)), gist])
            mask[b, pad:] = 1
            gist_at = (
                torch.arange(len(ids), len(ids) + k) if self.config.positions == "rotate" else torch.arange(1, k + 1)
            )
            positions[b, pad:] = torch.cat([torch.arange(len(ids)), gist_at])
        out = self.encoder(inputs_embeds=x, attention_mask=mask.to(device), position_ids=positions.to(device),
                           use_cache=True)  # fmt: skip
        cache = output_cache(out)
        keys = torch.stack([layer.keys[:, :, -k:] for layer in cache.layers], 1).float()  # (B, layers, heads, k, hd)
        values = torch.stack([layer.values[:, :, -k:] for layer in cache.layers], 1).float()
        if self.config.positions == "explicit":  # already at 1 .. k
            return [torch.stack([keys[b], values[b]], dim=1) for b in range(len(prefixes))]
        return [
            torch.stack([rotate_keys(self.served, keys[b], torch.full((k,), 1 - n)), values[b]], dim=1)
            for b, n in enumerate(lengths)
        ]  # each (layers, 2, kv_heads, k, head_dim)

    @torch.no_grad()
    def compress(self, vocab: SharedVocabulary, prefix: Any) -> GistPrefix:
        """The gist of `prefix` (a Prompt, text or ids) for the served model: one forward pass."""
        return self.compress_many(vocab, [prefix])[0]

    @torch.no_grad()
    def compress_many(self, vocab: SharedVocabulary, prefixes: list[Any], batch_size: int = 8) -> list[GistPrefix]:
        """The gists of `prefixes` (each a Prompt, text or ids), `batch_size` to a forward pass. A prefix longer
        than any the compressor was trained on is compressed with a warning: its quality is unmeasured."""
        self._check_served()
        positive_int(batch_size, "batch_size")
        if not isinstance(prefixes, (list, tuple)):
            raise TypeError(f"prefixes must be a list of prefixes, got {type(prefixes).__name__}")
        ids = [context_ids(vocab, p) for p in prefixes]
        for n, one in enumerate(ids):
            if len(one) < 2:
                raise ValueError(f"cannot compress an empty prefix (prefix {n})")
            if len(one) + self.config.num_gist_tokens > context_length(self.served):
                raise ValueError(f"prefix {n} ({len(one)} tokens) and the {self.config.num_gist_tokens} gist "
                                 f"positions exceed the model's context of {context_length(self.served)}")  # fmt: skip
        if self.longest_prefix is not None and (longest := max(map(len, ids))) > self.longest_prefix:
            warnings.warn(f"a prefix of {longest} tokens is longer than any the compressor was trained on "
                          f"({self.longest_prefix}): its gist's quality is unmeasured", stacklevel=2)  # fmt: skip
        was = self.training
        self.eval()
        try:
            kvs = [kv for s in range(0, len(ids), batch_size) for kv in self.kv_batch(ids[s : s + batch_size])]
        finally:
            self.train(was)
        w = self.served.get_input_embeddings().weight
        report = {"method": "compressor", "compressor": asdict(self.config)}
        return [GistPrefix(None, self.fingerprint, vocab.fingerprint(), len(one), vocab.bos_id, dict(report),
                           kv=kv.to(w)) for one, kv in zip(ids, kvs)]  # fmt: skip

    def forward(self, batch: list[tuple[list[int], data.Continuations]]) -> StepOutput:
        """The mean KL(teacher || served model after the compressed gist) over the batch's prefixes."""
        losses = []
        if self.bos_id is None:
            raise ValueError("the compressor does not know the vocabulary's <|bos|>: train it with train_compressor")
        bos = bos_kv(self.served, self.bos_id)  # (layers, 2, kv_heads, 1, head_dim)
        for kv, (_, rows) in zip(self.kv_batch([prefix for prefix, _ in batch]), batch):
            head = KVHead(torch.cat([bos, kv.to(bos.dtype)], dim=3))
            student, _ = student_forward(self.served, head, rows.ids, rows.real)
            losses.append(kl(rows.teacher, student, rows.mask))
        loss = torch.stack(losses).mean()
        return StepOutput(loss, {"kl": loss.item()})

    def _check_served(self) -> None:
        if model_fingerprint(self.served) != self.fingerprint:
            raise ValueError("the served model's weights changed since the compressor was built for them")

    def save(self, path: str | os.PathLike) -> Path:
        """The adapters and gist embeddings (safetensors) beside a versioned JSON header, written atomically."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        sha = save_tensors_atomic(self.state_dict(), path / "compressor.safetensors")
        header = versioned(FORMAT, VERSION, config=asdict(self.config), model_fingerprint=self.fingerprint,
                           bos_id=self.bos_id, longest_prefix=self.longest_prefix, tensors_sha256=sha)  # fmt: skip
        write_json_atomic(path / "compressor.json", header)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model: PreTrainedModel) -> GistCompressor:
        """A saved compressor (a folder, or the name of a shipped one such as "demo-photo-qa-compressor") for
        `model`, which must be the model it was trained on."""
        path = find_compressor(path)
        header = read_versioned_json(path / "compressor.json", FORMAT, (1, 2, VERSION))  # 1: no longest_prefix
        compressor = cls(model, CompressorConfig(**header["config"]))
        if compressor.fingerprint != header["model_fingerprint"]:
            raise ValueError(f"{str(path)!r} was trained for another model (fingerprint {header['model_fingerprint']}"
                             f" against this model's {compressor.fingerprint})")  # fmt: skip
        compressor.load_state_dict(load_tensors(path / "compressor.safetensors", header["tensors_sha256"]))
        compressor.bos_id = header["bos_id"]
        compressor.longest_prefix = header.get("longest_prefix")
        return compressor.eval()


def find_compressor(name_or_folder: str | os.PathLike) -> Path:
    """A compressor folder: `name_or_folder` itself when it exists, else the shipped one of that name."""
    path = Path(name_or_folder)
    if path.exists() or len(path.parts) != 1:
        return path
    for d in model_dirs():
        if (d / path.name / "compressor.json").is_file():
            return d / path.name
    raise FileNotFoundError(f"compressor folder {str(name_or_folder)!r} does not exist, and no shipped compressor "
                            f"has that name (searched {[str(d) for d in model_dirs()]})")  # fmt: skip


def compressor_study(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    prefixes: list[Any],
    config: GistConfig | None = None,
    queries: list[Any] | None = None,
    exclude: list[Any] | None = None,
    progress: bool = False,
    per_prefix: list[list[Any]] | None = None,
) -> list[PrefixStudy]:
    """For each prefix, the teacher's rows as `distill_gist` makes them: `config.self_study` samples straight
    after the prefix plus `config.num_continuations` after each of `queries` (shared by every prefix) and of
    `per_prefix[n]` (prefix n's own, such as the questions `chat_study` writes), with their top-k log-probs
    after the full prefix; every row cut where one of `exclude` (strings or ids) first occurs, as
    distill_gist's `self_study_exclude`. Made once; training then needs no sampling."""
    from tqdm.auto import tqdm

    config = GistConfig() if config is None else config
    shared = [to_ids(vocab, q, what=f"query {n}") for n, q in enumerate(queries or [])]
    patterns = [to_ids(vocab, x, what="exclude") for x in exclude or []]
    if per_prefix is not None and len(per_prefix) != len(prefixes):
        raise ValueError(f"per_prefix holds queries for {len(per_prefix)} prefixes, expected one list per prefix "
                         f"({len(prefixes)})")  # fmt: skip
    out = []
    for n, prefix in enumerate(tqdm(prefixes, desc="teacher rows", unit="prefix", disable=not progress)):
        ids = context_ids(vocab, prefix)
        own = per_prefix[n] if per_prefix is not None else []
        query_ids = shared + [to_ids(vocab, q, what=f"prefix {n}'s query {i}") for i, q in enumerate(own)]
        rows = data.sample(model, vocab, ids, query_ids, config, seed=n) if query_ids else []
        study = []
        if config.self_study:
            study = data.sample(model, vocab, ids, [], config, seed=2 + n, count=config.self_study,
                                length=config.self_study_length)  # fmt: skip
        if patterns:
            rows = data.cut_at(rows, patterns, [len(q) for q in query_ids for _ in range(config.num_continuations)])
            study = [r for r in data.cut_at(study, patterns) if len(r) > 1]
        if not rows + study:
            raise ValueError(f"prefix {n} has no rows to learn from: give queries or config.self_study > 0")
        starts = [len(q) for q in query_ids for _ in range(config.num_continuations)] + [1] * len(study)
        padded, real, mask = data.pad(rows + study, starts)  # a KV head predicts no first token: count from 1
        teacher = data.teacher_logprobs(model, ids, padded, real, config.teacher_top_k)
        out.append(PrefixStudy(ids, data.Continuations(padded, real, mask, teacher, torch.tensor(starts))))
    return out


def chat_compressor_study(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    systems: list[str],
    study: StudyConfig | None = None,
    config: GistConfig | None = None,
    progress: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> list[PrefixStudy]:
    """`compressor_study` of chat system prompts (their texts): each prompt's own questions written by the
    model (`chat_study` with `study`, default COMPRESSOR_STUDY; reconstruction rows are not used) and the
    teacher's answers after them (`config`, default chat_config). With `cache_dir`, each prompt's study is
    kept there (`save_study`), named by a hash of the model, prompt and settings, and read back instead of
    made again: a long study resumes where it stopped."""
    from tqdm.auto import tqdm

    study = COMPRESSOR_STUDY if study is None else study
    config = chat_config() if config is None else config
    rows = ("num_continuations", "continuation_length", "self_study", "self_study_length", "temperature",
            "teacher_top_k", "seed")  # the GistConfig fields the rows depend on  # fmt: skip
    settings = {"version": STUDY_VERSION, "model": model_fingerprint(model), "vocab": vocab.fingerprint(),
                "study": asdict(study), "rows": {name: getattr(config, name) for name in rows}}  # fmt: skip
    out = []
    for system in tqdm(systems, desc="prompts studied", unit="prompt", disable=not progress):
        path = None
        if cache_dir is not None:
            path = Path(cache_dir) / f"{sha256_json({**settings, 'system': system})[:24]}.safetensors"
            if path.is_file():
                out.append(load_study(path))
                continue
        s = chat_study(model, vocab, system, study)
        out += compressor_study(model, vocab, [s.prefix], config, per_prefix=[s.queries])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_study(out[-1], path)
    return out


def train_compressor(
    compressor: GistCompressor,
    vocab: SharedVocabulary,
    study: list[PrefixStudy],
    train: TrainConfig,
    out_dir: str | os.PathLike,
    progress: bool = True,
) -> TrainResult:
    """Train the adapters and gist embeddings on `study` with the shared loop (`fit`: checkpoints, resume);
    each step compresses `prefixes_per_step` prefixes, each with `rows_per_prefix` of its rows."""
    if not study:
        raise ValueError("train_compressor needs at least one PrefixStudy")
    compressor.bos_id = vocab.bos_id
    compressor.longest_prefix = max(len(s.prefix) for s in study)
    cfg = compressor.config

    def batches(step: int, rank: int) -> list[tuple[list[int], data.Continuations]]:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # a pure function of the step: resumable
        picks = torch.randint(0, len(study), (cfg.prefixes_per_step,), generator=g).tolist()
        out = []
        for p in picks:
            usable = study[p].rows.mask.any(1).nonzero()[:, 0]
            rows = usable[torch.randint(0, len(usable), (cfg.rows_per_prefix,), generator=g)]
            out.append((study[p].prefix, study[p].rows.subset(rows).trimmed()))
        return out

    digest = sha256_json([[s.prefix, s.rows.ids.shape[0], float(s.rows.teacher.logp.sum())] for s in study])
    run = {"compressor": asdict(cfg), "prefixes": len(study), "study": digest, "model": compressor.fingerprint}
    served = compressor.served
    with frozen(served):  # gradients pass through the served model to the gist, never into it
        return fit(compressor, batches, train, out_dir, progress=progress, description="compressor", run=run)


def compress(
    model: PreTrainedModel, vocab: SharedVocabulary, prefix: Any, compressor: GistCompressor | str | os.PathLike
) -> GistPrefix:
    """The gist of `prefix` (a Prompt, text or ids) for `model`, made by `compressor` in one forward pass: a
    GistCompressor, or a folder or shipped name (`GistCompressor.load`) of one trained for this model."""
    return compress_many(model, vocab, [prefix], compressor)[0]


def compress_many(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    prefixes: list[Any],
    compressor: GistCompressor | str | os.PathLike,
    batch_size: int = 8,
) -> list[GistPrefix]:
    """`compress` of every prefix, `batch_size` prefixes to a forward pass."""
    if not isinstance(compressor, GistCompressor):
        compressor = GistCompressor.load(compressor, model)
    if (fingerprint := model_fingerprint(model)) != compressor.fingerprint:
        raise ValueError(f"the compressor was trained for another model (fingerprint {compressor.fingerprint} "
                         f"against this model's {fingerprint})")  # fmt: skip
    return compressor.compress_many(vocab, prefixes, batch_size)
