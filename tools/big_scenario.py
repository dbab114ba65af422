#!/usr/bin/env python3
"""Write a scenario with N simulated processes (for benchmarks of ps, start-up and memory).

    tools/big_scenario.py N [FILE]      (default: stdout)

Process 1 is init, 2 kthreadd; then N-2 processes from pid FIRST_PID on, children of init (every 10th;
the others children of the one before), with memory, CPU time, a uid and an oom_adj that vary.  The
pids are above the host's own (`fakeproc shell` hides a real process whose pid a simulated one has:
the shell's own processes must keep theirs, or /proc/self would name a simulated process).
"""

from __future__ import annotations

import sys

FIRST_PID = 1_000_000


def scenario(n: int) -> str:
    out = ['[machine]', 'ram = "64G"', 'swap = "8G"', 'hz = 250', 'uptime = "2d"', '',
           '[[process]]', 'pid = 1', 'comm = "init"', 'vm = "20M"', 'rss = "2M"', 'cpu = "30s"', '',
           '[[process]]', 'pid = 2', 'comm = "kthreadd"', 'kthread = true', '']
    for i in range(n - 2):
        pid = FIRST_PID + i
        parent = pid - 1 if i % 10 else 1
        out += ['[[process]]', f'pid = {pid}', f'parent = {parent}', f'comm = "job{i % 997}"',
                f'uid = {1000 + i % 7}', f'vm = "{64 + i % 512}M"', f'rss = "{1 + i % 256}M"',
                f'cpu = "{i % 600}s"', f'start = "{i % 3600}s"', f'oom_adj = {i % 31 - 15}', '']
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    text = scenario(int(sys.argv[1]))
    if len(sys.argv) == 3:
        with open(sys.argv[2], "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
