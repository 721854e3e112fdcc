#!/usr/bin/env bash
# The main job on the embedded defaults: installs emtool (with the PyTorch CPU extra for the
# network) into .venv, then runs `emtool run` (generate -> label -> fit -> nve + report).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
EMTOOL_EXTRAS="nn" source "$root/examples/venv.sh"
emtool run -o "${1:-$root/emtool-out}"
