"""``jaxmag mumax3 export|sp4|run|compare``: MuMax3 scripts, runs and cross-validation.

* ``export CONFIG --run I --out DIR``: MuMax3 script reproducing run I of a config
  (``DIR/run.mx3`` + ``regions.ovf``/``m0.ovf`` when needed; see ``jaxmag.io.mx3``).
* ``sp4 --out DIR``: the muMAG standard problem 4 script.
* ``run DIR``: runs ``mumax3`` on the scripts in DIR when the binary is on PATH.
* ``compare A B``: compares two runs (dataset run ``data.h5#run=3``, a folder of OVF frames,
  or a MuMax3 output folder); prints a table and exits 1 when outside tolerances.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from jaxmag.compare import Tolerances, as_dict, compare, load_source

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
    p.add_argument("--overwrite", action="store_true", help="replace an existing script")
    p.set_defaults(func=_export)

    p = sub.add_parser("sp4", help="write the standard problem 4 script")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--frames", action="store_true", help="also autosave m every table interval")
    p.add_argument("--overwrite", action="store_true", help="replace an existing script")
    p.set_defaults(func=_sp4)

    p = sub.add_parser("run", help="run mumax3 on the .mx3 scripts of a folder")
    p.add_argument("folder", type=Path)
    p.add_argument("--mumax3", default="mumax3", help="the mumax3 executable (default: 'mumax3' on PATH)")
    p.set_defaults(func=_run)

    p = sub.add_parser("compare", help="compare two runs (T = 0: trajectories; T > 0: statistics)")
    p.add_argument("a", help="data.h5#run=I, a folder of jaxmag OVF frames or a MuMax3 output folder")
    p.add_argument("b", help="same choices as A")
    p.add_argument("--run-a", type=int, default=None, help="run index when A is a dataset")
    p.add_argument("--run-b", type=int, default=None, help="run index when B is a dataset")
    p.add_argument("--mode", choices=("auto", "deterministic", "thermal"), default="auto", help="auto: thermal if a source reports T > 0")
    defaults = Tolerances()
    for field, help_text in (
        ("tol_rms", "max per-frame RMS |Δm| (T = 0)"),
        ("tol_mean", "max |Δ<m>(t)| (T = 0)"),
        ("ks_alpha", "min KS p-value of per-cell mean/std maps (T > 0)"),
        ("tol_rel", "max relative difference of map averages (T > 0)"),
        ("rel_floor", "denominator floor of that relative difference"),
        ("tol_tau", "max relative difference of <m> autocorrelation times (T > 0)"),
    ):
        p.add_argument("--" + field.replace("_", "-"), type=float, default=getattr(defaults, field), help=f"{help_text} (default {getattr(defaults, field)})")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.set_defaults(func=_compare)


def _export(args: argparse.Namespace) -> int:
    from jaxmag.config import load_config
    from jaxmag.io.mx3 import quantize_easy_axis, write_mx3_run
    from jaxmag.simulate import build_run

    config = load_config(args.config)
    if not 0 <= args.run < config.dataset.num_runs:
        raise ValueError(f"--run {args.run} out of range: {args.config} has dataset.num_runs = {config.dataset.num_runs}")
    spec = build_run(config, args.run, seed=args.seed)
    material = spec.material
    if args.quantize_angle_deg is not None:
        material = quantize_easy_axis(material, args.quantize_angle_deg)
    path = write_mx3_run(
        args.out, config.grid.to_grid(), material, spec.m0, config.simulation,
        thermal_seed=spec.thermal_seed, title=f"jaxmag {config.name}: run {args.run} of {args.config.name}", overwrite=args.overwrite,
    )
    print(f"wrote {path}; run it with: jaxmag mumax3 run {args.out}")
    return 0


def _sp4(args: argparse.Namespace) -> int:
    from jaxmag.io.mx3 import sp4_script
    from jaxmag.io.ovf import _atomic_write

    path = args.out / "sp4.mx3"
    if path.exists() and not args.overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    args.out.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, sp4_script(save_frames=args.frames).encode())
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
    tol = Tolerances(args.tol_rms, args.tol_mean, args.ks_alpha, args.tol_rel, args.rel_floor, args.tol_tau)
    a = load_source(args.a, args.run_a)
    b = load_source(args.b, args.run_b)
    result = compare(a, b, tol, args.mode)
    if args.json:
        print(json.dumps(as_dict(result), indent=2))
    else:
        print(f"A: {a.name}\nB: {b.name}")
        print(result.table())
    return 0 if result.passed else 1
