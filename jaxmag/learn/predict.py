"""Predict defect masks on a user's movie with a trained run.

Pipeline (``predict_movie``): movie(s) ``(T, ny, nx)`` -> the run's measure maps, computed with
the measure options stored in the run's ``config.toml`` -> normalised with the run's clean
training statistics (``run.json``) -> U-Net probability of "defect" -> mask ``p >= threshold``.

Any image size is accepted:

* **padding**: the U-Net halves the image ``depth`` times, so each side must be a multiple of
  ``2**depth``. A side that is not is reflect-padded (``numpy.pad(mode="reflect")``, split
  between both ends) and the prediction cropped back to the original pixels.
* **tiling**: an image larger than the training images (``run.json`` ``source.image_shape``)
  is cut into tiles of the training size overlapping by ``overlap`` pixels (default a quarter
  of the tile); each pixel's probability is the weighted mean over the tiles covering it, with
  a separable ``sin^2`` window (plus 1e-3, so pixels at the image border keep weight) that
  trusts tile centres over tile edges, where the network sees less context. An axis covered by
  one tile uses weight 1, so an image that needs no tiling gives exactly the untiled result.

``noise_check`` compares the movie's noise level (``jaxmag.noise.estimate_noise_variances``,
every registered kind's hypothesis, over the predicted background) with the run's training noise
and says which ``jaxmag finetune`` command to run when they differ by more than a factor,
as the paper advises (Knapman et al. 2026: estimate the noise on defect-free regions, train
with matching noise).

A typed run (``[model] classes = "typed"``, ``jaxmag.learn.classes``) predicts the same
probability of any defect (``1 - p(background)``); ``predict_class_probability`` gives its
per-class probabilities ``(ny, nx, K)``, tiled the same way, for maps of the defect types.

``write_prediction`` writes ``probability.{tif,npy,png}``, ``mask.{tif,npy,png}``,
``overlay.png`` and ``prediction.json`` into a folder.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import jaxmag.figures as figures
from jaxmag.channels import Channel, movie_maps, needed, parse_channels, stack_channels
from jaxmag.io import outdir
from jaxmag.io.atomic import atomic_write, write_text
from jaxmag.io.movie import Movie, movie_from_array
from jaxmag.learn.evaluation import load_trained, normalise_inputs, predict_class_proba, predict_proba
from jaxmag.measures import check_movie, working_float
from jaxmag.learn.noise_match import reference_kind
from jaxmag.noise import NOISE_MODELS, condition_label, estimate_noise_variances, noise_model, parse_noise_spec

NOISE_FLOOR = 1e-4  # variance a clean-trained model is compared with (the weakest condition of the paper's sweep)
_WINDOW_FLOOR = 1e-3


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Result of ``predict_movie``.

    probability: (ny, nx) float32 in [0, 1]; mask: (ny, nx) bool (``probability >= threshold``);
    inputs: (ny, nx, C) float32 raw measure maps (before normalisation); input_names: the run's
    channels; tiles: number of U-Net tiles evaluated; padded_shape: the size after padding;
    noise: the ``noise_check`` record or None; info: JSON-able description (with ``pixel_size_m``,
    the scale bar's pixel, and where it came from); input_label: the first input's quantity and
    unit, for the overlay's colour bar.
    """

    probability: np.ndarray
    mask: np.ndarray
    inputs: np.ndarray
    input_names: tuple[str, ...]
    threshold: float
    tiles: int
    padded_shape: tuple[int, int]
    noise: dict | None
    info: dict
    input_label: str = ""


def load_run(run_dir: str | Path):
    """``(model, run_info)`` of a trained run's best checkpoint (``jaxmag.learn.evaluation.load_trained``)."""
    return load_trained(run_dir)


def run_inputs(info: Mapping) -> tuple[Channel, ...]:
    """The run's channels, ``(Channel(measure, component), ...)``."""
    return parse_channels(info["inputs"])


def run_components(info: Mapping) -> str:
    """The magnetisation components the run's inputs need, in input order (e.g. ``"xz"``)."""
    return "".join(dict.fromkeys(c for _, c in run_inputs(info)))


def training_shape(info: Mapping) -> tuple[int, int] | None:
    shape = info.get("source", {}).get("image_shape")
    return None if shape is None else (int(shape[0]), int(shape[1]))


# --------------------------------------------------------------------------------------------
# measures
# --------------------------------------------------------------------------------------------
def _as_movies(movies: Any, components: str) -> dict[str, np.ndarray]:
    """``{component: (T, ny, nx)}`` for the needed components from a Movie, array or mapping."""
    if isinstance(movies, Mapping):
        out = {}
        for c in components:
            if c not in movies:
                raise ValueError(f"the run needs component {c!r}; movies were given for {', '.join(movies)}")
            m = movies[c]
            out[c] = m.data if isinstance(m, Movie) else movie_from_array(m, component=c, source=f"movie {c}").data
    elif isinstance(movies, Movie):
        if components != movies.component:
            raise ValueError(
                f"the run's inputs need component(s) {', '.join(components)}, the movie holds {movies.component!r}; "
                "pass --component to say which component the movie is, or a movie per component"
            )
        out = {movies.component: movies.data}
    else:
        if len(components) != 1:
            raise ValueError(f"the run needs components {', '.join(components)}: pass a dict {{component: movie}}")
        out = {components: movie_from_array(movies, component=components, source="movie").data}
    shapes = {v.shape[1:] for v in out.values()}
    if len(shapes) != 1:
        raise ValueError(f"the component movies differ in frame size: {sorted(shapes)}")
    return out


def measure_maps(movies: Any, info: Mapping) -> np.ndarray:
    """Raw input channels ``(ny, nx, C)`` of the run from the movie(s), with the run's measure options."""
    channels = run_inputs(info)
    measures, components = needed(channels)
    by_comp = _as_movies(movies, components)
    x = check_movie(np.stack([by_comp[c] for c in components])[None])  # (1, C, T, ny, nx)
    x = working_float(x)
    options = tuple(info["config"].measures.options(c) for c in components)
    for opts in options:
        opts.check(x.shape[-3], measures)
    return np.asarray(stack_channels(movie_maps(x, measures, options), channels, components))[0]


# --------------------------------------------------------------------------------------------
# padding and tiling
# --------------------------------------------------------------------------------------------
def _pad_amounts(n: int, multiple: int) -> tuple[int, int]:
    pad = -n % multiple
    return pad // 2, pad - pad // 2


def reflect_pad(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Reflect-pad ``x (ny, nx, ...)`` so both sides are multiples of ``multiple``; returns the crop back."""
    (t, b), (l, r) = _pad_amounts(x.shape[0], multiple), _pad_amounts(x.shape[1], multiple)
    widths = [(t, b), (l, r)] + [(0, 0)] * (x.ndim - 2)
    padded = np.pad(x, widths, mode="reflect") if (t or b or l or r) else x
    return padded, (slice(t, t + x.shape[0]), slice(l, l + x.shape[1]))


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length`` with at least ``overlap`` overlap."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _window(n: int, single: bool) -> np.ndarray:
    if single:
        return np.ones(n, np.float64)
    return np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2 + _WINDOW_FLOOR


def _round_tile(size: int, multiple: int) -> int:
    return max(multiple, size - size % multiple)


def predict_probability(
    model,
    info: Mapping,
    raw: np.ndarray,
    *,
    tile: int | tuple[int, int] | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Probability of any defect ``(ny, nx)`` for raw input maps ``(ny, nx, C)`` of any size
    (``jaxmag.learn.evaluation.predict_proba``: ``1 - p(background)`` of a typed run).

    ``tile``: tile size (default: the training image size; ``0`` predicts the padded image in one
    piece). Returns ``(probability, number of tiles, padded shape)``.
    """
    return _tiled(predict_proba, model, info, raw, tile, overlap, batch_size)


def predict_class_probability(
    model,
    info: Mapping,
    raw: np.ndarray,
    *,
    tile: int | tuple[int, int] | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Per-class probabilities ``(ny, nx, K)`` (class 0 background, then the run's classes in the
    order of ``jaxmag.learn.classes.class_names``) for raw input maps ``(ny, nx, C)``, padded and
    tiled as ``predict_probability``; they sum to 1 per pixel, and ``1 - [..., 0]`` is its
    probability of any defect (to rounding). Returns ``(probabilities, number of tiles, padded shape)``."""
    return _tiled(predict_class_proba, model, info, raw, tile, overlap, batch_size)


def _tiled(proba_fn, model, info: Mapping, raw: np.ndarray, tile, overlap, batch_size: int):
    """``proba_fn(model, tiles)`` over padded, overlapping tiles of ``raw``, blended with the window."""
    raw = np.asarray(raw, np.float32)
    if raw.ndim != 3 or raw.shape[-1] != len(info["inputs"]):
        raise ValueError(f"input maps must be (ny, nx, {len(info['inputs'])}), got {raw.shape}")
    multiple = 2 ** int(info["config"].model.depth)
    x = normalise_inputs(raw[None], info)[0]
    padded, crop = reflect_pad(x, multiple)
    H, W = padded.shape[:2]
    if tile is None:
        tile = training_shape(info) or (H, W)
    if isinstance(tile, int):
        tile = (H, W) if tile == 0 else (tile, tile)
    th, tw = (min(_round_tile(int(t), multiple), n) for t, n in zip(tile, (H, W)))
    if overlap is None:
        overlap = min(th, tw) // 4
    if not 0 <= overlap < min(th, tw):
        raise ValueError(f"overlap must be in [0, {min(th, tw)}) pixels for tiles of {th} x {tw}, got {overlap}")
    ys, xs = tile_starts(H, th, overlap), tile_starts(W, tw, overlap)
    tiles = np.stack([padded[y : y + th, x0 : x0 + tw] for y in ys for x0 in xs])
    proba = proba_fn(model, tiles, batch_size=batch_size)
    weight = np.outer(_window(th, len(ys) == 1), _window(tw, len(xs) == 1))
    weight = weight.reshape(weight.shape + (1,) * (proba.ndim - 3))  # per-class probabilities: one weight per pixel
    acc = np.zeros((H, W) + proba.shape[3:], np.float64)
    norm = np.zeros((H, W) + (1,) * (proba.ndim - 3), np.float64)
    for k, (y, x0) in enumerate((y, x0) for y in ys for x0 in xs):
        acc[y : y + th, x0 : x0 + tw] += weight * proba[k]
        norm[y : y + th, x0 : x0 + tw] += weight
    out = acc / norm
    return out[crop].astype(np.float32), len(tiles), (H, W)


# --------------------------------------------------------------------------------------------
# noise check
# --------------------------------------------------------------------------------------------
def training_noise(info: Mapping) -> tuple[str, float]:
    """``(kind, level)`` of the run's training condition (``("clean", 0.0)`` for clean runs); a
    ``ValueError`` names a condition whose kind is not registered."""
    condition = str(info.get("train_condition", "clean"))
    try:
        spec = parse_noise_spec(condition)
    except ValueError:
        raise ValueError(f"the run was trained on {condition!r}, not a condition of a registered noise kind "
                         f"({', '.join(NOISE_MODELS)}): its noise cannot be checked") from None
    return spec.kind, float(spec.level)


def noise_check(
    movies: Any,
    info: Mapping,
    *,
    factor: float = 10.0,
    floor: float = NOISE_FLOOR,
    background_mask: np.ndarray | None = None,
    run_dir: str | Path | None = None,
) -> dict:
    """Estimate the movie's noise and compare it with the run's training noise.

    The estimate is taken under every registered kind with an estimator (Gaussian ``x + n``,
    speckle ``x + x n``) over ``background_mask`` (True = background; the whole frame when None
    or when it keeps under 10 % of the pixels) and pooled over the run's components. It is
    compared, for the run's noise kind (for a clean run the reference kind,
    ``noise_match.reference_kind``: Gaussian), with ``max(training level, floor)``: a mismatch
    is an estimate above ``factor`` times that, or below it divided by ``factor`` for a noisy
    run (reversed for a kind whose noise weakens as its level grows, without the floor). A run
    trained on a kind that is not registered or has no estimator raises a ``ValueError`` naming it.
    ``floor`` stands for "clean": the estimator also counts signal that is rough in space and
    time, so even clean thermal movies read above zero. On ``tests/test_finetune.py``'s 16 x 16
    films of 4 nm cells we measured about 3e-5 for m_x but 3e-3 for m_z. Raise ``floor`` to what
    the estimator gives on a clean simulation of your run's config.
    Returns ``{<kind>: estimate for each kind, "kind", "train_condition", "train_variance"
    (the training level), "reference", "factor", "mismatch", "message", "command"}``.
    """

    if not factor > 1:
        raise ValueError(f"the noise factor must be > 1, got {factor}")
    if not floor > 0:
        raise ValueError(f"the noise floor must be positive, got {floor}")
    kind, train_level = training_noise(info)
    use = reference_kind() if kind == "clean" else kind
    model = noise_model(use)
    grows = model.require_estimator().grows_with_level
    by_comp = _as_movies(movies, run_components(info))
    stack = np.stack(list(by_comp.values()))  # (C, T, ny, nx): leading axes are pooled
    mask = None
    if background_mask is not None and np.mean(background_mask) >= 0.1:
        mask = np.asarray(background_mask, bool)
    est = estimate_noise_variances(stack, mask)
    reference = max(train_level, floor) if grows else train_level
    value = est[use]
    too_noisy, too_clean = value > factor * reference, value < reference / factor
    if not grows:  # a larger level is weaker noise (a photon count)
        too_noisy, too_clean = too_clean, too_noisy
    mismatch = bool(too_noisy or (kind != "clean" and too_clean)) and math.isfinite(value)
    run = str(run_dir or info.get("run_dir", "RUN"))
    suggested = max(value, floor) if grows else value
    command = f"jaxmag finetune {run} --noise {use}:{suggested:.2g} --out {run.rstrip('/')}-{use}-{suggested:.0e}"
    condition = str(info.get("train_condition", "clean"))
    shown = condition_label(condition)  # messages print KIND:LEVEL; the record keeps the run's name
    level = f"{use} noise {model.level_name}"
    if mismatch:
        message = (
            f"the movie's estimated {level} {value:.3g} differs from the model's training noise "
            f"({shown}, compared with {reference:.3g}) by more than {factor:g}x; the paper finds "
            f"noise-mismatched models fail. Fine-tune on matching noise: {command}"
        )
    else:
        message = f"estimated {level} {value:.3g} is within {factor:g}x of the training noise ({shown})"
    return {
        **{k: float(v) for k, v in est.items()},
        "kind": use,
        "train_condition": condition,
        "train_variance": train_level,
        "reference": reference,
        "factor": float(factor),
        "mismatch": mismatch,
        "background_pixels": None if mask is None else int(mask.sum()),
        "message": message,
        "command": command if mismatch else None,
    }


# --------------------------------------------------------------------------------------------
# the whole pipeline
# --------------------------------------------------------------------------------------------
def predict_movie(
    run: str | Path | tuple,
    movies: Any,
    *,
    threshold: float = 0.5,
    tile: int | tuple[int, int] | None = None,
    overlap: int | None = None,
    auto_noise: bool = False,
    noise_factor: float = 10.0,
    noise_floor: float = NOISE_FLOOR,
    batch_size: int = 8,
) -> Prediction:
    """Defect probability and mask of a movie.

    Args:
        run: a run folder, or ``(model, run_info)`` from ``load_run``.
        movies: a ``Movie`` (``jaxmag.io.movie.read_movie``), an array ``(T, ny, nx)`` for a
            single-component run, or ``{component: movie}`` for runs with several components.
        threshold: probability at or above which a pixel is called defect.
        tile, overlap: see ``predict_probability``.
        auto_noise: also run ``noise_check`` (on the predicted background) with ``noise_factor``
            and ``noise_floor``.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    model, info = load_run(run) if isinstance(run, (str, Path)) else run
    raw = measure_maps(movies, info)
    proba, n_tiles, padded = predict_probability(model, info, raw, tile=tile, overlap=overlap, batch_size=batch_size)
    mask = proba >= threshold
    noise = noise_check(movies, info, factor=noise_factor, floor=noise_floor, background_mask=~mask) if auto_noise else None
    description = {
        "run": str(info.get("run_dir", "")),
        "inputs": list(info["inputs"]),
        "train_condition": info.get("train_condition"),
        "checkpoint_epoch": info.get("checkpoint_epoch"),
        "threshold": float(threshold),
        "shape": [int(s) for s in proba.shape],
        "padded_shape": [int(s) for s in padded],
        "tiles": int(n_tiles),
        "defect_fraction": float(mask.mean()),
        "boundary": info["config"].grid.boundary,  # the trained regime's edges (defects.csv joins regions across them)
    }
    if isinstance(movies, Movie):
        description["movie"] = movies.metadata()
    description["pixel_size_m"], description["pixel_size_from"] = pixel_size(movies, info)
    label = figures.channel_label(info["inputs"][0], normalized_entropy=info["config"].measures.normalize,
                                  rescaled=_rescaled(movies))
    return Prediction(proba, mask, raw, tuple(info["inputs"]), float(threshold), n_tiles, padded, noise, description, label)


def _first_movie(movies: Any) -> Any:
    return next(iter(movies.values())) if isinstance(movies, Mapping) else movies


def pixel_size(movies: Any, info: Mapping) -> tuple[float, str]:
    """``(pixel size in m, where it came from)`` for the scale bar: the movie's cell size when its
    format stores one (OVF), else the run's training cells, the sampling the model assumes."""
    first = _first_movie(movies)
    if isinstance(first, Movie) and first.cell_size_m is not None:
        return float(first.cell_size_m[0]), "the movie"
    return float(info["config"].grid.cell_size_m[0]), "the run's training cells"


def _rescaled(movies: Any) -> bool:
    """Whether the movie was mapped onto [-1, 1] (``--rescale minmax|maxabs``) rather than read in units of Ms."""
    first = _first_movie(movies)
    return isinstance(first, Movie) and first.rescale in ("minmax", "maxabs")


PREDICTION_FILES = {
    "probability_tif": "probability.tif",
    "probability_npy": "probability.npy",
    "probability_png": "probability.png",
    "mask_tif": "mask.tif",
    "mask_npy": "mask.npy",
    "mask_png": "mask.png",
    "defects_csv": "defects.csv",
    "overlay_png": "overlay.png",
    "json": "prediction.json",
}


def claim_prediction_folder(out_dir: str | Path, *, force: bool = False) -> Path:
    """Check (and record) that ``write_prediction`` may write into ``out_dir``: call it before
    the prediction is computed, so a user's file there is refused at once, not after minutes."""
    return outdir.claim(Path(out_dir), PREDICTION_FILES.values(), "predict", force=force)


def write_prediction(pred: Prediction, out_dir: str | Path, *, force: bool = False) -> dict[str, Path]:
    """Write the probability map, mask and an overlay into ``out_dir``; returns ``{name: path}``.

    ``probability.tif``/``.npy`` float32, ``mask.tif``/``.npy`` uint8 (1 = defect),
    ``probability.png`` (magma, 0..1) and ``mask.png`` (one pixel per cell, for other tools),
    ``overlay.png`` (``plot_overlay``: a figure to read), ``defects.csv`` (one row per connected
    region of the mask, ``jaxmag.learn.defect_table``) and ``prediction.json``. Each file is written crash-safely
    (``jaxmag.io.atomic``); files in ``out_dir`` that jaxmag did not write are refused unless
    ``force`` (``jaxmag.io.outdir``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    mask8 = pred.mask.astype(np.uint8)
    paths = {key: out / name for key, name in PREDICTION_FILES.items()}
    claim_prediction_folder(out, force=force)
    write_maps(out, {"probability": pred.probability.astype(np.float32), "mask": mask8})
    writers = {
        "probability_png": lambda f: plt.imsave(f, pred.probability, cmap="magma", vmin=0.0, vmax=1.0, format="png"),
        "mask_png": lambda f: plt.imsave(f, mask8, cmap="gray", vmin=0, vmax=1, format="png"),
        "overlay_png": lambda f: plot_overlay(f, pred),
    }
    for name, write in writers.items():
        with atomic_write(paths[name], "wb") as f:  # a full disk raises WriteError; no 0-byte file is left
            write(f)
    from jaxmag.learn.defect_table import defect_rows, write_defects_csv

    rows = defect_rows(pred.probability, pred.mask, pixel_size_m=float(pred.info["pixel_size_m"]),
                       input_map=pred.inputs[..., 0], periodic=pred.info.get("boundary") == "periodic")
    write_defects_csv(paths["defects_csv"], rows)  # one row per connected region (jaxmag.learn.defect_table)
    record = {**pred.info, "noise": pred.noise, "defects": rows, "files": {k: p.name for k, p in paths.items()}}
    write_text(paths["json"], json.dumps(record, indent=1, default=float) + "\n")
    return paths


def write_maps(out_dir: str | Path, maps: Mapping[str, np.ndarray]) -> dict[str, Path]:
    """Write each map as ``<name>.npy`` and ``<name>.tif`` (its dtype kept), crash-safely;
    returns ``{"<name>_npy": path, "<name>_tif": path}``. The caller claims the folder."""
    import tifffile

    paths = {}
    for name, array in maps.items():
        for ext, write in (("tif", tifffile.imwrite), ("npy", np.save)):
            paths[f"{name}_{ext}"] = path = Path(out_dir) / f"{name}.{ext}"
            with atomic_write(path, "wb") as f:  # a full disk raises WriteError; no 0-byte file is left
                write(f, array)
    return paths


def plot_overlay(path, pred: Prediction) -> None:
    """``overlay.png``: the first input map in grey with the mask outlined, and the probability;
    each with a colour bar naming its quantity and unit and a nanometre scale bar (``jaxmag.figures``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = pred.inputs[..., 0]
    ny, nx = img.shape
    lo, hi = np.percentile(img, [1, 99])
    cell = pred.info["pixel_size_m"]
    label = pred.input_label or figures.channel_label(pred.input_names[0])
    with matplotlib.rc_context(figures.style()):
        fig, axes = figures.map_figure(2, ny, nx)
        figures.map_panel(fig, axes[0], img, cmap="gray", vmin=lo, vmax=hi, label=label, pixel_size_m=cell,
                          outline=pred.mask, title=f"{pred.input_names[0]} + mask ({pred.mask.mean():.1%} of the image)")
        figures.map_panel(fig, axes[1], pred.probability, cmap="magma", vmin=0.0, vmax=1.0,
                          label=figures.PROBABILITY_LABEL, pixel_size_m=cell, title="U-Net defect probability")
        if pred.info.get("pixel_size_from") != "the movie":  # a TIFF or array states no pixel size
            fig.supxlabel(f"scale bar: pixels taken as {pred.info.get('pixel_size_from')} ({cell * 1e9:g} nm); "
                          "the movie states no pixel size", fontsize=figures.SMALL_PT)
        fig.savefig(path, dpi=figures.DPI, format="png")
    plt.close(fig)
