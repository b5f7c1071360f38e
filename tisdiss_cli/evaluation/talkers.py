"""Scores for recordings with any number of talkers: which file is whose, and who was heard when.

- :func:`match_talkers`: each talker's file, the assignment of files to talkers that maximises the
  summed SI-SNR (files and talkers may differ in number: a talker without a file is *missed*, a
  file without a talker is extra);
- :func:`speech_errors`: a diarisation-style account computed from the files themselves, in
  ``FRAME_SECONDS`` frames: a talker speaks where their reference holds more than
  ``SPEECH_SHARE`` of the loudest reference frame, a file speaks where it does. Per frame, with
  ``R`` the talkers speaking and ``H`` the talkers whose files speak (a file without a talker
  counts as nobody's), *missed* is ``max(0, |R| - |H|)``, *wrong talker* is
  ``min(|R|, |H|) - |R & H|`` and *false alarm* is ``max(0, |H| - |R|)``, each summed over frames
  in seconds, against the summed ``|R|`` (speech time, a second of two talkers counting two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .metrics import si_snr_matrix

FRAME_SECONDS = 0.1
SPEECH_SHARE = 1e-3  # 30 dB below the loudest reference frame


def match_talkers(est: np.ndarray, refs: np.ndarray) -> list[int | None]:
    """``[K]``: the file ``est[j]`` that is talker ``refs[k]``'s, or None for a talker left
    without one; the assignment with the highest summed SI-SNR."""
    snr = si_snr_matrix(est, refs)  # [J, K]
    rows, cols = linear_sum_assignment(-np.nan_to_num(snr, nan=-1e3, neginf=-1e3))
    found: list[int | None] = [None] * refs.shape[0]
    for j, k in zip(rows, cols, strict=True):
        found[int(k)] = int(j)
    return found


@dataclass(frozen=True)
class SpeechErrors:
    speech_seconds: float  # summed over talkers
    missed_seconds: float
    wrong_seconds: float  # speech in another talker's file
    false_alarm_seconds: float

    @property
    def missed_or_wrong(self) -> float | None:
        """Missed plus wrong-talker speech, as a share of the speech time."""
        if self.speech_seconds <= 0:
            return None
        return (self.missed_seconds + self.wrong_seconds) / self.speech_seconds


def frame_energies(x: np.ndarray, rate: int) -> np.ndarray:
    """``[C, frames]`` mean squares of ``x [C, n]`` over ``FRAME_SECONDS`` frames (a partial last one dropped)."""
    width = max(1, round(FRAME_SECONDS * rate))
    frames = x.shape[1] // width
    return (np.asarray(x[:, : frames * width], np.float64).reshape(x.shape[0], frames, width) ** 2).mean(-1)


def speech_errors(est: np.ndarray, refs: np.ndarray, owner: list[int | None], rate: int) -> SpeechErrors:
    """Who was heard when, from ``est [J, n]`` and ``refs [K, n]`` at ``rate`` with ``owner[k]``
    the file of talker ``k`` (:func:`match_talkers`); see the module docstring."""
    ref_e, est_e = frame_energies(refs, rate), frame_energies(est, rate)
    frames = min(ref_e.shape[1], est_e.shape[1])
    ref_e, est_e = ref_e[:, :frames], est_e[:, :frames]
    floor = SPEECH_SHARE * ref_e.max(initial=0.0)
    speaks = ref_e > floor  # [K, frames]
    heard = est_e > floor  # [J, frames]
    heard_as = np.zeros_like(speaks)  # [K, frames]: talker k's file speaks
    for k, j in enumerate(owner):
        if j is not None:
            heard_as[k] = heard[j]
    r, h = speaks.sum(0), heard.sum(0)  # a file without a talker still counts in |H|
    both = (speaks & heard_as).sum(0)
    seconds = FRAME_SECONDS
    return SpeechErrors(
        speech_seconds=float(r.sum() * seconds),
        missed_seconds=float(np.maximum(r - h, 0).sum() * seconds),
        wrong_seconds=float((np.minimum(r, h) - both).sum() * seconds),
        false_alarm_seconds=float(np.maximum(h - r, 0).sum() * seconds),
    )


def per_talker_si_snri(
    est: np.ndarray, refs: np.ndarray, mix: np.ndarray, owner: list[int | None]
) -> list[float | None]:
    """Each talker's SI-SNR improvement: their file against them, less the mixture against them
    (None for a talker without a file)."""
    baseline = si_snr_matrix(mix[None], refs)[0]  # [K]
    found: list[float | None] = []
    for k, j in enumerate(owner):
        found.append(None if j is None else float(si_snr_matrix(est[j][None], refs[k][None])[0, 0] - baseline[k]))
    return found
