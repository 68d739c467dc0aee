"""Accelerator numbers in one command (issue 14): the Open Neuromorphic framework benchmark at
its published sizes, the papers' conv nets at CIFAR size, and the memory planner, on one GPU.

    python benchmarks/accelerator.py                 # full sizes: one H100/H200, <= 8 minutes
    python benchmarks/accelerator.py --tiny --out /tmp/acc   # the same code paths on CPU, seconds

Writes ``OUT/accelerator.json`` (every figure, the device described) and
``OUT/accelerator.md``, a Markdown section ready to paste into BENCHMARKS.md (OUT defaults to
benchmarks/results). On a lent GPU machine run ``bash benchmarks/accelerator_device.sh``
(see that script for the wheels and the device tool's exact ``run`` call).

Sections
--------
1. **Open Neuromorphic (ON) benchmark**: Linear(N→N) + LIF, no readout, T = 500, batch 16,
   N = 4096, 8192, 16384, float32 and bfloat16; one forward + backward (loss and weight
   gradients, no optimizer), the device synchronised before and after each timed call.
   snnjax ``rules.bptt()``, ``rules.sltt(chunk=T)``, ``rules.sltt()`` (chunk 1: memory O(1) in
   T) and ``rules.ottt(chunk=T)`` (OTTT_A) beside SpikingJelly 2.0 (its automatic CUDA
   selection, Triton on a machine without its source-built native ops, and its forced Torch
   implementation), SpikingJelly 0.0.0.0.14's CuPy backend (the release the published ON
   figures used; SpikingJelly 2.0 has no CuPy backend) and snnTorch. Same numpy weights and
   inputs for every library; same dynamics: λ = 0.5 (τ = 2, decay_input=False), V_th = 1,
   soft reset kept in the graph, sigmoid surrogate α = 4, state starting at 0. snnTorch's
   Leaky (``reset_delay=False``, its fixed behaviour) detaches the reset and, while its
   post-reset potential is still ≥ V_th, fires only at 2·V_th the next step: its spike count
   differs slightly.

   The network, its data and its loss are :mod:`nets.dense`'s, the same as
   benchmarks/peers.py's. Loss: the network has no readout, so the loss is the spike count,
   written per step so that the per-step rules (SLTT, OTTT) can use it: ``L = Σ_t L[t]``,
   ``L[t] = Σ_{b,n} s[t,b,n] / T``; every library and rule minimises this same L (BPTT's
   gradient is the total one; SLTT/OTTT's their truncated ones). The loss value and the sum of
   the weight gradient are reported per row: equal losses across libraries check the dynamics.
   The synapse reads the raw input, so it is not traced (SPEC §3): with no readout, OTTT's
   gradient here is SLTT's, and its row times the OTTT engine doing SLTT's work.
   At the largest N, XLA's temporaries are also compiled at T/2: how each rule's memory
   grows with T.

   Roofline: ``max(FLOPs / peak, bytes / bandwidth)`` at the card's datasheet figures
   (``PEAKS`` below). FLOPs = 4·T·B·N² (forward GEMM and weight-gradient GEMM; the input
   is data, so no input gradient). Bytes = s·(2·N² + 4·T·B·N) with s the dtype's size: the
   weight read and its gradient written, the input read by both GEMMs, and one membrane
   residual [T, B, N] written forward and read backward -- the traffic no schedule avoids.
   float32 rows count TF32 tensor-core peak when TF32 matmuls are on (``--fp32-matmul``,
   default ``tf32`` for both JAX and torch) and the non-tensor fp32 peak otherwise.

2. **VGG-11 sWS and ResNet-18** at CIFAR size (32×32×3, 10 classes), batch 128, T = 6: a full
   training step (``Trainer.step``: SGD momentum 0.9) for BPTT, TBPTT(2), Local
   (``local(tbptt(2), block_size=2)``), SLTT, SLTT-K(1), OTTT_A and OTTT_O; step time, peak
   device memory (``memory_stats()["peak_bytes_in_use"]`` after one step, in a fresh process
   per row so the peak is that row's) beside XLA's figure for that step
   (``snnjax.cost.compiled_memory``) and beside the compile-only figure: the same step
   compiled for the card without it (``snnjax.cost.step_memory(..., target=...)``, where this
   snnjax has compile targets; on the host's CPU, beside the other compiles). These steps
   and the dense ones are compiled first in a
   few parallel processes into a persistent compilation cache (``--jobs``), so the measuring
   process loads them (``step_from_cache`` per row) and its peak holds no autotuning scratch.
   SpikingJelly's BPTT (multi-step), SLTT and OTTT (its single-step online loops:
   ``SLTTLIFNode``, ``OTTTLIFNode`` + ``OTTTSequential``) on the same networks where it has
   them (OTTTSequential is sequential only: no ResNet); torch's peak is
   ``max_memory_allocated()`` over one step after a warm-up.

3. **Memory planner**: the largest T at batch 128 whose compiled step (ResNet-18) fits the
   card's memory (JAX's ``bytes_limit`` at ``XLA_PYTHON_CLIENT_MEM_FRACTION=0.95``), for BPTT
   and SLTT: secant steps from two compiled probes bracket the answer, then
   ``snnjax.bench.largest`` settles it (compiled memory is not exactly linear in T, so the
   answer is tested, not extrapolated). The planner only compiles, without autotuning
   (``--xla_gpu_autotune_level=0``), beside the conv compiles.

``--tiny`` runs every section and row kind on CPU in about two CPU-minutes, compiling most
of it (CI, tests/test_accelerator.py): N = 64, 128, T = 8, batch 4; VGG-11 sWS with a 2-conv cfg and a
one-unit PreAct ResNet at 8×8, T = 2, the ResNet with BPTT, SLTT and SLTT-K(1) only; the
planner on the small VGG against a 256 KiB budget; XLA:CPU compiling without its expensive
passes; peers that are not installed are reported as not run.

The full run has a time budget (``--budget-s``, default 460 s, for the device tool's
10-minute calls): each section gets a share of what is left, and rows that do not fit are
reported as skipped for the time budget (a section whose share is under a few seconds starts
no worker). ``--tiny`` has no budget unless one is given, so what it reports does not depend
on the machine's speed. Rows run in worker subprocesses (``--worker``) so that a crash, an
out-of-memory or a timeout costs one row.

Code by role: :mod:`accel` (cards and rooflines, sizes and rules, the worker protocol, the
workers, the planner's search, the orchestration, the Markdown) and :mod:`nets` (the
comparison networks).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Run as a script, this file's directory (benchmarks/) is on the path; imported (tests), it
# must be put there for its packages accel and nets.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accel.orchestrate import orchestrate  # noqa: E402
from accel.protocol import ROOT, worker_main  # noqa: E402
from accel.report import render_markdown  # noqa: E402
from accel.workers import WORKERS  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true",
                    help="tiny sizes: the same code paths on CPU in seconds (CI)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                    help="directory for accelerator.json and accelerator.md")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="time budget for the whole run in seconds (default 460; --tiny: "
                         "none, so that its rows do not depend on the machine's speed)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="parallel compile processes for the steps (default 4, tiny 1; 0: "
                         "none, each step compiled where it is measured)")
    ap.add_argument("--sections", default="dense,conv,plan",
                    help="comma-separated subset of dense,conv,plan")
    ap.add_argument("--N", type=int, nargs="+", help="override the dense N values")
    ap.add_argument("--fp32-matmul", choices=["tf32", "highest"], default="tf32",
                    help="float32 matmul/conv precision in JAX and torch (default tf32)")
    ap.add_argument("--no-peers", action="store_true", help="snnjax only")
    ap.add_argument("--sj-legacy-site", default=None,
                    help="a site dir holding SpikingJelly 0.0.0.0.14 (its CuPy backend)")
    ap.add_argument("--plan-budget", default=None,
                    help="planner budget where the device reports no memory limit (CPU; "
                         "default 16GiB, tiny 256KiB)")
    ap.add_argument("--cache-dir", default=None,
                    help="JAX compilation cache directory (default: a fresh temporary one)")
    ap.add_argument("--fresh-process", choices=["auto", "yes", "no"], default="auto",
                    help="one process per snnjax conv row (auto: where the device reports "
                         "peak memory)")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.budget_s is None and not args.tiny:
        args.budget_s = 460.0
    if args.budget_s is not None and args.budget_s < 0:
        ap.error(f"--budget-s must be >= 0, got {args.budget_s}")
    if args.jobs is None:
        args.jobs = 1 if args.tiny else 4
    if args.plan_budget is None:
        args.plan_budget = "256KiB" if args.tiny else "16GiB"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(WORKERS, args.worker, args.spec)
    result = orchestrate(args)
    out = Path(args.out)
    (out / "accelerator.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "accelerator.md").write_text(render_markdown(result))
    print(f"wrote {out / 'accelerator.json'} and {out / 'accelerator.md'} "
          f"({result['meta']['elapsed_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
