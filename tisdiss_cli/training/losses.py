"""Training losses: PIT SI-SNR per output and the paper's multi-loss (Eq. 1)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from ..model.network import DecodedOutput
from ..util.sisnr import neg_si_snr


def pit_neg_si_snr(est: Tensor, ref: Tensor, clamp_db: float = 70.0) -> tuple[Tensor, Tensor]:
    """Permutation-invariant loss. est, ref: [B, J, L] -> (loss [B], best permutation [B, J]).

    ``perm[b, s]`` is the estimate index matched to reference ``s``.
    """
    j = ref.shape[1]
    pair = neg_si_snr(est.unsqueeze(1), ref.unsqueeze(2), clamp_db)  # [B, ref s, est e]
    perms = torch.tensor(list(itertools.permutations(range(j))), device=est.device)  # [P, J]
    scores = pair[:, torch.arange(j, device=est.device), perms].mean(-1)  # [B, P]
    loss, best = scores.min(dim=1)
    return loss, perms[best]


@dataclass(frozen=True)
class LossWeights:
    """The paper's Eq. 1 weights; terms with weight 0 (or no outputs) are left out."""

    last: float = 1.0  # lambda for the final output
    sep: float = 0.0  # lambda for the mean over separation-stage outputs
    split: float = 1.0  # lambda for the splitter output
    re: float = 1.0  # lambda for the mean over intermediate reconstruction outputs
    average_all: bool = True  # released run: plain average over every decoded output

    @classmethod
    def named(cls, name: str) -> LossWeights:
        """Named settings: 'last' (L_last only), 'l1' ... see :data:`LOSS_SETTINGS`."""
        try:
            return LOSS_SETTINGS[name]
        except KeyError:
            raise ValueError(f"unknown loss setting {name!r}; choose from {', '.join(LOSS_SETTINGS)}") from None


# The paper's named settings. "l1": final only; "l3": every decoded output of the
# reconstruction stage; "l1+3": final plus the mean of the intermediate ones;
# "released": the authors' released run (plain average over splitter + every step).
LOSS_SETTINGS: dict[str, LossWeights] = {
    "l1": LossWeights(last=1.0, sep=0.0, split=0.0, re=0.0, average_all=False),
    "l3": LossWeights(last=0.0, sep=0.0, split=1.0, re=1.0, average_all=False),
    "l1+3": LossWeights(last=1.0, sep=0.0, split=1.0, re=1.0, average_all=False),
    "l1x2+3": LossWeights(last=2.0, sep=0.0, split=1.0, re=1.0, average_all=False),
    "released": LossWeights(),
}


def multi_loss(
    outputs: list[DecodedOutput], ref: Tensor, weights: LossWeights, clamp_db: float = 70.0
) -> tuple[Tensor, dict[str, float]]:
    """Eq. 1 of the paper over the decoded outputs of ``TISDiSS.forward_train``.

    Each output gets its own best permutation. With ``average_all`` every output is one
    equally weighted term (the released run); otherwise the stage terms
    (L_last, mean L_sep, L_split, mean L_re) are weighted by lambda and divided by the
    number of active terms. Returns (scalar loss, per-term values for logging).
    """
    per_output = [(o.stage, pit_neg_si_snr(o.wave, ref, clamp_db)[0].mean()) for o in outputs]
    stats = {f"{stage}{i}": float(v.detach()) for i, (stage, v) in enumerate(per_output)}
    if weights.average_all:
        loss = torch.stack([v for _, v in per_output]).mean()
    else:
        terms = []
        lam = {"final": weights.last, "sep": weights.sep, "split": weights.split, "re": weights.re}
        for stage, w in lam.items():
            values = [v for s, v in per_output if s == stage]
            if w and values:
                terms.append(w * torch.stack(values).mean())
        if not terms:
            raise ValueError("the loss weights select no decoded output")
        loss = torch.stack(terms).sum() / len(terms)
    stats["loss"] = float(loss.detach())
    return loss, stats
