"""The machine's float32 GEMM peak for the dense step's two products, measured with numpy.

peers.py reports each dense step's GEMM rate against this reference. It runs in a child
process whose environment lacks the OpenBLAS overrides (:data:`OPENBLAS_OVERRIDES`): a
machine that sets ``OPENBLAS_CORETYPE=Haswell`` on an AVX-512 CPU forces numpy onto a kernel
at about half the CPU's rate, and the reference must be the CPU's, not the setting's. Only
this measurement drops them; nothing else (tests, CI, the benchmarked processes) is changed.
The child reports which OpenBLAS kernel ran (threadpoolctl's ``architecture``; threadpoolctl
comes with scikit-learn, a dependency of snnjax).

    python benchmarks/gemm_reference.py --rows 1600 --n 2048     # prints the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# Environment variables that override OpenBLAS's own choice of kernel and cache blocking.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def reference_env(environ=None) -> tuple[dict, dict]:
    """``(env, removed)``: a copy of ``environ`` (default ``os.environ``) without
    :data:`OPENBLAS_OVERRIDES`, and the ones it had, with their values."""
    env = dict(os.environ if environ is None else environ)
    removed = {k: env.pop(k) for k in OPENBLAS_OVERRIDES if k in env}
    return env, removed


def gemm_peak(rows: int, n: int, *, repeats: int = 5, python: str | None = None,
              environ=None, timeout: float = 600) -> dict:
    """numpy's float32 rate (GFLOP/s) for ``[rows, n] @ [n, n]`` and ``[rows, n]ᵀ @ [rows, n]``
    (4·rows·n² flops the pair), measured in a child process without the OpenBLAS overrides.

    Returns the child's figures (``gflops``, ``kernel``: the OpenBLAS kernel that ran, or
    None where threadpoolctl is missing; ``threads``, ``numpy``) and ``unset``: the
    overrides the environment had and the child ran without.
    """
    env, removed = reference_env(environ)
    cmd = [python or sys.executable, str(Path(__file__).resolve()), "--rows", str(rows),
           "--n", str(n), "--repeats", str(repeats)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                         check=False)
    if out.returncode != 0:
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"the GEMM reference failed (exit {out.returncode}): {tail}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "unset": removed}


def _blas() -> dict:
    """numpy's BLAS as threadpoolctl sees it: kernel (``architecture``), threads, library."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"kernel": None, "threads": None, "blas": "threadpoolctl not installed"}
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            return {"kernel": lib.get("architecture"), "threads": lib.get("num_threads"),
                    "blas": f"{lib.get('internal_api')} {lib.get('version')}"}
    return {"kernel": None, "threads": None, "blas": None}


def measure(rows: int, n: int, repeats: int) -> dict:
    """In this process: the best of ``repeats`` timings of the pair of products."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, n), dtype=np.float32)
    w = rng.standard_normal((n, n), dtype=np.float32)
    c = rng.standard_normal((rows, n), dtype=np.float32)
    a @ w  # warm-up: thread pool and page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ w
        a.T @ c
        best = min(best, time.perf_counter() - t0)
    return {"gflops": 4 * rows * n * n / best / 1e9, "rows": rows, "n": n,
            "numpy": np.__version__, **_blas(),
            "env": {k: os.environ.get(k) for k in OPENBLAS_OVERRIDES}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, required=True, help="rows of x: T·batch")
    ap.add_argument("--n", type=int, required=True, help="the layer's width N")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    print(json.dumps(measure(a.rows, a.n, a.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
