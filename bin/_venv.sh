# Sourced by bin/run and bin/test: make .venv from requirements.txt when it is
# missing or older than requirements.txt, then put it first on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GUST_VENV:-$ROOT/.venv}"

find_python() {
  local c
  for c in "${GUST_PYTHON:-}" python3.13 python3.12; do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && { echo "$c"; return; }
  done
  for c in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.1[23]*/bin/python3; do
    [ -x "$c" ] && { echo "$c"; return; }
  done
  echo "Gust needs Python 3.12 or newer (Django 6); set GUST_PYTHON to one." >&2
  exit 1
}

if [ ! -x "$VENV/bin/python" ] || [ "$ROOT/requirements.txt" -nt "$VENV/.installed" ]; then
  PY="$(find_python)"
  echo ">> creating virtualenv $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  echo ">> installing requirements.txt (first run takes about a minute)"
  "$VENV/bin/pip" install --quiet -r "$ROOT/requirements.txt"
  touch "$VENV/.installed"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
