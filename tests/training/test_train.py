"""Training: the tiny recipe learns, resume after SIGKILL or a requested stop is exact, DDP equals one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.multiprocessing as mp

from tests.conftest import run_events
from tisdiss_cli.model.checkpoint import read_checkpoint
from tisdiss_cli.training.config import TrainConfig, apply_overrides, load_recipe, resolve_config
from tisdiss_cli.training.loop import STOP_REQUESTED, train
from tisdiss_cli.zoo.load import load_model

RATE = 8000


def _config(corpus: Path, *overrides: str) -> TrainConfig:
    return resolve_config("tiny", None, str(corpus), list(overrides))


def _losses(run: Path) -> dict[int, float]:
    """Last logged training loss per step (a resumed run logs some steps twice)."""
    out: dict[int, float] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "train":
            out[event["step"]] = event["loss"]
    return out


def test_tiny_recipe_loss_falls(corpus: Path, tmp_path: Path) -> None:
    config = _config(corpus, "log_every_steps=1")
    assert config.optim.max_steps == 50
    result = train(config, tmp_path / "run")
    losses = [v for _, v in sorted(_losses(tmp_path / "run").items())]
    assert result.step == 50 and len(losses) == 50
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 3.0  # dB of SI-SNR
    assert (tmp_path / "run" / "model.safetensors").exists()
    # 20 steps per epoch; the last, partial epoch (steps 41-50) is validated too
    assert _validated_steps(tmp_path / "run") == [20, 40, 50]


def _validated_steps(run: Path) -> list[object]:
    return [e["step"] for e in run_events(run, "epoch")]


def test_the_last_step_is_validated_and_can_be_the_model(corpus: Path, tmp_path: Path) -> None:
    """max_steps at an epoch's end: that epoch is validated, so the final weights can be kept."""
    run = tmp_path / "run"
    config = _config(
        corpus, "optim.max_steps=10", "data.epoch_size=20", "keep_best=1", "data.mixing.segment_seconds=0.75"
    )
    train(config, run)
    assert _validated_steps(run) == [10]
    _, final, metadata = read_checkpoint(run / "model.safetensors")
    assert metadata["averaged_epochs"] == [0]
    # loaded by path, it separates in chunks of its training crop, not the separator's default
    assert load_model(run / "model.safetensors").segment_seconds == 0.75
    last = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(final[k], last[k]) for k in final)


@pytest.mark.slow
def test_tiny_recipe_trains_within_a_minute(corpus: Path, tmp_path: Path) -> None:
    """A wall-clock budget (docs/training.md's "seconds on a CPU"): run with -m slow on a quiet machine."""
    start = time.perf_counter()
    train(_config(corpus), tmp_path / "run")
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"tiny recipe took {elapsed:.1f} s"


def test_resume_after_sigkill_repeats_the_same_losses(corpus: Path, tmp_path: Path) -> None:
    overrides = ["optim.max_steps=12", "save_every_steps=4", "log_every_steps=1", "data.epoch_size=16"]
    reference = tmp_path / "reference"
    train(_config(corpus, *overrides), reference)

    run = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "tisdiss_cli",
        "train",
        "--recipe",
        "tiny",
        "--data",
        str(corpus),
        "--run",
        str(run),
        "--threads",
        "1",
        "--quiet",
    ] + [a for o in overrides for a in ("--set", o)]
    proc = subprocess.Popen(cmd)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and max(_losses(run), default=0) < 6 if (run / "metrics.jsonl").exists() else True:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    logged = _losses(run)
    assert 4 <= max(logged) < 12, "the run should have been killed after its first checkpoint"
    subprocess.run(cmd + ["--resume"], check=True)
    expected = _losses(reference)
    assert sorted(_losses(run)) == sorted(expected)
    assert _losses(run) == expected  # bit-identical on CPU


def _saved_step(run: Path) -> int:
    """The step a resume would continue from."""
    data = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    return int(data["step"])


def test_a_requested_stop_saves_the_step_and_resume_is_exact(corpus: Path, tmp_path: Path) -> None:
    overrides = ["optim.max_steps=8", "save_every_steps=100", "log_every_steps=1", "data.epoch_size=40"]
    reference = tmp_path / "reference"
    train(_config(corpus, *overrides), reference)

    run = tmp_path / "stopped"
    stop = threading.Event()

    def stop_at_step_3(event: dict[str, object]) -> None:
        if event["event"] == "train" and event["step"] == 3:
            stop.set()

    result = train(_config(corpus, *overrides), run, log=stop_at_step_3, stop=stop)
    assert (result.step, result.stop_reason) == (3, STOP_REQUESTED)
    assert _saved_step(run) == 3, "the stopped step must be in last.pt (save_every_steps would not have saved it)"
    assert (run / "model.safetensors").exists()
    assert run_events(run, "done")[-1]["reason"] == STOP_REQUESTED

    saved_cpu = float(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["cpu_seconds"])
    assert saved_cpu > 0
    train(_config(corpus, *overrides), run, resume=True)
    assert _losses(run) == _losses(reference)  # bit-identical on CPU: nothing lost, nothing repeated
    # the run's CPU time goes on from what the stopped invocation saved, as its wall time does
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    cpu = [e["cpu_seconds"] for e in events if "cpu_seconds" in e]  # train and epoch events, in order
    assert len(cpu) == 9 and cpu == sorted(cpu)
    assert min(e["cpu_seconds"] for e in run_events(run, "train") if e["step"] > 3) > saved_cpu


def test_sigterm_stops_the_cli_after_the_step_and_keeps_it(corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    overrides = ["optim.max_steps=1000", "save_every_steps=1000", "log_every_steps=1", "data.num_workers=1"]
    cmd = [sys.executable, "-m", "tisdiss_cli", "train", "--recipe", "tiny", "--data", str(corpus)]
    cmd += ["--run", str(run), "--threads", "1", "--quiet"] + [a for o in overrides for a in ("--set", o)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if (run / "metrics.jsonl").exists() and max(_losses(run), default=0) >= 2:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)  # the whole group, data worker included, like kill -- -PGID
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = run_events(run, "done")
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and len(done) == 1
    step = done[0]["step"]
    assert isinstance(step, int) and 2 <= step < 1000
    assert f"stopped by SIGTERM at step {step}: the run is saved" in stderr
    assert _saved_step(run) == step and (run / "model.safetensors").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, config: TrainConfig, run: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    result = train(config, run)
    torch.save(result.model.state_dict(), Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_two_cpu_processes_match_one_process(corpus: Path, tmp_path: Path) -> None:
    # float64: in float32, Adam turns all-reduce rounding in near-zero gradients (|g| < eps)
    # into update differences of order lr, which would hide a real mismatch.
    config = _config(corpus, "optim.max_steps=3", "optim.batch_size=4", "optim.warmup_steps=1", 'precision="fp64"')
    mp.spawn(_ddp_worker, args=(2, _free_port(), config, str(tmp_path / "ddp"), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    single = train(config, tmp_path / "single").model.state_dict()
    initial = train(_config(corpus, "optim.epochs=0", 'precision="fp64"'), tmp_path / "init").model.state_dict()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    update = max(float((single[k] - initial[k]).abs().max()) for k in single)
    gap = max(float((rank0[k] - single[k]).abs().max()) for k in single)
    assert update > 1e-3, "training changed nothing"
    assert gap < 1e-9, f"DDP differs from one process by {gap:.2e} (update {update:.2e})"


def test_recipes_and_overrides() -> None:
    paper = resolve_config("wsj0-2mix-paper", None, "corpus", ["optim.lr=1e-4", "model.n_re=8"])
    assert paper.optim.lr == 1e-4 and paper.model.n_re == 8 and paper.model.emb_dim == 128
    assert paper.data.train == str(Path("corpus") / "tr")
    assert paper.optim.warmup_steps == 2000 and paper.optim.batch_size == 6 and paper.keep_best == 5
    for name in ("libri2mix", "speech8k", "tiny"):
        assert load_recipe(name)
    with pytest.raises(ValueError, match="unknown recipe"):
        load_recipe("nope")
    with pytest.raises(ValueError, match="unknown key 'optim.lrr'|unknown key 'lrr'"):
        resolve_config("tiny", None, None, ["optim.lrr=1"])
    assert apply_overrides({"a": {"b": 1}}, ["a.b=2", "c=x"]) == {"a": {"b": 2}, "c": "x"}


def test_the_speech8k_recipe_trains_the_bundled_model() -> None:
    """`--recipe speech8k --init-from` the shipped weights continues them: the same network and loss."""
    shipped, _, _ = read_checkpoint(Path(__file__).parents[2] / "models/weights/tisdiss-small-8k.safetensors")
    recipe = resolve_config("speech8k", None, "corpus", [])
    assert recipe.model == shipped
    assert recipe.loss == "l1+3" and recipe.optim.schedule == "wsd" and recipe.data.valid_size >= 200


def test_init_from_resolves_like_any_model_spec(tmp_path: Path) -> None:
    """--init-from goes through the one model loader: a registry name works (and is checked)."""
    config = resolve_config("tiny", None, None, [], init_from="tisdiss-small-8k")
    with pytest.raises(ValueError, match="tisdiss-small-8k: architecture differs"):
        train(config, tmp_path / "run")


def test_resume_needs_the_run_not_the_init_from_weights(corpus: Path, tmp_path: Path) -> None:
    """A run started --init-from a file resumes from its own last.pt after that file is gone."""
    from tisdiss_cli.model.checkpoint import save_checkpoint
    from tisdiss_cli.model.network import TISDiSS

    overrides = ["optim.max_steps=4", "save_every_steps=100", "log_every_steps=1", "data.epoch_size=40"]
    weights = save_checkpoint(TISDiSS(_config(corpus).model), tmp_path / "start.safetensors")
    config = resolve_config("tiny", None, str(corpus), overrides, init_from=str(weights))
    reference = tmp_path / "reference"
    train(config, reference)
    run = tmp_path / "run"
    stop = threading.Event()
    train(config, run, log=lambda e: stop.set() if e["event"] == "train" and e["step"] == 2 else None, stop=stop)
    weights.unlink()
    train(config, run, resume=True)
    assert _losses(run) == _losses(reference)


def test_premixed_training_reads_test_set_layouts(tmp_path: Path) -> None:
    """data.kind = "premixed" (the paper recipes) trains on wsj0-2mix style mix/ s1/ s2/ folders."""
    rng = np.random.default_rng(0)
    for split in ("tr", "cv"):
        for folder in ("mix", "s1", "s2"):
            (tmp_path / split / folder).mkdir(parents=True)
        for u in range(2):
            s1, s2 = (
                (0.1 * rng.standard_normal(RATE // 2)).astype(np.float32),
                (0.1 * rng.standard_normal(RATE // 2)).astype(np.float32),
            )
            for folder, wave in (("mix", s1 + s2), ("s1", s1), ("s2", s2)):
                sf.write(tmp_path / split / folder / f"u{u}.wav", wave, RATE, subtype="FLOAT")
    config = resolve_config(
        "tiny", None, str(tmp_path), ['data.kind="premixed"', 'data.train="tr"', 'data.valid="cv"', "optim.max_steps=2"]
    )
    result = train(config, tmp_path / "run")
    assert result.step == 2 and (tmp_path / "run" / "model.safetensors").exists()


def test_bf16_autocast_training_keeps_float32_weights_and_updates_them(corpus: Path, tmp_path: Path) -> None:
    """The GPU campaign's precision (benchmarks/gpu_campaign.sh), rehearsed on the CPU's autocast."""
    config = _config(corpus, "optim.max_steps=6", "log_every_steps=1", 'precision="bf16"')
    result = train(config, tmp_path / "run")
    losses = [v for _, v in sorted(_losses(tmp_path / "run").items())]
    assert result.step == 6 and all(np.isfinite(losses))
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    initial = train(_config(corpus, "optim.epochs=0"), tmp_path / "init").model.state_dict()
    update = max(float((result.model.state_dict()[k] - initial[k]).abs().max()) for k in initial)
    assert update > 1e-3, "bf16 training changed nothing"
    train(_config(corpus, "optim.max_steps=1", "log_every_steps=1"), tmp_path / "fp32")
    first_fp32, first_bf16 = _losses(tmp_path / "fp32")[1], _losses(tmp_path / "run")[1]
    assert first_bf16 != first_fp32, "autocast did not run in bf16"  # same seed, same batch
    assert abs(first_bf16 - first_fp32) < 0.05 * abs(first_fp32), (first_bf16, first_fp32)  # 0.8 % measured
