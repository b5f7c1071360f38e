"""``--help`` that shows what to type: nothing after an on/off flag (Typer prints ``<bool>``), and
an argument's own name (``inputs...``) without a Python type next to it (``<list[str]>``).

Options that take a value name it themselves (``metavar="N"``, ``"DIR"``, ``"fast|balanced|best"``).

Help text is plain text. Typer renders it as Rich markup, which would take ``tisdiss[av]`` or
``[default: ...]`` for style tags and drop them, so every command's help, epilog and option help
is escaped here, once, where the commands are made.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
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


def _as_plain_text(command: Any) -> None:
    for attr in ("help", "epilog", "short_help"):
        text = getattr(command, attr, None)
        if text:
            setattr(command, attr, escape(text))
    for param in command.params:
        if getattr(param, "help", None):
            param.help = escape(param.help)


class Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _as_plain_text(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _blank_flag_metavars(super().get_params(ctx))


class Group(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _as_plain_text(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _blank_flag_metavars(super().get_params(ctx))
