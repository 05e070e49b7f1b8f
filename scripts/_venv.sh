# Sourced by scripts/*: create .venv and install the project into it when needed.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
ensure_venv() {
  local extras="${1:-}"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  fi
  local stamp="$VENV/.installed${extras:+-$extras}"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "installing spillway${extras:+[$extras]} into .venv ..." >&2
    if ! "$VENV/bin/pip" install -q -e "$ROOT${extras:+[$extras]}" >"$VENV/install.log" 2>&1; then
      cat "$VENV/install.log" >&2
      echo "error: installing spillway failed (log above, also in .venv/install.log)" >&2
      exit 1
    fi
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}
