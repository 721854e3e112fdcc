#!/usr/bin/env bash
# The main job on the embedded defaults: installs emtool into .venv, then runs `emtool run`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/examples/venv.sh"
emtool run -o "${1:-$root/emtool-out}"
