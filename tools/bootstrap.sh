# Sourced by tools/run and tools/test: install what is missing, nothing more.
#
#   system_install run|test   Debian packages the command needs and the machine lacks, after saying which
#                             (apt-get's own plan, simulated first: every new package, and every installed one
#                             a dependency would upgrade); never one that would remove another (--no-remove),
#                             never Debian's `fuse` (FUSE 2's fusermount: it replaces fuse3), and an optional
#                             one (libfuse3-dev, for the benchmark's C floor) only if it upgrades nothing
#   venv_install EXTRAS       a virtualenv in .venv holding fakeproc (editable) and its dependencies
#                             ("" or "test"); a stamp of setup.cfg's hash makes a second run install nothing
#
# Where something is missing and cannot be installed (not root, no apt-get, a conflict), one line says
# what, and the command exits with status 1.  Nothing is ever deleted.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

say() { echo "fakeproc: $*" >&2; }
die() { say "$*"; exit 1; }

pkg_installed() {  # a real (not virtual) package, installed
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

have_lib() {  # a shared library the dynamic linker finds
    { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q "^[[:space:]]*$1 "
}

optional_packages() {  # optional_packages run|test: what only makes a test measure more, if it changes nothing
    if [ "$1" = test ]; then
        [ -e /usr/include/fuse3/fuse.h ] || echo libfuse3-dev  # the bench's C floor (tools/floor/floor.c)
    fi
}

missing_packages() {  # missing_packages run|test: what the command needs and the machine lacks
    local want=()
    # run: as root the default raw backend needs neither a library nor a helper; python3-venv is
    # looked after by venv_install
    if [ "$1" = test ]; then
        have_lib libfuse.so.2 || want+=(libfuse2)  # fusepy, for the fusepy backend's tests
        # a setuid mount helper, for the tests that mount as another user than root: fuse3's
        # fusermount3; FUSE 2's fusermount (package fuse) serves as well, and fuse3 would replace it
        if ! command -v fusermount3 >/dev/null && ! command -v fusermount >/dev/null && ! pkg_installed fuse; then
            want+=(fuse3)
        fi
        command -v cc >/dev/null || want+=(gcc libc6-dev)
        command -v pkg-config >/dev/null || want+=(pkg-config)
    fi
    echo "${want[@]}"
}

APT_UPDATED=0
apt_plan() {  # apt_plan PKG...: apt-get's simulated plan, "new: ..." and "upgraded: ..." (installed ones)
    if [ $APT_UPDATED = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed; install these yourself: $*"
        APT_UPDATED=1
    fi
    local sim
    sim=$(DEBIAN_FRONTEND=noninteractive apt-get -s install -y --no-remove "$@" 2>&1) \
        || die "apt-get cannot install $* without removing another package; nothing was changed: $(echo "$sim" | tail -1)"
    # "Inst NAME (VERSION ...)" is a new package; "Inst NAME [INSTALLED] (VERSION ...)" replaces an installed one
    echo "new: $(echo "$sim" | awk '$1 == "Inst" && $3 !~ /^\[/ {printf "%s ", $2}')"
    echo "upgraded: $(echo "$sim" | awk '$1 == "Inst" && $3 ~ /^\[/ {printf "%s %s->%s ", $2, $3, $4}' | tr -d '[]()')"
}

apt_install() {  # apt_install PKG...: install them, or say why not and exit 1
    if [ "$(id -u)" != 0 ]; then
        die "missing Debian packages: $* (as root: apt-get install --no-remove $*)"
    fi
    command -v apt-get >/dev/null || die "missing packages: $* (no apt-get here to install them with)"
    local plan
    plan=$(apt_plan "$@")
    say "installing Debian packages: $* (apt-get install --no-remove: nothing is removed); apt's plan: $(echo "$plan" | tr '\n' ';')"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove "$@" >&2 \
        || die "apt-get could not install $* without removing another package; nothing was changed"
}

optional_install() {  # optional_install PKG...: each only where root, apt-get and an upgrade-free plan allow
    local pkg plan
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 0
    for pkg in "$@"; do
        plan=$(apt_plan "$pkg")
        if echo "$plan" | grep -q '^upgraded: .*[^ ]'; then
            say "not installing optional $pkg: it would upgrade installed packages ($(echo "$plan" | sed -n 's/^upgraded: //p')); the tests that need it say so"
            continue
        fi
        say "installing optional Debian package $pkg ($(echo "$plan" | sed -n 's/^new: //p'))"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove "$pkg" >&2 \
            || say "apt-get could not install optional $pkg; going on without it"
    done
}

system_install() {  # system_install run|test
    local missing optional
    missing=$(missing_packages "$1")
    [ -z "$missing" ] || apt_install $missing
    optional=$(optional_packages "$1")
    [ -z "$optional" ] || optional_install $optional
}

venv_install() {  # venv_install EXTRAS ("" or "test")
    local extras="$1" spec="$ROOT" stamp want
    [ -n "$extras" ] && spec="$ROOT[$extras]"
    stamp="$VENV/.fakeproc-stamp-${extras:-base}"
    want=$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)
    if [ -e "$VENV" ] && [ ! -w "$VENV" ]; then
        die "$VENV belongs to another user ($(stat -c %U "$VENV")); run as that user, or clone the repository again"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            pkg_installed python3-venv && die "python3 -m venv $VENV failed (python3-venv is installed)"
            apt_install python3-venv
            python3 -m venv "$VENV" >&2 || die "python3 -m venv $VENV failed"
        fi
    fi
    # the test install holds everything the base one does
    if [ -z "$extras" ] && [ "$(cat "$VENV/.fakeproc-stamp-test" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing fakeproc${extras:+[$extras]} into $VENV"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" >&2 \
            || die "pip could not install fakeproc${extras:+[$extras]} into $VENV (see above)"
        echo "$want" > "$stamp"
    fi
}
