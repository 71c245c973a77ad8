"""Figures a researcher reads (issue 28): the non-learned baseline on every Dice figure with every
line in the legend, colour bars that name a quantity and a unit, a nanometre scale bar on every
map, and sizes and fonts read without zooming. Drawn from small fake records and maps."""
from __future__ import annotations

import types

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # noqa: E402

import jaxmag.figures as figures  # noqa: E402
from jaxmag.config import Config, GridConfig  # noqa: E402


@pytest.fixture
def drawn(monkeypatch) -> list[Figure]:
    """Every figure saved while the test runs (kept open for inspection)."""
    saved: list[Figure] = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def _check_readable(fig: Figure, columns: int) -> None:
    width, _ = fig.get_size_inches()
    assert width >= figures.MAP_INCHES * columns - 1e-9
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()]
    assert sizes and min(sizes) >= 9


def _scale_bars(fig: Figure) -> list[str]:
    return [a.txt_label.get_text() for ax in fig.axes for a in ax.artists if isinstance(a, AnchoredSizeBar)]


def _colour_bar_labels(fig: Figure) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def test_scale_bar_lengths_and_channel_labels():
    assert figures.nice_length(25.6e-9) == pytest.approx(20e-9)
    assert figures.nice_length(5e-8) == pytest.approx(5e-8) and figures.nice_length(1.9e-6) == pytest.approx(1e-6)
    assert (figures.format_length(5e-8), figures.format_length(2e-6)) == ("50 nm", "2 µm")
    assert figures.channel_label("mean:x") == "temporal mean of $m_{x}$ ($M_{x}/M_s$)"
    assert figures.channel_label("latent_entropy:z,std:z").endswith("(nats)")
    assert "rescaled" in figures.channel_label("std:z", rescaled=True)


def _records():
    rows, base = [], []
    for i, level in enumerate((1e-4, 1e-2)):
        for train in ("clean", f"gaussian_{level:.0e}".replace("e-0", "e-")):
            rows.append(dict(measure="mean", component="x", inputs="mean:x", train_condition=train,
                             eval_condition=f"gaussian_{level:.0e}".replace("e-0", "e-"), noise_type="gaussian",
                             noise_variance=level, dice=0.7 - 0.3 * i, unit="mean-x__clean"))
        base.append(dict(inputs="mean:x", eval_condition=rows[-1]["eval_condition"], noise_type="gaussian",
                         noise_variance=level, dice=0.6 - 0.2 * i))
    rows.append(dict(measure="mean", component="x", inputs="mean:x", train_condition="clean", eval_condition="clean",
                     noise_type="clean", noise_variance=0.0, dice=0.72, unit="mean-x__clean"))
    return rows, base


def test_dice_figure_draws_the_baseline_and_names_every_line(tmp_path, drawn):
    from jaxmag.learn.report import plot_dice_vs_noise
    from jaxmag.noise import NoiseSweep

    config = Config().replace(noise=NoiseSweep((("gaussian", (1e-4, 1e-2)),)))
    records, base = _records()
    assert plot_dice_vs_noise(tmp_path, config, records, base).is_file()
    fig = drawn[-1]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("baseline" in t for t in legend) and any("on clean data" in t for t in legend)
    assert any("trained on clean" in t for t in legend) and any("evaluated noise" in t for t in legend)
    baseline = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "-."]
    assert len(baseline) == 1 and list(baseline[0].get_ydata()) == [0.6, pytest.approx(0.4)]
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()]
    assert min(sizes) >= 9


def test_examples_figure_has_units_scale_bars_and_size(tmp_path, drawn, monkeypatch):
    import jaxmag.learn.report as report
    from jaxmag.noise import NoiseSweep

    config = Config().replace(grid=GridConfig(nx=32, ny=32), noise=NoiseSweep((("gaussian", (1e-4, 1e-2)),)))
    truth = np.zeros((32, 32), bool)
    truth[10:16, 8:14] = True

    def fake_unit(unit_dir, measures_path, condition, k):
        raw = 0.9 - 0.2 * truth + np.random.default_rng(0).normal(0, 0.01, truth.shape)
        return raw[None, ..., None], truth[None].astype(int), truth[None] * 0.9

    monkeypatch.setattr(report, "_load_unit", fake_unit)
    records, _ = _records()
    assert report.plot_examples(tmp_path, config, records, tmp_path / "m.h5").is_file()
    fig = drawn[-1]
    _check_readable(fig, columns=4)
    assert _scale_bars(fig) == ["20 nm"] * 4  # 32 cells of 4 nm: a fifth is 25.6 nm
    labels = _colour_bar_labels(fig)
    assert len(labels) == 2 and all("$M_{x}/M_s$" in label for label in labels)


def test_detect_and_predict_overlays_have_units_and_scale_bars(tmp_path, drawn):
    from jaxmag.learn.detect_report import plot_overlay as detect_overlay
    from jaxmag.learn.predict import Prediction, plot_overlay as predict_overlay

    rng = np.random.default_rng(1)
    img = rng.normal(0.1, 0.01, (24, 40))
    mask = np.zeros(img.shape, bool)
    mask[5:10, 5:12] = True
    result = types.SimpleNamespace(inputs=img[..., None], input_names=("std:z",), mask=mask, baseline_mask=mask,
                                   probability=mask * 0.9, config=Config(),
                                   facts=types.SimpleNamespace(cell_size_m=2e-9), pixel_size_m=None, types=None,
                                   uncertainty=None, class_names=("background", "defect"), confidence={})
    with open(tmp_path / "detect.png", "wb") as f:
        detect_overlay(f, result)
    fig = drawn[-1]
    _check_readable(fig, columns=3)
    assert _scale_bars(fig) == ["10 nm"] * 3  # 40 cells of 2 nm
    assert _colour_bar_labels(fig) == [figures.channel_label("std:z"), figures.PROBABILITY_LABEL,
                                       figures.channel_label("std:z")]

    pred = Prediction(mask * 0.9, mask, img[..., None].astype(np.float32), ("mean:x",), 0.5, 1, img.shape, None,
                      {"pixel_size_m": 4e-9, "pixel_size_from": "the movie"}, figures.channel_label("mean:x"))
    with open(tmp_path / "predict.png", "wb") as f:
        predict_overlay(f, pred)
    fig = drawn[-1]
    _check_readable(fig, columns=2)
    assert _scale_bars(fig) == ["20 nm"] * 2
    assert _colour_bar_labels(fig) == [figures.channel_label("mean:x"), figures.PROBABILITY_LABEL]


def test_eval_figure_of_a_run_folder_has_units_scale_bars_and_size(tmp_path, drawn):
    """``eval_<name>.png`` (train/evaluate, ``jaxmag.learn.run_folder``): the input in its units (the
    run's normalisation undone), the probability, prediction vs truth; the cell size from ``config.toml``."""
    import json

    from matplotlib.image import imread

    from jaxmag.learn.run_folder import save_eval_report

    config = Config().replace(grid=GridConfig(nx=32, ny=32))
    (tmp_path / "config.toml").write_text(config.to_toml())
    stats = {"channels": ["std:z"], "mean": [0.2], "std": [0.05]}
    (tmp_path / "run.json").write_text(json.dumps({"inputs": ["std:z"], "train_condition": "clean",
                                                   "config_hash": "0", "norm_stats": stats}))
    truth = np.zeros((2, 32, 32), np.uint8)
    truth[:, 10:16, 8:14] = 1
    x = np.random.default_rng(2).normal(0, 1, (2, 32, 32, 1)).astype(np.float32)
    eval_set = types.SimpleNamespace(condition="gaussian_1e-2", indices=None, examples=lambda k: (x[:k], truth[:k]))

    def model(inputs, train):  # logits (N, ny, nx, 2): "defect" where the truth is
        return np.stack([np.zeros(truth.shape), 4.0 * truth - 2.0], axis=-1)

    record = save_eval_report(tmp_path, eval_set, {"dice": 0.5}, model, num_examples=2)
    assert record["condition"] == "gaussian_1e-2" and (tmp_path / "eval_gaussian_1e-2.json").is_file()
    fig = drawn[-1]
    _check_readable(fig, columns=3)
    assert _scale_bars(fig) == ["20 nm"] * 6  # 32 cells of 4 nm on every map
    assert _colour_bar_labels(fig) == [figures.channel_label("std:z"), figures.PROBABILITY_LABEL] * 2
    shown = fig.axes[0].images[0].get_array()
    assert np.allclose(shown, x[0, ..., 0] * 0.05 + 0.2, atol=1e-6)  # the measure's units, not normalised
    assert "gaussian:1e-2" in fig._suptitle.get_text()
    height, width = imread(tmp_path / "eval_gaussian_1e-2.png").shape[:2]
    assert width >= figures.MAP_INCHES * 3 * figures.DPI * 0.95 and 700 <= height <= 1500
