"""The network against the authors' golden vectors (spec: ``../shared/golden/README.md``).

A trimmed set is committed (``tests/fixtures/golden``: the state dict, the input and two depths'
outputs of the standard model, under 1 MB), so ``pytest -m golden`` checks fidelity in a fresh
clone. The full set in ``../shared/golden`` (every depth, both band-split variants, whose state
dicts are too large to commit, training-mode outputs and the loss) is checked too when it is there.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import GOLDEN, need
from tisdiss_cli import load_espnet
from tisdiss_cli.model.layers import reference_paths
from tisdiss_cli.training.losses import LossWeights, multi_loss

COMMITTED = Path(__file__).parents[1] / "fixtures" / "golden"
COMMITTED_VARIANTS = ["standard"]
COMMITTED_LIMIT_BYTES = 1_000_000  # what the trimmed set may take in the repository
FULL = {"standard": GOLDEN, "bandsplit": GOLDEN / "bandsplit", "melbandsplit": GOLDEN / "melbandsplit"}
PRECISIONS = [(torch.float64, 1e-10), (torch.float32, 2e-6)]  # (dtype, atol): the spec's tolerances


def committed(variant: str) -> dict:
    tensors = load_file(str(COMMITTED / variant / "golden.safetensors"))
    outputs = {k: v for k, v in tensors.items() if k.startswith("nsep")}
    return {
        "config": json.loads((COMMITTED / variant / "config.json").read_text()),
        "state": {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")},
        "input": tensors["input"],
        "outputs": outputs,
        "pairs": [tuple(int(n) for n in k.removeprefix("nsep").split("_nre")) for k in outputs],
    }


def full(variant: str) -> dict:
    folder = need(FULL[variant] / "outputs.pt").parent
    load = lambda name: torch.load(folder / name, weights_only=True)  # noqa: E731
    config = json.loads((folder / "config.json").read_text())
    return {
        "config": config,
        "state": load("state_dict.pt"),
        "input": load("input.pt"),
        "refs": load("refs.pt"),
        "outputs": load("outputs.pt"),
        "pairs": [tuple(p) for p in config["output_pairs"]],
    }


def check_outputs(golden: dict, dtype: torch.dtype, atol: float, fast: bool = True) -> None:
    model = load_espnet(golden["config"], golden["state"]).to(dtype)
    with torch.inference_mode():
        for n_sep, n_re in golden["pairs"]:
            with contextlib.nullcontext() if fast else reference_paths():
                out = model(golden["input"].to(dtype), n_sep=n_sep, n_re=n_re)[0]
            expected = golden["outputs"][f"nsep{n_sep}_nre{n_re}"]
            torch.testing.assert_close(out.double(), expected, rtol=0, atol=atol)


@pytest.mark.golden
@pytest.mark.parametrize("dtype, atol", PRECISIONS)
@pytest.mark.parametrize("variant", COMMITTED_VARIANTS)
def test_committed_golden_outputs(variant: str, dtype: torch.dtype, atol: float) -> None:
    golden = committed(variant)
    assert len(golden["pairs"]) == 2
    check_outputs(golden, dtype, atol)


@pytest.mark.golden
def test_committed_set_stays_under_its_size_limit() -> None:
    files = [path for path in COMMITTED.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    assert {path.parent.name for path in files if path.suffix == ".safetensors"} == set(COMMITTED_VARIANTS)
    assert sum(path.stat().st_size for path in files) < COMMITTED_LIMIT_BYTES


def test_committed_set_is_the_full_one_trimmed() -> None:
    for variant in COMMITTED_VARIANTS:
        mine, theirs = committed(variant), full(variant)
        assert mine["config"] == theirs["config"]
        torch.testing.assert_close(mine["input"], theirs["input"], rtol=0, atol=0)
        assert mine["state"].keys() == theirs["state"].keys()
        for key, value in mine["state"].items():
            torch.testing.assert_close(value, theirs["state"][key], rtol=0, atol=0)
        for key, value in mine["outputs"].items():
            torch.testing.assert_close(value, theirs["outputs"][key], rtol=0, atol=0)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
@pytest.mark.parametrize("dtype, atol", PRECISIONS)
@pytest.mark.parametrize("variant", list(FULL))
def test_golden_outputs(variant: str, dtype: torch.dtype, atol: float, fast: bool) -> None:
    check_outputs(full(variant), dtype, atol, fast)


@pytest.mark.parametrize("dtype, atol, rtol", [(torch.float64, 1e-10, 1e-6), (torch.float32, 2e-6, 1e-5)])
@pytest.mark.parametrize("variant", list(FULL))
def test_golden_training_outputs_and_loss(variant: str, dtype: torch.dtype, atol: float, rtol: float) -> None:
    golden = full(variant)
    model = load_espnet(golden["config"], golden["state"]).to(dtype).train()
    n_sep, n_re = golden["config"]["train_pair"]
    outputs = model.forward_train(golden["input"].to(dtype), n_sep=n_sep, n_re=n_re)
    assert [o.stage for o in outputs] == ["split", "re", "re", "final"]
    for ours, ref in zip(outputs, golden["outputs"]["train_mode_intermediates"], strict=True):
        torch.testing.assert_close(ours.wave[0].double(), ref, rtol=0, atol=atol)
    loss, _ = multi_loss(outputs, golden["refs"][None].to(dtype), LossWeights.named("released"))
    torch.testing.assert_close(loss.double().reshape(1), golden["outputs"]["train_loss"], rtol=rtol, atol=0)
