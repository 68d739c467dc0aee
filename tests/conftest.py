"""Test configuration: CPU only, 4 virtual host devices for data-parallel tests."""

import os

from xla_flags import COMPILE_FAST

# Must be set before jax is imported anywhere.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compile-only TPU targets hold no chip: let both test workers load libtpu.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
# The suite's time is mostly XLA:CPU compiling many small programs once each: LLVM's
# optimisation passes are skipped (the HLO passes, buffer assignment and so the compiled
# memory figures the tests assert are not affected). Subprocesses inherit it.
if COMPILE_FAST not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + COMPILE_FAST

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Run the test in float64 (SPEC §4's identities are checked to 1e-10)."""
    with jax.enable_x64(True):
        yield
