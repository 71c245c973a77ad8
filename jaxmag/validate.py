"""``jaxmag mumax3 validate``: the same runs in MuMax3 (or a compatible engine) and in jaxmag, compared.

Contract
--------
``validate(config, runs=N, out=DIR, engine=None, engine_output=None)``:

1. builds run ``run_index`` of the config (its film: defects, material maps, m0) and gives it
   N thermal seeds (``seed_list``: ``thermal_seed(dataset.seed, run_index)`` and the next
   N − 1 seeds of the same stream, ``thermal_seed(dataset.seed + 1000003 * j, run_index)``);
2. writes ``DIR/engine/run_j/run.mx3`` (+ ``regions.ovf``) per seed (``jaxmag.io.mx3``);
3. runs the engine on each script in its folder (``<engine> run.mx3``, MuMax3's layout:
   output in ``run_j/run.out/m000000.ovf ...`` and ``table.txt``) when ``engine`` is given or
   ``mumax3`` is on PATH. Without an engine it stops after writing the scripts and
   ``DIR/run_engine.sh``, and says how to run them; ``engine_output`` (a folder holding
   ``run_j/run.out`` or ``run_j.out`` folders) compares results brought back later. An engine
   that fails raises ``EngineError`` with its last lines of output and the script path;
4. simulates the same N runs in jaxmag (``simulate_seeds``: the config's physics, all three
   components stored, same material, same seeds);
5. compares jaxmag's N runs with the engine's N (``jaxmag.compare``: thermal statistics with
   bootstrap errors when T > 0, per-frame checks at T = 0 with N = 1), and writes
   ``DIR/report.md`` (the table, the verdict, and the temporal mean/std maps side by side as
   ``DIR/maps.png``) plus ``DIR/result.json``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxmag.io.trajectory import Trajectory, load_source, trajectory_from_frames


class EngineError(RuntimeError):
    """The engine failed on a script: ``script`` (path), ``code`` (exit status), ``tail`` (its
    last output lines); the message names the script and the full log."""

    script: Path
    code: int
    tail: list[str]


def seed_list(config, run_index: int, runs: int) -> list[int]:
    """N thermal seeds for run ``run_index``'s film: the dataset's own first (module docstring)."""
    from jaxmag.simulate import thermal_seed

    seed = config.dataset.seed
    return [thermal_seed(seed + 1000003 * j, run_index) for j in range(runs)]


def simulate_seeds(config, run_index: int, seeds: Sequence[int], *, components: str = "xyz", spec=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``run_index``'s film once per thermal seed, in one batch.

    Returns frames ``(N, T, ny, nx, 3)`` float64 (components not asked for are NaN), the frame
    times (s) and the film's labels ``(ny, nx)``. ``spec`` overrides ``build_run(config,
    run_index)`` (e.g. a quantised material, to match an export)."""
    import jax

    from jaxmag import assemble
    from jaxmag import simulate as sim

    config = config.replace(simulation=dataclasses.replace(config.simulation, components=components))
    spec = assemble.build_run(config, run_index) if spec is None else spec
    mesh = sim.local_mesh()
    size = sim.effective_batch(len(seeds), mesh.size, len(seeds))
    padded = list(seeds) + [seeds[-1]] * (size - len(seeds))
    material = jax.tree.map(lambda x: np.stack([np.asarray(x)] * size), spec.material)
    m0 = np.stack([np.asarray(spec.m0)] * size)
    step = assemble.batch_simulator(config, mesh)
    frames = np.asarray(step(material, m0, np.asarray(padded, np.uint32)), np.float64)[: len(seeds)]  # (N, T, C, ny, nx)
    out = np.full(frames.shape[:2] + frames.shape[3:] + (3,), np.nan)
    for c, axis in enumerate(components):
        out[..., "xyz".index(axis)] = frames[:, :, c]
    return out, assemble.frame_times(config), np.asarray(spec.labels)


def jaxmag_trajectories(config, run_index: int, seeds: Sequence[int], *, spec=None, name: str = "jaxmag") -> list[Trajectory]:
    """``simulate_seeds`` as ``Trajectory`` objects (with the film's labels as regions)."""
    frames, times, labels = simulate_seeds(config, run_index, seeds, spec=spec)
    return [
        trajectory_from_frames(f, times, config.grid.cell_size_m, temperature=config.material.temperature,
                               name=f"{name} seed {s}", regions=labels)
        for f, s in zip(frames, seeds)
    ]


@dataclasses.dataclass(frozen=True)
class ValidationResult:
    """What ``validate`` did: the scripts, the comparison (None when only scripts were written),
    the report path and the exit status (0 consistent or scripts only, 1 inconsistent)."""

    scripts: tuple[Path, ...]
    comparison: object | None
    report: Path | None
    exit_code: int


def _resolve_engine(engine: str | None) -> str | None:
    if engine is None:
        return shutil.which("mumax3")
    found = shutil.which(engine)
    if found is None and Path(engine).is_file() and os.access(engine, os.X_OK):
        found = str(Path(engine).resolve())
    if found is None:
        raise FileNotFoundError(f"engine '{engine}' not found or not executable (give the path of a mumax3 binary or a compatible one)")
    return found


def run_engine(exe: str, script: Path, *, tail_lines: int = 20) -> Path:
    """Run ``exe script.name`` in the script's folder; its output goes to ``engine.log`` there.

    Returns the ``<script>.out`` folder; raises ``EngineError`` (last output lines, script
    path) when the engine exits with an error or writes no output folder."""
    log = script.with_name("engine.log")
    with open(log, "wb") as f:
        code = subprocess.call([exe, script.name], cwd=script.parent, stdout=f, stderr=subprocess.STDOUT)
    lines = log.read_text(errors="replace").splitlines()[-tail_lines:]
    folder = script.with_suffix(".out")
    if code != 0:
        err = EngineError(f"{exe} exited with status {code} on {script} (full output: {log})")
        err.tail, err.script, err.code = lines, script, code  # type: ignore[attr-defined]
        raise err
    if not folder.is_dir():
        err = EngineError(f"{exe} wrote no output folder {folder} for {script} (full output: {log})")
        err.tail, err.script, err.code = lines, script, code  # type: ignore[attr-defined]
        raise err
    return folder


def _engine_folder(root: Path, name: str) -> Path:
    for candidate in (root / name / "run.out", root / f"{name}.out", root / name):
        if candidate.is_dir() and any(candidate.glob("m*.ovf")):
            return candidate
    raise FileNotFoundError(f"{root}: no engine output for {name} (looked for {name}/run.out, {name}.out and {name} holding m*.ovf)")


def validate(config_path: str | os.PathLike, *, runs: int, out: str | os.PathLike, engine: str | None = None,
             engine_output: str | os.PathLike | None = None, run_index: int = 0, quantize_angle_deg: float | None = None,
             alpha: float = 0.05, overwrite: bool = False, say=print) -> ValidationResult:
    """Export, run, simulate, compare and report (module docstring)."""
    from jaxmag.compare import as_dict, compare
    from jaxmag.compare_thermal import ThermalOptions
    from jaxmag.config import load_config
    from jaxmag.io.atomic import write_text
    from jaxmag.assemble import assemble, build_run
    from jaxmag.io.mx3 import mx3_script, quantize_easy_axis, write_mx3_run

    config_path, out = Path(config_path), Path(out)
    config = load_config(config_path)
    if runs < 1:
        raise ValueError(f"--runs must be >= 1, got {runs}")
    if not 0 <= run_index < config.dataset.num_runs:
        raise ValueError(f"--run {run_index} out of range: {config_path} has dataset.num_runs = {config.dataset.num_runs}")
    if config.grid.nz != 1:
        raise ValueError(f"validate compares films one cell thick: grid.nz must be 1, got {config.grid.nz}")
    spec = build_run(config, run_index)
    if quantize_angle_deg is not None:
        spec = dataclasses.replace(spec, material=quantize_easy_axis(spec.material, quantize_angle_deg))
    seeds = seed_list(config, run_index, runs)
    assembly = assemble(config)
    names = [f"run_{j}" for j in range(runs)]
    scripts = []
    for name, seed in zip(names, seeds):
        title = f"jaxmag validate {config.name}: run {run_index} of {config_path.name}, thermal seed {seed}"
        script = out / "engine" / name / "run.mx3"
        if script.is_file() and not overwrite and script.read_text() == mx3_script(
                assembly.grid, spec.material, spec.m0, assembly.movie, thermal_seed=seed, title=title):
            scripts.append(script)  # written by an earlier validate of the same runs (e.g. before --engine-output)
            continue
        scripts.append(write_mx3_run(out / "engine" / name, assembly.grid, spec.material, spec.m0, assembly.movie,
                                     thermal_seed=seed, title=title, overwrite=overwrite))
    shell = "#!/bin/sh\n# Run every exported script with MuMax3 (output in engine/run_j/run.out/)\nset -e\ncd \"$(dirname \"$0\")/engine\"\n"
    shell += "".join(f"(cd {n} && ${{MUMAX3:-mumax3}} run.mx3)\n" for n in names)
    write_text(out / "run_engine.sh", shell)
    os.chmod(out / "run_engine.sh", 0o755)
    say(f"wrote {len(scripts)} MuMax3 scripts under {out / 'engine'}")

    if engine_output is not None:
        folders = [_engine_folder(Path(engine_output), n) for n in names]
    else:
        exe = _resolve_engine(engine)
        if exe is None:
            say(f"no engine given and no 'mumax3' on PATH: run the scripts on a machine with MuMax3 (NVIDIA GPU) with\n"
                f"    sh {out / 'run_engine.sh'}\n"
                f"then compare with\n"
                f"    jaxmag mumax3 validate {shlex.quote(str(config_path))} --runs {runs} --out {shlex.quote(str(out))} --engine-output {shlex.quote(str(out / 'engine'))}")
            return ValidationResult(tuple(scripts), None, None, 0)
        folders = []
        for script in scripts:
            say(f"running {exe} on {script}", )
            folders.append(run_engine(exe, script))
    engine_runs = [load_source(str(f)) for f in folders]
    say(f"simulating the {runs} runs in jaxmag")
    mine = jaxmag_trajectories(config, run_index, seeds, spec=spec)
    thermal = ThermalOptions(alpha=alpha)
    mode = "thermal" if config.material.temperature > 0 else "deterministic"
    notes = []
    if mode == "deterministic" and runs > 1:
        notes.append(f"T = 0: the {runs} seeds give the same trajectory; run 0 of each side is compared")
        result = compare(mine[0], engine_runs[0], mode=mode)
    else:
        result = compare(mine, engine_runs, mode=mode, thermal=thermal)
    maps = out / "maps.png"
    write_maps(maps, mine[0], engine_runs[0])
    report = out / "report.md"
    write_text(report, report_markdown(config_path, runs, seeds, result, folders, maps.name, notes))
    write_text(out / "result.json", json.dumps(as_dict(result), indent=2, allow_nan=False) + "\n")
    say(result.table())
    say(f"report: {report}")
    return ValidationResult(tuple(scripts), result, report, 0 if result.passed else 1)


def report_markdown(config_path: Path, runs: int, seeds: Sequence[int], result, folders: Sequence[Path], maps: str, notes: Sequence[str]) -> str:
    lines = [
        f"# jaxmag against the engine: {config_path.name}",
        "",
        f"{runs} thermal run(s) of the same film (seeds {', '.join(map(str, seeds))}); side A: jaxmag, side B: the engine "
        f"({', '.join(str(f) for f in folders)}).",
        "",
        f"**Verdict: {'consistent' if result.passed else 'INCONSISTENT'}** ({result.mode}).",
        "",
    ]
    if result.mode == "thermal":
        lines += [f"Each statistic: A ± error, B ± error, z = (A − B)/σ; consistent when |z| ≤ k = {result.k:.3g} "
                  f"(overall false-alarm rate {result.alpha:g}).", "",
                  "| statistic | jaxmag | engine | z | result |", "|---|---|---|---|---|"]
        for s in result.statistics:
            lines.append(f"| {s.name}{' (' + s.unit + ')' if s.unit else ''} | {s.a:.6g} ± {s.err_a:.2g} | {s.b:.6g} ± {s.err_b:.2g} | "
                         f"{s.z:+.2f} | {'ok' if s.passed else '**different**'} |")
    else:
        lines += ["| check | value | limit | result | note |", "|---|---|---|---|---|"]
        for c in result.checks:
            lines.append(f"| {c.name} | {c.value:.4g} | ≤ {c.limit:.4g} | {'pass' if c.passed else '**FAIL**'} | {c.note} |")
    lines += [""] + [f"* {n}" for n in (*result.notes, *notes)] + ["", f"![temporal mean and std maps, jaxmag and the engine]({maps})", ""]
    return "\n".join(lines)


def write_maps(path: Path, a: Trajectory, b: Trajectory) -> Path:
    """Temporal mean of m_x and std of m_z (or the first stored components) of two runs, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxmag.io.atomic import atomic_path

    comps = [c for c in "xyz" if c in a.components and c in b.components]
    mean_c = "x" if "x" in comps else comps[0]
    std_c = "z" if "z" in comps else comps[-1]
    rows = [("mean", mean_c), ("std", std_c)]
    fig, axes = plt.subplots(2, 2, figsize=(7, 6.4), constrained_layout=True)
    for r, (stat, c) in enumerate(rows):
        i = "xyz".index(c)
        maps = [getattr(np, stat)(t.m[:, 0, :, :, i], axis=0) for t in (a, b)]
        lo, hi = min(float(m.min()) for m in maps), max(float(m.max()) for m in maps)
        for col, (m, label) in enumerate(zip(maps, ("jaxmag", "engine"))):
            im = axes[r, col].imshow(m, origin="lower", vmin=lo, vmax=hi, cmap="viridis")
            axes[r, col].set_title(f"{label}: temporal {stat} of m_{c}", fontsize=9)
            axes[r, col].set_xticks([])
            axes[r, col].set_yticks([])
        fig.colorbar(im, ax=axes[r, :], shrink=0.8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path
