"""Files written before the package was reorganised (tests/fixtures/pre_move) still load and resume."""

from __future__ import annotations

import json
import pickletools
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.fixtures.pre_move.make_fixture import losses, write_corpus
from tisdiss_cli import load_checkpoint
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.training.config import resolve_config
from tisdiss_cli.zoo.load import load_any

FIXTURE = Path(__file__).parent / "fixtures" / "pre_move"


def test_pre_move_checkpoint_gives_the_same_output() -> None:
    io = np.load(FIXTURE / "tiny_io.npz")
    model = load_checkpoint(FIXTURE / "tiny.safetensors")
    with torch.inference_mode():
        wave = model(torch.from_numpy(io["mix"])).numpy()
    np.testing.assert_allclose(wave, io["wave"], rtol=0, atol=1e-5)
    loaded = load_any(FIXTURE / "tiny.safetensors")
    assert loaded.presets == {"fast": (1, 1), "balanced": (2, 1), "best": (2, 2)}


def _pickled_globals(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    ops = list(pickletools.genops(data))
    names = {str(arg) for op, arg, _ in ops if op.name == "GLOBAL"}
    names |= {f"{ops[i - 2][1]} {ops[i - 1][1]}" for i, (op, _, _) in enumerate(ops) if op.name == "STACK_GLOBAL"}
    return names


def test_training_state_pickles_no_tisdiss_class() -> None:
    """``last.pt`` must stay loadable whatever the package's module paths: only torch types."""
    last = FIXTURE / "run" / "checkpoints" / "last.pt"
    assert all(name.split()[0].split(".")[0] in ("torch", "collections") for name in _pickled_globals(last))
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["step"] == 4 and state["epoch"] == 0


def test_pre_move_run_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(FIXTURE / "run", tmp_path / "run")
    write_corpus(tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)  # the run's config.json names its data relative to where it ran
    _register_commands()
    result = CliRunner().invoke(app, ["train", "--run", "run", "--resume", "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    expected = {int(k): v for k, v in json.loads((FIXTURE / "expected_losses.json").read_text()).items()}
    resumed = losses(tmp_path / "run")
    assert sorted(resumed) == sorted(expected) == list(range(1, 13))
    # The recorded losses came from another CPU. Even in float64 this tiny run is chaotic: Adam's
    # first updates are about lr * sign(gradient), so gradient entries near zero turn rounding
    # differences into whole steps, about 1000x per step. Measured against the recording on an
    # AMD EPYC with avx512_bf16/avx512_vnni (steps 5 to 12): 7e-15, 8e-12, 7e-9, 1.7e-7 at step 8,
    # then 4.8e-4, 0.036, 0.026, 0.16. So steps 5-8 decide, with a tolerance 60x the spread
    # measured at step 8; a resume that lost any state is off by about 0.2 already at step 5.
    # Same-machine exactness (interrupted against uninterrupted) is test_train.py's.
    for step in range(5, 9):
        assert resumed[step] == pytest.approx(expected[step], abs=1e-5), step
    assert all(np.isfinite(resumed[step]) for step in resumed)
    assert load_any(tmp_path / "run").model.config.emb_dim == 4


def test_old_names_still_work_with_a_warning() -> None:
    import tisdiss_cli
    from tisdiss_cli.model.config import ARCHITECTURES
    from tisdiss_cli.zoo.load import load_any

    with pytest.warns(DeprecationWarning, match="PRESETS is deprecated; use ARCHITECTURES"):
        assert tisdiss_cli.PRESETS is ARCHITECTURES
    with pytest.warns(DeprecationWarning, match="tisdiss_cli.registry is deprecated"):
        from tisdiss_cli.registry import load_model
    assert load_model is load_any
    with pytest.warns(DeprecationWarning, match="'preset' is deprecated"):
        config = resolve_config("tiny", None, None, ['model={"preset": "tiny", "n_re": 1}'])
    assert config.model == ARCHITECTURES["tiny"].replace(n_re=1)


def test_names_renamed_by_the_separation_redesign_still_work_with_a_warning(tiny_checkpoint: Path) -> None:
    from tisdiss_cli import Separator
    from tisdiss_cli.model import network

    with pytest.warns(DeprecationWarning, match="network.Separator is deprecated; use SeparationStage"):
        assert network.Separator is network.SeparationStage
    separator = Separator(tiny_checkpoint, device="cpu", precision="fp32", segment=0.5)
    with pytest.warns(DeprecationWarning, match="Separator.segment is deprecated; use segment_seconds"):
        assert separator.segment == separator.segment_seconds == 0.5
    with pytest.warns(DeprecationWarning, match="LoadedModel.segment is deprecated; use segment_seconds"):
        assert separator.loaded.segment is None


def test_modules_moved_to_the_audio_and_export_layers_still_import_with_a_warning() -> None:
    from tisdiss_cli.audio import files, pcm
    from tisdiss_cli.export import onnx

    with pytest.warns(DeprecationWarning, match="tisdiss_cli.separation.audio is deprecated"):
        from tisdiss_cli.separation.audio import probe
    assert probe is files.probe
    with pytest.warns(DeprecationWarning, match="tisdiss_cli.separation.wavstream is deprecated"):
        from tisdiss_cli.separation.wavstream import PcmReader
    assert PcmReader is pcm.PcmReader
    with pytest.warns(DeprecationWarning, match="tisdiss_cli.separation.export is deprecated"):
        from tisdiss_cli.separation.export import export_onnx
    assert export_onnx is onnx.export_onnx
    with pytest.warns(DeprecationWarning, match="tisdiss_cli.audio.read_blocks is deprecated"):
        from tisdiss_cli.audio import read_blocks
    assert read_blocks is files.read_blocks
