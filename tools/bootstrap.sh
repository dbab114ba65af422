# Sourced by tools/run and tools/test: install what is missing, nothing more.
#   - Debian packages: fuse (fusermount) and libfuse2 (what fusepy loads), python3-venv;
#   - a virtualenv in .venv holding fakeproc (editable) and its dependencies.
# A stamp file records the hash of setup.cfg, so a second run reinstalls nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

apt_install() {  # apt_install PKG... (only those not installed)
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "fakeproc: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "fakeproc: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

venv_install() {  # venv_install EXTRAS ("" or "test")
    local extras="$1" spec="$ROOT" stamp
    [ -n "$extras" ] && spec="$ROOT[$extras]"
    stamp="$VENV/.fakeproc-stamp-${extras:-base}"
    local want
    want=$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; rm -rf "$VENV"; python3 -m venv "$VENV"; }
    fi
    # the test install holds everything the base one does
    if [ -z "$extras" ] && [ "$(cat "$VENV/.fakeproc-stamp-test" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "fakeproc: installing fakeproc${extras:+[$extras]} into $VENV" >&2
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" >&2
        echo "$want" > "$stamp"
    fi
}

apt_install fuse libfuse2
