#!/usr/bin/env bash
# The one command to give the device tool for issue 14: installs the peers' wheels, runs
# benchmarks/accelerator.py at full size and leaves accelerator.{json,md,log} in $OUT.
#
# What the lent machine (H100/H200, image 'cuda') already has: python3 with jax 0.11 + CUDA 13
# plugin, flax, optax, chex, torch 2.11 (CUDA 13), triton, cupy-cuda13x, numpy, scipy,
# matplotlib, h5py, tqdm, requests (see /work/.library/device/KINDS.md). It reaches no package
# index, so the pure-Python packages it lacks travel as wheels in .whl/ (git-ignored through
# .git/info/exclude: `echo /.whl/ >> .git/info/exclude`). Fetch them here, once:
#
#   P="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#      --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64"
#   python3 -m pip download $P -d .whl spikingjelly==2.0.0 snntorch==1.0.0 loguru==0.7.3
#   python3 -m pip download $P -d .whl/legacy spikingjelly==0.0.0.0.14
#
# (about 1.7 MB: spikingjelly 2.0.0 1.1 MB, snntorch 1.0.0 0.13 MB, loguru 0.7.3 0.06 MB,
# spikingjelly 0.0.0.0.14 0.44 MB). loguru is the only dependency of SpikingJelly 2 the image
# lacks that the benchmark imports (SciencePlots, also declared, serves only its plotting
# module); snntorch declares none. SpikingJelly 0.0.0.0.14 is the release with the CuPy
# backend the published Open Neuromorphic figures used (SpikingJelly 2 has none); it goes
# to its own site directory, given to the benchmark with --sj-legacy-site, because two
# versions of one package in one --target directory stop the install.
#
# Then, from the device tool (about 8 minutes of run time plus the machine's start):
#
#   run(command="bash benchmarks/accelerator_device.sh", carry=[".whl"], timeout_s=570)
#
# and copy $OUT's accelerator.json and accelerator.md (files_at) into benchmarks/results/;
# paste accelerator.md into BENCHMARKS.md. accelerator.log holds the progress log. Extra
# arguments go to accelerator.py (e.g. `--budget-s 300`, `--sections dense`).
#
# Each conv row's measured peak comes with XLA's figure for the step that ran and, where
# snnjax has compile-only targets (snnjax.cost.step_memory(..., target=...), issue 22), the
# same step compiled for the card without it, on the host's CPU (JAX_PLATFORMS=cpu) beside
# the other compiles; where that cannot run there, the row's note says why, and the figure
# can be made on any machine with `snnjax bench cost --target h100` at the same sizes.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"  # the image's python3 holds jax and torch
out="${OUT:-benchmarks/results}"
site="${SITE:-/tmp/site}"
legacy_site="${LEGACY_SITE:-/tmp/site_sj014}"
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl || exit 1
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
else
    echo "no wheels in .whl/: the peer libraries will be skipped" >&2
fi
legacy=()
if ls .whl/legacy/*.whl >/dev/null 2>&1; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$legacy_site" .whl/legacy/*.whl || exit 1
    legacy=(--sj-legacy-site "$legacy_site")
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$py" benchmarks/accelerator.py --out "$out" ${legacy[@]+"${legacy[@]}"} "$@" 2>&1 \
    | tee "$out/accelerator.log"
