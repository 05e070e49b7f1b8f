# Sourced by scripts/*: create .venv and install the project into it when needed.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
ensure_venv() {
  local extras="${1:-}"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  fi
  # The editable install is a plain path in a .pth file ("compat" mode), not setuptools'
  # import-hook finder: the finder loads pathlib, re and urllib.parse into every Python
  # start in the venv (most of `python -c pass` here, and of `spillway --help`), which a
  # pip-installed spillway never pays. The stamp's name changed with it, so that a venv
  # made with the finder is installed again once.
  local stamp="$VENV/.installed-pth${extras:+-$extras}"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "installing spillway${extras:+[$extras]} into .venv ..." >&2
    local target="$ROOT${extras:+[$extras]}"
    if ! "$VENV/bin/pip" install -q -e "$target" --config-settings editable_mode=compat \
        >"$VENV/install.log" 2>&1 &&
      ! "$VENV/bin/pip" install -q -e "$target" >>"$VENV/install.log" 2>&1; then
      cat "$VENV/install.log" >&2
      echo "error: installing spillway failed (log above, also in .venv/install.log)" >&2
      exit 1
    fi
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

# _apt_install PACKAGE...: install Debian packages when running as root; otherwise warn.
_apt_install() {
  [ $# -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $* from Debian packages ..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "warning: $* missing and not root; install with: sudo apt-get install $*" >&2
  fi
}

# ensure_commands CMD...: install the Debian packages named like the missing commands
# (povray, blender) when running as root; otherwise warn and carry on.
ensure_commands() {
  local missing=()
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  _apt_install "${missing[@]}"
}

# ensure_files PATH=PACKAGE...: install the Debian PACKAGE when PATH is missing (e.g. example
# scenes that come with no command of their own) when running as root; otherwise warn.
ensure_files() {
  local missing=()
  local item
  for item in "$@"; do
    [ -e "${item%%=*}" ] || missing+=("${item#*=}")
  done
  _apt_install "${missing[@]}"
}
