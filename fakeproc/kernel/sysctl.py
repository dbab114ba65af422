"""The integer sysctl handlers, ``proc_dointvec`` and ``proc_dointvec_minmax``, for a table entry of one int.

The four OOM sysctls (``vm.panic_on_oom``, ``vm.oom_kill_allocating_task``, ``vm.oom_dump_tasks``,
``vm.overcommit_memory``) are each one ``int`` (``.maxlen = sizeof(int)``, so ``vleft = 1``) served by these two
handlers.  Their parser is not the one the OOM files under /proc/PID use (``strtol.py``): it skips whitespace,
takes one number, and answers a short count when more follows, so it is modelled separately, era by era.

Two rule sets, chosen by version (``version >= (2, 6, 35)``, the ``proc_get_long`` refactor, see
kernel-oom-history.md §I2):

* before 2.6.35, **2.6.30-2.6.34** (our eras 2.6.31-rc, 2.6.31 and 2.6.32): ``__do_proc_dointvec`` reads the
  caller's buffer with ``get_user``/``copy_from_user``, ``TMPBUFLEN 21``, ``simple_strtoul`` without an overflow
  check, a value truncated to ``int``, no file-position check on writes.  Quoted from the stored kernel/sysctl.c of
  project-magpie/linux-sh4-2.6.32.y @150e26f9 (sndrzt/linux-2.6.32's is not in the search index), whose handlers
  still take ``struct file *filp``: only that argument went away in 2.6.32, the parsing lines are the same from
  2.6.30 to 2.6.34 (kernel-oom-history.md §I1).
* from 2.6.35, **as in 6.18** (our era 6.x): ``proc_sys_call_handler`` copies the write into a NUL-terminated
  kernel buffer, ``__do_proc_dointvec`` looks at no more than ``PAGE_SIZE - 1`` bytes, ``proc_get_long`` with
  ``TMPBUFLEN 22``, ``strtoul_lenient`` (overflow is an error), only ``' '``, ``'\\t'``, ``'\\n'`` may follow the
  number, ``do_proc_dointvec_conv`` refuses values outside ``int``, and with ``sysctl_writes_strict = 1`` a write at
  a file position other than 0 is ignored.  kernel/sysctl.c is quoted from gfunkmonk/linux-6.18.2; that tree's
  fs/proc/proc_sysctl.c and lib/kstrtox.c are not in the search index, so ``proc_sys_call_handler`` and
  ``_parse_integer`` are quoted from other 6.x copies (const ``ctl_table``, ``kvzalloc``, ``_parse_integer_limit``),
  and every rule was confirmed on a running 6.18 (tests/data/sysctl).  Versions between 2.6.35 and 6.18 had
  intermediate rules (§I2-§I7) that are not modelled: only 6.18's are exact.

Everything here is a pure function of its arguments; a caller keeps the value and the file position.
"""

from __future__ import annotations

import errno
from typing import NamedTuple

from .ctype import isdigit, isspace, isxdigit
from .strtol import simple_strtoul

INT_MIN = -(1 << 31)
INT_MAX = (1 << 31) - 1
_U64 = 1 << 64

#: The first version with ``proc_get_long`` (and so the 6.18 rules here); earlier ones get 2.6.30-2.6.34's.
PROC_GET_LONG_VERSION: tuple[int, ...] = (2, 6, 35)

#: x86_64 page size: 6.18 ``if (left > PAGE_SIZE - 1) left = PAGE_SIZE - 1;``
PAGE_SIZE = 4096

#: 6.18 fs/proc/proc_sysctl.c ``if (count >= KMALLOC_MAX_SIZE) goto out;`` (-ENOMEM), for reads and writes alike.
#: KMALLOC_MAX_SIZE is ``1 << (MAX_PAGE_ORDER + PAGE_SHIFT)`` = 4 MiB on x86_64 with SLUB (measured: see
#: tests/data/sysctl/README.md).
KMALLOC_MAX_SIZE = 4 << 20

#: 2.6.32 ``#define TMPBUFLEN 21`` (``char buf[TMPBUFLEN]``: at most 20 bytes copied, then a NUL).
TMPBUFLEN_2632 = 21
#: 6.18 ``#define TMPBUFLEN 22`` (``char tmp[TMPBUFLEN]``: at most 21 bytes copied, then a NUL).
TMPBUFLEN_618 = 22

#: 6.18 ``static const char proc_wspace_sep[] = { ' ', '\\t', '\\n' };``: what may follow the number.
PROC_WSPACE_SEP = b" \t\n"


class SysctlWrite(NamedTuple):
    """Outcome of one write(2) to an integer sysctl.

    ``value`` is the int the handler stores (None: nothing is stored); ``error`` is the errno the write fails with
    (0: it succeeds); ``consumed`` is what a successful write() returns, which may be less than the count written
    (a second token is not consumed) or, for a write the kernel ignores, the whole count.  The file position then
    advances by ``consumed`` (``*ppos += *lenp``); a failed write leaves it where it was.
    """

    value: int | None
    error: int
    consumed: int


def _as_int(v: int) -> int:
    """The low 32 bits as a C ``int`` (two's complement), as ``*valp = ...`` stores an unsigned long into an int."""
    v %= 1 << 32
    return v - (1 << 32) if v >= 1 << 31 else v


def _proc_get_long_rules(version: tuple[int, ...]) -> bool:
    """True for the 2.6.35+ parser (modelled as 6.18's), False for 2.6.30-2.6.34's."""
    return tuple(version) >= PROC_GET_LONG_VERSION


def _in_limits(value: int, limits: tuple[int, int] | None) -> bool:
    """do_proc_dointvec_minmax_conv (both eras):
    ``if ((param->min && *param->min > val) || (param->max && *param->max < val)) return -EINVAL;``

    A bound the table leaves NULL is passed as INT_MIN / INT_MAX, which no int can be outside of.
    """
    if limits is None:
        return True
    lo, hi = limits
    return lo <= value <= hi


def dointvec_write(
    version: tuple[int, ...], data: bytes, pos: int, limits: tuple[int, int] | None = None
) -> SysctlWrite:
    """One write(2) of ``data`` at file position ``pos`` to a one-int sysctl.

    ``limits`` None is ``proc_dointvec``; ``(lo, hi)`` is ``proc_dointvec_minmax`` with ``extra1 = &lo``,
    ``extra2 = &hi``.  Both eras start with the same entry check in ``__do_proc_dointvec``:
    ``if (!tbl_data || !table->maxlen || !*lenp || (*ppos && !write)) { *lenp = 0; return 0; }``,
    so an empty write succeeds with 0 and changes nothing, whatever the position.
    """
    count = len(data)
    if not _proc_get_long_rules(version):
        if not count:
            return SysctlWrite(None, 0, 0)
        return _write_2632(data, limits)
    # 6.18 fs/proc/proc_sysctl.c proc_sys_call_handler(), before the handler runs:
    #   error = -ENOMEM;
    #   if (count >= KMALLOC_MAX_SIZE)
    #       goto out;
    #   kbuf = kvzalloc(count + 1, GFP_KERNEL);
    #   ... copy_from_iter_full(kbuf, count, iter) ... kbuf[count] = '\0';
    if count >= KMALLOC_MAX_SIZE:
        return SysctlWrite(None, errno.ENOMEM, 0)
    if not count:
        return SysctlWrite(None, 0, 0)
    # 6.18 __do_proc_dointvec():
    #   if (write) {
    #       if (proc_first_pos_non_zero_ignore(ppos, table))
    #           goto out;
    #   ...
    #   out:
    #       *ppos += *lenp;
    #       return err;
    # and proc_first_pos_non_zero_ignore(): ``if (!*ppos) return false;`` ... ``case SYSCTL_WRITES_STRICT: return
    # true;`` with ``sysctl_writes_strict = SYSCTL_WRITES_STRICT`` (1, the default since 4.5): the write is ignored
    # and reports the whole count.
    if pos:
        return SysctlWrite(None, 0, count)
    return _write_618(data, limits)


def _write_2632(data: bytes, limits: tuple[int, int] | None) -> SysctlWrite:
    """2.6.32 kernel/sysctl.c __do_proc_dointvec(), write side, for ``vleft = 1``.

    The failure of the first (only) value is ``break`` out of the loop with ``first`` still 1, then
    ``if (write && first) return -EINVAL;``: every failure is EINVAL, whatever conv returned.
    """
    fail = SysctlWrite(None, errno.EINVAL, 0)
    left = len(data)
    s = 0
    # while (left) {
    #     char c;
    #     if (get_user(c, s))
    #         return -EFAULT;
    #     if (!isspace(c))
    #         break;
    #     left--;
    #     s++;
    # }
    # if (!left)
    #     break;
    while left and isspace(data[s]):
        left -= 1
        s += 1
    if not left:
        return fail
    # neg = 0;
    # len = left;
    # if (len > sizeof(buf) - 1)
    #     len = sizeof(buf) - 1;
    # if (copy_from_user(buf, s, len))
    #     return -EFAULT;
    # buf[len] = 0;
    # p = buf;
    buf = data[s : s + min(left, TMPBUFLEN_2632 - 1)]  # buf[len] = 0: reading past the slice reads that NUL
    p = 0
    neg = False
    # if (*p == '-' && left > 1) {
    #     neg = 1;
    #     p++;
    # }
    # if (*p < '0' || *p > '9')
    #     break;
    if buf[0] == 0x2D and left > 1:
        neg = True
        p = 1
    if p >= len(buf) or not isdigit(buf[p]):
        return fail
    # lval = simple_strtoul(p, &p, 0);    -- base 0: "0x"+hex digit is 16, a leading 0 is 8; wraps mod 2**64
    lval, n = simple_strtoul(buf[p:])
    p += n
    # len = p-buf;
    # if ((len < left) && *p && !isspace(*p))
    #     break;
    # A NUL after the digits (one written by the caller, or buf[len] when 20 digits fill the buffer) passes.
    if p < left and p < len(buf) and buf[p] != 0 and not isspace(buf[p]):
        return fail
    # s += len;
    # left -= len;
    # if (conv(&neg, &lval, i, 1, data))
    #     break;
    s += p
    left -= p
    # do_proc_dointvec_conv: *valp = *negp ? -*lvalp : *lvalp;
    # do_proc_dointvec_minmax_conv: int val = *negp ? -*lvalp : *lvalp; (then the range check on that int)
    value = _as_int(-lval if neg else lval)
    if not _in_limits(value, limits):
        return fail
    # if (write) {
    #     while (left) {
    #         char c;
    #         if (get_user(c, s++))
    #             return -EFAULT;
    #         if (!isspace(c))
    #             break;
    #         left--;
    #     }
    # }
    # if (write && first)
    #     return -EINVAL;
    # *lenp -= left;
    # *ppos += *lenp;
    # return 0;
    while left and isspace(data[s]):
        left -= 1
        s += 1
    return SysctlWrite(value, 0, len(data) - left)


def _parse_integer_618(s: bytes) -> tuple[int, int, bool]:
    """6.18 lib/kstrtox.c ``_parse_integer_fixup_radix`` + ``_parse_integer`` with base 0: (value mod 2**64,
    characters consumed including a ``0x``, overflow).

        if (*base == 0) {
            if (s[0] == '0') {
                if (_tolower(s[1]) == 'x' && isxdigit(s[2]))
                    *base = 16;
                else
                    *base = 8;
            } else
                *base = 10;
        }
        if (*base == 16 && s[0] == '0' && _tolower(s[1]) == 'x')
            s += 2;
        ...
            if ('0' <= c && c <= '9')
                val = c - '0';
            else if ('a' <= lc && lc <= 'f')
                val = lc - 'a' + 10;
            else
                break;
            if (val >= base)
                break;
            if (unlikely(res & (~0ull << 60))) {
                if (res > div_u64(ULLONG_MAX - val, base))
                    rv |= KSTRTOX_OVERFLOW;
            }
            res = res * base + val;
    """
    base = 10
    i = 0
    if s[:1] == b"0":
        base = 8
        if s[1:2] in (b"x", b"X") and len(s) > 2 and isxdigit(s[2]):
            base, i = 16, 2
    res = 0
    overflow = False
    while i < len(s) and isxdigit(s[i]):
        c = s[i]
        val = c - 0x30 if isdigit(c) else (c | 0x20) - 0x61 + 10
        if val >= base:
            break
        res = res * base + val
        if res >= _U64:
            overflow = True
            res %= _U64
        i += 1
    return res, i, overflow


def _write_618(data: bytes, limits: tuple[int, int] | None) -> SysctlWrite:
    """6.18 kernel/sysctl.c __do_proc_dointvec() + proc_get_long(), write side at position 0, ``vleft = 1``."""
    fail = SysctlWrite(None, errno.EINVAL, 0)
    count = len(data)
    # if (left > PAGE_SIZE - 1)
    #     left = PAGE_SIZE - 1;
    # p = buffer;
    left = min(count, PAGE_SIZE - 1)
    p = 0
    # proc_skip_spaces(&p, &left);    -- while (*size) { if (!isspace(**buf)) break; (*size)--; (*buf)++; }
    # if (!left)
    #     break;                      -- then ``if (write && first) return err ? : -EINVAL;``
    while left and isspace(data[p]):
        left -= 1
        p += 1
    if not left:
        return fail
    # proc_get_long(&p, &left, &lval, &neg, proc_wspace_sep, sizeof(proc_wspace_sep), NULL):
    #   ssize_t len = *size;
    #   if (len <= 0) return -EINVAL;
    #   if (len > TMPBUFLEN - 1) len = TMPBUFLEN - 1;
    #   memcpy(tmp, *buf, len);
    #   tmp[len] = 0;
    #   p = tmp;
    #   if (*p == '-' && *size > 1) { *neg = true; p++; } else *neg = false;
    #   if (!isdigit(*p)) return -EINVAL;
    tmp = data[p : p + min(left, TMPBUFLEN_618 - 1)]
    q = 0
    neg = False
    if tmp[0] == 0x2D and left > 1:
        neg = True
        q = 1
    if q >= len(tmp) or not isdigit(tmp[q]):
        return fail
    #   if (strtoul_lenient(p, &p, 0, val)) return -EINVAL;
    #       -- strtoul_lenient: if ((rv & KSTRTOX_OVERFLOW) || (result != (unsigned long)result)) return -ERANGE;
    lval, n, overflow = _parse_integer_618(tmp[q:])
    if overflow:
        return fail
    end = q + n
    #   len = p - tmp;
    #   if (len == TMPBUFLEN - 1) return -EINVAL;
    #   if (len < *size && perm_tr_len && !memchr(perm_tr, *p, perm_tr_len)) return -EINVAL;
    # (len < *size implies len < the bytes copied, so *p is a byte of the write: a NUL there is refused.)
    if end == TMPBUFLEN_618 - 1:
        return fail
    if end < left and tmp[end] not in PROC_WSPACE_SEP:
        return fail
    #   *buf += len; *size -= len;
    p += end
    left -= end
    # if (conv(&neg, &lval, i, 1, data)) { err = -EINVAL; break; }
    # do_proc_dointvec_conv():
    #   if (*negp) {
    #       if (*lvalp > (unsigned long) INT_MAX + 1)
    #           return -EINVAL;
    #       WRITE_ONCE(*valp, -*lvalp);
    #   } else {
    #       if (*lvalp > (unsigned long) INT_MAX)
    #           return -EINVAL;
    #       WRITE_ONCE(*valp, *lvalp);
    #   }
    # do_proc_dointvec_minmax_conv() runs that into ``int tmp`` first, then the range check, then
    # ``WRITE_ONCE(*valp, tmp);``.
    if neg:
        if lval > INT_MAX + 1:
            return fail
        value = -lval
    else:
        if lval > INT_MAX:
            return fail
        value = lval
    if not _in_limits(value, limits):
        return fail
    # if (write && !err && left)
    #     proc_skip_spaces(&p, &left);
    # if (write && first)
    #     return err ? : -EINVAL;
    # *lenp -= left;              -- *lenp is the whole count, left what is unconsumed of the first 4095 bytes
    # out:
    # *ppos += *lenp;
    while left and isspace(data[p]):
        left -= 1
        p += 1
    return SysctlWrite(value, 0, count - left)


def _format_2632(value: int) -> bytes:
    """2.6.32 read side: do_proc_dointvec_conv then ``sprintf(p, "%s%lu", neg ? "-" : "", lval);``.

    The conv is ``if (val < 0) { *negp = -1; *lvalp = (unsigned long)-val; }``: for INT_MIN, ``-val`` overflows the
    int (the kernel builds with -fno-strict-overflow, so it wraps to INT_MIN) and the cast sign-extends it to
    18446744071562067968, so INT_MIN reads back as "-18446744071562067968" (x86_64; derived from the source, not
    run).  6.18 computes ``-(unsigned long)val`` and prints -2147483648.
    """
    if value == INT_MIN:
        return b"-%d" % (_U64 - (1 << 31))
    return b"%d" % value


def dointvec_read(version: tuple[int, ...], value: int, pos: int, size: int) -> bytes:
    """What one read(2) of ``size`` bytes at file position ``pos`` returns; the position then advances by its length.

    Both eras, __do_proc_dointvec(): ``(*ppos && !write)`` in the entry check returns 0 bytes at any position but 0,
    and ``!*lenp`` returns 0 bytes for a zero-length read.  At position 0 the loop prints the number, cut to the
    size (``if (len > left) len = left;`` / proc_put_long's ``if (len > *size) len = *size;``), then
    ``if (!write && !first && left) put '\\n'``: the read is ``"%d\\n"[:size]``.  A read too small for the number
    gets its first bytes, and the next read (now at a position other than 0) gets nothing: the rest of the number
    and the newline are never returned on that file descriptor.

    ``value`` is taken as a C int (its low 32 bits).  From 2.6.35 (6.18) a read of ``size >= KMALLOC_MAX_SIZE`` fails
    with ENOMEM before the handler runs (see :func:`dointvec_read_error`); this returns b"" for it.
    """
    if dointvec_read_error(version, size):
        return b""
    if size <= 0 or pos:
        return b""
    value = _as_int(value)
    text = _format_2632(value) if not _proc_get_long_rules(version) else b"%d" % value
    return (text + b"\n")[:size]


def dointvec_read_error(version: tuple[int, ...], size: int) -> int:
    """The errno a read(2) of ``size`` bytes fails with before the handler runs (0: none).

    6.18 fs/proc/proc_sysctl.c proc_sys_call_handler(): ``error = -ENOMEM; if (count >= KMALLOC_MAX_SIZE) goto out;``
    applies to reads as to writes.  2.6.32's proc_sys_call_handler() passes the user buffer straight to the handler.
    """
    if _proc_get_long_rules(version) and size >= KMALLOC_MAX_SIZE:
        return errno.ENOMEM
    return 0
