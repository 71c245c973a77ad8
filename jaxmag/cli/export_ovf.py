"""``jaxmag export-ovf DATA.h5 --run I --out DIR``: one OVF 2.0 file per frame of a dataset run.

Writes ``DIR/m000000.ovf, m000001.ovf, ...`` (MuMax3's names and header, times in the
``Desc`` line) and ``DIR/table.txt`` with ⟨m⟩(t) of the stored components, so ubermag,
ParaView (via ``mumax3-convert``) and ``jaxmag mumax3 compare`` can open the run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from jaxmag.compare import AXES, dataset_frames, read_dataset_run
from jaxmag.io.mumax3 import frame_files, write_table
from jaxmag.cli._options import add_force
from jaxmag.io.outdir import claim, prepare
from jaxmag.io.ovf import write_ovf
from jaxmag.progress import iterate


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-ovf",
        help="write the frames of one dataset run as OVF files (ubermag / ParaView / MuMax3 tools)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", type=Path, help="jaxmag dataset (HDF5)")
    parser.add_argument("--run", type=int, required=True, help="run index I")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--fill-missing", action="store_true",
        help="write components the dataset does not store as 0 (otherwise that is an error)",
    )
    parser.add_argument("--format", choices=("binary4", "binary8", "text"), default="binary4", help="OVF data format (default binary4)")
    add_force(parser, "m*.ovf files already in --out, and a table.txt that jaxmag did not write")
    parser.set_defaults(func=run)


def export_run(dataset: Path, run: int, out: Path, *, fill_missing: bool = False, fmt: str = "binary4", force: bool = False, progress: bool = True) -> list[Path]:
    """Write run ``run`` of ``dataset`` to ``out`` (see the module docstring); returns the files."""
    data = read_dataset_run(dataset, run)
    missing = "".join(c for c in AXES if c not in data.components)
    if missing and not fill_missing:
        raise ValueError(
            f"{dataset} stores only the components {data.components!r} of m (missing {missing!r}); "
            "pass --fill-missing to write the missing ones as 0"
        )
    prepare(out)
    existing = frame_files(out)
    if existing and not force:
        raise FileExistsError(f"{out} already holds {len(existing)} m*.ovf files; pass --force to replace them")
    frames = dataset_frames(data, fill_missing=True)
    # table.txt (or a frame name) that jaxmag did not write is never replaced silently
    claim(out, ["table.txt"] + [f"m{k:06d}.ovf" for k in range(len(frames))], "export-ovf", force=force)
    desc = (f"jaxmag components: {data.components}", f"jaxmag source: {dataset.name} run {run}")
    written = []
    for k in iterate(range(len(frames)), desc=f"export run {run}", unit="frame", enabled=progress):
        path = out / f"m{k:06d}.ovf"
        written.append(write_ovf(path, frames[k].astype("float32" if fmt == "binary4" else "float64"), data.cell_size, fmt=fmt, title="m", time_s=float(data.times[k]), desc=desc))
    # Stale frames of a longer earlier export would otherwise be read as part of this run.
    for stale in existing[len(frames):]:
        stale.unlink()
    columns = {"t": data.times, **{f"m{c}": frames[:, ..., AXES.index(c)].mean(axis=(1, 2, 3)) for c in data.components}}
    write_table(out / "table.txt", columns, {"t": "s", **{f"m{c}": "" for c in data.components}})
    return written


def run(args: argparse.Namespace) -> int:
    files = export_run(args.dataset, args.run, args.out, fill_missing=args.fill_missing, fmt=args.format, force=args.force,
                       progress=not args.no_progress)
    print(f"wrote {len(files)} OVF frames and table.txt to {args.out}")
    return 0
