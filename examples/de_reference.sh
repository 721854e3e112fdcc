#!/usr/bin/env bash
# The expert-curated (DE) tungsten set under one ground truth with the EM set:
# import the real DFT set (FitSNAP JSON, 14 groups) and relabel a copy with the embedded
# reference potential. Both files are kept: de_dft.h5 (VASP labels), de_reference.h5.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/examples/venv.sh"
data="${1:-$root/../shared/data/fitsnap_W_PRB2019}"
out="${2:-$root/emtool-out}"
mkdir -p "$out"
emtool import "$data" -o "$out/de_dft.h5" --element W --overwrite
emtool label "$out/de_dft.h5" -o "$out/de_reference.h5" --relabel
emtool info "$out/de_reference.h5"
