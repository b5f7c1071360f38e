"""Same-gender and cross-gender means from a test set's metadata.tsv (dev2mix has one)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.evaluation.test_eval import write_set
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.evaluation.evaluate import evaluate
from tisdiss_cli.evaluation.testset import gender_pairs, load_testset
from tisdiss_cli.model.checkpoint import save_checkpoint
from tisdiss_cli.model.config import ARCHITECTURES
from tisdiss_cli.model.network import TISDiSS, init_weights

HEADER = "name\ts1_path\ts1_gender\ts2_path\ts2_gender"


def write_metadata(root: Path, *rows: tuple[str, str, str]) -> None:
    lines = [HEADER] + [f"{name}\ta.flac\t{g1}\tb.flac\t{g2}" for name, g1, g2 in rows]
    (root / "metadata.tsv").write_text("\n".join(lines) + "\n")


def test_pairs_are_grouped_by_the_genders_the_metadata_gives(tmp_path: Path) -> None:
    root = write_set(tmp_path / "set", n=4)
    write_metadata(root, ("utt0", "F", "F"), ("utt1", "M", "f"), ("utt2", "M", ""), ("other", "M", "M"))
    groups = gender_pairs(load_testset(root))
    assert groups == {"utt0": "same-gender", "utt1": "cross-gender"}  # unknown gender and unknown id: none
    (root / "metadata.tsv").write_text("id\tgender\nutt0\tF\n")  # some other table: no groups
    assert gender_pairs(load_testset(root)) == {}
    (root / "metadata.tsv").unlink()
    assert gender_pairs(load_testset(root)) == {}


def test_group_means_are_the_means_of_their_rows_and_the_cli_prints_them(tmp_path: Path) -> None:
    root = write_set(tmp_path / "set", n=3)
    write_metadata(root, ("utt0", "F", "F"), ("utt1", "M", "M"), ("utt2", "F", "M"))
    torch.manual_seed(0)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    report = evaluate(model.eval(), root, n_sep=1, n_re_values=[1, 2], rtf_utterances=0, precision="fp32")
    rows = {(r.id, r.n_re): r for r in report.utterances}
    assert [(g.group, g.n_re, g.utterances) for g in report.groups] == [
        ("cross-gender", 1, 1),
        ("cross-gender", 2, 1),
        ("same-gender", 1, 2),
        ("same-gender", 2, 2),
    ]
    same = next(g for g in report.groups if g.group == "same-gender" and g.n_re == 2)
    assert same.si_snri == pytest.approx(np.mean([rows["utt0", 2].si_snri, rows["utt1", 2].si_snri]))
    assert same.sdri == pytest.approx(np.mean([rows["utt0", 2].sdri, rows["utt1", 2].sdri]))

    _register_commands()
    checkpoint = save_checkpoint(model, tmp_path / "tiny.safetensors", {"presets": {"best": [1, 2]}})
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["eval", str(root), "-m", str(checkpoint), "--nre", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "same-gender pairs (2): SI-SNRi" in result.output and "cross-gender pairs (1)" in result.output
    saved = json.loads(out.read_text())["groups"]
    assert {(g["group"], g["utterances"]) for g in saved} == {("same-gender", 2), ("cross-gender", 1)}
