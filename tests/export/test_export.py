"""`tisdiss export` and the export API: onnxruntime against PyTorch, the card, atomic writes,
one-line errors, and the torch-free example script.

One CLI export (the golden model at (1, 1) on the golden input, or the tiny random model when
../shared is absent) is shared by the tests of this module: an export takes several seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from typer.testing import CliRunner

from tests.conftest import GOLDEN, REPO
from tests.model.test_bandsplit import small_band_config
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.export import onnx as export_api
from tisdiss_cli.export.onnx import PARITY_TOLERANCE, ExportError, check_signal, export_onnx, run_onnx
from tisdiss_cli.model.checkpoint import save_checkpoint
from tisdiss_cli.model.config import ARCHITECTURES
from tisdiss_cli.model.network import TISDiSS, init_weights
from tisdiss_cli.model.realvalued import two_pass_group_norm
from tisdiss_cli.separation.separator import Separator
from tisdiss_cli.zoo.load import load_any

onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is part of the test extra")
_register_commands()
runner = CliRunner()
EXAMPLE = REPO / "examples" / "onnx_separate.py"


def _golden_model(folder: Path) -> Path:
    """The golden weights as an ESPnet experiment folder (as tests/conftest.py espnet_dir)."""
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(json.loads((GOLDEN / "config.json").read_text())))
    torch.save(torch.load(GOLDEN / "state_dict.pt", weights_only=True), folder / "valid.loss.ave_5best.pth")
    return folder


def _tiny_model(folder: Path) -> Path:
    torch.manual_seed(0)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    folder.mkdir()
    return save_checkpoint(model, folder / "tiny.safetensors", {"presets": {"fast": [1, 1]}})


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("export")
    golden = (GOLDEN / "state_dict.pt").exists()
    with pytest.MonkeyPatch.context() as mp:  # the module fixture runs before the autouse one
        mp.setenv("TISDISS_OFFLINE", "1")
        mp.setenv("TISDISS_CACHE_DIR", str(root / "cache"))
        torch.set_num_threads(1)
        model = _golden_model(root / "golden") if golden else _tiny_model(root / "tiny")
        mixture = torch.load(GOLDEN / "input.pt", weights_only=True)[0].numpy() if golden else check_signal(8000)[0]
        wav = root / "mixture.wav"
        sf.write(wav, mixture, 8000, subtype="FLOAT")
        out = root / "out" / "model.onnx"
        args = ["export", str(model), "--nsep", "1", "--nre", "1", "-o", str(out), "--check-input", str(wav)]
        result = runner.invoke(app, args)
        net = load_any(model).model
    return {"result": result, "out": out, "model": model, "net": net, "mixture": mixture, "wav": wav, "golden": golden}


def test_cli_writes_the_onnx_file_and_its_card(exported: dict[str, Any]) -> None:
    result, out = exported["result"], exported["out"]
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "model.onnx.json"]  # no part files
    card = json.loads((out.parent / "model.onnx.json").read_text())
    assert card["sample_rate"] == 8000 and card["num_spk"] == 2
    assert card["depth"] == {"n_sep": 1, "n_re": 1, "preset": None}
    assert card["stft"]["n_fft"] == 128 and card["stft"]["hop_length"] == 64
    assert card["inputs"] == [{"name": "mixture", "dtype": "float32", "shape": [1, "samples"]}]
    assert card["outputs"] == [{"name": "sources", "dtype": "float32", "shape": [1, 2, "samples"]}]
    parity = card["parity"]
    assert parity["samples"] == len(exported["mixture"])
    assert 0 < parity["relative_error"] <= parity["tolerance"] == PARITY_TOLERANCE
    assert f"{parity['max_abs_error']:.2e}" in result.stdout


@pytest.mark.parametrize("length", [65, 1000, 4099, 12345])
def test_onnxruntime_equals_pytorch_at_any_length(exported: dict[str, Any], length: int) -> None:
    mix = (0.05 * np.random.default_rng(length).standard_normal((1, length))).astype(np.float32)
    with torch.inference_mode():
        expected = exported["net"](torch.from_numpy(mix), n_sep=1, n_re=1).numpy()
    got = run_onnx(exported["out"], mix)
    assert got.shape == (1, 2, length)
    assert np.abs(got - expected).max() <= PARITY_TOLERANCE * np.abs(expected).max()


def test_onnxruntime_reproduces_the_golden_outputs(exported: dict[str, Any]) -> None:
    if not exported["golden"]:
        pytest.skip("golden vectors not available (../shared absent)")
    expected = torch.load(GOLDEN / "outputs.pt", weights_only=True)["nsep1_nre1"].numpy()  # float64, authors' code
    got = run_onnx(exported["out"], exported["mixture"][None])[0]
    assert np.abs(got - expected).max() <= PARITY_TOLERANCE * np.abs(expected).max()


@pytest.mark.numerics
def test_the_example_separates_without_torch_as_tisdiss_does(exported: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "sep"
    argv = [str(EXAMPLE), str(exported["out"]), str(exported["wav"]), "-o", str(out)]
    code = (
        "import runpy, sys\n"
        "sys.modules['torch'] = None  # any `import torch` now fails\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "assert not any(m.startswith(('torch.', 'tisdiss')) for m in sys.modules), 'torch or tisdiss was imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    ours = np.stack([sf.read(out / f"mixture_spk{j}.wav", dtype="float32")[0] for j in (1, 2)])
    mixture = exported["mixture"]
    # one chunk: the whole file; fp32, as the exported graph computes
    separator = Separator(exported["net"], device="cpu", segment=len(mixture) / 8000 + 1, precision="fp32")
    theirs = separator.separate(mixture, 8000, n_sep=1, n_re=1)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= PARITY_TOLERANCE * np.abs(theirs).max()


def test_an_existing_file_is_kept_without_overwrite(exported: dict[str, Any]) -> None:
    out = exported["out"]
    before = out.read_bytes()
    again = runner.invoke(app, ["export", str(exported["model"]), "-o", str(out)])
    assert again.exit_code == 1
    assert again.stderr.strip() == f"error: {out}: exists (use --overwrite to replace it)"
    assert out.read_bytes() == before


def test_bad_model_preset_or_check_input_is_one_line(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "m.onnx"
    cases = {
        "unknown model": ["export", "no-such-model", "-o", str(out)],
        "missing.wav": ["export", str(tiny_checkpoint), "--check-input", str(tmp_path / "missing.wav"), "-o", str(out)],
    }
    for expected, args in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
        assert "Traceback" not in result.output
    # an unknown --preset is a usage error while parsing (tests/cli/test_bad_input.py); the library says why
    with pytest.raises(ValueError, match="unknown preset 'turbo'; available: fast, balanced, best"):
        export_onnx(tiny_checkpoint, out, preset="turbo")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_extra_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = export_api.importlib.util.find_spec
    monkeypatch.setattr(
        export_api.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    result = runner.invoke(app, ["export", "no-such-model", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: ONNX export needs onnxruntime: pip install 'tisdiss[onnx]'"
    with pytest.raises(ExportError, match=r"needs onnxruntime: pip install 'tisdiss\[onnx\]'"):
        export_onnx(TISDiSS(ARCHITECTURES["tiny"]), tmp_path / "m.onnx")


def test_a_band_split_mask_model_exports_and_a_failed_check_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The bundled model's kind (band split, complex mask, n_fft 256), through the Python API.

    Six bands, from 2 bins (the bundled layout's narrowest) to 67, instead of its 33: the graph,
    and so the export, is per band, and 33 took 77 s of the suite's time."""
    torch.manual_seed(0)
    model = TISDiSS(small_band_config(band_mask=True, n_fft=256, hop_length=128, band_widths=(2, 4, 8, 16, 32, 67)))
    init_weights(model)
    model.eval()
    traced: list[Any] = []
    real_trace = export_api._trace

    def trace_once(graph: Any) -> Any:  # both exports below are of the same graph
        if not traced:
            traced.append(real_trace(graph))
        return traced[0]

    monkeypatch.setattr(export_api, "_trace", trace_once)

    monkeypatch.setattr(export_api, "PARITY_TOLERANCE", 0.0)
    with pytest.raises(ExportError, match="differs from PyTorch .* nothing written"):
        export_onnx(model, tmp_path / "band.onnx", n_sep=1, n_re=1)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(export_api, "PARITY_TOLERANCE", PARITY_TOLERANCE)
    result = export_onnx(model, tmp_path / "band.onnx", n_sep=1, n_re=1)
    assert result.parity is not None and result.parity.relative_error <= PARITY_TOLERANCE
    assert result.card["stft"]["n_fft"] == 256 and result.card["depth"]["n_re"] == 1
    mix = check_signal(8000, seconds=1.3)
    with torch.inference_mode():
        expected = model(torch.from_numpy(mix), n_sep=1, n_re=1).numpy()
    assert np.abs(run_onnx(result.path, mix) - expected).max() <= PARITY_TOLERANCE * np.abs(expected).max()
    assert len(traced) == 1


def test_the_encoder_norm_keeps_float32_precision_in_onnxruntime(tmp_path: Path) -> None:
    """The standard Encoder's GroupNorm over a whole utterance's [C, T, F] (2.7 M values here, as
    in the released configuration): exported as nn.GroupNorm, onnxruntime's one-pass float32 mean
    measured 4.9e-5 of the output here and put the released graph 5.4e-4 off PyTorch."""
    norm = torch.nn.GroupNorm(1, 128)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
        norm.bias.normal_(generator=torch.Generator().manual_seed(2))

    class EncoderNorm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = norm

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return two_pass_group_norm(x, self.norm)

    x = torch.randn(1, 128, 320, 65, generator=torch.Generator().manual_seed(0)) + 3.0  # an offset, as conv biases give
    with torch.no_grad():
        expected = torch.nn.functional.group_norm(x.double(), 1, norm.weight.double(), norm.bias.double(), norm.eps)
        assert torch.allclose(EncoderNorm()(x.double()), expected, rtol=0, atol=1e-12)  # the same function
        with export_api._quiet_exporter():
            program = torch.onnx.export(EncoderNorm(), (x,), dynamo=True, opset_version=export_api.OPSET)
    program.save(tmp_path / "norm.onnx")
    session = onnxruntime.InferenceSession(tmp_path / "norm.onnx", providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    peak = float(expected.abs().max())
    assert np.abs(got - expected.numpy()).max() < 1e-6 * peak
