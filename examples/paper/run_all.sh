#!/usr/bin/env bash
# The paper study end to end at this machine's scale (examples/paper/RESULTS.md has the
# numbers of the run recorded there). Scale knobs: see study.py; results in $EMTOOL_PAPER_OUT.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
EMTOOL_EXTRAS="nn,umlip" source "$here/../venv.sh"
cd "$here"
export NUMBA_NUM_THREADS=1          # parallelism is over worker processes
export EMTOOL_PAPER_MODELS="${EMTOOL_PAPER_MODELS:-linear,quadratic,nn:A1,nn:A3,nn:A5,nn:B1,nn:B2}"
export EMTOOL_PAPER_EPOCHS="${EMTOOL_PAPER_EPOCHS:-60}"
python fig2_whitening.py
python fig4_transfer.py
python fig3_ndof.py
python fig5_nve.py
python de_groupwise.py
python dft_leg.py                  # real DFT: needs GPAW's venv (docs/dft.md) for its EM part
