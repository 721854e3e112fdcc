#!/usr/bin/env bash
# Label a few emtool configurations with real DFT: GPAW (PBE, plane waves) from Debian's
# packages, run as ONE process with one thread. See docs/dft.md for the settings, the
# measured cost and the caveats.
#
# Usage: bash examples/label_with_gpaw.sh [WORKDIR]      (default WORKDIR: ./gpaw-run)
# Knobs (environment): N (configurations, 4), ECUT (eV, 300), KPTS (JSON list, [1, 1, 1]),
#                      VENV (/work/gpaw-venv).
# Cost on one core of the 2-core development machine: ~2-2.5 min per 32-40-atom configuration
# at the defaults (300 eV, Γ only: a smoke test, NOT converged labels, docs/dft.md); ~12 min at
# 300 eV and 2x2x2 k-points; ~25-35 min (extrapolated) at the paper's 600 eV and 2x2x2.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mkdir -p "${1:-gpaw-run}" && cd "${1:-gpaw-run}" && pwd)"
n="${N:-4}"
ecut="${ECUT:-300}"
kpts="${KPTS:-[1, 1, 1]}"
venv="${VENV:-/work/gpaw-venv}"

# 1. GPAW and its PAW datasets from Debian (bookworm: gpaw 22.8.0, gpaw-data 0.9.20000, into
#    Debian's /usr/bin/python3 together with python3-ase 3.22.1, libxc, FFTW, OpenBLAS,
#    OpenMPI, ScaLAPACK). Needs root; skipped when GPAW is already there.
if ! /usr/bin/python3 -c "import gpaw" 2>/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y gpaw gpaw-data
fi
/usr/bin/python3 -c "import gpaw; print('gpaw', gpaw.__version__, gpaw.setup_paths)"

# 2. A venv on Debian's Python that also sees Debian's packages (gpaw), with emtool installed
#    into it. emtool needs ase>=3.23, so pip puts a newer ase (3.29 at the time of writing)
#    into the venv, shadowing Debian's 3.22.1; GPAW 22.8 works with it (docs/dft.md).
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install --quiet -e "$root"
"$venv/bin/python" -c "import gpaw, ase, emtool; print('gpaw', gpaw.__version__, 'ase', ase.__version__)"

# 3. One process, one thread: no mpirun, and no OpenMP/OpenBLAS threads (GPAW's C code links
#    Debian's threaded OpenBLAS, which would otherwise take every core).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

# 4. Configurations: N entropy-optimized random W cells of 32-40 atoms (resumable).
"$venv/bin/emtool" generate -n "$n" -o "$work/em$n.h5"

# 5. Label them with the GPAW factory of examples/gpaw_w.py (by file path; from the repository
#    root `--potential examples.gpaw_w:calculator` works too). --calc-args are the factory's
#    keywords: ecut (eV), kpts, smearing (eV), txt, and any GPAW keyword. --workers 1: each
#    worker is a whole single-threaded GPAW. Interrupt and rerun to resume; failed
#    configurations are kept with their error and retried with --retry-failed.
#    Γ-only forces differ from 2x2x2 ones by up to ~3 eV/Å in these cells: for training data
#    use at least KPTS='[2, 2, 2]' (or '{"density": 3.0}'). The paper's settings would be
#    --calc-args '{"ecut": 600, "kpts": [2, 2, 2], "convergence": {"energy": 1e-8,
#    "density": 1e-6}}' (~12-15x the cost of the default here).
cd "$root"
"$venv/bin/emtool" -v label "$work/em$n.h5" \
    --potential examples/gpaw_w.py:calculator \
    --calc-args "{\"ecut\": $ecut, \"kpts\": $kpts}" \
    --workers 1 -o "$work/em${n}_gpaw.h5"

# 6. What came out: counts, label status and provenance (the labeler's settings and versions).
"$venv/bin/emtool" info "$work/em${n}_gpaw.h5"
