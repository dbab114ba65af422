#!/usr/bin/env python3
"""Watch the model move: oom_score of every process over time while memory fills up.

Steps the simulated clock of a fakeproc mount (``fakeproc ctl tick``) and, after
each step, reads what a user would read from the mount itself: every
``PID/oom_score``, and MemFree/SwapFree from ``meminfo``.  Kills are taken
from the change stream (``fakeproc ctl events``).  Prints a table (markdown
with --markdown), and with --svg FILE draws the scores as lines.

Without -m it mounts the default machine itself (the memhog story) in a
temporary directory, under --kernel, and removes it at the end:

    tools/oom_timeline.py [--kernel 2.6.32] [--step 10s] [--until 2m] [--svg scores.svg]
    tools/oom_timeline.py -m mountpoint --step 1m --until 1h
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fakeproc.client import ControlError, send  # noqa: E402
from fakeproc.units import parse_duration  # noqa: E402

Row = dict[str, object]


@contextlib.contextmanager
def mounted(mountpoint: str | None, kernel: str) -> Iterator[str]:
    """The given mount, or a fresh default machine in a temporary directory (unmounted after)."""
    if mountpoint:
        yield mountpoint
        return
    with tempfile.TemporaryDirectory(prefix="fakeproc-timeline-") as tmp:
        mp = os.path.join(tmp, "mnt")
        fakeproc = [sys.executable, "-m", "fakeproc"]
        subprocess.run(fakeproc + ["mount", mp, "--background", "--kernel", kernel, "--log", mp + ".log"],
                       check=True, stdout=subprocess.DEVNULL)
        try:
            yield mp
        finally:
            subprocess.run(fakeproc + ["umount", mp], check=False)


def read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None  # the process is gone


def snapshot(mp: str) -> Row:
    """What the mount shows now: uptime, free memory, every process's oom_score."""
    meminfo = dict(line.split(":", 1) for line in (read(f"{mp}/meminfo") or "").splitlines())
    row: Row = {"uptime": float((read(f"{mp}/uptime") or "0").split()[0]),
                "memfree_mib": int(meminfo["MemFree"].split()[0]) // 1024,
                "swapfree_mib": int(meminfo["SwapFree"].split()[0]) // 1024, "scores": {}}
    for name in os.listdir(mp):
        if name.isdigit():
            score = read(f"{mp}/{name}/oom_score")
            comm = (read(f"{mp}/{name}/comm") or "?").strip()
            if score is not None:
                row["scores"][f"{name} {comm}"] = int(score)  # type: ignore[index]
    return row


def timeline(mp: str, step: float, until: float) -> list[Row]:
    seq = max([json.loads(line)["seq"] for line in send(mp, ["events"]).splitlines()] or [0])
    rows = [snapshot(mp)]
    start = rows[0]["uptime"]
    t = 0.0
    while t < until - 1e-9:
        dt = min(step, until - t)
        send(mp, ["tick", f"{dt}"])
        t += dt
        row = snapshot(mp)
        events = [json.loads(line) for line in send(mp, ["events", "--since", str(seq)]).splitlines()]
        if events:
            seq = events[-1]["seq"]
        row["kills"] = [f"{ev['pid']} {ev['comm']} at +{ev['time'] - start:.1f}s" for ev in events
                        if ev["type"] == "kill"]
        rows.append(row)
    return rows


def table(rows: list[Row], markdown: bool) -> str:
    start = rows[0]["uptime"]
    procs: list[str] = []
    for r in rows:
        for name in r["scores"]:  # type: ignore[attr-defined]
            if name not in procs:
                procs.append(name)
    procs.sort(key=lambda n: int(n.split()[0]))
    head = ["t (s)", "MemFree MiB", "SwapFree MiB"] + procs + ["OOM kills"]
    body = []
    for r in rows:
        scores = r["scores"]
        body.append([f"+{r['uptime'] - start:g}", str(r["memfree_mib"]), str(r["swapfree_mib"])]
                    + [str(scores.get(p, "-")) for p in procs]  # type: ignore[attr-defined]
                    + ["; ".join(r.get("kills", [])) or ""])  # type: ignore[arg-type]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head[:-1]) + "|---|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines) + "\n"
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths[:-1]) + "  {}"
    return "\n".join(fmt.format(*cells).rstrip() for cells in [head, *body]) + "\n"


def svg(rows: list[Row], title: str) -> str:
    """oom_score against time, one polyline per process (a gap where it is gone), and free memory dashed."""
    start = rows[0]["uptime"]
    xs = [r["uptime"] - start for r in rows]  # type: ignore[operator]
    procs = sorted({p for r in rows for p in r["scores"]}, key=lambda n: int(n.split()[0]))  # type: ignore
    top = max([s for r in rows for s in r["scores"].values()] + [1])  # type: ignore[attr-defined]
    w, h, left, bottom = 720, 360, 70, 40
    x = lambda v: left + (w - left - 160) * v / max(xs[-1], 1e-9)  # noqa: E731
    y = lambda v: h - bottom - (h - bottom - 20) * v / top  # noqa: E731
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           'font-size="11">', f'<text x="{left}" y="14">{title}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - 160}" y2="{h - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="20" x2="{left}" y2="{h - bottom}" stroke="black"/>',
           f'<text x="{left}" y="{h - 10}">0 s</text><text x="{w - 200}" y="{h - 10}">{xs[-1]:g} s</text>',
           f'<text x="4" y="24">{top}</text><text x="4" y="{h - bottom}">0</text>']
    for i, p in enumerate(procs):
        color = colors[i % len(colors)]
        segments: list[list[str]] = [[]]
        for xv, r in zip(xs, rows, strict=True):
            s = r["scores"].get(p)  # type: ignore[attr-defined]
            if s is None:
                segments.append([])
            else:
                segments[-1].append(f"{x(xv):.1f},{y(s):.1f}")
        for seg in segments:
            if seg:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(seg)}"/>')
        out.append(f'<text x="{w - 150}" y="{30 + 14 * i}" fill="{color}">{p}</text>')
    # free memory (RAM + swap, MiB) on a scale of its own, dashed: where it reaches 0 the killer runs
    free = [int(r["memfree_mib"]) + int(r["swapfree_mib"]) for r in rows]  # type: ignore[call-overload]
    most = max(free + [1])
    fy = lambda v: h - bottom - (h - bottom - 20) * v / most  # noqa: E731
    points = " ".join(f"{x(xv):.1f},{fy(v):.1f}" for xv, v in zip(xs, free, strict=True))
    out.append(f'<polyline fill="none" stroke="black" stroke-dasharray="5,4" stroke-width="1.5" points="{points}"/>')
    out.append(f'<text x="{w - 150}" y="{30 + 14 * len(procs)}">- - free RAM+swap</text>')
    out.append(f'<text x="{w - 150}" y="{44 + 14 * len(procs)}">(0..{most} MiB)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--mountpoint", help="a running fakeproc mount (default: mount the default machine)")
    ap.add_argument("--kernel", default="2.6.32", help="era of the machine mounted without -m (default 2.6.32)")
    ap.add_argument("--step", default="10s", help="clock step between two rows (default 10s)")
    ap.add_argument("--until", default="2m", help="how long to run the clock (default 2m)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--svg", metavar="FILE", help="also draw the scores and free memory into FILE (SVG)")
    a = ap.parse_args()
    try:
        step, until = parse_duration(a.step), parse_duration(a.until)
    except ValueError as e:
        ap.error(str(e))
    if step <= 0:
        ap.error("--step must be positive")
    try:
        with mounted(a.mountpoint, a.kernel) as mp:
            rows = timeline(mp, step, until)
            kernel = dict(line.split(": ", 1) for line in send(mp, ["info"]).splitlines())["kernel"]
    except (ControlError, subprocess.CalledProcessError, OSError) as e:
        print(f"oom_timeline: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(table(rows, a.markdown))
    if a.svg:
        with open(a.svg, "w") as f:
            f.write(svg(rows, f"oom_score over time, kernel {kernel}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
