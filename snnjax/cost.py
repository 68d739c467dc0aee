"""Cost of a training step: compiled memory from XLA's memory analysis."""

from __future__ import annotations

from typing import Any

__all__ = ["compiled_memory"]


def compiled_memory(lowered_or_compiled: Any) -> dict[str, int]:
    """Memory of a compiled XLA computation, from its (deterministic) memory analysis.

    Args:
      lowered_or_compiled: ``jax.jit(f).lower(...)`` or its ``.compile()``.

    Returns:
      ``{"temp_bytes", "argument_bytes", "output_bytes", "alias_bytes", "memory_bytes"}``
      where ``memory_bytes = temp + argument + output`` (``alias_bytes``, the donated
      buffers that outputs reuse, is reported separately and not subtracted).
    """
    compiled = lowered_or_compiled
    if hasattr(compiled, "compile"):
        compiled = compiled.compile()
    m = compiled.memory_analysis()
    out = {
        "temp_bytes": int(m.temp_size_in_bytes),
        "argument_bytes": int(m.argument_size_in_bytes),
        "output_bytes": int(m.output_size_in_bytes),
        "alias_bytes": int(m.alias_size_in_bytes),
    }
    out["memory_bytes"] = out["temp_bytes"] + out["argument_bytes"] + out["output_bytes"]
    return out
