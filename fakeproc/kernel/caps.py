"""Capability numbers from include/uapi/linux/capability.h (the ones fakeproc names)."""

CAP_SYS_RAWIO = 17
CAP_SYS_ADMIN = 21
CAP_SYS_RESOURCE = 24
#: CAP_LAST_CAP of 6.x is 40: a root process holds all 41 bits.
CAP_ALL = (1 << 41) - 1

#: Names accepted in scenario files and ``fakeproc ctl set --caps``.
CAPABILITIES = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_KILL": 5, "CAP_SETUID": 7, "CAP_NET_ADMIN": 12,
    "CAP_SYS_RAWIO": CAP_SYS_RAWIO, "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": CAP_SYS_ADMIN, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": CAP_SYS_RESOURCE,
}


def parse_caps(value: str | list[str]) -> int:
    """``"all"``, ``"none"``, ``"sys_admin,sys_resource"`` or a list of names -> a bit set."""
    if value == "all":
        return CAP_ALL
    if value == "none":
        return 0
    names = value.split(",") if isinstance(value, str) else value
    bits = 0
    for name in names:
        name = str(name).strip().upper()
        if not name:
            continue
        key = name if name.startswith("CAP_") else "CAP_" + name
        if key not in CAPABILITIES:
            raise ValueError(f"unknown capability {name!r} (known: {', '.join(CAPABILITIES)})")
        bits |= 1 << CAPABILITIES[key]
    return bits
