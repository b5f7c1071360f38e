"""A model ready to run at one precision: float32, bfloat16 autocast or dynamic int8."""

from __future__ import annotations

import copy

from ..util.precision import Precision, PrecisionChoice, autocast_dtype, choose_precision
from .int8 import quantize_int8
from .network import TISDiSS


def apply_precision(model: TISDiSS, precision: Precision) -> TISDiSS:
    """``model`` to run at ``precision``; the model passed in is never changed.

    fp32: the model itself. bf16: a shallow copy sharing its weights, whose forwards run
    under bfloat16 autocast. int8: a new inference-only model with int8 FFN and attention
    weights (:mod:`.int8`), on the CPU; later changes to ``model``'s weights do not reach it.
    """
    if precision == "fp32":
        return model
    if precision == "bf16":
        shared = copy.copy(model)  # new attribute dict; submodules and parameters are shared
        shared.compute_dtype = autocast_dtype(precision)
        return shared
    if precision == "int8":
        device = next(model.parameters()).device
        if device.type != "cpu":
            raise ValueError(f"precision int8 runs on the CPU only, the model is on {device}")
        quantized = TISDiSS(model.config)
        quantized.load_state_dict(model.state_dict())
        quantize_int8(quantized)
        return quantized.eval().requires_grad_(False)
    raise ValueError(f"unknown precision {precision!r} (fp32, bf16 or int8)")


def at_precision(model: TISDiSS, requested: str) -> tuple[TISDiSS, PrecisionChoice]:
    """``model`` ready to run at what ``requested`` (auto | fp32 | bf16 | int8) resolves to on the
    model's device for its width (:func:`~tisdiss_cli.util.precision.choose_precision`, the rule),
    and that choice: the one way every command picks a precision. ``ValueError`` for one it cannot run."""
    device = next(model.parameters()).device
    chosen = choose_precision(requested, device, emb_dim=model.config.emb_dim)
    return apply_precision(model, chosen.name), chosen
