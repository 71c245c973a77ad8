"""Exposure (``jaxmag.exposure``, accumulated in ``drivers.trajectory``): the sinc attenuation of a
precessing macrospin, the instantaneous limit, the camera-rate limit against a brute-force mean,
and the exposures the time stepping cannot realise."""
import math

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag import assemble
from jaxmag.config import loads_config
from jaxmag.constants import GAMMA_LL
from jaxmag.drivers import field_terms, movie_simulator, run_steps
from jaxmag.exposure import INSTANTANEOUS, ExposureError, ExposurePlan, plan_exposure
from jaxmag.fields import effective_field
from jaxmag.fields.thermal import thermal
from jaxmag.grid import Grid
from jaxmag.integrators import get_solver
from jaxmag.material import Material
from jaxmag.simulate import MovieSpec

DT = 1e-13  # s


@pytest.fixture(scope="module")
def hot_film():
    """A 2x2 film at 300 K: thermal fluctuations, so equal frames mean equal noise and steps."""
    grid = Grid(2, 2, 1, 4e-9, 4e-9, 4e-9, "periodic")
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.02, temperature=300.0)
    m0 = jnp.zeros(grid.vector_shape).at[..., 0].set(1.0)
    return grid, material, m0


# ---------------------------------------------------------------------------------------------
# the plan


def test_plan_modes_and_step_counts():
    assert plan_exposure(DT, 100, 0.0) == INSTANTANEOUS
    p = plan_exposure(DT, 100, 3e-12, camera_window_s=1e-9)
    assert (p.mode, p.exposure_steps, p.window_steps) == ("exposure", 30, 0)
    assert math.isclose(p.averaged_s, 3e-12)
    cam = plan_exposure(DT, 10**10, 1e-3, camera_window_s=1e-9)
    assert (cam.mode, cam.exposure_steps, cam.window_steps) == ("camera", 0, 10_000)
    assert "only detector noise" in cam.describe() and "Static contrast survives" in cam.describe()
    assert "sinc" in p.describe() and "instantaneous" in INSTANTANEOUS.describe()
    hash(cam)  # keys the compiled simulator (MovieSpec is an lru_cache key)


def test_exposure_longer_than_the_frame_interval_is_refused():
    with pytest.raises(ExposureError, match=r"exposure_s = 2e-11 s.*frame_interval_s = 1e-11 s"):
        plan_exposure(DT, 100, 2e-11)
    # also at camera rate: a 10 ms exposure cannot fit 1 ms frames
    with pytest.raises(ExposureError, match="frame_interval_s"):
        plan_exposure(DT, 10**10, 1e-2)
    with pytest.raises(ExposureError, match="shorter than half a time step"):
        plan_exposure(DT, 100, 4e-14)
    assert isinstance(ExposureError("x"), ValueError)  # the CLI prints ValueErrors as one line


def test_plan_records_are_checked():
    with pytest.raises(ValueError, match="exposure_steps"):
        ExposurePlan("exposure", exposure_steps=0, dt=DT)
    with pytest.raises(ValueError, match="exposure_steps must be 0"):
        ExposurePlan("camera", exposure_steps=3, window_steps=3, dt=DT)
    with pytest.raises(ValueError, match="window_steps"):
        ExposurePlan("camera", window_steps=0, dt=DT)
    with pytest.raises(ValueError, match="dt"):
        ExposurePlan("camera", window_steps=5)
    with pytest.raises(ValueError, match="mode"):
        ExposurePlan("long")


def test_simulator_refuses_impossible_step_counts():
    grid = Grid(1, 1, 1, 4e-9, 4e-9, 4e-9, "open")
    with pytest.raises(ValueError, match="exceeds steps_per_frame"):
        movie_simulator(grid, dt=DT, burn_in_steps=0, steps_per_frame=5, num_frames=2, exposure_steps=6)
    with pytest.raises(ValueError, match="exclude each other"):
        movie_simulator(grid, dt=DT, burn_in_steps=0, steps_per_frame=5, num_frames=2, exposure_steps=2,
                        camera_window_steps=3)
    with pytest.raises(ValueError, match="non-negative integer"):
        movie_simulator(grid, dt=DT, burn_in_steps=0, steps_per_frame=5, num_frames=2, exposure_steps=-1)


# ---------------------------------------------------------------------------------------------
# physics: a precessing macrospin


@pytest.mark.parametrize("periods", [0.3, 0.95])  # sinc 0.859, and 0.053 near its first zero
def test_exposure_attenuates_precession_by_sinc(periods):
    """m tilted by θ from a field B along z precesses at f = γB/2π (no damping, T = 0); its
    in-plane part averaged over τ keeps |sinc(π f τ)| = |sin(π f τ)/(π f τ)| of its amplitude."""
    grid = Grid(1, 1, 1, 4e-9, 4e-9, 4e-9, "open")
    B = 1.0  # T: period 35.7 ps = 357 steps
    material = Material.uniform(grid, Ms=8e5, A_ex=0.0, alpha=0.0, temperature=0.0, B_ext=(0.0, 0.0, B))
    theta = 0.3
    m0 = jnp.asarray(np.broadcast_to([math.sin(theta), 0.0, math.cos(theta)], grid.vector_shape), jnp.float32)
    f = GAMMA_LL * B / (2 * math.pi)
    E = round(periods / (f * DT))
    spf = E + 37  # the exposure is the end of a longer frame interval

    def in_plane(exposure_steps):
        sim = jax.jit(movie_simulator(grid, dt=DT, burn_in_steps=0, steps_per_frame=spf, num_frames=3,
                                      components="xyz", terms=("zeeman",), exposure_steps=exposure_steps))
        frames = np.asarray(sim(material, m0, jax.random.key(0)), np.float64)
        return np.hypot(frames[..., 0], frames[..., 1]).ravel(), frames[..., 2].ravel()

    sharp, mz_sharp = in_plane(0)
    averaged, mz_avg = in_plane(E)
    np.testing.assert_allclose(sharp, math.sin(theta), rtol=1e-4)  # undamped: the cone stays
    x = math.pi * f * E * DT
    expected = abs(math.sin(x) / x)
    ratio = averaged / sharp
    np.testing.assert_allclose(ratio, expected, atol=0.01 * max(expected, 0.1))
    if expected > 0.5:
        np.testing.assert_allclose(ratio, expected, rtol=0.01)
    np.testing.assert_allclose(mz_avg, mz_sharp, rtol=1e-5)  # m_z is constant: no attenuation


# ---------------------------------------------------------------------------------------------
# the instantaneous limit


def test_one_step_exposure_equals_the_instantaneous_frame(hot_film):
    grid, material, m0 = hot_film
    key = jax.random.key(3)
    for spf in (1, 5):
        base = movie_simulator(grid, dt=DT, burn_in_steps=4, steps_per_frame=spf, num_frames=6, components="xyz")
        one = movie_simulator(grid, dt=DT, burn_in_steps=4, steps_per_frame=spf, num_frames=6, components="xyz",
                              exposure_steps=1)
        np.testing.assert_array_equal(np.asarray(jax.jit(one)(material, m0, key)),
                                      np.asarray(jax.jit(base)(material, m0, key)))


def test_without_exposure_the_frames_are_the_plain_nested_scan(hot_film):
    """Exposure off is the program of before: frames equal, bit for bit, a hand-written scan of
    the solver's steps, whether reached directly, through a default MovieSpec or an instrument
    whose exposure is 0."""
    grid, material, m0 = hot_film
    key = jax.random.key(5)
    burn, spf, T = 7, 4, 5
    init_fn, step_fn = get_solver("heun")(effective_field(field_terms(grid)), DT, thermal=thermal(grid))

    @jax.jit
    def reference(material, m0, key):
        s = run_steps(step_fn, init_fn(m0, key), material, burn)

        def frame(s, _):
            s, _ = jax.lax.scan(lambda s, _: (step_fn(s, material), None), s, None, length=spf)
            return s, s.m[..., jnp.asarray([0, 2])]

        return jax.lax.scan(frame, s, None, length=T)[1]

    spec = MovieSpec(dt=DT, burn_in_steps=burn, steps_per_frame=spf, num_frames=T)
    assert spec.exposure == INSTANTANEOUS
    got = jax.jit(spec.simulator(grid))(material, m0, key)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(reference(material, m0, key)))

    plain = loads_config("[simulation]\ndt = 1e-13\nburn_in_s = 1e-12\nframe_interval_s = 1e-12\nnum_frames = 4")
    off = loads_config("[simulation]\ndt = 1e-13\nburn_in_s = 1e-12\nframe_interval_s = 1e-12\nnum_frames = 4\n"
                       "[instrument]\nexposure_s = 0.0")
    assert off.instrument.enabled
    assert assemble.movie_spec(off) == assemble.movie_spec(plain)  # same compiled simulator
    assert assemble.data_hash(off) == assemble.data_hash(plain)
    disabled = loads_config("[simulation]\ndt = 1e-13\nframe_interval_s = 1e-12\n"
                            "[instrument]\nenabled = false\nexposure_s = 5e-13")
    assert assemble.movie_spec(disabled).exposure == INSTANTANEOUS


# ---------------------------------------------------------------------------------------------
# the camera-rate limit


def test_camera_frames_are_the_brute_force_window_mean(hot_film):
    grid, material, m0 = hot_film
    key = jax.random.key(11)
    burn, W, T = 20, 50, 6
    camera = movie_simulator(grid, dt=DT, burn_in_steps=burn, steps_per_frame=10**10, num_frames=T,
                             components="xyz", camera_window_steps=W)
    frames = np.asarray(jax.jit(camera)(material, m0, key))
    assert frames.shape == (T, 1, 2, 2, 3)
    for k in range(1, T):
        np.testing.assert_array_equal(frames[k], frames[0])
    # brute force: every state of the window stored (one frame per step), then averaged
    every = movie_simulator(grid, dt=DT, burn_in_steps=burn, steps_per_frame=1, num_frames=W, components="xyz")
    sub = np.asarray(jax.jit(every)(material, m0, key), np.float64)
    np.testing.assert_allclose(frames[0], sub.mean(axis=0), atol=2e-6)
    assert np.std(sub, axis=0).max() > 1e-3  # the window did fluctuate: the mean is a real average
    norms = np.linalg.norm(frames[0], axis=-1)
    assert np.all(norms < 1.0 - 1e-5)  # averaging thermal fluctuations shortens the moment


def _scan_lengths(jaxpr) -> list[int]:
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            out.append(int(eqn.params["length"]))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            out += _scan_lengths(sub)
    return out


def test_camera_rate_config_with_millisecond_frames(hot_film):
    """A 1 ms frame interval at dt = 0.1 ps (10¹⁰ steps) is accepted at camera rate; the program
    runs burn-in + W steps, nothing of the frame interval, whatever the number of frames."""
    text = ("[grid]\nnx = 2\nny = 2\n[material]\ntemperature = 300.0\n"
            "[simulation]\ndt = 1e-13\nburn_in_s = 2e-12\nframe_interval_s = 1e-3\nnum_frames = {T}\n"
            "[instrument]\nexposure_s = 1e-3\ncamera_window_s = 5e-12\n")
    lengths = {}
    for T in (4, 40):
        config = loads_config(text.format(T=T))
        spec = assemble.movie_spec(config)
        assert spec.steps_per_frame == 10**10 and spec.exposure.mode == "camera" and spec.exposure.window_steps == 50
        np.testing.assert_allclose(np.diff(spec.frame_times()), 1e-3, rtol=1e-9)
        a = assemble.assemble(config)
        sim = a.simulator()
        key = jax.random.key(0)
        jaxpr = jax.make_jaxpr(sim)(a.background, a.m0, key)
        lengths[T] = sorted(_scan_lengths(jaxpr.jaxpr))
        frames = np.asarray(jax.jit(sim)(a.background, a.m0, key))
        assert frames.shape == (T, 1, 2, 2, 2) and np.all(frames == frames[:1])
    assert lengths[4] == lengths[40] and max(lengths[4]) <= 50, lengths
    instant = loads_config(text.format(T=4).replace("exposure_s = 1e-3", "exposure_s = 0.0"))
    assert assemble.data_hash(instant) != assemble.data_hash(loads_config(text.format(T=4)))


def test_config_exposure_errors_name_both_times():
    config = loads_config("[simulation]\ndt = 1e-13\nframe_interval_s = 1e-11\n[instrument]\nexposure_s = 2e-11")
    with pytest.raises(ExposureError, match=r"exposure_s = 2e-11 s.*simulation\.frame_interval_s = 1e-11 s"):
        assemble.movie_spec(config)


def test_exposure_mode_through_a_movie_spec(hot_film):
    """MovieSpec carries the plan to the simulator: the averaged frame is the mean of the last
    E per-step states of its interval (brute force, as for the camera)."""
    grid, material, m0 = hot_film
    key = jax.random.key(2)
    burn, spf, E, T = 3, 8, 5, 3
    plan = plan_exposure(DT, spf, E * DT)
    spec = MovieSpec(dt=DT, burn_in_steps=burn, steps_per_frame=spf, num_frames=T, components="xyz", exposure=plan)
    frames = np.asarray(jax.jit(spec.simulator(grid))(material, m0, key), np.float64)
    every = movie_simulator(grid, dt=DT, burn_in_steps=burn, steps_per_frame=1, num_frames=spf * T, components="xyz")
    sub = np.asarray(jax.jit(every)(material, m0, key), np.float64).reshape((T, spf) + frames.shape[1:])
    np.testing.assert_allclose(frames, sub[:, spf - E:].mean(axis=1), atol=1e-6)
    assert not np.allclose(frames, sub[:, -1], atol=1e-6)  # not merely the last state
