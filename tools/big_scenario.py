#!/usr/bin/env python3
"""Write a scenario with N simulated processes (for benchmarks of ps, start-up and memory).

    tools/big_scenario.py N [FILE]      (default: stdout)

Process 1 is init, 2 kthreadd; then N-2 processes, children of init (every 10th a child of the one
before it), with memory, CPU time, a uid and an oom_adj that vary so that no two rows of `ps` are alike.
"""

from __future__ import annotations

import sys


def scenario(n: int) -> str:
    out = ['[machine]', 'ram = "64G"', 'swap = "8G"', 'hz = 250', 'uptime = "2d"', '',
           '[[process]]', 'pid = 1', 'comm = "init"', 'vm = "20M"', 'rss = "2M"', 'cpu = "30s"', '',
           '[[process]]', 'pid = 2', 'comm = "kthreadd"', 'kthread = true', '']
    for i in range(n - 2):
        pid = 100 + i
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
