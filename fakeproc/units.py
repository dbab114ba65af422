"""Human sizes and durations, as written in scenario files and ``fakeproc ctl``."""

from __future__ import annotations

import math
import re
from fractions import Fraction

#: the fastest running clock fakeproc offers: simulated seconds per real one
CLOCK_SPEED_MAX = 1e9

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(value: str | int) -> int:
    """Bytes from ``4096``, ``"64k"``, ``"1.5G"``, ``"512MiB"`` (binary units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"negative size: {value}")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"not a size: {_short(value)} (examples: 4096, 64k, 512M, 1.5G)")
    # exact arithmetic: a float of 400 digits is infinite
    return int(Fraction(m.group(1)) * _MULT[m.group(2).lower()])


def parse_duration(value: str | int | float) -> float:
    """Seconds from ``30``, ``"90s"``, ``"15m"``, ``"2h"``, ``"3d"``, ``"1d2h30m"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"negative duration: {value}")
        return _finite(float(value), value)
    text = str(value).replace(" ", "")
    parts = list(_DURATION_PART.finditer(text))
    if not text or "".join(p.group(0) for p in parts) != text or (len(parts) > 1 and not parts[-1].group(2)):
        raise ValueError(f"not a duration: {_short(value)} (examples: 30, 90s, 15m, 2h, 3d, 47h50m)")
    return _finite(sum(float(p.group(1)) * _SECONDS[(p.group(2) or "").lower()] for p in parts), value)


def _finite(x: float, value: object) -> float:
    if not math.isfinite(x):
        raise ValueError(f"not a finite duration: {_short(value)}")
    return x


def _short(value: object) -> str:
    """A value as an error message quotes it: at most 40 characters of it."""
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def format_size(nbytes: int) -> str:
    for unit, mult in (("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10)):
        if nbytes >= mult and nbytes % mult == 0:
            return f"{nbytes // mult}{unit}"
    return str(nbytes)


def parse_rate(value: str | int) -> int:
    """Bytes per second from ``"16M"`` or ``"16M/s"`` (a size allocated each simulated second)."""
    text = str(value).strip()
    if text.lower().endswith("/s"):
        text = text[:-2]
    return parse_size(int(text) if text.isdigit() else text)


def parse_clock(value: str | int | float) -> float:
    """The clock's speed: ``"stepped"`` (0, moved by tick only), ``"real"`` (1) or ``"60x"`` (60 per second)."""
    text = str(value).strip().lower()
    if text == "stepped":
        return 0.0
    if text == "real":
        return 1.0
    m = re.fullmatch(r"x?(\d+(?:\.\d+)?)x?", text)
    if m and 0 < float(m.group(1)) <= CLOCK_SPEED_MAX:
        return float(m.group(1))
    raise ValueError(f"not a clock: {_short(value)} (stepped, real, or a speed such as 60x, at most "
                     f"{CLOCK_SPEED_MAX:g}x)")


def format_clock(scale: float) -> str:
    if scale == 0:
        return "stepped"
    if scale == 1:
        return "real"
    return f"{scale:g}x"
