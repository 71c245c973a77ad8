"""jaxmag detect --classes typed: a typed model of the regime, per-class Dice beside the typed baseline,
types in defects.csv; and the defect table of a film with known blobs."""
from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from jaxmag.learn import detect as dt
from jaxmag.learn import regime as rg

TINY = dt.Budget(films=8, val_films=2, test_films=2, epochs=2, steps_per_epoch=2, batch_size=4, base_features=4,
                 depth=2, eval_draws=2)


@pytest.mark.slow  # ~90 s on 2 cores; typed training and eval records are in tests/test_typed.py
def test_detect_typed_end_to_end(tmp_path):
    from jaxmag.assemble import simulate
    from jaxmag.noise import add_gaussian

    facts = rg.MovieFacts(10, 16, 16, "xz", 4e-9, 5e-12, "periodic", {"grid": "movie"})
    config = rg.regime_config(facts, model=TINY.model(), training=TINY.training(), num_runs=TINY.films, seed=77)
    data = simulate(config, progress=False)
    mz = np.asarray(add_gaussian(np.asarray(data.m[0][:, 1]), 1e-3, jax.random.key(3)))
    np.save(tmp_path / "mz.npy", mz)
    out = tmp_path / "det"
    res = dt.detect(tmp_path / "mz.npy", out, frame_interval=5e-12, boundary="periodic", inputs="std:z",
                    budget=TINY, classes="typed", threshold=0.3, progress=False)
    assert res.config.model.classes == "typed" and res.class_names == ("background", "softer", "harder")
    record = json.loads((out / "detect.json").read_text())
    typed = record["validation"]["typed"]
    assert len(typed["model"]["class_dice"]) == 3 and len(typed["baseline"]["confusion"]) == 3
    assert res.types is not None and res.types.shape == (16, 16)
    assert set(np.unique(res.types[res.mask])) <= {1, 2} and not res.types[~res.mask].any()
    rows = (out / "defects.csv").read_text().splitlines()
    assert all(line.split(",")[5] in ("softer", "harder") for line in rows[1:])
    assert "Per class on the test films" in (out / "report.md").read_text()
    assert "classes = \"typed\"" in (out / "regime.toml").read_text()
