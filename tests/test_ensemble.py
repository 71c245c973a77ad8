"""jaxmag.learn.ensemble: test-time mirrors with the component signs, ensembles, entropy."""
from __future__ import annotations

import numpy as np
import pytest

from jaxmag.channels import Channel
from jaxmag.learn.ensemble import (MirrorView, ensemble_probability, identity_view, mirror_views,
                                   mutual_information, predictive_entropy, tta_members, tta_probability)
from jaxmag.symmetry import film_symmetries

NY, NX = 12, 16  # not square: rows and columns must not be mixed up


def random_maps(channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(NY, NX, channels)).astype(np.float32)


class Recorder:
    """A predictor that keeps its inputs and returns a fixed pixelwise function of them."""

    def __init__(self, fn):
        self.fn, self.inputs = fn, []

    def __call__(self, raw):
        self.inputs.append(np.array(raw))
        return self.fn(raw)


def test_views_of_a_film_along_x():
    sym = film_symmetries("xz", periodic=False, easy_axis=(1, 0, 0))
    views = mirror_views(sym, ["mean:x", "mean:z", "std:z", "latent_entropy:z"])
    # each flip maps (m_x, m_y, m_z) -> (m_x, -m_y, -m_z): mean:z changes sign, the even measures do not
    assert views[0] == identity_view(4)
    assert set(views) == {MirrorView(False, False, (1, 1, 1, 1)), MirrorView(True, False, (1, -1, 1, 1)),
                          MirrorView(False, True, (1, -1, 1, 1)), MirrorView(True, True, (1, 1, 1, 1))}


def test_sign_of_mean_x_under_a_flip_that_reverses_m_x():
    # u along y: each flip gives (-m_x, m_y, -m_z)
    sym = film_symmetries("xy", periodic=True, easy_axis=(0, 1, 0))
    channels = ["mean:x", "std:x", "latent_entropy:x", "mean:y"]
    views = mirror_views(sym, channels)
    raw = random_maps(4)
    recorder = Recorder(lambda r: np.zeros(r.shape[:2]))
    tta_probability(recorder, raw, views)
    seen = {(v.rows, v.cols): x for v, x in zip(views, recorder.inputs)}
    assert len(recorder.inputs) == 4 and len(seen) == 4
    identity, rows, cols, both = (seen[k] for k in ((False, False), (True, False), (False, True), (True, True)))
    np.testing.assert_array_equal(identity, raw)
    flipped = raw[:, ::-1]
    np.testing.assert_array_equal(cols[..., 0], -flipped[..., 0])  # mean:x: sign changed
    np.testing.assert_array_equal(cols[..., 1:], flipped[..., 1:])  # std, entropy, mean:y: not
    np.testing.assert_array_equal(rows[..., 0], -raw[::-1, :, 0])
    np.testing.assert_array_equal(both, raw[::-1, ::-1])  # two flips: signs cancel


def test_perpendicular_film_has_a_sign_only_view():
    sym = film_symmetries("xz", periodic=False, easy_axis=(0, 0, 1))
    views = mirror_views(sym, ["mean:x", "mean:z"])
    # no single flip (each reverses m_z); both flips with m unchanged or (-m_x, -m_y, m_z), and M_z
    assert set(views) == {MirrorView(False, False, (1, 1)), MirrorView(False, False, (-1, 1)),
                          MirrorView(True, True, (1, 1)), MirrorView(True, True, (-1, 1))}
    assert views[0] == identity_view(2)
    # views that act alike on the stored channels are one view
    assert len(mirror_views(sym, ["std:x", "mean:z"])) == 2


def test_probe_channel_needs_its_direction():
    sym = film_symmetries("x", periodic=False, easy_axis=(1, 0, 0))
    with pytest.raises(ValueError, match="probe"):
        mirror_views(sym, ["mean:p"])
    along_z = mirror_views(sym, ["mean:p", "std:p"], probe_direction=(0, 0, 1))
    assert MirrorView(False, True, (-1, 1)) in along_z  # the column flip reverses m_z, hence p
    assert MirrorView(True, True, (1, 1)) in along_z and len(along_z) == 4
    tilted = mirror_views(sym, ["mean:p"], probe_direction=(np.sqrt(0.5), 0, np.sqrt(0.5)))
    # a flip maps the tilted probe to another direction: only the elements that keep m remain
    assert tilted == (identity_view(1), MirrorView(True, True, (1,)))


def test_unknown_measure_is_refused():
    sym = film_symmetries("x", periodic=False)
    with pytest.raises(ValueError, match="parity"):
        mirror_views(sym, [Channel("skewness", "x")])


def test_identity_predictor_returns_the_same_map():
    sym = film_symmetries("xz", periodic=False)
    views = mirror_views(sym, ["mean:z", "std:z"])
    raw = random_maps(2, seed=3)
    out = tta_probability(lambda r: r[..., 1], raw, views)  # the probability is the (even) std map
    np.testing.assert_allclose(out, raw[..., 1], rtol=0, atol=1e-7)


def test_equivariant_predictor_is_unchanged_and_others_become_equivariant():
    sym = film_symmetries("xz", periodic=False)
    views = mirror_views(sym, ["mean:x", "mean:z", "std:z"])
    raw = random_maps(3, seed=4)

    def equivariant(r):  # pixelwise, even in the odd channel mean:z
        return 1 / (1 + np.exp(-(r[..., 0] + np.abs(r[..., 1]) - r[..., 2])))

    np.testing.assert_allclose(tta_probability(equivariant, raw, views), equivariant(raw), atol=1e-7)

    def biased(r):  # not equivariant: depends on the column and on the sign of mean:z
        return 1 / (1 + np.exp(-(r[..., 1] + np.linspace(-2, 2, r.shape[1]))))

    plain = tta_probability(biased, raw, views[:1])
    assert not np.allclose(tta_probability(biased, raw, views), plain)
    # the TTA average is equivariant: the prediction of a mirrored film is the mirrored prediction
    for view in views:
        np.testing.assert_allclose(tta_probability(biased, view.apply(raw), views),
                                   view.undo(tta_probability(biased, raw, views)), atol=1e-6)
    members = tta_members(biased, raw, views)
    assert members.shape == (len(views), NY, NX)


def test_ensemble_mean_and_spread():
    raw = random_maps(1, seed=5)
    a = lambda r: np.full(r.shape[:2], 0.2)
    b = lambda r: np.full(r.shape[:2], 0.6)
    mean, spread = ensemble_probability([a, b], raw)
    np.testing.assert_allclose(mean, 0.4)
    np.testing.assert_allclose(spread, 0.2)
    mean, spread = ensemble_probability([a], raw, mirror_views(film_symmetries("x", False), ["std:x"]))
    np.testing.assert_allclose(mean, 0.2)
    assert np.all(spread == 0)
    with pytest.raises(ValueError, match="at least one"):
        ensemble_probability([], raw)
    with pytest.raises(ValueError, match="shape"):
        ensemble_probability([lambda r: np.zeros(3)], raw)


def test_entropies():
    assert predictive_entropy(0.5) == pytest.approx(np.log(2))
    assert predictive_entropy(np.array([0.0, 1.0])) == pytest.approx([0.0, 0.0], abs=1e-9)
    agree = np.full((3, 2, 2), 0.7)
    assert np.allclose(mutual_information(agree), 0.0)
    disagree = np.stack([np.full((2, 2), 0.01), np.full((2, 2), 0.99)])
    assert mutual_information(disagree) == pytest.approx(np.log(2) - predictive_entropy(0.01), rel=1e-9)
