"""Datasheet peaks of the cards the accelerator benchmark runs on, and the dense roofline."""

from __future__ import annotations

from nets.dense import dense_work

# Dense (no sparsity) peaks per second and memory bandwidth, from NVIDIA's datasheets:
# "NVIDIA H100 Tensor Core GPU" datasheet (SXM5 / PCIe / NVL columns), "NVIDIA H200 Tensor
# Core GPU" datasheet (SXM / NVL), "NVIDIA A100 Tensor Core GPU" datasheet (80 GB SXM).
# The datasheets print tensor-core figures with sparsity; those are halved here. fp32 is the
# non-tensor-core rate. Measured figures of the lent cards are in BENCHMARKS.md, not here.
PEAKS = {
    "H100 SXM": {"fp32": 67e12, "tf32": 494.5e12, "bf16": 989.5e12, "bandwidth": 3.35e12},
    "H100 PCIe": {"fp32": 51e12, "tf32": 378e12, "bf16": 756.5e12, "bandwidth": 2.0e12},
    "H100 NVL": {"fp32": 60e12, "tf32": 417.5e12, "bf16": 835.5e12, "bandwidth": 3.9e12},
    "H200 SXM": {"fp32": 67e12, "tf32": 494.5e12, "bf16": 989.5e12, "bandwidth": 4.8e12},
    "H200 NVL": {"fp32": 60e12, "tf32": 417.5e12, "bf16": 835.5e12, "bandwidth": 4.8e12},
    "A100 SXM": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "bandwidth": 2.039e12},
}
PEAKS_SOURCE = (
    "NVIDIA datasheets (H100 Tensor Core GPU, H200 Tensor Core GPU, A100): dense peaks "
    "(sparsity figures halved), fp32 = non-tensor-core rate"
)
# Matched in order against the lower-cased device name (nvidia-smi or jax's device_kind).
_CARD_PATTERNS = (
    ("h200 nvl", "H200 NVL"), ("h200", "H200 SXM"),
    ("h100 nvl", "H100 NVL"), ("h100 pcie", "H100 PCIe"), ("h100", "H100 SXM"),
    ("a100", "A100 SXM"),
)
# snnjax's compile-only target (``snnjax.cost.step_memory(..., target=...)``, issue 22) whose
# compiler configuration is the card's: the H200 is the H100's chip (GH100, 132 SMs, sm_90)
# with more memory, which the step's buffer assignment does not read.
COMPILE_TARGETS = {"H100 SXM": "h100", "H200 SXM": "h100", "A100 SXM": "a100"}


def detect_card(name: str | None) -> str | None:
    """The ``PEAKS`` key of a device name (``"NVIDIA H100 80GB HBM3"`` → ``"H100 SXM"``)."""
    low = (name or "").lower()
    for pattern, key in _CARD_PATTERNS:
        if pattern in low:
            return key
    return None


def peak_flops(card: str | None, dtype: str, fp32_matmul: str) -> float | None:
    """The card's dense peak for ``dtype`` (float32: TF32 tensor cores or plain fp32)."""
    if card not in PEAKS:
        return None
    p = PEAKS[card]
    if dtype == "bfloat16":
        return p["bf16"]
    return p["tf32"] if fp32_matmul == "tf32" else p["fp32"]


def roofline(flops, nbytes, card, dtype, fp32_matmul) -> dict:
    """Roofline time (s) of ``flops`` and ``nbytes`` on ``card``, and its parts."""
    peak = peak_flops(card, dtype, fp32_matmul)
    if peak is None:
        return {"roofline_s": None, "compute_s": None, "memory_s": None, "peak_flops": None}
    compute, memory = flops / peak, nbytes / PEAKS[card]["bandwidth"]
    return {"roofline_s": max(compute, memory), "compute_s": compute, "memory_s": memory,
            "peak_flops": peak}


def annotate_dense(rows, card, fp32_matmul):
    """Add each dense row's work, roofline, × roofline and TFLOP/s (in place)."""
    for r in rows:
        flops, nbytes = dense_work(r["N"], r["T"], r["B"], r["dtype"])
        r["flops"], r["bytes"] = flops, nbytes
        r.update(roofline(flops, nbytes, card, r["dtype"], fp32_matmul))
        t = r.get("time_s")
        r["x_roofline"] = (t / r["roofline_s"]) if (t and r["roofline_s"]) else None
        r["tflops"] = flops / t / 1e12 if t else None
