"""The shared training loop: resume equals an uninterrupted run; 2-process DDP keeps ranks identical."""

import json

import pytest
import torch
from support.ddp import run_ddp

from mmgist import create_tokenizer
from mmgist.io import save_image
from mmgist.train import TrainConfig, fit


def _run(out_dir, stop_at=None):
    torch.manual_seed(0)
    tok = create_tokenizer("image-vq", preset="tiny", dead_code_threshold=0.5)  # restarts use the RNG
    data = torch.rand(16, 3, 8, 8)
    config = TrainConfig(steps=6, lr=1e-3, warmup_steps=2, checkpoint_every=3, log_every=2)
    result = fit(
        tok, lambda step, rank: data[step % 4 * 4 : step % 4 * 4 + 4], config, out_dir, progress=False, stop_at=stop_at
    )
    return tok, result


def test_resume_after_a_stop_equals_an_uninterrupted_run(tmp_path):
    whole, whole_result = _run(tmp_path / "a")
    _, first = _run(tmp_path / "b", stop_at=3)
    assert first.steps == 3
    resumed, second = _run(tmp_path / "b")
    assert second.resumed_from == 3 and second.steps == 6
    whole_log = {h["step"]: h["loss"] for h in whole_result.history}
    split_log = {h["step"]: h["loss"] for h in second.history}
    assert list(whole_log) == [2, 4, 6] and list(split_log) == [2, 3, 4, 6]  # the stop logs its partial window
    assert split_log[2] == whole_log[2] and split_log[6] == whole_log[6]
    assert (split_log[3] + split_log[4]) / 2 == pytest.approx(whole_log[4])  # each mean over its own steps
    logged = [json.loads(x)["step"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert logged == [2, 3, 4, 6]  # nothing logged twice
    for (k, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_a_checkpoint_from_other_settings_is_refused(tmp_path):
    _run(tmp_path, stop_at=3)
    tok = create_tokenizer("image-vq", preset="tiny")
    with pytest.raises(ValueError, match=r"other settings \(config: checkpoint vs now \{'steps': \(6, 9\)\}"):
        fit(
            tok,
            lambda s, r: torch.rand(4, 3, 8, 8),
            TrainConfig(steps=9, lr=1e-3, warmup_steps=2, checkpoint_every=3, log_every=2),
            tmp_path,
            progress=False,
        )
    with pytest.raises(ValueError, match=r"run: checkpoint vs now \{'data': \(None, 'other'\)\}"):
        fit(
            tok,
            lambda s, r: torch.rand(4, 3, 8, 8),
            TrainConfig(steps=6, lr=1e-3, warmup_steps=2, checkpoint_every=3, log_every=2),
            tmp_path,
            progress=False,
            run={"data": "other"},
        )


def test_train_config_is_checked():
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match=r"warmup_steps must be in \[0, steps=10\], got 20"):
        TrainConfig(steps=10, warmup_steps=20)


def test_nan_loss_stops_training(tmp_path):
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, batch):
            from mmgist.train import StepOutput

            return StepOutput(self.w * float("nan"))

    with pytest.raises(FloatingPointError, match="loss became nan at step 0"):
        fit(Bad(), lambda s, r: None, TrainConfig(steps=2, warmup_steps=0), tmp_path, progress=False)


def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    data = tmp_path / "images"
    for i in range(3):
        save_image(torch.rand(3, 20, 24), data / f"im{i}.png")
    ranks = run_ddp("image", data, tmp_path)
    assert ranks[0][0] == ranks[1][0] == "2"
    assert ranks[0][1] == ranks[1][1]  # same weights and the same codebook on both ranks
    assert (tmp_path / "tok" / "config.json").exists() and (tmp_path / "tok" / "training.json").exists()
