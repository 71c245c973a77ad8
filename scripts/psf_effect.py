"""How the point-spread function changes which measure finds the defects (docs/instrument.md).

    python scripts/psf_effect.py --out psf_effect                      # the docs' table and figure
    python scripts/psf_effect.py --out /tmp/p --films 24 --fwhm 0,8e-9 --models none   # a quick look

Simulates one set of permalloy films (``configs/paper.toml``'s film and defects on ``--nx`` cells of
4 nm, ``--frames`` frames of 10 ps, ``--boundary``), then for every PSF FWHM records them through
the optics alone (no detector noise: the PSF's own effect) with the probe each measure needs
(x for ``mean:x``, z for ``std:z`` and ``latent_entropy:z``) and scores, on held-out films:

* the non-learned baseline (smoothed robust z-score, fitted on the validation films), at every FWHM;
* a U-Net trained on the recorded films (``RecordedSource``; ``jaxmag detect``'s quick budget), at the FWHMs of ``--models``.

Prints one JSON line per (measure, FWHM, method) and writes ``OUT/psf_effect.json`` and
``OUT/psf_effect.png`` (Dice against FWHM).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

MEASURES = {"mean:x": "x", "std:z": "z", "latent_entropy:z": "z"}


def _quick():
    from jaxmag.learn.budgets import budget_by_name

    return budget_by_name("quick")[1]


QUICK = _quick()  # detect's quick budget: its model, its training and its steps per epoch


def film_config(nx: int, frames: int, films: int, boundary: str, seed: int):
    from jaxmag.config import load_config

    base = load_config(Path(__file__).resolve().parents[1] / "configs" / "paper.toml")
    area = 16.0 / 1024 * nx * nx
    return base.replace(
        name="psf-effect",
        grid=dataclasses.replace(base.grid, nx=nx, ny=nx, boundary=boundary, pbc_images=2),
        defects=dataclasses.replace(base.defects, size_min=max(4, int(area)), size_max=max(6, int(2 * area))),
        simulation=dataclasses.replace(base.simulation, burn_in_s=1e-10, num_frames=frames, components="xz"),
        dataset=dataclasses.replace(base.dataset, num_runs=films, batch_size=8, seed=seed),
        model=dataclasses.replace(base.model, **QUICK.model()),
        training=dataclasses.replace(base.training, **QUICK.training()),
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--nx", type=int, default=32)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--films", type=int, default=48)
    p.add_argument("--boundary", choices=("open", "periodic"), default="periodic")
    p.add_argument("--seed", type=int, default=31)
    p.add_argument("--fwhm", default="0,4e-9,8e-9,12e-9,16e-9,24e-9", help="PSF FWHMs in m, comma-separated")
    p.add_argument("--models", default="0,8e-9,16e-9", help="FWHMs at which a U-Net is trained too ('none': baseline only)")
    args = p.parse_args(argv)

    import jax

    from jaxmag.assemble import simulate
    from jaxmag.channels import PROBE_COMPONENT
    from jaxmag.config import parse_input_spec
    from jaxmag.instrument import Instrument
    from jaxmag.learn import baseline as robust_z
    from jaxmag.learn.loop import train_and_evaluate
    from jaxmag.learn.metrics import dice
    from jaxmag.learn.sources.recorded import RecordedSource
    from jaxmag.recording import record_signal, recording_plan

    args.out.mkdir(parents=True, exist_ok=True)
    config = film_config(args.nx, args.frames, args.films, args.boundary, args.seed)
    t0 = time.perf_counter()
    data = simulate(config, progress=False)
    m, labels = np.asarray(data.m, np.float32), (np.asarray(data.labels) > 0).astype(np.uint8)
    sim_s = time.perf_counter() - t0
    n = m.shape[0]
    n_val = n_test = max(4, n // 6)
    indices = {"train": np.arange(n - n_val - n_test), "val": np.arange(n - n_val - n_test, n - n_test),
               "test": np.arange(n - n_test, n)}
    periodic = args.boundary == "periodic"
    fwhms = [float(v) for v in args.fwhm.split(",")]
    model_fwhms = [] if args.models == "none" else [float(v) for v in args.models.split(",")]
    rows = []
    for name, axis in MEASURES.items():
        measure = name.split(":")[0]
        for fwhm in fwhms:
            inst = Instrument(probe=axis, psf_fwhm_m=fwhm)
            plan = recording_plan(inst, (args.nx, args.nx), (4e-9, 4e-9), "xz", periodic)
            clean = np.asarray(record_signal(jax.random.key(0), m[indices["train"][:8]], plan))
            lo, hi = (float(v) for v in np.percentile(clean, [0.1, 99.9]))
            cfg = config.replace(measures=dataclasses.replace(config.measures, fixed_range_p=(lo, hi)),
                                 instrument=inst)
            channels = parse_input_spec(f"{measure}:{PROBE_COMPONENT}")
            source = RecordedSource(m, labels, plan, tuple(tuple(c) for c in channels),
                                    {PROBE_COMPONENT: cfg.measures.options(PROBE_COMPONENT)},
                                    batch_size=cfg.training.batch_size, indices=indices, augment=True,
                                    steps_per_epoch=QUICK.steps_per_epoch,
                                    easy_axis=cfg.material.easy_axis)
            xv, yv = source.raw_maps("val")
            xt, yt = source.raw_maps("test")
            fit = robust_z.fit(xv[..., 0], yv, periodic=periodic)
            row = {"measure": name, "psf_fwhm_m": fwhm, "method": "baseline", "dice": dice(fit.predict(xt[..., 0]), yt),
                   "val_dice": fit.val_dice, "test_films": int(yt.shape[0])}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if any(abs(fwhm - f) < 1e-12 for f in model_fwhms):
                t1 = time.perf_counter()
                run = args.out / f"run-{name.replace(':', '_')}-{fwhm * 1e9:g}nm"
                if run.exists():
                    import shutil

                    shutil.rmtree(run)
                result = train_and_evaluate(cfg, source, run, progress=False)
                row = {"measure": name, "psf_fwhm_m": fwhm, "method": "model", "dice": float(result["test"]["dice"]),
                       "val_dice": float(result["best_val_dice"]), "test_films": int(yt.shape[0]),
                       "train_s": time.perf_counter() - t1}
                rows.append(row)
                print(json.dumps(row), flush=True)
    record = {"films": n, "nx": args.nx, "frames": args.frames, "boundary": args.boundary, "seed": args.seed,
              "simulate_s": sim_s, "rows": rows}
    (args.out / "psf_effect.json").write_text(json.dumps(record, indent=1) + "\n")
    plot(rows, args.out / "psf_effect.png")
    return 0


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import jaxmag.figures as figures

    with matplotlib.rc_context(figures.style()):
        fig, ax = plt.subplots(figsize=(5.0, 3.4))
        for i, name in enumerate(MEASURES):
            colour = f"C{i}"
            for method, style in (("baseline", "--"), ("model", "-")):
                pts = sorted((r["psf_fwhm_m"] * 1e9, r["dice"]) for r in rows if r["measure"] == name and r["method"] == method)
                if pts:
                    x, y = zip(*pts)
                    ax.plot(x, y, style, marker="o", color=colour, label=f"{name} {method}")
        ax.set_xlabel("PSF FWHM (nm)")
        ax.set_ylabel("test Dice")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
