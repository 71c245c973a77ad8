"""A non-learned baseline: smoothed robust-z thresholding of the measure maps.

Every trained U-Net is reported beside this baseline; a model that does not beat it has not
learned anything a threshold could not do. Per image and per input channel:

1. smooth the map with a Gaussian of width ``sigma`` pixels (periodic wrap when the film is
   periodic, mirror padding otherwise; ``sigma = 0`` skips it);
2. take the robust z-score ``|x - median| / (1.4826 MAD)`` over the image's pixels (median and
   MAD are insensitive to the ~10 % defect pixels, so the score measures how far a pixel is
   from the film's typical value, in units of the background spread);
3. average the channels' scores (several inputs) and call a pixel defect where the score
   exceeds ``threshold``.

``sigma`` and ``threshold`` are the only parameters. ``fit`` chooses them on the
**validation split only**: every ``sigma`` of a small grid, every threshold of a fine grid, the
pair with the highest aggregated validation Dice (``2ΣTP / (2ΣTP + ΣFP + ΣFN)``, as
``jaxmag.learn.metrics``). No oracle defect fraction enters; the test split is scored once,
with the fitted pair (``fit_and_evaluate`` never reads the test maps before the fit is done).

Functions: ``robust_z(maps, sigma, periodic)``, ``fit(maps, labels, ...) -> BaselineFit``,
``BaselineFit.predict(maps)``, ``score(pred, labels)`` (the metrics of
``jaxmag.learn.metrics.summarize`` plus ``pred_fraction``/``true_fraction``), and
``fit_and_evaluate(measures_path, inputs, condition, split)`` for a measures file.

**Typed defects** (``jaxmag.learn.classes``, ``typed``: background, the "a" group, the "b"
group): the softer and the harder defects sit on opposite sides of the background in std and
latent entropy (a softer blob fluctuates more, a harder one less), so the detected pixels (the
mask above) are typed by the *sign* of the smoothed robust z, ``(s - median) / (1.4826 MAD)``
with the fitted ``sigma``: class 1 where ``Σ_c sign_c z_c > 0``, class 2 where it is ≤ 0.
Which sign goes with which class is not assumed (it may differ between measures and
components, and the factors of ``[defects]`` may put both groups on one side): ``fit_types`` chooses the per-channel signs
``sign_c = ±1`` that maximise the mean validation Dice of the two defect classes, on the
validation films only. ``typed_predict(fit, maps)`` gives the class map, ``typed_score`` its
per-class Dice and confusion matrix.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # pixels
THRESHOLDS = tuple(np.round(np.arange(0.25, 12.0, 0.05), 2))  # robust z units
_MAD_TO_SIGMA = 1.482602218505602


def _as_channels(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, np.float64)
    if maps.ndim == 3:
        maps = maps[..., None]
    if maps.ndim != 4:
        raise ValueError(f"maps must be (N, ny, nx) or (N, ny, nx, C), got shape {maps.shape}")
    return maps


def smooth(maps: np.ndarray, sigma: float, periodic: bool = True) -> np.ndarray:
    """Gaussian smoothing of ``(N, ny, nx, C)`` maps over the two image axes (width in pixels)."""
    maps = _as_channels(maps)
    if sigma <= 0:
        return maps
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(maps, sigma=(0, sigma, sigma, 0), mode="wrap" if periodic else "mirror", truncate=4.0)


def robust_z(maps: np.ndarray, sigma: float = 1.0, periodic: bool = True) -> np.ndarray:
    """The baseline's score ``(N, ny, nx)``: per image and channel ``|s - median(s)| / (1.4826 MAD(s))``
    of the smoothed map ``s``, averaged over channels (a constant image scores 0)."""
    dev, scale = _deviation(smooth(maps, sigma, periodic))
    return np.mean(np.abs(dev) / scale, axis=-1)


def signed_z(maps: np.ndarray, sigma: float = 1.0, periodic: bool = True) -> np.ndarray:
    """Per image and channel ``(s - median(s)) / (1.4826 MAD(s))`` of the smoothed map ``s``:
    ``(N, ny, nx, C)``, the sign saying on which side of the background a pixel lies."""
    dev, scale = _deviation(smooth(maps, sigma, periodic))
    return dev / scale


def _deviation(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``s - median`` per image and channel, and the robust scale ``1.4826 MAD`` (the largest
    deviation where the MAD is 0; never 0)."""
    dev = s - np.median(s, axis=(1, 2), keepdims=True)
    mad = _MAD_TO_SIGMA * np.median(np.abs(dev), axis=(1, 2), keepdims=True)
    scale = np.where(mad > 0, mad, np.maximum(np.abs(dev).max(axis=(1, 2), keepdims=True), 1e-30))
    return dev, scale


def _dice_curve(z: np.ndarray, truth: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Aggregated Dice of ``z > t`` for every threshold ``t`` (one sort, no loop over t)."""
    pos = np.sort(z[truth])
    neg = np.sort(z[~truth])
    tp = pos.size - np.searchsorted(pos, thresholds, side="right")
    fp = neg.size - np.searchsorted(neg, thresholds, side="right")
    fn = pos.size - tp
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)


@dataclasses.dataclass(frozen=True)
class BaselineFit:
    """The fitted parameters: ``sigma`` (px), ``threshold`` (robust z), ``periodic``, and the
    validation Dice that chose them (``val_dice``, on ``num_val`` images)."""

    sigma: float
    threshold: float
    periodic: bool
    val_dice: float
    num_val: int

    def predict(self, maps: np.ndarray) -> np.ndarray:
        """Boolean defect masks ``(N, ny, nx)``."""
        return robust_z(maps, self.sigma, self.periodic) > self.threshold

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def fit(
    maps: np.ndarray,
    labels: np.ndarray,
    *,
    periodic: bool = True,
    sigmas: Sequence[float] = SIGMAS,
    thresholds: Sequence[float] = THRESHOLDS,
) -> BaselineFit:
    """Choose ``(sigma, threshold)`` maximising aggregated Dice on these (validation) maps.

    Ties go to the smaller ``sigma`` and then the smaller threshold (the first maximum)."""
    maps = _as_channels(maps)
    truth = np.asarray(labels) > 0
    if truth.shape != maps.shape[:3]:
        raise ValueError(f"labels {truth.shape} do not match maps {maps.shape[:3]}")
    thresholds = np.asarray(thresholds, np.float64)
    best = (-1.0, 0.0, 0.0)
    for sigma in sigmas:
        curve = _dice_curve(robust_z(maps, sigma, periodic), truth, thresholds)
        i = int(np.argmax(curve))
        if curve[i] > best[0]:
            best = (float(curve[i]), float(sigma), float(thresholds[i]))
    return BaselineFit(sigma=best[1], threshold=best[2], periodic=bool(periodic), val_dice=best[0], num_val=int(maps.shape[0]))


def score(pred: np.ndarray, labels: np.ndarray) -> dict:
    """Metrics of boolean masks against labels, with the conventions of ``jaxmag.learn.metrics``."""
    p = np.asarray(pred, bool)
    t = np.asarray(labels) > 0
    tp = np.sum(p & t, axis=(1, 2))
    fp = np.sum(p & ~t, axis=(1, 2))
    fn = np.sum(~p & t, axis=(1, 2))
    denom = 2 * tp + fp + fn
    per_image = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)
    TP, FP, FN = int(tp.sum()), int(fp.sum()), int(fn.sum())
    pixels = max(1, p.size)
    return {
        "dice": float(2 * TP / (2 * TP + FP + FN)) if (2 * TP + FP + FN) else 1.0,
        "dice_per_image": float(per_image.mean()),
        # the standard error of that mean over the images (as jaxmag.learn.metrics.summarize)
        "dice_per_image_se": float(per_image.std(ddof=1) / np.sqrt(per_image.size)) if per_image.size > 1 else float("nan"),
        "tp": TP, "fp": FP, "fn": FN,
        "num_images": int(p.shape[0]),
        "pred_fraction": (TP + FP) / pixels,
        "true_fraction": (TP + FN) / pixels,
    }


@dataclasses.dataclass(frozen=True)
class TypedBaselineFit:
    """The typed baseline (module docstring): the detection ``detect`` and the per-channel
    ``signs`` (±1) whose signed score ``Σ_c sign_c z_c`` is > 0 for class 1 and ≤ 0 for class 2;
    ``val_class_dice``: the validation Dice of each class (background first) that chose them."""

    detect: BaselineFit
    signs: tuple[int, ...]
    val_class_dice: tuple[float, ...]

    def predict(self, maps: np.ndarray) -> np.ndarray:
        """Class maps ``(N, ny, nx)`` uint8: 0 background, 1 and 2 the typed defect classes."""
        return typed_predict(self, maps)

    def to_dict(self) -> dict:
        return {"detect": self.detect.to_dict(), "signs": list(self.signs), "val_class_dice": list(self.val_class_dice)}


def _typed_classes(mask: np.ndarray, z: np.ndarray, signs) -> np.ndarray:
    side = np.tensordot(z, np.asarray(signs, np.float64), axes=([-1], [0]))  # (N, ny, nx)
    return np.where(mask, np.where(side > 0, 1, 2), 0).astype(np.uint8)


def typed_predict(fit: TypedBaselineFit, maps: np.ndarray) -> np.ndarray:
    """Class maps ``(N, ny, nx)`` uint8 of ``maps (N, ny, nx[, C])``: the detected pixels
    (``fit.detect.predict``) of class 1 where the signed smoothed robust z ``Σ_c sign_c z_c`` is
    positive, class 2 elsewhere; 0 background."""
    d = fit.detect
    return _typed_classes(d.predict(maps), signed_z(maps, d.sigma, d.periodic), fit.signs)


def fit_types(detect: BaselineFit, maps: np.ndarray, classes: np.ndarray) -> TypedBaselineFit:
    """The signs (one per channel, ±1) that maximise the mean Dice of the two defect classes of
    ``typed_predict`` on these (validation) maps; ``classes (N, ny, nx)``: 0/1/2 class labels
    (``jaxmag.learn.classes.class_labels(..., "typed", num_a)``). Ties: the first in the order
    of ``itertools.product((1, -1), repeat=C)``."""
    import itertools

    maps = _as_channels(maps)
    classes = np.asarray(classes)
    if classes.shape != maps.shape[:3]:
        raise ValueError(f"class labels {classes.shape} do not match maps {maps.shape[:3]}")
    mask = detect.predict(maps)
    z = signed_z(maps, detect.sigma, detect.periodic)
    best = None
    for signs in itertools.product((1, -1), repeat=maps.shape[-1]):
        dice = typed_score(_typed_classes(mask, z, signs), classes)["class_dice"]
        if best is None or np.mean(dice[1:]) > np.mean(best[1][1:]):
            best = (signs, dice)
    return TypedBaselineFit(detect=detect, signs=tuple(int(s) for s in best[0]), val_class_dice=tuple(best[1]))


def typed_score(pred: np.ndarray, classes: np.ndarray, num_classes: int = 3) -> dict:
    """``{"class_dice", "confusion"}`` of class maps against class labels, as ``jaxmag.learn.metrics``
    (confusion rows true, columns predicted; per-class Dice, background first)."""
    from jaxmag.learn.metrics import class_dice

    t = np.asarray(classes, np.int64).ravel()
    p = np.asarray(pred, np.int64).ravel()
    confusion = np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)
    return {"class_dice": class_dice(confusion), "confusion": confusion.tolist()}


def _read_maps(path: Path, inputs: Sequence[tuple[str, str]], condition: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maps ``(len(idx), ny, nx, C)`` float64 and the labels as stored (blob ids, > 0 defect) of the
    rows ``idx`` of a measures file."""
    from jaxmag.io.measures_file import MeasuresFile

    measures = MeasuresFile(path)
    cond = measures.resolve_condition(condition)
    return measures.read(cond, inputs, idx, dtype=np.float64), measures.labels(idx)


def fit_and_evaluate(
    measures_path: str | Path,
    inputs: Sequence[tuple[str, str]],
    condition: str,
    split: dict,
    *,
    periodic: bool = True,
    fit_condition: str | None = None,
    classes: str = "binary",
    num_a: int | None = None,
) -> dict:
    """Fit on the validation split of ``fit_condition`` (default ``condition``), then score the
    test split of ``condition``. Returns ``{"fit": {...}, **score}``; with ``classes = "typed"``
    (``num_a``: ``[defects] num_a``) also ``"typed"``: the typed baseline's signs, validation and
    test per-class Dice and test confusion matrix (``fit_types``, ``typed_score``).

    Only ``split["val"]`` is read for the fit; the test maps are read afterwards.
    """
    from jaxmag.learn.classes import class_labels, class_scheme

    scheme = class_scheme(classes)
    path = Path(measures_path)
    val_x, val_y = _read_maps(path, inputs, fit_condition or condition, np.asarray(split["val"]))
    fitted = fit(val_x, val_y, periodic=periodic)
    typed = fit_types(fitted, val_x, class_labels(val_y, scheme, num_a)) if scheme.typed else None
    test_x, test_y = _read_maps(path, inputs, condition, np.asarray(split["test"]))
    out = {"fit": fitted.to_dict(), **score(fitted.predict(test_x), test_y)}
    if typed is not None:
        test_score = typed_score(typed.predict(test_x), class_labels(test_y, scheme, num_a), len(scheme))
        out["typed"] = {"signs": list(typed.signs), "val_class_dice": list(typed.val_class_dice), **test_score}
    return out


# -- the study's baseline rows and the report's comparison -------------------------------------

BASELINE_FILE = "baseline.json"


def study_records(units, config, measures_path: str | Path) -> list[dict]:
    """One baseline record per (input, evaluation condition) of the study's ``units``, each
    fitted on the validation split of that condition (the baseline is always noise-matched)
    with the split the units use (``training.split``, ``training.seed``).

    Where a typed unit (``unit.classes``, ``[study] classes``) evaluates the pair, the record
    also holds the typed baseline's test Dice of each defect class (``fit_types`` on the same
    validation split, ``typed_score``), as ``dice_<class>`` with the class names of
    ``jaxmag.learn.classes.class_names``; the class labels come from the measures file's blob
    ids and ``[defects] num_a``. The any-defect fields are the same either way."""
    from jaxmag.io.measures_file import MeasuresFile
    from jaxmag.learn.classes import class_names
    from jaxmag.learn.splits import split_indices
    from jaxmag.noise import parse_noise_spec

    n = MeasuresFile(measures_path).shape[0]
    split = split_indices(n, tuple(config.training.split), config.training.seed)
    periodic = config.grid.boundary == "periodic"
    schemes: dict[tuple[str, str], str] = {}  # (inputs, condition) -> a typed scheme if any unit needs one
    for unit in units:
        for cond in unit.eval_conditions:
            scheme = unit.classes
            if schemes.get((unit.inputs, cond), "binary") == "binary":
                schemes[(unit.inputs, cond)] = scheme
    channels = {unit.inputs: unit.channels for unit in units}
    records = []
    for (inputs, cond), scheme in schemes.items():
        m = fit_and_evaluate(measures_path, channels[inputs], cond, split, periodic=periodic,
                             classes=scheme, num_a=config.defects.num_a)
        spec = parse_noise_spec(cond)
        record = {
            "inputs": inputs, "eval_condition": cond, "noise_type": spec.kind,
            "noise_variance": float(spec.level), "sigma": m["fit"]["sigma"],
            "threshold": m["fit"]["threshold"], "val_dice": m["fit"]["val_dice"],
            **{k: m[k] for k in ("dice", "dice_per_image", "pred_fraction", "true_fraction", "num_images")},
        }
        if "typed" in m:
            names = class_names(scheme, config.defects)
            record.update({"classes": scheme, "signs": m["typed"]["signs"],
                           **{f"dice_{name}": float(d) for name, d in zip(names[1:], m["typed"]["class_dice"][1:])}})
        records.append(record)
    return records


def write_study_records(out_dir: str | Path, records: Sequence[dict]) -> Path:
    import json

    from jaxmag.io.atomic import write_text

    return write_text(Path(out_dir) / BASELINE_FILE, json.dumps(list(records), indent=1))


def load_study_records(out_dir: str | Path) -> list[dict]:
    import json

    path = Path(out_dir) / BASELINE_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def report_section(model_records: Sequence[dict], base_records: Sequence[dict], margin: float = 0.0) -> list[str]:
    """Markdown lines: the baseline table and every model row that does not beat the baseline
    of its input and evaluation condition by more than ``margin`` Dice."""
    if not base_records:
        return []
    from jaxmag.noise import condition_label  # conditions are printed as KIND:LEVEL

    base = {(b["inputs"], b["eval_condition"]): b for b in base_records}
    lines = ["## Non-learned baseline", "",
             "Smoothed robust-z thresholding (`jaxmag.learn.baseline`): Gaussian smoothing σ px (periodic), "
             "|x − median| / (1.4826 MAD) per image, threshold; σ and threshold chosen on the validation split "
             "of the evaluation condition only, then scored once on the test split.", "",
             "| inputs | evaluated on | σ (px) | threshold | validation Dice | test Dice | predicted / true defect fraction |",
             "|---|---|---|---|---|---|---|"]
    for b in base_records:
        lines.append(f"| {b['inputs']} | {condition_label(b['eval_condition'])} | {b['sigma']:g} | {b['threshold']:.2f} | "
                     f"{b['val_dice']:.3f} | {b['dice']:.3f} | {b['pred_fraction']:.3f} / {b['true_fraction']:.3f} |")
    losers = []
    for r in model_records:
        b = base.get((r["inputs"], r["eval_condition"]))
        if b is not None and not r["dice"] > b["dice"] + margin:
            tag = f" [{r['recipe']}]" if r.get("recipe") else ""
            tag += f" ({r['classes']})" if r.get("classes", "binary") != "binary" else ""
            losers.append(f"- {r['inputs']} trained on {condition_label(r['train_condition'])}{tag}, evaluated on "
                          f"{condition_label(r['eval_condition'])}: "
                          f"model {r['dice']:.3f} ≤ baseline {b['dice']:.3f}")
    lines += ["", f"Models that do **not** beat the baseline ({len(losers)} of {len(model_records)} rows):", ""]
    lines += losers or ["- none"]
    return lines + [""]
