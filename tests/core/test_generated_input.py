"""Generated control input and scenario values (issue 16): whatever is written, the machine answers
with a reply or the kernel's errno and a message, and goes on answering; however the kernel cuts a
script into FUSE writes, it runs as its lines run one by one.
"""

from __future__ import annotations

import errno
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakeproc.control import LONGEST_PIECE
from fakeproc.kernel.eras import ERAS
from fakeproc.machine.scenario import MACHINE_KEYS, PROCESS_KEYS, ScenarioError, build_machine, dump_scenario

from ..harness import CoreMount, kernel_pieces

# numbers as a caller may type them: ordinary, at the edges of the kernel's types, far beyond, not numbers
edge_ints = st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64])
numbers = st.one_of(
    st.integers(-1000, 100000).map(str),
    edge_ints.map(str),
    st.integers(-(10**400), 10**400).map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e308", "1e-308", "0x10", "1_000", "", "-0", "+5", "１２"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
units = st.sampled_from(["", "k", "K", "M", "G", "T", "P", "E", "kB", "s", "ms", "h", "d", "x", "%"])
amounts = st.builds(lambda n, u: n + u, numbers, units)
pids = st.one_of(st.sampled_from(["1", "2", "300", "400", "500", "600", "700", "701"]), numbers)
words = st.text(st.characters(blacklist_characters="\n\x00", blacklist_categories=("Cs",)), max_size=30)


def _line(verb: str, *args: str) -> str:
    return " ".join([verb, *args])


control_lines = st.one_of(
    st.builds(lambda p, c: _line("fork", p, "--comm", c or "x"), pids, st.from_regex(r"[a-z]{1,20}", fullmatch=True)),
    st.builds(lambda p, u: _line("fork", p, "--uid", u), pids, numbers),
    st.builds(lambda p: _line("thread", p), pids),
    st.builds(lambda p: _line("exit", p), pids),
    st.builds(lambda t: _line("tick", t), amounts),
    st.builds(lambda p, s: _line("alloc", p, s), pids, amounts),
    st.builds(lambda p, s: _line("grow", p, s), pids, amounts),
    st.builds(lambda p, n: _line("cpu", p, n), pids, amounts),
    st.builds(lambda p, k, v: _line("set", p, k, v), pids,
              st.sampled_from(["--nice", "--uid", "--gid", "--start", "--caps", "--oom-adj", "--oom-score-adj"]),
              numbers),
    st.builds(lambda p, v, r: _line("mem", p, "--vm", v, "--rss", r), pids, amounts, amounts),
    st.builds(lambda s: _line("clock", s), amounts),
    st.builds(lambda p: _line("explain", p), pids),
    st.sampled_from(["ps", "oom --dry-run", "info", "dmesg", "# a comment", ""]),
    words,
)


def _machine_answers(core: CoreMount) -> None:
    """Every process's oom_score and the uptime read as numbers, and ps lists the machine."""
    for pid in list(core.machine.processes)[:50]:
        assert core.read(f"{pid}/oom_score").strip().isdigit()
    assert float(core.read("uptime").split()[0]) >= 0
    assert core.ctl("ps").startswith("  PID")


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(control_lines, min_size=1, max_size=8))
def test_any_control_line_gets_a_reply_or_an_errno_and_the_machine_goes_on(lines):
    core = CoreMount()
    for line in lines:
        h = core.open("fakeproc/control", os.O_RDWR)
        data = (line + "\n").encode()
        try:
            core.pwrite(h, data, 0)
            err = 0
        except OSError as e:
            err = e.errno
        reply = core.pread(h, 1 << 20, 0 if err else len(data))
        core.close(h)
        assert err != errno.EIO, (line, reply)  # EIO is what a bug in fakeproc answers
        if err:
            assert reply.startswith(b"error: "), (line, reply)
    _machine_answers(core)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(control_lines, min_size=1, max_size=12), misalign=st.integers(0, 4095), data=st.data())
def test_a_script_cut_anywhere_runs_as_its_lines_run_one_by_one(lines, misalign, data):
    body = "".join(line + "\n" for line in lines).encode()
    cut = data.draw(st.integers(0, len(body)), label="cut")  # where in the lines the kernel's first cut falls
    first = LONGEST_PIECE - misalign
    pad = b"#" * (first - cut - 1) + b"\n"  # a comment line that puts the cut there
    script = pad + body

    split = CoreMount()
    h = split.open("fakeproc/control", os.O_RDWR)
    at, failed = 0, 0
    for piece in kernel_pieces(script, misalign):
        try:
            at += split.pwrite(h, piece, at)
        except OSError as e:  # the write() ends here: a short count, or the error if nothing was written
            failed = e.errno
            break
    reply = split.pread(h, 1 << 24, at)
    split.close(h)

    one_by_one = CoreMount()
    expected, err = b"", 0
    for line in lines:
        r = one_by_one.control.run_lines(None, [line.encode()])
        expected += r[0]
        if r[1]:
            err = r[1]
            break
    assert failed == err and failed != errno.EIO
    assert reply == expected
    assert dump_scenario(split.machine) == dump_scenario(one_by_one.machine)


# ------------------------------------------------------------------------ scenario values

toml_values = st.one_of(
    edge_ints.map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e9", "0.5", "-0.0", "true", "[]", "[1, 2]", "{}", '""', '"x"',
                     '"4G"', '"1e400"', '"-1M"', '"9999999999999999999999T"', "[5000]", '"0x1f"', '["CAP_KILL"]']),
)
process_keys = st.sampled_from(sorted(PROCESS_KEYS))
machine_keys = st.sampled_from(sorted(MACHINE_KEYS - {"kernel"}))


@settings(deadline=None)
@given(machine=st.dictionaries(machine_keys, toml_values, max_size=3),
       process=st.dictionaries(process_keys, toml_values, max_size=4),
       era=st.sampled_from(sorted(ERAS)))
def test_any_scenario_value_builds_a_machine_that_answers_or_is_refused_with_a_message(machine, process, era):
    text = "[machine]\n" + "".join(f"{k} = {v}\n" for k, v in machine.items())
    text += '[[process]]\npid = 1\ncomm = "init"\n\n[[process]]\n'
    process.setdefault("pid", "500")
    process.setdefault("parent", "1")
    process.setdefault("comm", '"job"')
    text += "".join(f"{k} = {v}\n" for k, v in process.items())
    try:
        m = build_machine(text, ERAS[era], "gen.toml")
    except ScenarioError as e:
        assert str(e).startswith("gen.toml") and "Traceback" not in str(e)
        return
    core = CoreMount(machine=m)
    _machine_answers(core)
    BUILT.append(1)


BUILT: list[int] = []  # how many examples built a machine (the property says little if none did)
