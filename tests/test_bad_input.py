"""Bad input at the public boundary: a clear error naming the problem, before compiling."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnjax as sj
from snnjax import cli, data, distributed
from snnjax.losses import Loss
from snnjax.train import Trainer, check_finite, validate_batch

T, B = 3, 8


def _batch(T=T, B=B, dtype=np.float32):
    xs = np.random.default_rng(0).random((T, B, 8, 8, 1)).astype(dtype)
    return xs, (np.arange(B) % 10).astype(np.int32)


def _never_compiled(trainer):
    """Make the jitted step fail the test if anything reaches it."""

    def fail(*args):
        raise AssertionError("the step was compiled/run despite bad input")

    trainer._step = fail
    return trainer


def _with(xs=None, ys=None):
    x, y = _batch()
    return (x if xs is None else xs), (y if ys is None else ys)


def _nan_xs():
    xs, _ = _batch()
    xs[1, 2, 3, 4, 0] = np.nan
    return xs


def _inf_xs():
    xs, _ = _batch()
    xs[0, 0, 0, 0, 0] = -np.inf
    return xs


BAD_BATCHES = {
    "nan inputs": (_with(xs=_nan_xs()), "NaN or Inf"),
    "inf inputs": (_with(xs=_inf_xs()), "NaN or Inf"),
    "no time axis": (_with(xs=np.zeros((B, 64), np.float32)), "time-major"),
    "integer inputs": (_with(xs=np.zeros((T, B, 8, 8, 1), np.int32)), "floating point"),
    "label shape": (_with(ys=np.zeros((B, 1), np.int32)), r"the labels have shape \(8, 1\)"),
    "batch mismatch": (_with(ys=np.zeros((B - 1,), np.int32)), r"has B = 8, the labels"),
    "batch-major": (_with(xs=np.zeros((B, T, 8, 8, 1), np.float32)),
                    r"xs must be time-major \[T, B, \.\.\.\]: .* batch-major"),
    "float labels": (_with(ys=np.zeros((B,), np.float32)), "labels must be integers"),
    "label too big": (_with(ys=np.full((B,), 10, np.int32)), r"lie in \[0, 10\)"),
    "negative label": (_with(ys=np.full((B,), -1, np.int32)), r"lie in \[0, 10\)"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_bad_batch_is_refused_before_compiling(case):
    (xs, ys), message = BAD_BATCHES[case]
    trainer = _never_compiled(Trainer(sj.models.mlp(10, hidden=(8,)), sj.rules.sltt(),
                                      optax.sgd(0.1)))
    with pytest.raises(ValueError, match=message):
        trainer.step(None, xs, ys)


def test_wrong_rank_for_a_conv_model():
    xs, ys = _batch()
    with pytest.raises(ValueError, match=r"expects inputs of rank 5"):
        validate_batch(sj.models.cnn(10), xs.reshape(T, B, 64), ys)


def test_batch_not_divisible_by_devices_is_refused_before_compiling():
    xs, ys = _batch(B=6)
    trainer = Trainer(sj.models.mlp(10, hidden=(8,)), sj.rules.bptt(), optax.sgd(0.1),
                      mesh=distributed.data_parallel(4).mesh)
    _never_compiled(trainer)
    for check in (True, False):
        with pytest.raises(ValueError, match="batch size 6 is not divisible by the 4 devices"):
            trainer.step(None, xs, ys, check=check)


@pytest.mark.parametrize(
    "rule, loss, message",
    [
        (sj.rules.sltt_k(5), sj.losses.per_step(), r"K=5 is larger than .* T=3"),
        (sj.rules.tbptt(5), sj.losses.per_step(), r"window k=5 is longer .*T=3"),
        (sj.rules.sltt(), sj.losses.rate(), "per-step loss"),
    ],
    ids=["K>T", "window>T", "rate loss"],
)
def test_rule_settings_that_cannot_run_with_this_T(rule, loss, message):
    xs, ys = _batch()
    trainer = _never_compiled(Trainer(sj.models.mlp(10, hidden=(8,)), rule, optax.sgd(0.1), loss))
    with pytest.raises(ValueError, match=message):
        trainer.step(None, xs, ys)


def test_ottt_refuses_a_max_pool_model():
    """Raised while the step is traced, before XLA compiles anything."""
    xs, ys = _batch()
    trainer = Trainer(sj.models.cnn(10, channels=(4,), pool="max"), sj.rules.ottt(),
                      optax.sgd(0.1))
    ts = trainer.init(jax.random.key(0), xs)
    with pytest.raises(ValueError, match="max pooling"):
        trainer.step(ts, xs, ys)


def test_compare_gradients_names_the_heads_that_params_lack():
    xs, ys = _batch()
    model = sj.models.mlp(10, hidden=(8, 8))
    params, state = sj.rules.bptt().init(model, jax.random.key(0), jnp.asarray(xs[0]))
    rule = sj.rules.local(sj.rules.bptt(), block_size=1)
    with pytest.raises(ValueError, match=r"rule local\(bptt\) needs parameters that params "
                                         r"lacks: 'aux_head_0' .*rule.init"):
        sj.diagnostics.compare_gradients(model, [rule], params, state, jnp.asarray(xs),
                                         jnp.asarray(ys))


# -- in the step: what only shows once it runs (check=False, or multi-host arrays) -------


@dataclasses.dataclass(frozen=True)
class _NaNGradientLoss(Loss):
    """The usual loss plus 0·sqrt(0·o): the value is unchanged, its gradient is NaN."""

    def step(self, o, y):
        return super().step(o, y) + 0.0 * jnp.sqrt(0.0 * o).sum()


@pytest.fixture(scope="module")
def ottt_trainer_state():
    xs, ys = _batch()
    trainer = Trainer(sj.models.mlp(10, hidden=(8,)), sj.rules.ottt(online=True),
                      optax.adam(1e-3))
    return trainer, xs, ys


def test_nan_inputs_inside_the_step_are_named(ottt_trainer_state):
    trainer, xs, ys = ottt_trainer_state
    ts = trainer.init(jax.random.key(0), xs)
    ts, metrics = trainer.step(ts, _nan_xs(), ys, check=False)
    with pytest.raises(FloatingPointError, match=r"input batch at epoch 2 contains NaN"):
        check_finite(jax.device_get(metrics), where="epoch 2")


def test_nan_gradient_with_a_finite_loss_is_caught():
    xs, ys = _batch()
    trainer = Trainer(sj.models.mlp(10, hidden=(8,)), sj.rules.sltt(), optax.adam(1e-3),
                      _NaNGradientLoss())
    ts = trainer.init(jax.random.key(0), xs)
    ts, metrics = trainer.step(ts, xs, ys)
    metrics = jax.device_get(metrics)
    assert np.isfinite(metrics["loss"])
    with pytest.raises(FloatingPointError, match="gradient is NaN or Inf"):
        check_finite(metrics)


def test_non_finite_loss_is_caught():
    with pytest.raises(FloatingPointError, match="loss is nan at step 3"):
        check_finite({"loss": np.float32("nan")}, where="step 3")
    check_finite({"loss": np.float32(1.0), "inputs_finite": True, "update_finite": True})


# -- the command line: `snnjax: error: ...`, exit status 2 ------------------------------

TINY = ["--epochs", "1", "--hidden", "8", "--T", "2", "--no-progress"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rule", "nope"], "unknown rule 'nope'"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--optimizer", "nope"], "unknown optimizer 'nope'"),
        (["--surrogate", "nope"], "unknown surrogate 'nope'"),
        (["--rule", "sltt-k", "--K", "5", "--T", "4"], "K=5 is larger"),
        (["--rule", "tbptt", "--window", "5", "--T", "4"], "window k=5 is longer"),
        (["--rule", "tbptt-local", "--window", "5", "--T", "4"], "window k=5 is longer"),
        (["--batch-size", "30", "--devices", "4"], "batch size 30 is not divisible by the 4"),
        (["--devices", "9"], "asked for 9 devices but only 4"),
        (["--T", "0"], "T (time steps) must be >= 1"),
        (["--lr", "-1"], "learning rate must be > 0"),
        (["--resume"], "need --checkpoint-dir"),
        (["--checkpoint-every", "5"], "need --checkpoint-dir"),
        (["--keep-checkpoints", "0", "--checkpoint-dir", "x"], "keep_checkpoints must be >= 1"),
        (["--dropout", "1"], "dropout must be a rate in [0, 1), got 1.0"),
        (["--dropout", "-0.1"], "dropout must be a rate in [0, 1), got -0.1"),
        # Flags that the rule, dataset, optimizer or model would ignore.
        (["--rule", "sltt", "--K", "2"], "rule sltt does not use --K (only sltt-k does)"),
        (["--window", "3"], "rule bptt does not use --window (only tbptt, tbptt-local do)"),
        (["--rule", "local", "--online"], "rule local does not use --online"),
        (["--rule", "sltt-k", "--block-size", "2", "--window", "2"],
         "rule sltt-k does not use --window and --block-size"),
        (["--data-dir", "data"], "dataset 'digits' ships with snnjax: it takes no --data-dir"),
        (["--momentum", "0.5"], "--momentum is used by --optimizer sgd only"),
        (["--keep-checkpoints", "2"], "--keep-checkpoints needs --checkpoint-dir"),
        (["--model", "cnn", "--hidden", "8"], "model 'cnn' takes no --hidden"),
        (["--width", "2"], "model 'mlp' takes no --width"),
        (["--out", "no/such/dir/r.json"], "cannot write no/such/dir/r.json: directory"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "error",
)
def test_cli_reports_bad_settings(args, message, capsys):
    assert cli.main(["train", *TINY, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snnjax: error: ") and message in err, err
    assert err.count("\n") == 1, err  # one line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rules", "sltt,ottt-a", "--K", "2"], "rules sltt, ottt-a do not use --K"),
        (["--rules", "bptt", "--block-size", "2"], "rule bptt does not use --block-size"),
        (["--rules", "tbptt", "--window", "9", "--T", "4"], "window k=9 is longer"),
        (["--rules", ""], "--rules is empty"),
    ],
)
def test_compare_grads_reports_bad_settings(args, message, capsys):
    assert cli.main(["compare-grads", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snnjax: error: ") and message in err, err


def _stop_before_training(monkeypatch):
    """Make ``snnjax train`` stop where training would start (the checks have run)."""
    from snnjax import experiment

    def stop(cfg, **kwargs):
        raise ValueError(f"stopped before training: {cfg.rule}")

    monkeypatch.setattr(experiment, "train_and_evaluate", stop)


ONE_BLOCK = [
    (["--rule", "local", "--hidden", "8,8", "--block-size", "2"],
     "SpikingSequential has 2 units, so block_size=2 makes one block: local(bptt) is plain "
     "bptt"),
    (["--rule", "tbptt-local", "--hidden", "8"],
     "SpikingSequential has 1 unit, so block_size=1 makes one block: local(tbptt(k=2)) is "
     "plain tbptt(k=2)"),
    (["--rule", "local", "--hidden", "8,8", "--block-size", "1"], None),
]


@pytest.mark.parametrize("args, warning", ONE_BLOCK)
def test_one_local_block_warns_that_it_is_the_inner_rule(args, warning, monkeypatch, capsys):
    from snnjax import experiment

    def stop(*args, **kwargs):  # the trainer has initialised; nothing has compiled
        raise ValueError("stopped before training")

    monkeypatch.setattr(experiment, "compiled_memory", stop)
    assert cli.main(["train", *TINY, *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("snnjax: error: stopped before training")
    assert err[:-1] == ([f"snnjax: warning: {warning}"] if warning else [])


@pytest.mark.parametrize("hidden, block_size, one", [((8,), 1, True), ((8, 8), 2, True),
                                                      ((8, 8), 1, False)])
def test_one_local_block_warns_in_python_as_on_the_command_line(hidden, block_size, one,
                                                                caplog):
    model = sj.models.mlp(10, hidden=hidden)
    rule = sj.rules.local(sj.rules.bptt(), block_size=block_size)
    with caplog.at_level("WARNING", logger="snnjax"):
        rule.init(model, jax.random.key(0), jnp.ones((4, 8, 8, 1)))
    said = [r.getMessage() for r in caplog.records if "makes one block" in r.getMessage()]
    assert said == ([f"SpikingSequential has {len(hidden)} unit{'s' * (len(hidden) > 1)}, so "
                     f"block_size={block_size} makes one block: local(bptt) is plain bptt"]
                    if one else [])


# -- folders the run cannot write: refused before training ------------------------------
# `chmod` does not stop root (the tests may run as root), so the unwritable folders are
# ones nobody can write: a plain file in the way of a folder, an existing folder of /proc,
# and, where this process may mount, a read-only tmpfs (the case the checks are for).


@pytest.fixture
def read_only_mount(tmp_path):
    """An existing, empty folder on a read-only tmpfs mount (skipped where mounting is not
    allowed)."""
    import shutil
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount command")
    made = subprocess.run([mount, "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount here: {made.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _unwritable(kind: str, tmp_path, request) -> tuple[str, str]:
    """``(folder, what the error says of it)``."""
    if kind == "read-only mount":
        return str(request.getfixturevalue("read_only_mount")), "Read-only file system"
    if kind == "file in the way":
        (tmp_path / "plain-file").write_text("not a folder")
        return str(tmp_path / "plain-file" / "sub"), "Not a directory"
    return "/proc", "cannot write"  # an existing folder where no one can create a file


KINDS = ["read-only mount", "file in the way", "/proc"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_unwritable_checkpoint_dir_is_one_line_before_training(kind, tmp_path, request,
                                                                   monkeypatch, capsys):
    folder, why = _unwritable(kind, tmp_path, request)
    _stop_before_training(monkeypatch)
    assert cli.main(["train", *TINY, "--checkpoint-dir", folder]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snnjax: error: cannot ") and folder in err and why in err, err
    assert "checkpoints" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("kind", KINDS)
def test_an_unwritable_checkpoint_dir_is_refused_by_the_python_api(kind, tmp_path, request):
    from snnjax.checkpoint import Checkpointer

    folder, why = _unwritable(kind, tmp_path, request)
    with pytest.raises(ValueError, match="^cannot .*checkpoints") as err:
        Checkpointer(folder)
    assert folder in str(err.value) and why in str(err.value), err.value


@pytest.mark.parametrize("kind", KINDS)
def test_out_in_an_unwritable_folder_is_one_line_before_training(kind, tmp_path, request,
                                                                  monkeypatch, capsys):
    folder, why = _unwritable(kind, tmp_path, request)
    _stop_before_training(monkeypatch)
    out = f"{folder}/run.json"
    assert cli.main(["train", *TINY, "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"snnjax: error: cannot write {out}") and err.count("\n") == 1, err
    if kind != "file in the way":  # there the folder is missing: "does not exist"
        assert why in err, err


def test_cli_reports_nan_in_the_dataset(monkeypatch, capsys):
    load = data.load

    def load_with_nan(name, split, **kwargs):
        ds = load("digits", split, **kwargs)
        x = ds.x.copy()
        x[5, 1, 1, 0] = np.nan
        return dataclasses.replace(ds, x=x)

    monkeypatch.setattr(data, "load", load_with_nan)
    assert cli.main(["train", *TINY]) == 2
    assert "sample(s) contain NaN or Inf (first: index 5)" in capsys.readouterr().err


def test_cli_reports_divergence(capsys):
    args = ["--optimizer", "sgd", "--lr", "1e8", "--mse", "1", "--batch-size", "64",
            "--devices", "1"]
    assert cli.main(["train", *TINY, *args]) == 2
    assert "training diverged" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 3, -1])
def test_all_finite_finds_one_bad_element_anywhere(bad, where):
    from snnjax.train import all_finite

    x = np.ones((2, 3), np.float32).reshape(-1)
    x[where] = bad
    tree = {"a": jnp.zeros((0,)), "b": jnp.asarray(x.reshape(2, 3)), "i": jnp.arange(3)}
    assert not bool(jax.jit(all_finite)(tree))
    assert bool(all_finite({"a": jnp.ones((2, 3)), "i": jnp.arange(3), "e": jnp.zeros((0,))}))
