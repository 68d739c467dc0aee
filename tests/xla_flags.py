"""XLA flags the tests run under (tests/conftest.py; subprocesses that set their own flags)."""

#: XLA:CPU compiling fast: without LLVM's optimisation passes, and one codegen thread per
#: compile (two test workers already share the cores). Several times faster to compile; the
#: same HLO, buffer assignment and so memory analysis (tests/test_results.py checks the
#: committed figures, made without these flags). Not
#: ``--xla_cpu_use_fusion_emitters=false``: twice faster again, but its kernels change the
#: buffer assignment. Only for the tests, never for timings.
COMPILE_FAST = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
                "--xla_cpu_parallel_codegen_split_count=1")
