#!/usr/bin/env python3
"""Measure the running kernel's integer sysctl handlers (proc_dointvec, proc_dointvec_minmax) with write vectors.

Safety: nothing is ever written to the host's sysctls.  Each vector runs in a child started with ``unshare -n``
(a new, empty network namespace, so every vector starts from the default value), and the child refuses to write
unless its network namespace differs from the one this script started in.  Only two per-network-namespace files
are ever opened for writing:

  dointvec  /proc/sys/net/unix/max_dgram_qlen   proc_dointvec                       (default 10)
  minmax    /proc/sys/net/core/somaxconn        proc_dointvec_minmax, extra1 = SYSCTL_ZERO, no extra2 (default 4096)

Usage (as root):
  probe_sysctl.py generate > vectors.jsonl
  probe_sysctl.py run dointvec vectors.jsonl [--ids a,b,c] > expected/6.18-dointvec.jsonl
  probe_sysctl.py run minmax vectors.jsonl > expected/6.18-minmax.jsonl

A vector is one JSON line:
  {"id": str, "text": str,
   "writes": [W, ...],          each W is one write() on ONE open O_WRONLY fd, in order; W is a hex string or a
                                list of [hex, times] pairs (the bytes repeated, concatenated), for big writes
   "pos": [int|null, ...],      optional: lseek(fd, pos, SEEK_SET) before that write (null: where the fd is)
   "reads": [{"size": n, "pos": p}, ...]}   optional: reads on ONE O_RDONLY fd opened after the writes
                                (pos optional: lseek before that read)
The output is one JSON line per vector:
  {"id": str, "initial": "10\\n", "results": [count or errno name, ...], "read": "...",
   "reads": [hex of the bytes or errno name, ...]}   (reads only when the vector has them)
where "initial" is read before the writes and "read" after them, each with a fresh fd and read(fd, 4096).
Only the standard library is used; the script does not import fakeproc.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

SYSCTLS = {
    "dointvec": "/proc/sys/net/unix/max_dgram_qlen",
    "minmax": "/proc/sys/net/core/somaxconn",
}
KMALLOC_MAX_SIZE = 4 << 20


def write_bytes(w) -> bytes:
    """One write's bytes: a hex string, or [[hex, times], ...]."""
    if isinstance(w, str):
        return bytes.fromhex(w)
    return b"".join(bytes.fromhex(h) * int(n) for h, n in w)


def _netns_ino() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def _read_all(path: str) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode("latin-1")
    finally:
        os.close(fd)


def child(key: str, parent_ns: int) -> None:
    """Run one vector (a JSON line on stdin) inside the new network namespace; print the result line."""
    path = SYSCTLS[key]
    if _netns_ino() == parent_ns:
        sys.exit("refusing to write: not in a new network namespace")
    vec = json.loads(sys.stdin.read())
    out: dict = {"id": vec["id"], "initial": _read_all(path)}
    out.update(replay(path, vec))
    print(json.dumps(out))


def replay(path: str, vec: dict) -> dict:
    """The vector on ``path``: its writes on one descriptor, its reads on another, then a fresh read ("results",
    "reads" where it has them, "read").  Also what tests/mount/test_process_tree.py replays on a mount."""
    out: dict = {}
    writes = vec.get("writes", [])
    positions = vec.get("pos") or [None] * len(writes)
    results: list = []
    if writes:
        fd = os.open(path, os.O_WRONLY)
        try:
            for w, pos in zip(writes, positions, strict=True):
                if pos is not None:
                    os.lseek(fd, pos, os.SEEK_SET)
                try:
                    results.append(os.write(fd, write_bytes(w)))
                except OSError as e:
                    results.append(errno.errorcode.get(e.errno, str(e.errno)))
        finally:
            os.close(fd)
    out["results"] = results
    if "reads" in vec:
        reads: list = []
        fd = os.open(path, os.O_RDONLY)
        try:
            for r in vec["reads"]:
                if r.get("pos") is not None:
                    os.lseek(fd, r["pos"], os.SEEK_SET)
                try:
                    reads.append(os.read(fd, r["size"]).hex())
                except OSError as e:
                    reads.append(errno.errorcode.get(e.errno, str(e.errno)))
        finally:
            os.close(fd)
        out["reads"] = reads
    out["read"] = _read_all(path)
    return out


def run_vector(key: str, vec: dict) -> dict:
    """One vector in its own ``unshare -n``; the parsed result line."""
    line = json.dumps(vec)
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, os.path.abspath(__file__), "child", key, str(_netns_ino())],
        input=line, capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"vector {vec['id']}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def run(key: str, vectors_path: str, ids: set[str] | None) -> None:
    if key not in SYSCTLS:
        sys.exit(f"unknown sysctl {key!r}: one of {sorted(SYSCTLS)}")
    if os.geteuid() != 0:
        sys.exit("needs root (unshare -n)")
    with open(vectors_path) as f:
        for raw in f:
            if not raw.strip():
                continue
            vec = json.loads(raw)
            if ids is not None and vec["id"] not in ids:
                continue
            print(json.dumps(run_vector(key, vec)), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The vector set


def _h(s: str | bytes) -> str:
    return (s.encode("latin-1") if isinstance(s, str) else s).hex()


def generate() -> list[dict]:
    vs: list[dict] = []

    def v(vid: str, writes: list, text: str, pos: list | None = None, reads: list | None = None) -> None:
        d: dict = {"id": vid, "text": text, "writes": [w if isinstance(w, list) else _h(w) for w in writes]}
        if pos is not None:
            d["pos"] = pos
        if reads is not None:
            d["reads"] = reads
        vs.append(d)

    # canonical values
    for vid, s in [("one", "1"), ("one_nl", "1\n"), ("zero_nl", "0\n"), ("five", "5"), ("n42", "42\n"),
                   ("n100", "100\n"), ("n12345", "12345\n"), ("n3", "3")]:
        v(vid, [s], f"write {s!r}")
    # negatives and the int limits
    for vid, s in [("neg1", "-1\n"), ("neg5", "-5"), ("neg0", "-0\n"), ("int_max", "2147483647\n"),
                   ("int_max_p1", "2147483648\n"), ("int_min", "-2147483648\n"), ("int_min_m1", "-2147483649\n"),
                   ("uint_max", "4294967295\n"), ("two32", "4294967296\n"), ("two32_p1", "4294967297\n"),
                   ("neg_two32_p1", "-4294967297\n"), ("long_max", "9223372036854775807\n"),
                   ("long_max_p1", "9223372036854775808\n"), ("ulong_max", "18446744073709551615\n"),
                   ("two64", "18446744073709551616\n"), ("neg_ulong_max", "-18446744073709551615\n"),
                   ("neg_two64", "-18446744073709551616\n"), ("two64_p1", "18446744073709551617\n")]:
        v(vid, [s], f"write {s!r}")
    # signs
    for vid, s in [("minus", "-"), ("minus_nl", "-\n"), ("minus_minus_1", "--1\n"), ("plus1", "+1\n"),
                   ("plus_minus_1", "+-1"), ("minus_space_1", "- 1\n"), ("one_minus", "1-\n"), ("minus_x", "-x")]:
        v(vid, [s], f"write {s!r}")
    # leading whitespace, each isspace() kind (0xa0 is a space in the kernel's Latin-1 ctype), and 0x85 (not)
    for name, c in [("sp", " "), ("tab", "\t"), ("nl", "\n"), ("vt", "\v"), ("ff", "\f"), ("cr", "\r"),
                    ("nbsp", "\xa0"), ("nel", "\x85")]:
        v(f"lead_{name}", [c + "7\n"], f"leading {c!r}")
    v("lead_all", [" \t\n\v\f\r\xa07\n"], "all leading kinds")
    # trailing, directly after the digits
    for name, c in [("sp", " "), ("tab", "\t"), ("nl", "\n"), ("vt", "\v"), ("ff", "\f"), ("cr", "\r"),
                    ("nbsp", "\xa0"), ("nel", "\x85")]:
        v(f"trail_{name}", ["7" + c], f"trailing {c!r} right after the digits")
    for vid, s in [("crlf", "7\r\n"), ("sp_crlf", "7 \r\n"), ("nl_cr", "7\n\r"), ("nl3", "7\n\n\n"),
                   ("tab2", "7\t\t"), ("sp2_nl", "7  \n"), ("nl_vt_ff", "7\n\v\f"), ("nl_nbsp", "7\n\xa0"),
                   ("around", "  7  \n")]:
        v(f"trail_{vid}", [s], f"write {s!r}")
    # all whitespace, empty
    for vid, s in [("only_nl", "\n"), ("only_sp", " "), ("only_ws", " \t\n"), ("only_nbsp", "\xa0"),
                   ("only_cr", "\r")]:
        v(vid, [s], f"only whitespace {s!r}")
    v("empty", [""], "a zero-length write")
    # bases
    for vid, s in [("hex10", "0x10\n"), ("hex1F", "0X1F\n"), ("hex1f", "0x1f"), ("hex_bare", "0x\n"),
                   ("hex_bare_eof", "0x"), ("hex_g", "0xg\n"), ("oct10", "010\n"), ("oct08", "08\n"),
                   ("oct777", "0777\n"), ("zero_zero", "00\n"), ("hex_int_max", "0x7fffffff\n"),
                   ("hex_int_max_p1", "0x80000000\n"), ("hex_ffffffff", "0xffffffff\n"), ("neg_hex", "-0x10\n"),
                   ("hex_minus", "0x-1"), ("bin", "0b1\n"), ("neg_oct", "-010\n"), ("hex_upper_digits", "0xAbC\n")]:
        v(vid, [s], f"write {s!r}")
    # lengths of the digit string (TMPBUFLEN 21 vs 22)
    for n in (19, 20, 21, 22):
        v(f"nines_{n}", ["9" * n + "\n"], f"{n} nines")
        v(f"zeros7_{n}", ["0" * (n - 1) + "7\n"], f"{n} digits: zeros then 7 (octal 7)")
        v(f"zeros7_{n}_eof", ["0" * (n - 1) + "7"], f"{n} digits: zeros then 7, no newline")
    v("neg_zeros7_20", ["-" + "0" * 18 + "7\n"], "- and 19 digits (20 characters)")
    v("neg_zeros7_21", ["-" + "0" * 19 + "7\n"], "- and 20 digits (21 characters)")
    v("hex_padded_20", ["0x" + "0" * 16 + "1f\n"], "0x and 18 hex digits (20 characters)")
    v("hex_padded_21", ["0x" + "0" * 17 + "1f\n"], "0x and 19 hex digits (21 characters)")
    v("hex_overflow", ["0x10000000000000000\n"], "0x and 2**64")
    v("ones_20", ["1" * 20 + "\n"], "20 ones (overflows 2**64)")
    v("zeros_21_then_sp", ["0" * 20 + "1 \n"], "21 digits then a space")
    # what follows the number
    for vid, s in [("junk_1a", "1a"), ("junk_1_sp_a", "1 a"), ("two_tokens", "1 2\n"), ("two_tokens_tab", "1\t2\n"),
                   ("two_lines", "1\n2\n"), ("junk_12abc", "12abc"), ("junk_1_5", "1.5"), ("junk_comma", "1,2"),
                   ("junk_semi", "1;"), ("junk_7_sp_x", "7 x"), ("three_tokens", "4 5 6\n"),
                   ("two_tokens_sp", "  8   9  \n")]:
        v(vid, [s], f"write {s!r}")
    # NUL bytes
    for vid, s in [("nul", b"\0"), ("nul_5", b"\x005\n"), ("five_nul", b"5\0"), ("five_nul_nl", b"5\0\n"),
                   ("five_nl_nul", b"5\n\0"), ("five_sp_nul", b"5 \0"), ("nul_sp_5", b"\0 5"),
                   ("five_nul_six", b"5\x006"), ("minus_nul_5", b"-\x005"), ("hex_nul", b"0x\x001"),
                   ("sp_nul", b" \0"), ("five_nl_nul_junk", b"5\n\0xyz"), ("nul_tail_long", b"1" + b"\0" * 30),
                   ("nine_nul_after_20", b"0" * 19 + b"9\0")]:
        v(vid, [s], f"write {s!r}")
    # sizes around PAGE_SIZE - 1 = 4095 and KMALLOC_MAX_SIZE
    v("sp4094_7", [[["20", 4094], ["37", 1]]], "4094 spaces then 7: 4095 bytes")
    v("sp4095_7", [[["20", 4095], ["37", 1]]], "4095 spaces then 7: 4096 bytes, the 7 beyond the first 4095")
    v("sp4094_78", [[["20", 4094], ["3738", 1]]], "4094 spaces then 78: the 8 is byte 4096")
    v("sp4092_12345_nl", [[["20", 4092], ["31323334350a", 1]]], "4092 spaces then 12345\\n (4098 bytes)")
    v("sp4090_12345_nl", [[["20", 4090], ["31323334350a", 1]]], "4090 spaces then 12345\\n (4096 bytes)")
    v("sp4999_7", [[["20", 4999], ["37", 1]]], "4999 spaces then 7 (5000 bytes)")
    v("seven_sp4999", [[["37", 1], ["20", 4999]]], "7 then 4999 spaces (5000 bytes)")
    v("seven_sp4093_2_x1000", [[["37", 1], ["20", 4093], ["32", 1], ["78", 1000]]],
      "7, 4093 spaces, 2, 1000 x (5095 bytes): the 2 is byte 4095")
    v("seven_nl_x5000", [[["370a", 1], ["78", 5000]]], "7\\n then 5000 x")
    v("seven_sp4094_x", [[["37", 1], ["20", 4094], ["78", 10]]], "7, 4094 spaces (4095 bytes), then x")
    v("seven_sp_kmalloc_m1", [[["37", 1], ["20", KMALLOC_MAX_SIZE - 2]]], "7 then spaces: KMALLOC_MAX_SIZE - 1 bytes")
    v("seven_sp_kmalloc", [[["37", 1], ["20", KMALLOC_MAX_SIZE - 1]]], "7 then spaces: KMALLOC_MAX_SIZE bytes")
    # several writes on one fd
    v("multi_1_2", ["1", "2"], "1 then 2 on one fd (the 2 at position 1)")
    v("multi_1nl_2nl", ["1\n", "2\n"], "1\\n then 2\\n on one fd")
    v("multi_bad_2", ["x", "2"], "a failed write, then 2: the position stayed 0")
    v("multi_short_then_rest", ["1 2\n", "2\n"], "1 2\\n (short count), then the rest as a shell would")
    v("multi_empty_3", ["", "3"], "an empty write, then 3")
    v("multi_3_empty", ["3", ""], "3, then an empty write at position 1")
    v("multi_12_34", ["12", "34"], "12 then 34")
    v("multi_3x", ["5\n", "6\n", "7\n"], "three writes on one fd")
    v("multi_bad_bad_4", ["-", " ", "4\n"], "two failed writes then 4")
    # explicit positions
    v("pos1_7", ["7"], "7 at position 1", pos=[1])
    v("pos4096_7", ["7"], "7 at position 4096", pos=[4096])
    v("pos0_pos0", ["1", "2"], "1 and 2, each after lseek to 0", pos=[0, 0])
    v("pos0_pos5", ["1", "2"], "1 at 0, then 2 at 5", pos=[0, 5])
    v("pos3_empty", [""], "empty write at position 3", pos=[3])
    v("pos2_bad", ["x"], "an invalid write at position 2", pos=[2])
    v("pos1_huge", [[["37", 1], ["20", KMALLOC_MAX_SIZE - 1]]], "KMALLOC_MAX_SIZE bytes at position 1", pos=[1])
    v("pos1_5000", [[["20", 4999], ["37", 1]]], "5000 bytes at position 1", pos=[1])
    v("pos_back_to_0", ["5\n", "6\n"], "5 at 0, then 6 after lseek back to 0", pos=[None, 0])
    # minmax-relevant (somaxconn: extra1 = 0, no extra2)
    for vid, s in [("mm_neg1_sp", " -1 "), ("mm_neg_int_min", "-2147483648"), ("mm_zero", "0"),
                   ("mm_neg_zero", "-0"), ("mm_int_max", "2147483647")]:
        v(vid, [s], f"write {s!r} (range check)")
    # reads
    v("read_default_1_1", [], "default value, read 1 byte twice", reads=[{"size": 1}, {"size": 1}])
    v("read_123_1_100", ["123\n"], "read 1 then 100", reads=[{"size": 1}, {"size": 100}])
    v("read_123_3_100", ["123\n"], "read 3 then 100: the newline is lost", reads=[{"size": 3}, {"size": 100}])
    v("read_123_4", ["123\n"], "read exactly 4", reads=[{"size": 4}, {"size": 4}])
    v("read_123_0_100", ["123\n"], "read 0 then 100", reads=[{"size": 0}, {"size": 100}])
    v("read_123_pos1", ["123\n"], "lseek 1 then read", reads=[{"pos": 1, "size": 100}])
    v("read_123_again", ["123\n"], "read, read, lseek 0, read 2",
      reads=[{"size": 100}, {"size": 100}, {"pos": 0, "size": 2}])
    v("read_neg5_1_10", ["-5\n"], "read 1 then 10 of -5", reads=[{"size": 1}, {"size": 10}])
    v("read_int_min", ["-2147483648\n"], "INT_MIN read back", reads=[{"size": 100}])
    v("read_kmalloc", ["123\n"], "read of KMALLOC_MAX_SIZE and one less",
      reads=[{"size": KMALLOC_MAX_SIZE}, {"size": KMALLOC_MAX_SIZE - 1}])
    v("read_pos100", ["123\n"], "lseek 100 then read", reads=[{"pos": 100, "size": 10}])
    v("read_zero", ["0\n"], "read of 0 in sizes 1, 1", reads=[{"size": 1}, {"size": 1}])
    return vs


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[1] == "generate":
        for vec in generate():
            print(json.dumps(vec))
    elif len(argv) == 4 and argv[1] == "child":
        child(argv[2], int(argv[3]))
    elif len(argv) >= 4 and argv[1] == "run":
        ids = None
        if len(argv) == 6 and argv[4] == "--ids":
            ids = set(argv[5].split(","))
        run(argv[2], argv[3], ids)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
