"""The smoothed robust-z baseline: known answers on synthetic maps, and a fit that never sees test data."""
import h5py
import numpy as np

from jaxmag.learn import baseline


def _maps(n=12, ny=24, nx=24, contrast=4.0, noise=1.0, seed=0):
    """Noisy maps with square defects of +contrast (one crossing the periodic edge)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, ny, nx), bool)
    for i in range(n):
        r, c = rng.integers(0, ny), rng.integers(0, nx)
        labels[i, np.arange(r, r + 5)[:, None] % ny, np.arange(c, c + 5) % nx] = True
    maps = 0.3 + noise * rng.standard_normal((n, ny, nx)) + contrast * labels
    return maps, labels


def test_robust_z_of_a_known_map():
    m = np.zeros((1, 8, 8))
    m[0, :, ::2] = 1.0                      # median 0.5, MAD 0.5 -> every pixel scores 1 / 1.4826
    np.testing.assert_allclose(baseline.robust_z(m, sigma=0.0), 1 / 1.482602218505602)
    assert np.all(baseline.robust_z(np.ones((2, 4, 4)), 0.0) == 0)   # constant image scores 0
    # periodic smoothing: a spike at the corner spreads to the opposite corners
    spike = np.zeros((1, 9, 9))
    spike[0, 0, 0] = 1
    s = baseline.smooth(spike, 1.0, periodic=True)[0, ..., 0]
    assert s[-1, -1] > 0.01 and np.isclose(s[-1, -1], s[1, 1])
    assert np.isclose(s.sum(), 1.0)


def test_fit_recovers_clear_defects_and_smoothing_helps_under_noise():
    x, y = _maps(contrast=6.0, noise=0.5)
    fit = baseline.fit(x, y)
    assert fit.val_dice > 0.95 and 1.0 < fit.threshold < 12.0
    xn, yn = _maps(contrast=1.5, noise=1.0, seed=1)    # per-pixel SNR too low: smoothing must win
    noisy = baseline.fit(xn, yn)
    assert noisy.sigma > 0
    assert noisy.val_dice > baseline.fit(xn, yn, sigmas=(0.0,)).val_dice + 0.1
    test_x, test_y = _maps(contrast=1.5, noise=1.0, seed=2)
    assert baseline.score(noisy.predict(test_x), test_y)["dice"] > 0.5


def test_threshold_never_sees_test_data(tmp_path):
    x, y = _maps(n=30, contrast=3.0)
    split = {"train": np.arange(0, 10), "val": np.arange(10, 20), "test": np.arange(20, 30)}
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f["labels"] = y.astype(np.uint8)
        f["clean/std/z"] = x.astype(np.float32)
    first = baseline.fit_and_evaluate(path, [("std", "z")], "clean", split)
    with h5py.File(path, "r+") as f:        # scramble the test split: maps and labels
        f["clean/std/z"][20:30] = np.random.default_rng(9).standard_normal((10, 24, 24)) * 50
        f["labels"][20:30] = 1 - f["labels"][20:30]
    second = baseline.fit_and_evaluate(path, [("std", "z")], "clean", split)
    assert first["fit"] == second["fit"]
    assert first["dice"] != second["dice"]
