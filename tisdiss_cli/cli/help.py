"""``--help`` that shows what to type: nothing after an on/off flag (Typer prints ``<bool>``), and
an argument's own name (``inputs...``) without a Python type next to it (``<list[str]>``).

Options that take a value name it themselves (``metavar="N"``, ``"DIR"``, ``"fast|balanced|best"``).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand, TyperGroup


def _no_type(ctx: Any) -> None:
    return None


def _blank_flag_metavars(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""
        elif getattr(param, "param_type_name", "") == "argument":
            param.display_type_rich = _no_type  # its name says what to type
    return params


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _blank_flag_metavars(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _blank_flag_metavars(super().get_params(ctx))
