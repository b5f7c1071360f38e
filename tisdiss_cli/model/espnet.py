"""Import of the authors' ESPnet TISDiSS checkpoints: config translation and key mapping.

An ESPnet experiment is a ``config.yaml`` (the separator's constructor arguments) and a
``.pth`` state dict; every key maps onto a tisdiss key, strictly (a missing, unexpected or
misshapen key is an error naming the ESPnet key).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoint import CheckpointError
from .config import ModelConfig
from .layers import RotaryEmbedding
from .network import TISDiSS

# Constructor defaults of the reference separator that matter when a YAML leaves them out
# (several differ from the released run, so the loader must not invent its own).
_ESPNET_DEFAULTS: dict[str, Any] = {
    "num_spk": 2,
    "attention_dim": 128,
    "spk_path_enable": True,
    "split_compress": False,
    "mask": False,
    "spk_spliter_type": "swiglu_conv_deconv2d",
    "input_type": "stft",
    "band_split": False,
    "reconstructor_repeat_times": 3,
    "repeat_residual_module": False,
    "reconstructor_repeat_residual_module": True,
    "tf_order": "ft",
    "conv1d_kernel": 4,
    "conv1d_shift": 1,
    "eps": 1e-5,
}
_REQUIRED = (
    "emb_dim",
    "n_heads",
    "ffn_hidden_dim",
    "norm_type",
    "num_groups",
    "encoder_n_layers",
    "encoder_repeat_times",
    "reconstructor_n_layers",
)


def config_from_espnet(conf: Mapping[str, Any]) -> ModelConfig:
    """ModelConfig from an ESPnet experiment config (``separator_conf``, ``encoder_conf``...)."""
    if conf.get("separator", "tisdiss") != "tisdiss":
        raise CheckpointError(f"separator {conf.get('separator')!r} is not a TISDiSS separator")
    sep = {**_ESPNET_DEFAULTS, **dict(conf.get("separator_conf") or {})}
    for key in _REQUIRED:
        if key not in sep:
            raise CheckpointError(f"separator_conf has no {key!r}")
    unsupported = {
        "input_type": (sep["input_type"], "stft"),
        "mask": (sep["mask"], False),
        "split_compress": (sep["split_compress"], False),
        "tf_order": (sep["tf_order"], "ft"),
    }
    for key, (value, wanted) in unsupported.items():
        if value != wanted:
            raise CheckpointError(f"separator_conf {key}={value!r} is not supported (only {wanted!r})")
    ffn_type = sep.get("ffn_type", ["swiglu_conv1d", "swiglu_conv1d"])
    if list(ffn_type) != ["swiglu_conv1d", "swiglu_conv1d"]:
        raise CheckpointError(f"separator_conf ffn_type={ffn_type!r} is not supported")
    enc = dict(conf.get("encoder_conf") or {})
    bands = _band_split_from_espnet(sep)
    return ModelConfig(
        **bands,
        num_spk=int(sep["num_spk"]),
        emb_dim=int(sep["emb_dim"]),
        attention_dim=int(sep["attention_dim"]),
        n_heads=int(sep["n_heads"]),
        ffn_hidden_dim=tuple(sep["ffn_hidden_dim"]),
        ffn_kernel=int(sep["conv1d_kernel"]),
        ffn_stride=int(sep["conv1d_shift"]),
        norm_type=sep["norm_type"],
        num_groups=int(sep["num_groups"]),
        eps=float(sep["eps"]),
        m_sep=int(sep["encoder_n_layers"]),
        n_sep=int(sep["encoder_repeat_times"]),
        m_re=int(sep["reconstructor_n_layers"]),
        n_re=int(sep["reconstructor_repeat_times"]),
        splitter=sep["spk_spliter_type"],
        spk_path=bool(sep["spk_path_enable"]),
        sep_residual=bool(sep["repeat_residual_module"]),
        re_residual=bool(sep["reconstructor_repeat_residual_module"]),
        n_fft=int(enc.get("n_fft", sep.get("stft_n_fft", 128))),
        hop_length=int(enc.get("hop_length", sep.get("stft_hop_length", 64))),
        sample_rate=int(sep.get("sample_rate", 8000)),
    )


def _band_split_from_espnet(sep: Mapping[str, Any]) -> dict[str, Any]:
    """The band-split fields of ModelConfig from a separator_conf (the reference's
    constructor defaults where a key is absent)."""
    if not sep.get("band_split", False):
        return {}
    split_type = sep.get("split_type", "bandsplit")
    if split_type not in ("bandsplit", "mel"):
        raise CheckpointError(f"separator_conf split_type={split_type!r} is not supported (only 'bandsplit' or 'mel')")
    for key in ("band_split_encoder_type", "band_split_decoder_type"):
        if sep.get(key, "linear") != "linear":
            raise CheckpointError(f"separator_conf {key}={sep[key]!r} is not supported (only 'linear')")
    if int(sep.get("band_split_decoder_depth", 2)) != 2:
        raise CheckpointError("separator_conf band_split_decoder_depth must be 2 (the only depth supported)")
    if sep.get("stereo", False):
        raise CheckpointError("separator_conf stereo=true is not supported")
    fields: dict[str, Any] = {"band_split": split_type, "band_mlp_expansion": int(sep.get("mlp_expansion_factor", 4))}
    if split_type == "mel":
        fields["num_bands"] = int(sep.get("num_bands", 25))
    elif sep.get("freqs_per_bands"):
        fields["band_widths"] = tuple(int(w) for w in sep["freqs_per_bands"])
    return fields


# (ESPnet prefix, tisdiss prefix); the first table applies to the whole key, the second to
# the part after "<stage>.blocks.<m>.<path>_path.".
_TOP_NAMES: list[tuple[str, str]] = [
    ("separator.conv.0.", "encoder.conv."),
    ("separator.conv.1.", "encoder.norm."),
    ("separator.encoder_blocks.", "separator.blocks."),
    ("separator.reconstructor_blocks.", "reconstructor.blocks."),
    ("separator.spk_spliter.", "splitter."),
    ("separator.reconstructor_deconv.", "decoder.deconv."),
    ("separator.concat_block.0.", "mixer."),
    ("separator.concat_block.1.", "mixer.act."),
]
_PATH_NAMES: list[tuple[str, str]] = [
    ("ffn_norm.0.", "norm_post."),  # the reference indexes its FFNs backwards: 0 runs last
    ("ffn_norm.1.", "norm_pre."),
    ("ffn.0.", "ffn_post."),
    ("ffn.1.", "ffn_pre."),
    ("attn.aggregate_heads.0.", "attn.out."),
]


def _swap_prefix(text: str, table: list[tuple[str, str]], to_tisdiss: bool) -> str:
    # Longest prefix first: "mixer.act." must win over "mixer." on the way back.
    for espnet, ours in sorted(table, key=lambda pair: -len(pair[0 if to_tisdiss else 1])):
        src, dst = (espnet, ours) if to_tisdiss else (ours, espnet)
        if text.startswith(src):
            return dst + text[len(src) :]
    return text


# Band-split modules: (ESPnet pattern, tisdiss pattern) with the band index in the middle.
_BAND_NAMES: list[tuple[str, str]] = [
    (r"separator\.band_split_encoder\.to_features\.(\d+)\.0\.", r"encoder.band_split.bands.\1.norm."),
    (r"separator\.band_split_encoder\.to_features\.(\d+)\.1\.", r"encoder.band_split.bands.\1.proj."),
    (r"separator\.band_split_decoder\.to_freqs\.(\d+)\.0\.", r"decoder.band_restore.bands.\1.mlp."),
]
_BAND_NAMES_BACK: list[tuple[str, str]] = [
    (r"encoder\.band_split\.bands\.(\d+)\.norm\.", r"separator.band_split_encoder.to_features.\1.0."),
    (r"encoder\.band_split\.bands\.(\d+)\.proj\.", r"separator.band_split_encoder.to_features.\1.1."),
    (r"decoder\.band_restore\.bands\.(\d+)\.mlp\.", r"separator.band_split_decoder.to_freqs.\1.0."),
]


def _rename(key: str, to_tisdiss: bool) -> str:
    for pattern, replacement in _BAND_NAMES if to_tisdiss else _BAND_NAMES_BACK:
        renamed, n = re.subn("^" + pattern, replacement, key)
        if n:
            return renamed
    key = _swap_prefix(key, _TOP_NAMES, to_tisdiss)
    if "_path." in key:
        head, _, rest = key.partition("_path.")
        key = f"{head}_path.{_swap_prefix(rest, _PATH_NAMES, to_tisdiss)}"
    return key


def espnet_to_tisdiss_key(key: str) -> str | None:
    """Translate one ESPnet key; None for the constant RoPE frequencies tisdiss does not store."""
    if key.endswith(".attn.rope.freqs"):
        return None
    known = tuple(espnet for espnet, _ in _TOP_NAMES) + (
        "separator.band_split_encoder.",
        "separator.band_split_decoder.",
    )
    if not key.startswith(known):
        return key  # unknown: kept, so the strict loader reports it as unexpected
    return _rename(key, to_tisdiss=True)


def tisdiss_to_espnet_key(key: str) -> str:
    return _rename(key, to_tisdiss=False)


def convert_espnet_state(model: TISDiSS, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map an ESPnet state dict onto ``model``'s keys, checking the constant RoPE frequencies.

    Errors (missing, unexpected, wrong shape) name the ESPnet key.
    """
    head_dim = model.config.attention_dim // model.config.n_heads
    expected_freqs = RotaryEmbedding(head_dim).freqs
    own = model.state_dict()
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"key {key!r} does not hold a tensor")
        new = espnet_to_tisdiss_key(key)
        if new is None:
            if value.shape != expected_freqs.shape or not torch.allclose(
                value.float(), expected_freqs, rtol=0, atol=1e-6
            ):
                raise CheckpointError(f"key {key!r}: RoPE frequencies differ from 10000^(-2i/{head_dim})")
            continue
        if new not in own:
            raise CheckpointError(f"unexpected key {key!r}")
        if new == "mixer.weight" and value.shape == (own[new].numel(), 1, 1, 1):
            value = value.reshape(-1)  # depthwise 1x1 conv weight [C, 1, 1, 1] -> per-channel scale
        if value.shape != own[new].shape:
            raise CheckpointError(
                f"shape mismatch for {key!r}: checkpoint {tuple(value.shape)}, model {tuple(own[new].shape)}"
            )
        out[new] = value
    missing = [tisdiss_to_espnet_key(k) for k in own if k not in out]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"missing key {missing[0]!r}{more}")
    return out


def _read_espnet_config(config: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    path = Path(config)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ESPnet config ({exc.strerror})") from None
    if path.suffix == ".json":
        return json.loads(text)
    import yaml  # only needed for ESPnet experiment folders

    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not an ESPnet config (no mapping at top level)")
    return data


def _read_espnet_state(state_dict: str | os.PathLike | Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    if isinstance(state_dict, Mapping):
        return state_dict
    path = Path(state_dict)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a loadable PyTorch state dict ({exc})") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def load_espnet_state(config: ModelConfig, state_dict: str | os.PathLike | Mapping[str, Tensor]) -> TISDiSS:
    """A model of ``config`` holding an ESPnet state dict (a ``.pth`` path, loaded with
    ``weights_only=True``, or a mapping), in eval mode. Errors name the file and the ESPnet key."""
    model = TISDiSS(config)
    state = _read_espnet_state(state_dict)
    source = str(state_dict) if not isinstance(state_dict, Mapping) else "ESPnet state dict"
    try:
        converted = convert_espnet_state(model, state)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    model.load_state_dict(converted, strict=True)
    return model.eval()


def load_espnet(
    config: str | os.PathLike | Mapping[str, Any],
    state_dict: str | os.PathLike | Mapping[str, Tensor],
) -> TISDiSS:
    """Build a tisdiss model from an ESPnet TISDiSS experiment, in eval mode.

    config: ``config.yaml`` path or the equivalent dict; state_dict: ``.pth`` path (loaded
    with ``weights_only=True``) or a mapping. Every key must map: a missing or unexpected
    key, or a shape mismatch, raises :class:`CheckpointError` naming it.
    """
    return load_espnet_state(config_from_espnet(_read_espnet_config(config)), state_dict)
