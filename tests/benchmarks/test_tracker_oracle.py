"""benchmarks/tracker_oracle.py: the oracle assignment finds the blocks' true owners, and drops noise."""

from __future__ import annotations

import numpy as np

from tests.benchmarks import load_benchmark

oracle = load_benchmark("tracker_oracle")

BLOCK = 400


def talkers_and_outputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two talkers over 4 blocks; the outputs swap them in block 1, and in block 3 talker 0 talks
    alone in output 0 while output 1 holds only noise."""
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, 4 * BLOCK))
    refs[1, 3 * BLOCK :] = 0.0
    noise = 0.5 * rng.standard_normal(BLOCK)
    outputs = refs.copy()
    swap = slice(BLOCK, 2 * BLOCK)
    outputs[:, swap] = refs[::-1, swap]
    outputs[1, 3 * BLOCK :] = noise
    return refs, outputs, noise


def test_the_oracle_undoes_a_swap_and_keeps_every_output_unless_it_may_drop_noise() -> None:
    refs, outputs, _ = talkers_and_outputs()
    kept = oracle.oracle_assignment(outputs, refs, BLOCK, drop=False)
    assert kept.shape == (4, 2, 2)
    np.testing.assert_array_equal(kept[0], np.eye(2))
    np.testing.assert_array_equal(kept[1], np.eye(2)[::-1])  # the swap undone
    np.testing.assert_array_equal(kept[2], np.eye(2))
    np.testing.assert_array_equal(kept[3][:, 0], [1.0, 0.0])  # the lone talker's output stays theirs ...
    assert kept[3][:, 1].sum() == 1  # ... and the noise output must go to a file too
    dropped = oracle.oracle_assignment(outputs, refs, BLOCK, drop=True)
    np.testing.assert_array_equal(dropped[:3], kept[:3])
    np.testing.assert_array_equal(dropped[3], [[1.0, 0.0], [0.0, 0.0]])  # the noise output goes nowhere
