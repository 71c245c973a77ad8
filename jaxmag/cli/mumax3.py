"""``jaxmag mumax3 export|sp4|run|compare|validate``: MuMax3 scripts, runs and cross-validation.

* ``export CONFIG --run I --out DIR``: MuMax3 script reproducing run I of a config
  (``DIR/run.mx3`` + ``regions.ovf``/``m0.ovf`` when needed; see ``jaxmag.io.mx3``).
* ``sp4 --out DIR``: the muMAG standard problem 4 script.
* ``run DIR``: runs ``mumax3`` on the scripts in DIR when the binary is on PATH.
* ``compare A B`` or ``compare A1 A2 ... --vs B1 B2 ...``: compares runs (dataset run
  ``data.h5#run=3``, a folder of OVF frames, or a MuMax3 output folder). T = 0: per-frame
  checks; T > 0: statistics with block-bootstrap errors and a verdict with a known
  false-alarm rate (``jaxmag.compare_thermal``). Exits 1 when they differ.
* ``validate CONFIG --runs N --out DIR [--engine PATH | --engine-output DIR]``: exports N
  thermal runs of one film, runs the engine on them (when there is one), simulates the same
  runs in jaxmag, compares, writes ``DIR/report.md`` (``jaxmag.validate``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from jaxmag.cli._options import add_force
from jaxmag.compare import Tolerances, as_dict, compare, load_source
from jaxmag.compare_thermal import ThermalOptions

_GET_MUMAX3 = (
    "MuMax3 needs an NVIDIA GPU with a CUDA driver; download a release for your CUDA version from "
    "https://mumax.github.io/download.html, unpack it and put the 'mumax3' binary on PATH "
    "(or pass --mumax3 /path/to/mumax3)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("mumax3", help="MuMax3 interoperability: export scripts, run them, compare results", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mumax3_command", metavar="ACTION", required=True)

    p = sub.add_parser("export", help="write the MuMax3 script of one run of a config")
    p.add_argument("config", type=Path, help="jaxmag TOML config")
    p.add_argument("--run", type=int, required=True, help="run index I")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=None, help="dataset seed (default: the config's dataset.seed)")
    p.add_argument("--quantize-angle-deg", type=float, default=None, help="round easy axes to this angular step, to fit MuMax3's 256 regions")
    add_force(p, "an existing script")
    p.set_defaults(func=_export)

    p = sub.add_parser("sp4", help="write the standard problem 4 script")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--frames", action="store_true", help="also autosave m every table interval")
    add_force(p, "an existing script")
    p.set_defaults(func=_sp4)

    p = sub.add_parser("run", help="run mumax3 on the .mx3 scripts of a folder")
    p.add_argument("folder", type=Path)
    p.add_argument("--mumax3", default="mumax3", help="the mumax3 executable (default: 'mumax3' on PATH)")
    p.set_defaults(func=_run)

    p = sub.add_parser("compare", help="compare runs (T = 0: trajectories; T > 0: statistics with error bars)",
                       description="Compare A with B, or the runs A1 A2 ... with B1 B2 ... (--vs): T = 0 per frame; "
                                   "T > 0 by statistics with block-bootstrap errors (docs/mumax3.md).")
    p.add_argument("a", nargs="+", help="data.h5#run=I, a folder of jaxmag OVF frames or a MuMax3 output folder; "
                                        "without --vs exactly two: A B")
    p.add_argument("--vs", nargs="+", default=None, metavar="B", help="the other side's runs (then all positionals are side A)")
    p.add_argument("--run-a", type=int, default=None, help="run index when A is a dataset")
    p.add_argument("--run-b", type=int, default=None, help="run index when B is a dataset")
    p.add_argument("--mode", choices=("auto", "deterministic", "thermal"), default="auto", help="auto: thermal if a source reports T > 0")
    tol, thermal = Tolerances(), ThermalOptions()
    p.add_argument("--tol-rms", type=float, default=tol.tol_rms, help=f"T = 0: max per-frame RMS |Δm| (default {tol.tol_rms})")
    p.add_argument("--tol-mean", type=float, default=tol.tol_mean, help=f"T = 0: max |Δ<m>(t)| (default {tol.tol_mean})")
    p.add_argument("--alpha", type=float, default=thermal.alpha, help=f"T > 0: overall false-alarm rate of the verdict (default {thermal.alpha})")
    p.add_argument("--block", type=int, default=None, help="T > 0: bootstrap block length in frames (default ceil(sqrt(frames)))")
    p.add_argument("--replicates", type=int, default=thermal.replicates, help=f"T > 0: bootstrap replicates (default {thermal.replicates})")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.set_defaults(func=_compare)

    p = sub.add_parser("validate", help="export N runs of a config, run MuMax3 (or compatible) on them, simulate them in jaxmag, compare, report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help="jaxmag TOML config")
    p.add_argument("--runs", type=int, required=True, help="N: thermal runs of one film (that of --run), each with its own thermal seed")
    p.add_argument("--out", type=Path, required=True, help="output folder (scripts, engine output, report.md)")
    p.add_argument("--engine", default=None, help="MuMax3 binary or a compatible one (default: 'mumax3' on PATH, if there)")
    p.add_argument("--engine-output", type=Path, default=None, help="compare engine output brought back from another machine: DIR/engine holding run_j/run.out")
    p.add_argument("--run", type=int, default=0, help="which run of the config gives the film (default 0)")
    p.add_argument("--quantize-angle-deg", type=float, default=None, help="round easy axes to this angular step, to fit MuMax3's 256 regions")
    p.add_argument("--alpha", type=float, default=thermal.alpha, help=f"overall false-alarm rate of the verdict (default {thermal.alpha})")
    add_force(p, "scripts written earlier in --out")
    p.set_defaults(func=_validate)


def _export(args: argparse.Namespace) -> int:
    from jaxmag.config import load_config
    from jaxmag.io.mx3 import quantize_easy_axis, write_mx3_run
    from jaxmag.assemble import assemble, build_run

    config = load_config(args.config)
    if not 0 <= args.run < config.dataset.num_runs:
        raise ValueError(f"--run {args.run} out of range: {args.config} has dataset.num_runs = {config.dataset.num_runs}")
    spec = build_run(config, args.run, seed=args.seed)
    material = spec.material
    if args.quantize_angle_deg is not None:
        material = quantize_easy_axis(material, args.quantize_angle_deg)
    assembly = assemble(config)
    path = write_mx3_run(
        args.out, assembly.grid, material, spec.m0, assembly.movie,
        thermal_seed=spec.thermal_seed, title=f"jaxmag {config.name}: run {args.run} of {args.config.name}", overwrite=args.force,
    )
    print(f"wrote {path}; run it with: jaxmag mumax3 run {args.out}")
    return 0


def _sp4(args: argparse.Namespace) -> int:
    from jaxmag.io.mx3 import sp4_script
    from jaxmag.io.atomic import write_text

    path = args.out / "sp4.mx3"
    if path.exists() and not args.force:
        raise FileExistsError(f"{path} already exists; pass --force to replace it")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(path, sp4_script(save_frames=args.frames))
    print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    folder: Path = args.folder
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    scripts = sorted(folder.glob("*.mx3"))
    if not scripts:
        raise FileNotFoundError(f"no .mx3 script in {folder}; write one with 'jaxmag mumax3 export' or 'jaxmag mumax3 sp4'")
    exe = shutil.which(args.mumax3)
    if exe is None:
        raise FileNotFoundError(f"'{args.mumax3}' not found. {_GET_MUMAX3}")
    # Run from the script's folder: relative LoadFile paths resolve there and the output
    # goes to <script>.out/ beside it. Output streams straight through (not captured).
    for script in scripts:
        print(f"jaxmag: running {exe} {script.name} in {folder}", flush=True)
        code = subprocess.call([exe, script.name], cwd=folder)
        if code != 0:
            print(f"jaxmag: mumax3 exited with status {code} on {script.name}", file=sys.stderr)
            return code
    print(f"jaxmag: output in {', '.join(str(s.with_suffix('.out')) for s in scripts)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    if args.vs is None:
        if len(args.a) != 2:
            raise ValueError(f"compare takes two runs A B, or A1 A2 ... --vs B1 B2 ...; got {len(args.a)} without --vs")
        a_specs, b_specs = args.a[:1], args.a[1:]
    else:
        a_specs, b_specs = args.a, args.vs
    tol = Tolerances(args.tol_rms, args.tol_mean)
    thermal = ThermalOptions(alpha=args.alpha, block=args.block, replicates=args.replicates)
    a = [load_source(spec, args.run_a) for spec in a_specs]
    b = [load_source(spec, args.run_b) for spec in b_specs]
    result = compare(a, b, tol, args.mode, thermal)
    if args.json:
        print(json.dumps(as_dict(result), indent=2, allow_nan=False))
    else:
        print("\n".join([f"A: {t.name}" for t in a] + [f"B: {t.name}" for t in b]))
        print(result.table())
    return 0 if result.passed else 1


def _validate(args: argparse.Namespace) -> int:
    from jaxmag.cli import UserError
    from jaxmag.validate import EngineError, validate

    try:
        report = validate(
            args.config, runs=args.runs, out=args.out, engine=args.engine, engine_output=args.engine_output, run_index=args.run,
            quantize_angle_deg=args.quantize_angle_deg, alpha=args.alpha, overwrite=args.force,
        )
    except EngineError as exc:
        tail = getattr(exc, "tail", [])
        if tail:
            print(f"jaxmag: last {len(tail)} lines of the engine's output on {getattr(exc, 'script', '?')}:", file=sys.stderr)
            print("\n".join("    " + line for line in tail), file=sys.stderr)
        raise UserError(str(exc)) from None
    return report.exit_code
