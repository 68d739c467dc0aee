"""XLA flags the tests run under (tests/conftest.py; subprocesses that set their own flags)."""

#: XLA:CPU without LLVM's optimisation passes: a compile several times faster, the same HLO,
#: buffer assignment and memory analysis. Only for the tests, never for timings.
COMPILE_FAST = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
