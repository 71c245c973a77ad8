"""The instrument: what a magnetic microscope records of a simulated film.

A solver gives unit-vector magnetisation on cells of a few nanometres; a microscope gives
detector counts on pixels. This module is the forward model between the two, as pure,
jittable, vmappable functions of the stored movie layout ``(..., T, C, ny, nx)``
(``jaxmag.layout``), every stage optional and in SI units:

1. **probe projection** ``s = m·k̂`` (XMCD: k̂ the X-ray beam; XMCD-PEEM at grazing angle θ has
   k̂ = (cos θ, 0, sin θ); polar Kerr and STXM at normal incidence ≈ m_z);
2. **point-spread function**, a Gaussian of full width at half maximum ``psf_fwhm_m``, with the
   film's edges: periodic images for a periodic film, no signal beyond the edge of an open one;
3. **detector pixels**: the area average of the blurred signal over pixels of ``pixel_size_m``
   (any size of at least one cell; pixels that do not fit the field of view are cropped), so
   the simulation keeps its physical cell size whatever the detector's;
4. **intensity and noise**: photons ~ Poisson(I0 (1 + c s)) with I0 the photons per pixel and
   frame at s = 0 and c the contrast (XMCD asymmetry), then ``gain · photons + offset`` plus
   Gaussian read noise, rounded and clipped to the detector's range ``[0, full_scale]``
   (the Poisson–Gaussian model of Foi et al., IEEE TIP 17, 1737 (2008)).

Stages 2 and 3 are linear and separable, so they are one pair of matrices (``optics_operators``:
``L_y = W_y K_y`` of shape ``(ny_pix, ny)``, ``L_x`` likewise) built once in float64 and applied
as one contraction; a frame of 64 × 64 cells costs two small matrix products.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.params import ParamError, require

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM = 2.3548 sigma for a Gaussian
_PSF_TRUNCATE = 6.0  # sigmas: the Gaussian beyond is below 1.6e-8 of its peak
_AXES = "xyz"
NORMAL_LIMIT_PHOTONS = 1000.0  # photons per pixel and frame above which shot noise is drawn in its normal limit


def probe_direction(spec: str | Sequence[float]) -> tuple[float, float, float]:
    """The probe's unit vector k̂ from ``"x"``, ``"y"``, ``"z"``, ``"kx,ky,kz"`` or a 3-sequence.

    ``"grazing:16"`` is XMCD-PEEM's beam at 16° to the film plane along x, (cos θ, 0, sin θ).
    """
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in _AXES:
            return tuple(float(a == text) for a in _AXES)  # type: ignore[return-value]
        if text.startswith("grazing:"):
            try:
                theta = math.radians(float(text.partition(":")[2]))
            except ValueError:
                raise ValueError(f"probe {spec!r}: grazing:ANGLE takes an angle in degrees, e.g. grazing:16") from None
            return (math.cos(theta), 0.0, math.sin(theta))
        parts = text.split(",")
        if len(parts) != 3:
            raise ValueError(f"probe {spec!r} is not x, y, z, grazing:DEGREES or kx,ky,kz")
        try:
            spec = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"probe {spec!r}: kx,ky,kz must be three numbers") from None
    k = np.asarray(spec, np.float64)
    norm = float(np.linalg.norm(k)) if k.shape == (3,) else 0.0
    if not (k.shape == (3,) and math.isfinite(norm) and norm > 0):
        raise ValueError(f"probe direction {spec!r} must be a non-zero finite 3-vector")
    return tuple(float(v) for v in k / norm)  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class Instrument:
    """What the microscope does to the film's movie: the ``[instrument]`` section of a config.

    Lengths in m, times in s, intensities in photons or detector units (ADU). Every stage is
    optional: ``psf_fwhm_m = 0`` no blur, ``pixel_size_m = 0`` one pixel per cell,
    ``photons_per_pixel = 0`` no detector (the recorded signal is then the blurred,
    pixel-averaged projection s in units of Ms, to which the Gaussian and speckle noise models
    apply), ``exposure_s = 0`` instantaneous frames. ``probe`` is ``x``, ``y``, ``z``,
    ``grazing:DEGREES`` or ``"kx,ky,kz"`` (``probe_direction``; a 3-sequence is accepted and
    written as ``"kx,ky,kz"``); ``direction`` is its unit vector.

    ``psf_image``: a user's PSF image (``jaxmag.io.psf``: odd sides, centred) whose pixel is
    ``psf_pixel_m`` (0: the simulation cell), resampled onto the cells and convolved as a 2-D kernel
    (``optics_operators``), instead of the Gaussian.

    Exposure (applied by the solver, ``jaxmag.exposure``): a frame is the time average of m over
    its last ``exposure_s``; an exposure longer than ``camera_window_s`` is a camera-rate frame
    (ms-s), the thermal average over a simulated window of ``camera_window_s``, every frame the
    same film plus fresh detector noise. ``enabled``: a config's ``[instrument]`` section is on
    when present (false: the movies are the magnetisation itself, the default without the section).
    """

    enabled: bool = True
    probe: str = "z"
    psf_fwhm_m: float = 0.0  # 0: no blur
    psf_image: str = ""  # a user's PSF image (.npy/.tif, jaxmag.io.psf) instead of the Gaussian; "": none
    psf_pixel_m: float = 0.0  # the PSF image's pixel in m; 0: the simulation cell
    pixel_size_m: float = 0.0  # 0: one pixel per cell
    photons_per_pixel: float = 0.0  # I0: photons per pixel and frame at s = 0; 0: no detector
    contrast: float = 0.1  # c in I = I0 (1 + c s); XMCD asymmetries are a few % to ~20 %
    gain: float = 1.0  # detector units per photon
    offset: float = 0.0  # detector units added to every pixel (dark level)
    read_noise: float = 0.0  # detector units, rms of the Gaussian read noise
    full_scale: float = 65535.0  # detector units: the saturation level (uint16 cameras)
    exposure_s: float = 0.0  # 0: instantaneous frames
    camera_window_s: float = 1e-9  # the longest window simulated per frame (camera-rate limit)

    def __post_init__(self) -> None:
        spec = self.probe
        if not isinstance(spec, str):
            spec = ",".join(f"{v:.12g}" for v in probe_direction(spec))
        try:
            probe_direction(spec)
        except ValueError as exc:
            raise ParamError("probe", str(exc).replace(f"probe {spec!r} ", "")) from None
        object.__setattr__(self, "probe", spec.strip().lower())
        finite = lambda v: isinstance(v, (int, float)) and math.isfinite(v)
        require(finite(self.psf_fwhm_m) and self.psf_fwhm_m >= 0, "psf_fwhm_m", "must be >= 0 (m; 0: no blur)")
        require(not (self.psf_image and self.psf_fwhm_m), "psf_image", "replaces the Gaussian PSF: set psf_fwhm_m = 0")
        require(finite(self.psf_pixel_m) and self.psf_pixel_m >= 0, "psf_pixel_m", "must be >= 0 (m; 0: the cell)")
        require(finite(self.pixel_size_m) and self.pixel_size_m >= 0, "pixel_size_m",
                "must be >= 0 (m; 0: one pixel per cell)")
        require(finite(self.photons_per_pixel) and self.photons_per_pixel >= 0, "photons_per_pixel",
                "must be >= 0 (photons per pixel and frame; 0: no detector)")
        require(finite(self.exposure_s) and self.exposure_s >= 0, "exposure_s", "must be >= 0 (s; 0: instantaneous frames)")
        require(finite(self.camera_window_s) and self.camera_window_s > 0, "camera_window_s", "must be positive (s)")
        if self.records_counts:
            require(finite(self.contrast) and 0 < abs(self.contrast) < 1, "contrast",
                    "must lie in (-1, 1) without 0: I0 (1 + c s) must stay positive for |s| <= 1")
            require(finite(self.gain) and self.gain > 0, "gain", "must be positive (detector units per photon)")
            require(finite(self.offset) and self.offset >= 0, "offset", "must be >= 0 (detector units)")
            require(finite(self.read_noise) and self.read_noise >= 0, "read_noise", "must be >= 0 (detector units)")
            require(finite(self.full_scale) and self.full_scale > self.offset, "full_scale",
                    "must exceed the offset (detector units)")

    @property
    def direction(self) -> tuple[float, float, float]:
        """The probe's unit vector k̂."""
        return probe_direction(self.probe)

    @property
    def records_counts(self) -> bool:
        return self.photons_per_pixel > 0

    @property
    def pixel(self) -> float | None:
        """The detector pixel in m, or None for one pixel per cell."""
        return self.pixel_size_m or None

    @property
    def camera_rate(self) -> bool:
        """Frames exposed longer than the simulated window: the camera-rate limit (class docstring)."""
        return self.exposure_s > self.camera_window_s


# ---------------------------------------------------------------------------------------------
# stage 1: projection


def project(movies: Any, components: str, probe: Sequence[float]) -> Any:
    """``s = m·k̂`` of stored movies ``(..., T, C, ny, nx)`` whose C axis holds ``components``.

    A probe with a component the movie lacks is refused (that projection needs it).
    """
    if movies.shape[-3] != len(components):
        raise ValueError(f"the movie's component axis has {movies.shape[-3]} entries, components are {components!r}")
    missing = [a for a, k in zip(_AXES, probe) if k != 0 and a not in components]
    if missing:
        raise ValueError(f"the probe {tuple(round(k, 4) for k in probe)} needs m_{', m_'.join(missing)}, "
                         f"which the movie (components {components!r}) does not hold")
    weights = np.array([probe[_AXES.index(c)] for c in components], np.float32)
    return (movies * weights.reshape(-1, 1, 1)).sum(axis=-3)


# ---------------------------------------------------------------------------------------------
# stages 2 and 3: the linear optics as separable matrices


def psf_matrix(n: int, cell_m: float, fwhm_m: float, periodic: bool) -> np.ndarray:
    """``(n, n)`` float64 blur along one axis: a Gaussian of ``fwhm_m`` sampled at cell centres.

    Each column is normalised to sum 1 over the infinite (or periodic) line, so a periodic film
    keeps its mean; on an open film the weight that falls beyond an edge is lost (no signal
    there), as a microscope sees a film's edge.
    """
    if fwhm_m == 0:
        return np.eye(n)
    sigma = fwhm_m / FWHM_PER_SIGMA / cell_m  # cells
    if periodic and sigma > n / 2:
        raise ValueError(f"a PSF of FWHM {fwhm_m:.3g} m is wider than the frame ({n} cells of {cell_m:.3g} m)")
    reach = int(math.ceil(_PSF_TRUNCATE * sigma))
    offsets = np.arange(-reach, reach + 1)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    taps /= taps.sum()
    out = np.zeros((n, n))
    cols = np.arange(n)
    for d, w in zip(offsets, taps):
        rows = cols + d
        if periodic:
            np.add.at(out, (rows % n, cols), w)
        else:
            inside = (rows >= 0) & (rows < n)
            out[rows[inside], cols[inside]] += w
    return out


def pixel_matrix(n: int, cell_m: float, pixel_m: float | None) -> np.ndarray:
    """``(n_pix, n)`` float64 area average of cells onto detector pixels along one axis.

    Entry (p, i) is the length of cell i inside pixel p over the pixel's length, so each row
    sums to 1 and a uniform signal stays uniform. ``n_pix = floor(n cell / pixel)``: a partial
    pixel at the far edge is cropped. Pixels smaller than a cell are refused: the cell is the
    resolution of the physics.
    """
    if pixel_m is None:
        return np.eye(n)
    ratio = pixel_m / cell_m
    if ratio < 1 - 1e-9:
        raise ValueError(f"pixels of {pixel_m:.3g} m are smaller than the simulation cells of {cell_m:.3g} m")
    n_pix = int(math.floor(n / ratio + 1e-9))
    if n_pix < 1:
        raise ValueError(f"a pixel of {pixel_m:.3g} m is larger than the frame ({n} cells of {cell_m:.3g} m)")
    edges = np.arange(n_pix + 1) * ratio  # pixel edges in cell units
    lo = np.clip(edges[:-1, None], np.arange(n)[None, :], np.arange(n)[None, :] + 1)
    hi = np.clip(edges[1:, None], np.arange(n)[None, :], np.arange(n)[None, :] + 1)
    return (hi - lo) / ratio


def psf_kernel(instrument: Instrument, cell_m: tuple[float, float]) -> np.ndarray | None:
    """The user's PSF image resampled onto cells of ``cell_m`` (dy, dx) m, odd sides, sum 1; None
    without ``psf_image``."""
    if not instrument.psf_image:
        return None
    from scipy import ndimage

    from jaxmag.io.psf import read_psf_image

    image = read_psf_image(instrument.psf_image)
    pixel = instrument.psf_pixel_m
    if pixel and any(abs(pixel / d - 1) > 1e-9 for d in cell_m):
        image = ndimage.zoom(image, (pixel / cell_m[0], pixel / cell_m[1]), order=1)
        # odd sides around the same centre: pad one row/column where the zoom made them even
        image = np.pad(image, [(0, 1 - n % 2) for n in image.shape])
        image = np.clip(image, 0.0, None)
    return image / image.sum()


def optics_operators(shape: tuple[int, int], cell_m: tuple[float, float], instrument: Instrument,
                     periodic: bool) -> tuple:
    """``(L_y (ny_pix, ny), L_x (nx_pix, nx))`` float64: blur then pixel average, per axis.

    ``shape`` is ``(ny, nx)`` cells and ``cell_m`` ``(dy, dx)`` in m. With a PSF image
    (``psf_kernel``) the blur is not separable: the result is ``(W_y, W_x, kernel)``, the pixel
    averages and the kernel that ``apply_optics`` convolves first (wrapped on a periodic film,
    zero beyond an open one's edge).
    """
    kernel = psf_kernel(instrument, cell_m)
    if kernel is not None and any(k > n for k, n in zip(kernel.shape, shape)):
        raise ValueError(f"a PSF image of {kernel.shape[0]} x {kernel.shape[1]} cells is wider than the frame "
                         f"({shape[0]} x {shape[1]} cells)")
    out = []
    for n, d in zip(shape, cell_m):
        out.append(pixel_matrix(n, d, instrument.pixel) @ psf_matrix(n, d, instrument.psf_fwhm_m, periodic))
    if kernel is None:
        return out[0], out[1]
    return out[0], out[1], _kernel_operator(kernel, shape, periodic)


def _kernel_operator(kernel: np.ndarray, shape: tuple[int, int], periodic: bool) -> np.ndarray:
    """``(spectrum, size)``: the FFT (``rfft2``, complex128) of the kernel placed with its centre at the
    origin of a frame of ``size``: ``(ny, nx)`` on a periodic film, ``(ny + ky - 1, nx + kx - 1)`` on an
    open one (the zeros beyond the edge, no wrap-around)."""
    ky, kx = kernel.shape
    size = shape if periodic else (shape[0] + ky - 1, shape[1] + kx - 1)
    placed = np.zeros(size)
    placed[:ky, :kx] = kernel
    placed = np.roll(placed, (-(ky // 2), -(kx // 2)), axis=(0, 1))  # centre at the origin
    return np.fft.rfft2(placed), size


def apply_optics(signal: Any, operators: tuple) -> Any:
    """``(..., ny, nx) -> (..., ny_pix, nx_pix)``: ``L_y s L_xᵀ`` for every frame (after the PSF
    image's convolution where ``operators`` holds its kernel, ``optics_operators``)."""
    dtype = signal.dtype
    if len(operators) == 3:
        ly, lx, (spectrum, size) = operators
        ny, nx = signal.shape[-2:]
        blurred = jnp.fft.irfft2(jnp.fft.rfft2(signal, s=size) * jnp.asarray(spectrum), s=size)[..., :ny, :nx]
        signal = blurred.astype(dtype)
    else:
        ly, lx = operators
    return jnp.einsum("Yy,...yx,Xx->...YX", jnp.asarray(ly, dtype), signal, jnp.asarray(lx, dtype))


# ---------------------------------------------------------------------------------------------
# stage 4: intensity and detector noise


def expected_counts(signal: Any, instrument: Instrument) -> Any:
    """Mean detector reading ``gain · I0 (1 + c s) + offset`` (detector units)."""
    i = instrument
    return i.gain * i.photons_per_pixel * (1.0 + i.contrast * signal) + i.offset


def detector_counts(key: jax.Array, signal: Any, instrument: Instrument) -> jax.Array:
    """Detector frames of a signal s: Poisson photons, gain, offset, read noise, rounding, clipping.

    Returns float32 detector units (integers), the same shape as ``signal``. Where every pixel
    collects at least ``NORMAL_LIMIT_PHOTONS`` photons (I0 (1 − |c|), decided when traced), the
    Poisson law is drawn as its normal limit, shot and read noise in one draw of variance
    ``gain² λ + read_noise²``: exact in mean and variance, its skewness 1/√λ ≤ 0.03 dropped, and
    about 20 times faster on a CPU than JAX's rejection sampler, which loops until the slowest
    element of the array is accepted. Below, the photons are drawn exactly.
    """
    i = instrument
    k_shot, k_read = jax.random.split(key)
    rate = i.photons_per_pixel * (1.0 + i.contrast * jnp.asarray(signal, jnp.float32))
    if i.photons_per_pixel * (1.0 - abs(i.contrast)) >= NORMAL_LIMIT_PHOTONS:
        spread = jnp.sqrt(i.gain**2 * rate + i.read_noise**2)
        adu = i.gain * rate + i.offset + spread * jax.random.normal(k_shot, rate.shape, jnp.float32)
    else:
        photons = jax.random.poisson(k_shot, rate, rate.shape).astype(jnp.float32)
        adu = i.gain * photons + i.offset
        if i.read_noise > 0:
            adu = adu + i.read_noise * jax.random.normal(k_read, rate.shape, jnp.float32)
    return jnp.clip(jnp.round(adu), 0.0, i.full_scale)


def record(key: jax.Array, movies: Any, components: str, instrument: Instrument,
           operators: tuple[Any, Any]) -> jax.Array:
    """What the instrument records of stored movies ``(..., T, C, ny, nx)``: ``(..., T, ny_pix, nx_pix)``.

    ``operators`` comes from ``optics_operators`` (built once per grid and instrument, outside
    ``jit``). Without ``photons_per_pixel`` the result is the optical signal in units of Ms.
    """
    signal = apply_optics(project(movies, components, instrument.direction), operators)
    if not instrument.records_counts:
        return signal
    return detector_counts(key, signal, instrument)
