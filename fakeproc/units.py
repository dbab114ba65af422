"""Human sizes and durations, as written in scenario files and ``fakeproc ctl``."""

from __future__ import annotations

import re

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
        raise ValueError(f"not a size: {value!r} (examples: 4096, 64k, 512M, 1.5G)")
    return int(float(m.group(1)) * _MULT[m.group(2).lower()])


def parse_duration(value: str | int | float) -> float:
    """Seconds from ``30``, ``"90s"``, ``"15m"``, ``"2h"``, ``"3d"``, ``"1d2h30m"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"negative duration: {value}")
        return float(value)
    text = str(value).replace(" ", "")
    parts = list(_DURATION_PART.finditer(text))
    if not text or "".join(p.group(0) for p in parts) != text or (len(parts) > 1 and not parts[-1].group(2)):
        raise ValueError(f"not a duration: {value!r} (examples: 30, 90s, 15m, 2h, 3d, 47h50m)")
    return sum(float(p.group(1)) * _SECONDS[(p.group(2) or "").lower()] for p in parts)


def format_size(nbytes: int) -> str:
    for unit, mult in (("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10)):
        if nbytes >= mult and nbytes % mult == 0:
            return f"{nbytes // mult}{unit}"
    return str(nbytes)
