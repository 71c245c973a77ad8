"""Data parallelism: 4 forced host devices equal 1 device; two jax.distributed processes train.

Both run in subprocesses, since the device count and jax.distributed must be fixed before JAX
is imported.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env(devices: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("JAX_COORDINATOR_ADDRESS", None)
    return env


FOUR_DEVICES = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jaxmag.config import loads_config
    from jaxmag.learn import sharding
    from jaxmag.learn.loop import create_train_state, compile_train_step
    from jaxmag.learn.synthetic import make_disc_batch_fn

    assert jax.device_count() == 4
    config = loads_config("[model]\\nbase_features = 4\\ndepth = 2\\ndropout = 0.2\\n"
                          "[training]\\nbatch_size = 8\\nlearning_rate = 1e-3\\n")
    x, y = (np.asarray(a) for a in make_disc_batch_fn(8, 16, 16)(jax.random.key(0)))
    out = {}
    for n in (1, 4):
        mesh = sharding.data_mesh(jax.devices()[:n])
        state = create_train_state(config, 1, jax.random.key(0), 10, mesh)
        step = compile_train_step(state, mesh, x.shape)
        bsh = sharding.batch_sharding(mesh)
        xg, yg = sharding.global_batch(x, bsh, 8), sharding.global_batch(y, bsh, 8)
        assert {s.data.shape[0] for s in xg.addressable_shards} == {8 // n}
        losses = []
        for _ in range(2):
            state, m = step(state, xg, yg)
            losses.append(float(m["loss"]))
        leaves = jax.tree.leaves(state.params)
        assert all(len(l.sharding.device_set) == n for l in leaves)
        out[n] = (losses, [np.asarray(l) for l in leaves])
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(out[1][1], out[4][1]))
    scale = max(float(np.max(np.abs(a))) for a in out[1][1])
    try:
        sharding.check_batch_size(6, sharding.data_mesh())
        error = None
    except ValueError as exc:
        error = str(exc)
    print(json.dumps({"loss1": out[1][0], "loss4": out[4][0], "param_diff": diff, "scale": scale, "error": error}))
    """
)


def test_four_devices_equal_one_device():
    res = subprocess.run([sys.executable, "-c", FOUR_DEVICES], env=_env(4), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(res.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(r["loss4"], r["loss1"], rtol=1e-5, atol=1e-5)
    assert r["loss1"][0] != r["loss1"][1]  # the parameters did move
    assert r["param_diff"] < 1e-5, r
    assert "not divisible by the 4 devices" in r["error"]


TWO_PROCESSES = textwrap.dedent(
    """
    import json, sys
    from jaxmag.learn import sharding
    pid, port, measures, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    sharding.initialize_distributed(f"localhost:{port}", 2, pid)
    import jax
    from jaxmag.config import loads_config
    from jaxmag.learn.sources.measures import MeasuresSource
    from jaxmag.learn.loop import train_and_evaluate
    config = loads_config("[model]\\nbase_features = 4\\ndepth = 2\\n[training]\\nepochs = 1\\nbatch_size = 8\\nseed = 1\\n")
    src = MeasuresSource(measures, (("mean", "x"),), batch_size=8, seed=1)
    result = train_and_evaluate(config, src, out, progress=False, evaluate_test=False)
    print(json.dumps({"pid": jax.process_index(), "processes": jax.process_count(), "devices": jax.device_count(),
                      "local": jax.local_device_count(), "steps": src.steps_per_epoch, "history": result["history"]}))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two fresh JAX processes plus a reference run: about 2 minutes on 2 cores
def test_two_process_distributed_training(tmp_path):
    from jaxmag.config import loads_config
    from jaxmag.learn.sources.measures import MeasuresSource
    from jaxmag.learn.loop import train_and_evaluate
    from jaxmag.learn.synthetic import write_measures_file

    measures = write_measures_file(tmp_path / "m.h5", num=24)  # 16 training images: two steps of 8
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_PROCESSES, str(pid), str(port), str(measures), str(tmp_path / "run")],
            env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for pid in (0, 1)
    ]
    outs = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("two-process jax.distributed run timed out")
        outs.append((p.returncode, stdout, stderr))
    for rc, stdout, stderr in outs:
        if rc != 0 and "collectives" in stderr.lower() and "not implemented" in stderr.lower():
            pytest.skip("this jaxlib has no CPU cross-process collectives: " + stderr.strip().splitlines()[-1])
        assert rc == 0, stderr[-3000:]
    recs = [json.loads(o[1].strip().splitlines()[-1]) for o in outs]
    assert sorted(r["pid"] for r in recs) == [0, 1]
    assert all(r["processes"] == 2 and r["devices"] == 4 and r["local"] == 2 and r["steps"] == 2 for r in recs)
    assert recs[0]["history"][0]["loss"] == recs[1]["history"][0]["loss"]
    assert (tmp_path / "run" / "checkpoints" / "latest").is_dir() and (tmp_path / "run" / "history.json").is_file()
    # the same run on one process and one device gives the same loss and validation Dice
    config = loads_config("[model]\nbase_features = 4\ndepth = 2\n[training]\nepochs = 1\nbatch_size = 8\nseed = 1\n")
    single = train_and_evaluate(config, MeasuresSource(measures, (("mean", "x"),), batch_size=8, seed=1), tmp_path / "one",
                                progress=False, evaluate_test=False)
    assert recs[0]["history"][0]["loss"] == pytest.approx(single["history"][0]["loss"], rel=1e-5)
    assert recs[0]["history"][0]["val_dice"] == pytest.approx(single["history"][0]["val_dice"], abs=1e-6)
