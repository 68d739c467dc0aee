"""Checkpoints: exact round trip, keep-K, atomic writes, kill-and-resume equals uninterrupted."""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnjax as sj
from snnjax import checkpoint, distributed
from snnjax.checkpoint import Checkpointer, complete_steps, read_checkpoint
from snnjax.experiment import TrainConfig, train_and_evaluate
from snnjax.train import Trainer
from xla_flags import COMPILE_FAST

ENV = {
    **os.environ,
    "XLA_FLAGS": "--xla_force_host_platform_device_count=4 " + COMPILE_FAST,
    "JAX_PLATFORMS": "cpu",
}


def _trained(mesh=None, steps=2):
    """A train state with BatchNorm statistics, momentum/Adam moments and a moved PRNG key."""
    xs = np.random.default_rng(0).random((3, 8, 64), np.float32)
    ys = np.arange(8, dtype=np.int32) % 10
    opt = optax.chain(optax.add_decayed_weights(1e-4), optax.adam(lambda c: 1e-2 / (1 + c)))
    trainer = Trainer(sj.models.mlp(10, hidden=(16,), norm=True), sj.rules.bptt(), opt,
                      mesh=mesh)
    ts = trainer.init(jax.random.key(0), xs)
    for _ in range(steps):
        ts, _ = trainer.step(ts, xs, ys)
    return trainer, ts, xs


@pytest.fixture(scope="module")
def trained():
    """``(trainer, ts, xs)`` on one device; shared (compiling it is the slow part)."""
    return _trained()


def _assert_states_equal(a, b):
    np.testing.assert_array_equal(jax.random.key_data(a.key), jax.random.key_data(b.key))
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            continue
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_is_exact(tmp_path, trained):
    trainer, ts, xs = trained
    meta = {"epoch": 1, "batch": 7, "history": [{"loss": 0.1 + 0.2}]}
    with Checkpointer(tmp_path, keep=2) as ckpt:
        ckpt.save(2, ts, meta)
    assert complete_steps(tmp_path) == [2]
    like = trainer.init(jax.random.key(99), xs)
    with Checkpointer(tmp_path) as ckpt:
        restored, got = ckpt.restore(like)
    _assert_states_equal(restored, ts)
    assert got == meta  # floats round-trip exactly through JSON
    assert "batch_stats" in restored.state and int(restored.step) == 2


def test_keeps_the_newest_k(tmp_path, trained):
    _, ts, _ = trained
    with Checkpointer(tmp_path, keep=2) as ckpt:
        for step in range(1, 5):
            ckpt.save(step, ts, {"step": step})
        ckpt.wait()
        assert ckpt.steps() == [3, 4]
    assert read_checkpoint(tmp_path)[1] == {"step": 4}


def test_refuses_to_save_a_non_finite_state(tmp_path, trained):
    _, ts, _ = trained
    bad = ts._replace(params=jax.tree.map(lambda a: a.at[..., 0].set(jnp.nan), ts.params))
    with Checkpointer(tmp_path) as ckpt, pytest.raises(FloatingPointError, match="NaN or Inf"):
        ckpt.save(1, bad, {})
    assert complete_steps(tmp_path) == []


def test_restores_onto_another_device_count(tmp_path, trained):
    """Saved replicated on a 4-device mesh, restored on one device (preempted, smaller slice)."""
    trainer1, ts, xs = trained
    ts4 = distributed.data_parallel(4).replicate(ts)
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, ts4, {})
    with Checkpointer(tmp_path) as ckpt:
        ts1, _ = ckpt.restore(trainer1.init(jax.random.key(3), xs))
    _assert_states_equal(ts1, jax.device_get(ts4))
    assert len(jax.tree.leaves(ts1.params)[0].sharding.device_set) == 1


def test_unfinished_and_unreadable_checkpoints_are_skipped(tmp_path, trained):
    trainer, ts, xs = trained
    with Checkpointer(tmp_path, keep=5) as ckpt:
        ckpt.save(1, ts, {"step": 1})
        ckpt.save(2, ts, {"step": 2})
    # An orbax tmp dir (a write in progress or killed) and a step dir without the commit file.
    (tmp_path / "3.orbax-checkpoint-tmp-1234" / "state").mkdir(parents=True)
    (tmp_path / "4").mkdir()
    assert complete_steps(tmp_path) == [1, 2]
    # A committed checkpoint whose data was lost: restore falls back to the older one.
    for f in (tmp_path / "2" / "state").rglob("*"):
        if f.is_file() and f.name != "commit_success.txt":
            f.unlink()
    with Checkpointer(tmp_path) as ckpt:
        _, meta = ckpt.restore(trainer.init(jax.random.key(1), xs))
    assert meta == {"step": 1}


def _largest_array_file(step_dir):
    """The biggest file of a checkpoint's array data (orbax's OCDBT chunks)."""
    return max((f for f in (step_dir / "state").rglob("*") if f.is_file() and "/d/" in str(f)),
               key=lambda f: f.stat().st_size)


# A failed read must leave none of orbax's other reads of that checkpoint unfinished (they
# would be reported when collected): collect inside the test, and fail on any report.
_ORBAX_LEFTOVERS = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture
def collect_leftovers():
    yield
    gc.collect()


@_ORBAX_LEFTOVERS
@pytest.mark.usefixtures("collect_leftovers")
def test_a_damaged_newest_checkpoint_is_skipped_renamed_and_rewritable(tmp_path, trained,
                                                                        caplog):
    trainer, ts, xs = trained
    with Checkpointer(tmp_path, keep=5) as ckpt:
        ckpt.save(1, ts, {"step": 1})
        ckpt.save(2, ts, {"step": 2})
    damaged = _largest_array_file(tmp_path / "2")
    damaged.write_bytes(damaged.read_bytes()[:40])  # truncated: committed, then damaged
    like = trainer.init(jax.random.key(1), xs)
    with Checkpointer(tmp_path) as ckpt:
        # An explicit step does not fall back (orbax raises a bare Exception for a bad chunk).
        with pytest.raises(Exception, match="(?i)read"):
            ckpt.restore(like, step=2)
        with caplog.at_level("WARNING", logger="snnjax.checkpoint"):
            restored, meta = ckpt.restore(like)
        assert meta == {"step": 1}
        _assert_states_equal(restored, ts)
        (why,) = [r.getMessage() for r in caplog.records if "unreadable (" in r.getMessage()]
        assert "checkpoint 2 in" in why and "\n" not in why and len(why) < 600
        # Set aside, so that the resumed run can write step 2 again (orbax would skip it).
        assert (tmp_path / "2.unreadable").is_dir() and ckpt.steps() == [1]
        ckpt.save(2, ts, {"step": 2})
    assert complete_steps(tmp_path) == [1, 2]
    assert read_checkpoint(tmp_path)[1] == {"step": 2}


def test_no_readable_checkpoint_is_one_error_naming_each(tmp_path, trained):
    trainer, ts, xs = trained
    with Checkpointer(tmp_path, keep=5) as ckpt:
        ckpt.save(1, ts, {"step": 1})
        ckpt.save(2, ts, {"step": 2})
    for step in (1, 2):
        (tmp_path / str(step) / "meta" / "metadata").write_text('{"step": ')
    like = trainer.init(jax.random.key(1), xs)
    with Checkpointer(tmp_path) as ckpt, pytest.raises(
        FileNotFoundError, match=r"no readable checkpoint .*step 1: JSONDecodeError.*step 2: "
    ):
        ckpt.restore(like)
    assert complete_steps(tmp_path) == [1, 2]  # nothing is set aside when nothing reads


def test_missing_orbax_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "orbax.checkpoint", None)  # import now fails
    with pytest.raises(checkpoint.MissingDependencyError, match=r"snnjax\[checkpoint\]"):
        Checkpointer(tmp_path)
    from snnjax import cli

    assert cli.main(["train", "--checkpoint-dir", str(tmp_path), "--no-progress"]) == 2


_KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
    import jax, jax.numpy as jnp, optax
    from snnjax.checkpoint import Checkpointer
    from snnjax.train import TrainState

    directory, where = sys.argv[1], sys.argv[2]
    params = {"w": jnp.arange(50_000.0)}
    ts = TrainState(params, optax.adam(1e-3).init(params), {}, jnp.zeros((), jnp.int32),
                    jax.random.key(0))
    ckpt = Checkpointer(directory)
    ckpt.save(1, ts, {"step": 1})
    ckpt.wait()

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "commit":  # every file written, the commit (rename) not yet done
        from orbax.checkpoint._src.path import atomicity
        atomicity.AtomicRenameTemporaryPath.finalize = die
    else:  # while the items are being written into the tmp directory
        from orbax.checkpoint._src.handlers import json_checkpoint_handler as h

        async def die_async(*args, **kwargs):
            die()

        h.JsonCheckpointHandler._save_fn = die_async
    ckpt.save(2, ts._replace(params={"w": params["w"] + 1}), {"step": 2})
    ckpt.wait()
    print("not killed")
""")


@pytest.mark.parametrize("where", ["write", "commit"])
def test_a_write_killed_midway_is_never_the_newest(tmp_path, where):
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_DURING_SAVE, str(tmp_path), where],
        env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr[-3000:]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("2")]
    assert leftovers and all("orbax-checkpoint-tmp" in n for n in leftovers), leftovers
    assert complete_steps(tmp_path) == [1]
    arrays, meta = read_checkpoint(tmp_path)
    assert meta == {"step": 1}
    np.testing.assert_array_equal(arrays["params"]["w"], np.arange(50_000.0, dtype=np.float32))
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(tmp_path) as mngr:  # orbax agrees
        assert mngr.latest_step() == 1


_RESTORE_DAMAGED = textwrap.dedent("""
    import gc, os, sys
    import jax, jax.numpy as jnp, optax
    from snnjax.checkpoint import Checkpointer
    from snnjax.train import TrainState

    directory = sys.argv[1]
    # Several large arrays over 4 devices: many reads in flight when the damaged one fails.
    params = {f"w{i}": jnp.arange(2_000_000.0) + i for i in range(12)}
    ts = TrainState(params, optax.sgd(0.1).init(params), {}, jnp.zeros((), jnp.int32),
                    jax.random.key(0))
    with Checkpointer(directory) as ckpt:
        ckpt.save(1, ts, {"step": 1})
        ckpt.save(2, ts, {"step": 2})
    step = os.path.join(directory, "2", "state")
    chunks = [os.path.join(r, f) for r, _, fs in os.walk(step) for f in fs if "/d" in r]
    damaged = max(chunks, key=os.path.getsize)
    with open(damaged, "r+b") as f:
        f.truncate(40)
    print("restoring", file=sys.stderr, flush=True)
    with Checkpointer(directory) as ckpt:
        _, meta = ckpt.restore(ts)
    gc.collect()
    print("restored", meta["step"], file=sys.stderr, flush=True)
""")


def test_falling_back_from_a_damaged_checkpoint_leaves_no_orbax_noise(tmp_path):
    # orbax closes its event loop when the first read fails, with the others pending: they
    # reported themselves later ("Event loop is closed", "Exception ignored in: <coroutine
    # object _read_array_index_and_device_put>" and the TensorStore spec).
    proc = subprocess.run([sys.executable, "-c", _RESTORE_DAMAGED, str(tmp_path)], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = proc.stderr.split("restoring\n", 1)[1]
    lines = [line for line in after.splitlines() if line.strip()]
    assert len(lines) == 3, after[-3000:]  # the skipped step, the set-aside, "restored 1"
    assert "checkpoint 2 in " in lines[0] and "is unreadable" in lines[0], lines
    assert "moved unreadable checkpoint 2" in lines[1] and lines[2] == "restored 1", lines


_KILL_DURING_TRAINING = textwrap.dedent("""
    import os, signal, sys, time
    from snnjax import cli, train

    directory, kill_at, committed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    step, calls = train.Trainer.step, [0]

    def step_then_die(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:  # SIGKILL once checkpoint `committed` is on disk
            deadline = time.time() + 120
            marker = os.path.join(directory, committed, "commit_success.txt")
            while not os.path.exists(marker) and time.time() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, *args, **kwargs)

    train.Trainer.step = step_then_die
    sys.exit(cli.main(sys.argv[4:]))
""")

TINY = {"epochs": 2, "batch_size": 64, "hidden": (32,), "T": 3, "devices": 1, "seed": 5,
        "dropout": 0.1}


def _cli_args(cfg: dict) -> list[str]:
    args = ["train", "--no-progress"]
    for k, v in cfg.items():
        flag = "--" + k.replace("_", "-")
        args += [flag, ",".join(map(str, v)) if isinstance(v, tuple) else str(v)]
    return args


def test_killed_mid_epoch_then_resumed_equals_uninterrupted(tmp_path):
    """22 batches per epoch; checkpoints every 5 steps; SIGKILL at step 28 (epoch 2, batch 6)."""
    killed = tmp_path / "killed"
    args = _cli_args({**TINY, "checkpoint_dir": killed, "checkpoint_every": 5})
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_DURING_TRAINING, str(killed), "28", "25", *args],
        env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert complete_steps(killed)[-1] == 25
    _, meta = read_checkpoint(killed)
    assert (meta["epoch"], meta["batch"], meta["step"]) == (1, 3, 25)  # mid-epoch

    out = tmp_path / "resumed.json"
    proc = subprocess.run(
        [sys.executable, "-m", "snnjax.cli", *args, "--resume", "--out", str(out)],
        env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from step 25" in proc.stdout + proc.stderr
    resumed = json.loads(out.read_text())

    straight = train_and_evaluate(
        TrainConfig(**TINY, checkpoint_dir=str(tmp_path / "straight")), progress=False,
        log=lambda *a: None,
    )
    assert resumed["history"] == straight["history"]  # bit-identical losses and accuracies
    a, meta_a = read_checkpoint(killed)
    b, meta_b = read_checkpoint(tmp_path / "straight")
    assert meta_a["step"] == meta_b["step"] == 44
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_ctrl_c_names_the_last_checkpoint_and_the_command_that_resumes(tmp_path):
    """SIGINT to `snnjax train` (the digits default, made tiny) once a checkpoint is on disk:
    a short message, exit status 130, no traceback and no C++ abort."""
    ckpt = tmp_path / "ckpt"
    args = _cli_args({**TINY, "epochs": 50, "checkpoint_dir": ckpt, "checkpoint_every": 2})
    proc = subprocess.Popen([sys.executable, "-m", "snnjax.cli", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not complete_steps(ckpt) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert complete_steps(ckpt), "no checkpoint was written"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    # (XLA's own start-up lines, e.g. about CUDA drivers, may come before.)
    lines = err.strip().splitlines()
    assert not any(w in err for w in ("Traceback", "FATAL", "Exception")), err[-3000:]
    step = complete_steps(ckpt)[-1]
    assert lines[-1].startswith(f"snnjax: interrupted; the last checkpoint is step {step} in "
                                f"{ckpt}; resume with: snnjax train "), lines[-1]
    command = shlex.split(lines[-1].split("resume with: ", 1)[1])
    assert command == ["snnjax", *args, "--resume"]


def test_ctrl_c_without_checkpoints_says_there_is_nothing_to_resume():
    from snnjax import cli

    for argv, want in [
        (["train", "--no-progress"], "no checkpoint was written"),
        (["compare-grads"], "snnjax: interrupted"),
    ]:
        assert want in cli._interrupted(cli.build_parser().parse_args(argv), argv)


def test_divergence_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=64, hidden=(32,), T=3, devices=1, optimizer="sgd",
                      lr=1e8, mse=1.0, checkpoint_dir=str(tmp_path), checkpoint_every=1)
    with pytest.raises(FloatingPointError, match=r"loss is inf.*last good checkpoint \(step 3\)"):
        train_and_evaluate(cfg, progress=False, log=lambda *a: None)
    assert complete_steps(tmp_path)[-1] == 3
    arrays, meta = read_checkpoint(tmp_path)
    assert meta["step"] == 3
    assert all(np.isfinite(a).all() for a in jax.tree.leaves(arrays["params"]))


def test_resume_refuses_a_different_config_and_fresh_runs_refuse_a_used_dir(tmp_path):
    base = {"epochs": 1, "batch_size": 256, "hidden": (8,), "T": 2, "devices": 1,
            "checkpoint_dir": str(tmp_path)}
    train_and_evaluate(TrainConfig(**base), progress=False, log=lambda *a: None)
    with pytest.raises(ValueError, match="already holds a run"):
        train_and_evaluate(TrainConfig(**base), progress=False, log=lambda *a: None)
    with pytest.raises(ValueError, match=r"differs in lr"):
        train_and_evaluate(TrainConfig(**base, lr=0.5, resume=True), progress=False,
                           log=lambda *a: None)
    # Resuming a finished run returns its results without training again.
    done = train_and_evaluate(TrainConfig(**base, resume=True), progress=False,
                              log=lambda *a: None)
    assert len(done["history"]) == 1


# -- a damaged or finished run, resumed from the command line -----------------------------

RUN = ["train", "--no-progress", "--epochs", "2", "--batch-size", "256", "--hidden", "8",
       "--T", "2", "--devices", "1"]  # 5 steps per epoch: checkpoints 5 and 10


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """``(checkpoint dir, results JSON)`` of a finished two-epoch run, written by the CLI."""
    from snnjax import cli

    root = tmp_path_factory.mktemp("finished")
    out = root / "run.json"
    assert cli.main([*RUN, "--checkpoint-dir", str(root / "ckpt"), "--out", str(out)]) == 0
    assert complete_steps(root / "ckpt") == [5, 10]
    return root / "ckpt", json.loads(out.read_text())


def _strict_json(path):
    def refuse(name):
        raise AssertionError(f"{path} holds {name}: not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _damage_array(step_dir):
    f = _largest_array_file(step_dir)
    f.write_bytes(f.read_bytes()[:40])


def _damage_meta(step_dir):
    f = step_dir / "meta" / "metadata"
    f.write_text(f.read_text()[:40])


def _damage_tree_metadata(step_dir):
    f = step_dir / "state" / "_METADATA"
    f.write_text(f.read_text()[:40])


@_ORBAX_LEFTOVERS
@pytest.mark.usefixtures("collect_leftovers")
@pytest.mark.parametrize("damage", [_damage_array, _damage_meta, _damage_tree_metadata],
                         ids=["array file", "meta file", "array tree metadata"])
def test_resume_skips_a_damaged_newest_checkpoint(damage, finished_run, tmp_path, capsys):
    from snnjax import cli

    ckpt = tmp_path / "ckpt"
    shutil.copytree(finished_run[0], ckpt)
    damage(ckpt / "10")
    out = tmp_path / "resumed.json"
    rc = cli.main([*RUN, "--checkpoint-dir", str(ckpt), "--resume", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Traceback" not in captured.err
    (warning,) = [line for line in captured.err.splitlines() if "unreadable (" in line]
    assert warning.startswith("snnjax: warning: checkpoint 10 in ") and "Error" in warning
    assert "resumed from step 5 (epoch 2, batch 0)" in captured.out
    # Epoch 2 trained again from step 5: the same numbers as the run that was not damaged.
    assert _strict_json(out)["history"] == finished_run[1]["history"]
    assert complete_steps(ckpt) == [5, 10] and (ckpt / "10.unreadable").is_dir()


def test_a_damaged_checkpoint_metadata_file_resumes_without_an_error_line(finished_run,
                                                                          tmp_path, caplog):
    # orbax goes on without a damaged _CHECKPOINT_METADATA; its "ERROR:absl:Failed to json
    # parse Metadata file" line would only alarm. Resume from step 5 (epoch 2 trains again and
    # saves step 10 beside it).
    from snnjax import cli

    ckpt = tmp_path / "ckpt"
    shutil.copytree(finished_run[0], ckpt)
    shutil.rmtree(ckpt / "10")
    meta = ckpt / "5" / "_CHECKPOINT_METADATA"
    meta.write_text(meta.read_text()[:20])
    out = tmp_path / "resumed.json"
    with caplog.at_level("INFO"):
        rc = cli.main([*RUN, "--checkpoint-dir", str(ckpt), "--resume", "--out", str(out)])
    assert rc == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert _strict_json(out)["history"] == finished_run[1]["history"]
    assert complete_steps(ckpt) == [5, 10]


def test_resuming_a_finished_run_says_so_and_writes_strict_json(finished_run, tmp_path,
                                                                 capsys):
    from snnjax import cli

    ckpt = tmp_path / "ckpt"
    shutil.copytree(finished_run[0], ckpt)
    out = tmp_path / "again.json"
    rc = cli.main([*RUN, "--checkpoint-dir", str(ckpt), "--resume", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "already finished (2 epochs, step 10): nothing left to train" in captured.out
    result = _strict_json(out)  # no step was timed: step_time_s is null, not NaN
    assert result["step_time_s"] is None
    assert result["history"] == finished_run[1]["history"]
    assert complete_steps(ckpt) == [5, 10]


def test_ctrl_c_during_an_orbax_wait_is_raised_after_it(tmp_path, trained, monkeypatch):
    # The CLI's Ctrl-C test lands its SIGINT wherever the run happens to be; here it lands
    # inside orbax's wait on purpose. orbax logs an interrupt there as a failed save, with a
    # traceback: the interrupt must reach the caller only once orbax's call has returned.
    _, ts, _ = trained
    finished = []

    def wait_interrupted():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the signal is handled here, between bytecodes
        finished.append(True)

    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, ts, {})
        ckpt.wait()
        monkeypatch.setattr(ckpt._manager, "wait_until_finished", wait_interrupted)
        with pytest.raises(KeyboardInterrupt):
            ckpt.wait()
        assert finished == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        monkeypatch.undo()
    assert complete_steps(tmp_path) == [1]
