"""Test configuration: CPU only, 4 virtual host devices for data-parallel tests."""

import importlib.util
import os
import shutil
import tempfile

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

# Tests compile some programs more than once (parametrised tests their shared baseline, the
# memory tests steps other tests run): one persistent compilation cache for the whole run,
# shared by the xdist workers (they inherit this environment from the controller) and their
# subprocesses, removed at the end; programs that compile in under 0.5 s are not worth an
# entry. A size limit turns on jax's file lock (filelock, in the test extra), so that two
# workers never read an entry half written; without filelock, no cache.
_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_OWN_CACHE = _CACHE_ENV not in os.environ and importlib.util.find_spec("filelock") is not None
if _OWN_CACHE:
    os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="snnjax-tests-xla-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 << 30))

import jax  # noqa: E402
import pytest  # noqa: E402


def pytest_unconfigure(config):
    # The controller (or a run without workers) made the cache; workers leave it.
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ[_CACHE_ENV], ignore_errors=True)


@pytest.fixture
def x64():
    """Run the test in float64 (SPEC §4's identities are checked to 1e-10)."""
    with jax.enable_x64(True):
        yield
