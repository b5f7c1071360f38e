"""``--denoise``: RNNoise on the mixture before it is separated (one option for every command)."""

from __future__ import annotations

from typing import Any

import typer


def denoise_option() -> Any:
    """``--denoise`` (off by default)."""
    return typer.Option(
        False,
        "--denoise",
        help="Run RNNoise on the mixture first: less background noise in the talkers' files, for about "
        "0.04 RTF more (needs: pip install 'tisdiss[denoise]'). docs/rooms.md has the figures.",
    )
