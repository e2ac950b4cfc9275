"""The one training loop: every trainable part of mmgist (tokenizers, the LM) trains through `fit`.

    result = fit(model, batches, TrainConfig(steps=2000), out_dir="runs/x")

- `model(batch)` returns a `StepOutput(loss, metrics)`: a module's forward is its training step.
- `batches(step, rank)` returns the batch for that step and process. Being a pure function of
  (step, rank), it makes resumed and distributed runs see exactly the data they should.
- AdamW with linear warmup then cosine decay, gradient clipping, one tqdm bar on rank 0 with the
  running mean of every metric, and `log.jsonl` with the same numbers.
- Checkpoints every `checkpoint_every` steps into out_dir/checkpoint/ (safetensors + JSON, written
  atomically, never pickle): weights, optimizer moments, scheduler, RNG. `fit` resumes from it when
  it exists, so a killed run restarted with the same command continues the same loss curve.
- Under `torchrun --nproc_per_node N`, call `init_distributed()` first: the model is wrapped in
  DistributedDataParallel (gloo on CPU, nccl on GPU), which also broadcasts buffers (a VQ codebook's
  EMA state, say) from rank 0 at every step so all ranks hold the same codebook.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .storage import load_tensors, read_versioned_json, save_tensors_atomic, versioned, write_json_atomic
from .validate import finite, non_negative_int, positive_int

CHECKPOINT_FORMAT = "mmgist-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, what is minimized
    metrics: dict[str, float] = field(default_factory=dict)  # shown on the bar and logged (loss is added)


@dataclass
class TrainConfig:
    steps: int = 1000  # total optimizer steps (the LR schedule spans these)
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100  # linear warmup, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    checkpoint_every: int = 250
    log_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "checkpoint_every", "log_every"):
            positive_int(getattr(self, name), f"TrainConfig.{name}")
        if not 0 <= non_negative_int(self.warmup_steps, "TrainConfig.warmup_steps") <= self.steps:
            raise ValueError(f"TrainConfig.warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps}")
        finite(self.lr, "TrainConfig.lr", positive=True)
        for name in ("weight_decay", "min_lr_ratio", "grad_clip"):
            if finite(getattr(self, name), f"TrainConfig.{name}") < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        non_negative_int(self.seed, "TrainConfig.seed")


@dataclass
class TrainResult:
    steps: int  # steps done in total (including those before a resume)
    resumed_from: int  # 0 for a fresh run
    wall_seconds: float  # this invocation only
    history: list[dict[str, float]]  # one entry per log step: step, lr and metric means


def init_distributed() -> tuple[int, int]:
    """Join the torchrun process group if there is one; returns (rank, world_size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return rank_and_world()


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state_dict -> (tensors for safetensors, the JSON-able rest)."""
    tensors, scalars = {}, {}
    for idx, slots in state["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_states() -> dict[str, torch.Tensor]:
    """Every rank's CPU (and CUDA) RNG state, gathered so rank 0 can save them all."""
    _, world = rank_and_world()
    local = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        local["cuda"] = torch.cuda.get_rng_state()
    gathered = [local] * world
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, local)
    return {f"rng.{kind}.{r}": state for r, states in enumerate(gathered) for kind, state in states.items()}


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: TrainConfig,
    history: list[dict[str, float]],
    rng: dict[str, torch.Tensor],
    run: dict[str, Any] | None = None,
) -> None:
    """Weights, optimizer and RNG in state-<step>.safetensors; trainer.json (written last) names it and its hash.

    The previous state file is deleted only once the new header is in place, so a kill at any
    moment leaves a header that names a complete state file.
    """
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    tensors, aliases, seen = {}, {}, {}
    for k, v in model.state_dict().items():  # tied weights (an LM's embedding and head) are stored once
        key = (v.data_ptr(), v.dtype, tuple(v.shape), v.stride()) if v.numel() else None
        if key is not None and key in seen:
            aliases[k] = seen[key]
        else:
            tensors[f"model.{k}"] = v
            seen[key] = k
    tensors.update(opt_tensors)
    tensors.update(rng)
    name = f"state-{step:08d}.safetensors"
    sha = save_tensors_atomic(tensors, directory / name)
    header = versioned(
        CHECKPOINT_FORMAT,
        CHECKPOINT_VERSION,
        step=step,
        config=asdict(config),
        run=run or {},
        optimizer=opt_meta,
        history=history,
        aliases=aliases,
        state_file=name,
        state_sha256=sha,
    )
    write_json_atomic(directory / "trainer.json", header)
    for old in directory.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig | None = None,
    run: dict[str, Any] | None = None,
) -> tuple[int, list]:
    """Restore a checkpoint; refuses one made with other settings (`config`, `run`) than this run's."""
    header = read_versioned_json(directory / "trainer.json", CHECKPOINT_FORMAT, (CHECKPOINT_VERSION,))
    for what, mine, saved in (("config", asdict(config) if config else None, header["config"]),
                              ("run", run or {}, header.get("run", {}))):  # fmt: skip
        if mine is not None and mine != saved:
            diff = {
                k: (saved.get(k), mine.get(k)) for k in sorted(set(mine) | set(saved)) if mine.get(k) != saved.get(k)
            }
            raise ValueError(
                f"the checkpoint in {str(directory)!r} was made with other settings ({what}: checkpoint vs now "
                f"{diff}); resume with the same settings, or delete that folder to start over"
            )
    tensors = load_tensors(directory / header["state_file"], header["state_sha256"])
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    state.update({alias: state[original] for alias, original in header.get("aliases", {}).items()})
    model.load_state_dict(state)
    optimizer.load_state_dict(_unflatten_optimizer(tensors, header["optimizer"]))
    rank, _ = rank_and_world()
    torch.set_rng_state(tensors.get(f"rng.torch.{rank}", tensors["rng.torch.0"]))
    if torch.cuda.is_available() and f"rng.cuda.{rank}" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng.cuda.{rank}"])
    return int(header["step"]), header["history"]


# long: one loop read top to bottom (resume, the step, the checkpoint, the log), kept whole so its order shows
def fit(
    model: nn.Module,
    batches: Callable[[int, int], Any],
    config: TrainConfig,
    out_dir: str | os.PathLike,
    progress: bool = True,
    stop_at: int | None = None,
    description: str = "train",
    run: dict[str, Any] | None = None,
    monitor: Callable[[int], dict[str, float]] | None = None,
) -> TrainResult:
    """Train `model` for `config.steps` steps (see the module docstring).

    `stop_at`: stop after this many steps in total though the schedule spans `config.steps`
    (a job split across time limits); running `fit` again resumes from the checkpoint.
    `run`: what identifies the run beyond `config` (data, model settings), JSON-able; a checkpoint
    made with a different `config` or `run` is refused rather than silently resumed.
    `monitor(steps_done)`: called at every log step on every rank (it must agree across ranks); its figures join
    the logged row, and an exception it raises stops training with the last checkpoint kept.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint"
    run = json.loads(json.dumps(run or {}))  # as it will read back from JSON (tuples become lists)
    rank, world = rank_and_world()
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed + rank)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    start, history = 0, []
    if (ckpt / "trainer.json").exists():
        start, history = load_checkpoint(ckpt, model, optimizer, config, run)
        if rank == 0:  # the log is rewritten from the checkpoint: lines logged after it are dropped
            lines = "".join(json.dumps(h) + "\n" for h in history)
            (out_dir / "log.jsonl").write_text(lines, encoding="utf-8")
    wrapped = model
    if world > 1:
        device_ids = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=True)
    end = min(config.steps, stop_at) if stop_at is not None else config.steps
    bar = tqdm(
        total=config.steps, initial=start, desc=description, disable=not progress or rank != 0, dynamic_ncols=True
    )
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}  # a metric may be missing from some steps (a modality absent from a batch)
    t0 = time.perf_counter()
    model.train()
    for step in range(start, end):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * _lr_factor(step, config)
        out: StepOutput = wrapped(batches(step, rank))
        finite = torch.isfinite(out.loss.detach()).float().cpu()
        if world > 1:  # every rank stops together rather than the others hanging in the next all-reduce
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not finite.item():
            raise FloatingPointError(
                f"loss became {out.loss.item()} at step {step} (on this rank or another); "
                f"the last checkpoint is kept in {ckpt}"
            )
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        for k, v in {"loss": out.loss.item(), **out.metrics}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
            counts[k] = counts.get(k, 0) + 1
        bar.update(1)
        done = step + 1
        if done % config.log_every == 0 or done == end:
            means = {k: v / counts[k] for k, v in sums.items()}
            if monitor is not None:
                means.update(monitor(done))
            sums, counts = {}, {}
            bar.set_postfix({k: f"{v:.4g}" for k, v in means.items()})
            history.append({"step": done, "lr": optimizer.param_groups[0]["lr"], **means})
            if rank == 0:
                with open(out_dir / "log.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(history[-1]) + "\n")
        if done % config.checkpoint_every == 0 or done == end:
            rng = _rng_states()  # a collective: every rank takes part
            if rank == 0:
                save_checkpoint(ckpt, model, optimizer, done, config, history, rng, run)
    bar.close()
    if world > 1:
        dist.barrier()
    return TrainResult(steps=end, resumed_from=start, wall_seconds=time.perf_counter() - t0, history=history)


def schedule(steps: int, lr: float, seed: int, warmup: int = 200, **fields: Any) -> TrainConfig:
    """The entry points' TrainConfig: warmup over a tenth of the steps (at most `warmup`), a checkpoint every
    quarter of them (at most every 250 steps); `fields` set any other TrainConfig field."""
    return TrainConfig(steps=steps, lr=lr, seed=seed, **{"warmup_steps": min(warmup, steps // 10),
                       "checkpoint_every": max(1, min(250, steps // 4)), **fields})  # fmt: skip


def train_and_save(
    model: nn.Module,
    batches: Callable[[int, int], Any],
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    save: Callable[[Path], Any],
    record: dict[str, Any],
    run_dir: str | os.PathLike | None = None,
    progress: bool = True,
    stop_at: int | None = None,
    description: str = "train",
    run: dict[str, Any] | None = None,
    monitor: Callable[[int], dict[str, float]] | None = None,
) -> TrainResult:
    """The skeleton every training entry point shares: `fit` (checkpoints in `run_dir`, by default
    out/../.<name>-run, so `out` only ever holds a finished result; rerunning resumes), then on rank 0, once
    every step has run, `save(out)` and out/training.json: `record` (the data, the settings) plus the steps,
    lr, seed, this run's wall time, the step it resumed from, the last logged figures, device and threads."""
    out = Path(out)
    t0 = time.perf_counter()
    run_dir = Path(run_dir) if run_dir else out.parent / f".{out.name}-run"
    result = fit(model, batches, config, run_dir, progress=progress, stop_at=stop_at, description=description,
                 run=run, monitor=monitor)  # fmt: skip
    if rank_and_world()[0] == 0 and result.steps == config.steps:
        device = next(model.parameters()).device
        save(out)
        write_json_atomic(out / "training.json", {
            **record,
            "steps": config.steps,
            "lr": config.lr,
            "seed": config.seed,
            "wall_seconds_this_run": round(time.perf_counter() - t0, 1),
            "resumed_from": result.resumed_from,
            "final": result.history[-1] if result.history else {},
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
        })  # fmt: skip
    return result
