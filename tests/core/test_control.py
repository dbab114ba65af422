"""The control file's protocol, in-process: lines however the kernel cuts a write(), replies per open file."""

from __future__ import annotations

import errno
import os

import pytest

from fakeproc.control import LONGEST_PIECE, SHORTEST_SPLIT_PIECE

from ..harness import CoreMount, kernel_pieces


def write_pieces(core: CoreMount, h, data: bytes, misalign: int = 0, at: int = 0) -> int:
    cut = kernel_pieces(data, misalign)
    assert all(len(p) >= SHORTEST_SPLIT_PIECE for p in cut[:-1])  # each but the last says "more to come"
    for p in cut:
        at += core.pwrite(h, p, at)
    return at


@pytest.mark.parametrize("misalign", [0, 1, 4095])
def test_a_script_split_anywhere_runs_every_line_once_and_keeps_every_reply(core, misalign):
    n = 1400  # 1400 lines of 100 bytes: two pieces, cut inside a line
    lines = [f"fork 1 --comm job{i}-{'x' * 90}"[:99] for i in range(n)]
    script = ("\n".join(lines) + "\n").encode()
    h = core.open("fakeproc/control", os.O_RDWR)
    end = write_pieces(core, h, script, misalign)
    reply = core.pread(h, 1 << 24, end).decode().split()
    core.close(h)
    assert len(reply) == n and len(set(reply)) == n  # n forks, n pids
    assert sorted(core.machine.processes[int(p)].comm for p in reply) == sorted(lines[i][14:29] for i in range(n))


def test_a_long_line_cut_inside_a_number_runs_as_written(core):
    pid = core.new_pid("fork", "1")
    pad = b"#" * (LONGEST_PIECE - 6) + b"\n"  # a comment line, then "exit PID" straddling the first cut
    h = core.open("fakeproc/control", os.O_RDWR)
    write_pieces(core, h, pad + f"exit {pid}\n".encode())
    core.close(h)
    assert pid not in core.machine.tasks
    assert 400 in core.machine.tasks  # not "exit 400" (a cut inside the number)


def test_a_megabyte_line_is_one_command(core):
    before = len(core.machine.processes)
    h = core.open("fakeproc/control", os.O_RDWR)
    line = b"fork 1 --comm " + b"A" * (1 << 20) + b"\n"
    end = write_pieces(core, h, line)
    reply = core.pread(h, 4096, end).decode()
    core.close(h)
    assert len(core.machine.processes) == before + 1
    assert core.machine.processes[int(reply)].comm == "A" * 15


def test_a_write_without_a_newline_is_a_line(core):
    h = core.open("fakeproc/control", os.O_RDWR)
    core.pwrite(h, b"fork 1", 0)
    assert int(core.pread(h, 100, 6)) in core.machine.processes
    core.close(h)


def test_a_failed_write_reads_its_own_error_not_someone_elses_reply(core):
    a = core.open("fakeproc/control", os.O_RDWR)
    b = core.open("fakeproc/control", os.O_RDWR)
    core.pwrite(a, b"fork 1\n", 0)
    with pytest.raises(OSError) as e:
        core.pwrite(b, b"exit \xff\n", 0)
    assert e.value.errno == errno.EINVAL
    assert core.pread(b, 100, 0).decode().startswith("error: ")
    assert core.pread(a, 100, 7).decode().strip().isdigit()
    core.close(a)
    core.close(b)


def test_a_file_that_wrote_nothing_reads_the_last_reply(core):
    core.write("fakeproc/control", b"tick 1s\n")
    assert core.read("fakeproc/control") == "uptime 172801.00s\n"


def test_replies_of_several_writes_are_read_together_and_a_read_starts_afresh(core):
    h = core.open("fakeproc/control", os.O_RDWR)
    at = 0
    for line in (b"fork 1\n", b"fork 1\n"):
        at += core.pwrite(h, line, at)
    two = core.pread(h, 100, at).decode().split()
    at += core.pwrite(h, b"fork 1\n", at)
    one = core.pread(h, 100, at).decode().split()
    core.close(h)
    assert len(two) == 2 and len(one) == 1 and one[0] not in two


def test_a_line_left_when_the_file_closes_runs(core):
    """A last piece of a full 128 KiB that ends inside a line: the line runs at close()."""
    before = len(core.machine.processes)
    h = core.open("fakeproc/control", os.O_WRONLY)
    core.pwrite(h, b"#" * (LONGEST_PIECE - 7) + b"\nfork 1", 0)
    assert len(core.machine.processes) == before  # not yet: more of the line may come
    core.close(h)
    assert len(core.machine.processes) == before + 1
