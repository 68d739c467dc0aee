#!/usr/bin/env bash
# Create benchmarks/.peers, a virtualenv with the SNN libraries snnjax is compared against
# (snnTorch, SpikingJelly, spyx, and slax where it installs). Never part of the main install.
#   bash benchmarks/setup_peers.sh && .venv/bin/python benchmarks/peers.py
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.peers"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q torch==2.13.0
pin="$(mktemp)"
echo "torch==2.13.0" > "$pin"
"$venv/bin/pip" install -q -c "$pin" -r "$here/requirements-peers.txt"
"$venv/bin/pip" install -q -c "$pin" slax || echo "slax did not install: benchmarked without it"
rm -f "$pin"
"$venv/bin/python" -c "import torch, snntorch, spikingjelly, spyx; print('peers ready:', torch.__version__)"
