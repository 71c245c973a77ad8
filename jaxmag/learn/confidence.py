"""How sure ``detect`` is: an ensemble with mirror views, its calibration measured, its uncertainty.

``detect`` trains ``budget.ensemble`` models of one regime with different training seeds
(``member_config``). ``calibrate_members`` then measures, on the regime's validation and test films
(whose truth is known), how well the probabilities are calibrated:

* the single model (member 0, no views) and the ensemble (the members' mean over the film's exact
  mirror views, ``jaxmag.learn.ensemble``), each by its expected calibration error (10 bins) and
  reliability curve on the test films (``jaxmag.learn.reliability``);
* a temperature for the ensemble's logit, fitted on the validation films and kept only where it
  lowers the validation ECE (so the test films stay unseen by every choice).

``movie_probability`` applies the same to the researcher's movie: the ensemble's (temperature-
scaled) probability and, per pixel, its uncertainty: the standard deviation over the members and
views (0 where all agree).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from jaxmag.learn import ensemble as ens
from jaxmag.learn import reliability as rel
from jaxmag.symmetry import film_symmetries

BINS = 10


@dataclasses.dataclass(frozen=True)
class Member:
    """One trained model and its run info (``jaxmag.learn.evaluation.load_trained``)."""

    model: Any
    info: dict

    def predict(self, raw: np.ndarray) -> np.ndarray:
        from jaxmag.learn.predict import predict_probability

        return predict_probability(self.model, self.info, raw)[0]


def member_config(config, k: int):
    """The config of ensemble member ``k``: the training seed moved by ``k`` (member 0 is the config)."""
    if k == 0:
        return config
    return config.replace(training=dataclasses.replace(config.training, seed=config.training.seed + k))


def views_of(config, channels: Sequence[str], components: str, periodic: bool) -> tuple:
    """The film's exact mirror views of ``channels`` (``jaxmag.learn.ensemble.mirror_views``)."""
    probe = config.instrument.direction if config.instrument.enabled else None
    symmetries = film_symmetries(components, periodic, config.material.easy_axis)
    return ens.mirror_views(symmetries, list(channels), probe_direction=probe)


def _probabilities(fns: Sequence[Callable], raw: np.ndarray, views) -> np.ndarray:
    """``(members * views, ny, nx)`` probabilities of raw maps ``(ny, nx, C)``."""
    return np.concatenate([ens.tta_members(fn, raw, views) for fn in fns])


def _split_probabilities(members: Sequence[Member], raw_maps: np.ndarray, views) -> tuple[np.ndarray, np.ndarray]:
    """``(single (N, ny, nx), ensemble mean (N, ny, nx))`` over images ``raw_maps (N, ny, nx, C)``."""
    single, mean = [], []
    fns = [m.predict for m in members]
    for raw in raw_maps:
        single.append(members[0].predict(raw))
        mean.append(_probabilities(fns, raw, views).mean(axis=0))
    return np.stack(single), np.stack(mean)


def calibrate_members(members: Sequence[Member], val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                      views) -> dict:
    """The calibration record (module docstring): ``val``/``test`` are ``(raw maps (N, ny, nx, C), labels (N, ny, nx))``."""
    (xv, yv), (xt, yt) = val, test
    yv, yt = (np.asarray(y) > 0 for y in (yv, yt))
    _, ens_val = _split_probabilities(members, xv, views)
    single_test, ens_test = _split_probabilities(members, xt, views)
    temperature = rel.fit_temperature(rel.logit(ens_val), yv)
    scaled_val = rel.apply_temperature(rel.logit(ens_val), temperature)
    keep = rel.expected_calibration_error(scaled_val, yv, BINS) < rel.expected_calibration_error(ens_val, yv, BINS)
    temperature = float(temperature) if keep else 1.0
    final = rel.apply_temperature(rel.logit(ens_test), temperature) if keep else ens_test
    curves = {"single model": rel.reliability_curve(single_test, yt, BINS),
              f"ensemble of {len(members)} x {len(views)} views": rel.reliability_curve(ens_test, yt, BINS)}
    if keep:
        curves[f"ensemble, temperature {temperature:.2f}"] = rel.reliability_curve(final, yt, BINS)
    ece = {name: rel.ece_from_curve(curve) for name, curve in curves.items()}
    return {
        "members": len(members), "views": len(views), "bins": BINS, "temperature": temperature,
        "ece_single": float(ece["single model"]), "ece": float(rel.expected_calibration_error(final, yt, BINS)),
        "ece_by_curve": {k: float(v) for k, v in ece.items()}, "test_pixels": int(yt.size),
        "curves": {k: {kk: np.asarray(vv).tolist() for kk, vv in c.items()} for k, c in curves.items()},
    }


def movie_probability(members: Sequence[Member], raw: np.ndarray, views, temperature: float = 1.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(probability, uncertainty)`` ``(ny, nx)`` float32 of the movie's raw maps ``(ny, nx, C)``:
    the mean over members and views (temperature-scaled in logit), and their standard deviation."""
    all_p = _probabilities([m.predict for m in members], raw, views)
    p = all_p.mean(axis=0)
    if temperature != 1.0:
        p = rel.apply_temperature(rel.logit(p), temperature)
    return p.astype(np.float32), all_p.std(axis=0).astype(np.float32)
