"""Go-style command-line flags, spelled as `weed` spells them.

`weed` uses Go's `flag` package, so users type `-port=9333`, `-port 9333` or `--port 9333`, and a
boolean flag alone (`-largeDisk`) means true while `-largeDisk=false` turns it off. Every weedpy
command parses its arguments with a `FlagSet` so all of them accept exactly those spellings.
Flags and positional arguments may be interleaved (Go stops at the first positional; accepting
more is harmless and friendlier).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from seaweed_py.errors import WeedError

__all__ = ["Duration", "Flag", "FlagSet", "HelpRequested", "UsageError", "flag_value"]

_T = TypeVar("_T")


class UsageError(Exception):
    """The command line is wrong; the message says how."""


class HelpRequested(Exception):
    """`-h`/`-help`/`--help` was given; `str(exc)` is the usage text."""


_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off"}


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_MAX_DURATION = (2**63 - 1) / 1e9  # Go's: nanoseconds in an int64
_DURATION_TERM = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


class Duration(float):
    """A Go `time.Duration` flag value, held in seconds: `90s`, `1m30s`, `1.5h`, `300ms`, `0`
    (Go's `time.ParseDuration` grammar: a sign, then number-unit terms); shown as Go shows it
    (`1m0s`). A malformed text raises ValueError."""

    def __new__(cls, value: str | float = 0.0) -> Duration:
        return super().__new__(cls, _parse_duration(value) if isinstance(value, str) else value)

    def __repr__(self) -> str:
        return _format_duration(float(self))

    __str__ = __repr__


def _parse_duration(text: str) -> float:
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(body):
        term = _DURATION_TERM.match(body, pos)
        if term is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(term.group(1)) * _DURATION_UNITS[term.group(2)]
        pos = term.end()
    if not body or total > _MAX_DURATION:
        raise ValueError(f"invalid duration {text!r}")
    return -total if text.startswith("-") else total


def _format_duration(seconds: float) -> str:
    ns = round(seconds * 1e9)
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _decimal(ns / size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest / 1e9) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _decimal(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Flag:
    name: str
    default: Any
    help: str
    kind: type

    def convert(self, text: str) -> Any:
        if self.kind is bool:
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise UsageError(f"invalid boolean value {text!r} for -{self.name}")
        try:
            if self.kind in (int, float) and not (text.isascii() and text == text.strip()):
                # Python's int() takes other scripts' digits and surrounding blanks; Go's not.
                raise ValueError(text)
            return self.kind(text)
        except ValueError:
            raise UsageError(
                f"invalid value {text!r} for -{self.name}: want {self.kind.__name__}"
            ) from None


def flag_value(name: str, parse: Callable[[str], _T], text: str) -> _T:
    """`parse(text)` for flag `-name`; the `WeedError` a value parser raises (e.g.
    `parse_collection`'s `InvalidCollection`) becomes a `UsageError` naming the flag."""
    try:
        return parse(text)
    except WeedError as exc:
        raise UsageError(f"-{name}: {exc.message}") from None


class FlagSet:
    """The flags of one command, with their defaults and help text."""

    def __init__(self, command: str, summary: str, positional: str = "") -> None:
        self.command = command
        self.summary = summary
        self.positional = positional
        self._flags: dict[str, Flag] = {}

    def add(self, name: str, default: Any, help: str, kind: type | None = None) -> None:
        if name in self._flags:
            raise ValueError(f"flag -{name} defined twice")
        self._flags[name] = Flag(name, default, help, kind or type(default))

    @property
    def flags(self) -> dict[str, Flag]:
        return dict(self._flags)

    def usage(self) -> str:
        lines = [
            f"Usage: weedpy {self.command} [flags] {self.positional}".rstrip(),
            "",
            self.summary,
            "",
            "Flags:",
        ]
        for f in sorted(self._flags.values(), key=lambda f: f.name.lower()):
            kind = "" if f.kind is bool else f" {f.kind.__name__}"
            default = f" (default {f.default!r})" if f.default not in ("", None, False) else ""
            lines.append(f"  -{f.name}{kind}\n        {f.help}{default}")
        return "\n".join(lines)

    def parse(self, argv: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
        """Return (values by flag name, positional arguments)."""
        values = {name: f.default for name, f in self._flags.items()}
        positional: list[str] = []
        args = list(argv)
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                positional.extend(args[i:])
                break
            if not arg.startswith("-") or arg == "-":
                positional.append(arg)
                continue
            name, eq, text = arg.lstrip("-").partition("=")
            if name in ("h", "help"):
                raise HelpRequested(self.usage())
            flag = self._flags.get(name)
            if flag is None:
                raise UsageError(f"flag provided but not defined: -{name}\n\n{self.usage()}")
            if not eq:
                if flag.kind is bool:
                    values[name] = True
                    continue
                if i >= len(args):
                    raise UsageError(f"flag needs an argument: -{name}")
                text = args[i]
                i += 1
            values[name] = flag.convert(text)
        return values, positional
