"""scripts/device_check.py --cpu-dry-run: every figure's JSON line, with its keys; the scaling
figure on 2 fake CPU devices."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

KEYS = {
    "environment": {"jax", "device_kind", "local_devices", "commit"},
    "solver": {"n", "batch", "steps", "compile_s", "seconds", "cell_steps_per_s", "max_norm_error"},
    "solver_scaling": {"devices", "batch", "cell_steps_per_s", "efficiency"},
    "measures": {"shape", "pixel_series_per_s", "compile_s"},
    "unet_train": {"dtype", "batch", "images_per_s", "compile_s", "paper_model_500_epochs_h", "parameters"},
    "e2e_slice": {"runs", "epochs", "stage_s", "projected_h", "projected_study_h", "study_units"},
    "plan": {"rows", "points", "models", "wall_s", "stage_s"},
    "summary": {"ok", "skipped", "error", "figures"},
}
COMMON = {"figure", "status", "dry_run", "platform", "elapsed_s"}


def _dry_run(out: Path, *extra: str, devices: int = 1) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "device_check.py"), "--cpu-dry-run", "--out", str(out),
                          *extra], capture_output=True, text=True, env=env, cwd=out.parent, timeout=1800)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    lines = [json.loads(line) for line in (out / "device_check.jsonl").read_text().splitlines()]
    assert [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")] == lines
    return lines


def test_cpu_dry_run_reports_every_figure(tmp_path):
    out = tmp_path / "dc"
    lines = _dry_run(out)
    lines += _dry_run(tmp_path / "scaling", "--devices", "2", "--only", "solver_scaling", devices=2)[:-1]
    by_figure: dict[str, list[dict]] = {}
    for line in lines:
        assert COMMON <= set(line), line
        assert line["dry_run"] is True and line["platform"] == "cpu"
        by_figure.setdefault(line["figure"], []).append(line)
    for figure, keys in KEYS.items():
        assert figure in by_figure, figure
        for line in by_figure[figure]:
            assert line["status"] == "ok", line
            assert keys <= set(line), (figure, keys - set(line))
    assert len(by_figure["solver"]) == 1 and [l["devices"] for l in by_figure["solver_scaling"]] == [1, 2]
    assert {l["dtype"] for l in by_figure["unet_train"]} == {"float32", "bfloat16"}
    # the peer is measured when torch and magnumnp import, otherwise skipped with the reason
    (peer,) = by_figure["peer_magnumnp"]
    assert peer["status"] in ("ok", "skipped"), peer
    assert "cell_steps_per_s" in peer if peer["status"] == "ok" else peer["reason"]
    summary = by_figure["summary"][0]
    assert summary["error"] == 0 and summary["ok"] == len(summary["figures"]) - summary["skipped"]
    assert "| solver" in (out / "summary.md").read_text()


def test_profile_step_lists_the_operations_of_the_solver_step():
    """scripts/profile_step.py: per-operation lines whose shares add up, with the FFTs among them."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "profile_step.py"), "solver", "--n", "16", "--steps", "4",
                          "--calls", "1", "--top", "50", "--hlo"], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    ops = [line for line in lines if "op" in line]
    kinds = {line["kind"]: line for line in lines if "op" not in line and "kind" in line}
    summary = lines[-1]
    assert summary["summary"] == "solver" and summary["cells"] == 256 and summary["ms_per_step_in_operations"] > 0
    assert ops and all(line["ms_per_step"] > 0 and 0 < line["share"] <= 1 for line in ops)
    assert abs(sum(line["share"] for line in kinds.values()) - 1.0) < 1e-6 or len(kinds) == 50
    assert "fft" in kinds  # the demag convolution's transforms are traced operations
    assert any(line["kind"] == "fft" and "fft_type" in line.get("hlo", "") for line in ops)
