"""A Python job scheduler: protect itself, then start jobs that unprotect themselves.

usage: sched.py preexec|posix_spawn FILE HIGH LOW -- JOB...
Writes HIGH to /proc/self/FILE, starts JOB with LOW written in the child
(preexec_fn, after fork) or as a wrapper (posix_spawn cannot run code in the
child: the job is started through sh, which writes LOW and execs it), waits,
and prints its own value afterwards.
"""

import os
import subprocess
import sys


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value + "\n")


def main() -> int:
    how, name, high, low, sep, *job = sys.argv[1:]
    assert sep == "--"
    write(f"/proc/self/{name}", high)
    if how == "preexec":
        rc = subprocess.run(job, preexec_fn=lambda: write(f"/proc/self/{name}", low)).returncode
    else:
        argv = ["sh", "-c", f'echo {low} > /proc/self/{name} && exec "$@"', "sh", *job]
        pid = os.posix_spawnp("sh", argv, os.environ)
        rc = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    with open(f"/proc/self/{name}") as f:
        print(f"scheduler {name} {f.read().strip()}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
