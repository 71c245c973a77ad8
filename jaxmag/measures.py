"""Per-pixel temporal measures of magnetisation movies: mean, standard deviation, latent entropy.

Contract
--------
A movie is an array shaped ``(..., T, ny, nx)``: any leading batch axes (runs, components), then
time, then the two in-plane axes. Every measure reduces the time axis and returns a map shaped
``(..., ny, nx)`` in the movie's units (mean, std) or in nats (latent entropy). Half-precision
and integer movies are computed in float32; float64 movies stay float64 (with ``jax_enable_x64``).

Latent entropy follows ``docs/measures.md`` (jaxmag's own definition, after Horenko, Rodrigues,
O'Kane and Everschor-Sitte, CAMCoS 16(2), 2021): each pixel's series is binned into K states
``s[t]``, the transitions ``s[t] -> s[t+lag]`` are counted, ``N[i, j] = #{t: s[t+lag]=i, s[t]=j}``,
and the result is the plug-in conditional entropy

    S = - sum_ij (N[i, j] / N) ln(N[i, j] / N_j),   N_j = sum_i N[i, j],   N = T - lag,

i.e. the entropy rate of the pixel's empirical Markov chain (0 <= S <= ln K).

Inputs are checked at the boundary (``check_movie``, ``check_options``), never inside jit: a
non-finite value, ``T < 2``, ``K < 2`` or ``lag >= T`` raise ``ValueError``. When called on
traced values (inside a user's ``jit``) the value check for NaN/inf is skipped.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.params import ParamError, require

BINNINGS = ("minmax", "fixed", "quantile")
WEIGHTINGS = ("frequency", "uniform")

# Transition counts are accumulated in packed 4-bit fields of uint32 words: eight codes per word,
# so one step costs one shift and one add per word instead of one compare and one add per code.
# A 4-bit field holds at most 15, so the packed words are flushed into float counts every
# _BLOCK steps.
_FIELD_BITS = 4
_FIELDS_PER_WORD = 32 // _FIELD_BITS
_BLOCK = 2**_FIELD_BITS - 1


# --------------------------------------------------------------------------------------------
# Boundary checks
# --------------------------------------------------------------------------------------------
def check_movie(movie: Any, *, name: str = "movie") -> jax.Array:
    """Return ``movie`` as a JAX array after checking shape ``(..., T>=2, ny, nx)`` and finiteness.

    Raises ``ValueError`` naming how many values are NaN/inf and the index of the first one.
    Traced inputs (inside ``jit``) get the shape check only.
    """
    x = movie if isinstance(movie, jax.Array) else jnp.asarray(np.asarray(movie))
    if x.ndim < 3:
        raise ValueError(f"{name} must have shape (..., T, ny, nx), got shape {tuple(x.shape)}")
    if x.shape[-3] < 2:
        raise ValueError(f"{name} needs at least 2 frames (T >= 2), got T = {x.shape[-3]}")
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if isinstance(x, jax.core.Tracer) or not jnp.issubdtype(x.dtype, jnp.inexact):
        return x
    count = int(_count_nonfinite(x))
    if count:
        first = np.unravel_index(int(jnp.argmax(~jnp.isfinite(x).ravel())), x.shape)
        raise ValueError(
            f"{name} contains {count} non-finite value(s) (NaN or inf); first at index "
            f"{tuple(int(i) for i in first)} of shape {tuple(x.shape)} (layout (..., T, ny, nx))"
        )
    return x


@jax.jit
def _count_nonfinite(x: jax.Array) -> jax.Array:
    # One fused pass; the boolean mask is never materialised.
    return jnp.sum(~jnp.isfinite(x), dtype=jnp.int32)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


@dataclasses.dataclass(frozen=True, kw_only=True)
class MeasureOptions:
    """Options of the measures, hashable (a static argument of the jitted kernels), given by name.

    ``num_states`` K, ``binning``, ``lag``, ``fixed_range`` (for ``binning="fixed"``),
    ``weighting`` and ``normalize`` belong to the latent entropy, ``ddof`` to the std; see
    ``latent_entropy`` and ``temporal_std``. Checked on construction (``ParamError``, a
    ``ValueError`` naming the field); ``check(num_frames, measures)`` adds the checks that need T.
    """

    num_states: int = 4
    binning: Literal["minmax", "fixed", "quantile"] = "minmax"
    lag: int = 1
    fixed_range: tuple[float, float] = (-1.0, 1.0)
    weighting: Literal["frequency", "uniform"] = "frequency"
    normalize: bool = False
    ddof: int = 0

    def __post_init__(self) -> None:
        require(_is_int(self.num_states) and self.num_states >= 2, "num_states",
                f"(K) must be an integer >= 2, got {self.num_states!r}")
        require(self.binning in BINNINGS, "binning", f"must be one of {', '.join(BINNINGS)}, got {self.binning!r}")
        require(self.weighting in WEIGHTINGS, "weighting",
                f"must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        require(_is_int(self.lag) and self.lag >= 1, "lag", f"must be an integer >= 1, got {self.lag!r}")
        try:
            lo, hi = (float(v) for v in self.fixed_range)
        except (TypeError, ValueError):
            raise ParamError("fixed_range", f"must be two numbers, got {self.fixed_range!r}") from None
        require(math.isfinite(lo) and math.isfinite(hi) and lo < hi, "fixed_range",
                f"must be two finite increasing numbers, got {tuple(self.fixed_range)!r}")
        require(_is_int(self.ddof) and self.ddof >= 0, "ddof", f"must be an integer >= 0, got {self.ddof!r}")
        # canonical Python scalars, so equal options hash equal (one compiled kernel)
        for name, value in (("num_states", int(self.num_states)), ("lag", int(self.lag)), ("ddof", int(self.ddof)),
                            ("fixed_range", (lo, hi)), ("normalize", bool(self.normalize))):
            object.__setattr__(self, name, value)

    def check(self, num_frames: int, measures: Sequence[str] = ()) -> None:
        """Raise ``ValueError`` if ``measures`` are unknown or the options do not fit ``num_frames`` T."""
        for m in measures:
            if m not in MEASURE_FUNCTIONS:
                raise ValueError(f"unknown measure {m!r}: expected one of {', '.join(MEASURE_FUNCTIONS)}")
        if "latent_entropy" in measures and self.lag >= num_frames:
            raise ValueError(f"lag must be smaller than the number of frames T = {num_frames}, got lag = {self.lag}")
        if "std" in measures and self.ddof >= num_frames:
            raise ValueError(f"ddof must be smaller than the number of frames T = {num_frames}, got ddof = {self.ddof}")

    def kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of ``compute_measures`` / ``latent_entropy``."""
        return dataclasses.asdict(self)


def check_options(*, num_frames: int, measures: Sequence[str] = ("mean", "std", "latent_entropy"),
                  **options: Any) -> MeasureOptions:
    """Raise ``ValueError`` naming the first invalid measure option for a movie of ``num_frames``;
    returns the checked ``MeasureOptions``."""
    for m in measures:  # an unknown measure is named before any option
        if m not in MEASURE_FUNCTIONS:
            raise ValueError(f"unknown measure {m!r}: expected one of {', '.join(MEASURE_FUNCTIONS)}")
    opts = MeasureOptions(**options)
    opts.check(num_frames, measures)
    return opts


def working_float(x: jax.Array) -> jax.Array:
    """``x`` in float32 unless it is float32 or float64 already: half precision loses counts and
    means, and integers have no NaN."""
    if x.dtype in (jnp.float32, jnp.float64):
        return x
    return x.astype(jnp.float32)


# --------------------------------------------------------------------------------------------
# Mean and standard deviation
# --------------------------------------------------------------------------------------------
def _mean(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=-3)


def _std(x: jax.Array, ddof: int) -> jax.Array:
    # Two passes (mean, then squared deviations) for accuracy; XLA fuses them into one kernel.
    dev = x - jnp.mean(x, axis=-3, keepdims=True)
    return jnp.sqrt(jnp.sum(dev * dev, axis=-3) / (x.shape[-3] - ddof))


def temporal_mean(movie: Any) -> jax.Array:
    """Mean over time: ``(..., T, ny, nx) -> (..., ny, nx)``, same units as the movie."""
    x = working_float(check_movie(movie))
    return _jit_mean(x)


def temporal_std(movie: Any, *, ddof: int = 0) -> jax.Array:
    """Standard deviation over time (``ddof=0``: population std): ``(..., T, ny, nx) -> (..., ny, nx)``."""
    x = working_float(check_movie(movie))
    check_options(num_frames=x.shape[-3], measures=("std",), ddof=ddof)
    return _jit_std(x, int(ddof))


_jit_mean = jax.jit(_mean)
_jit_std = jax.jit(_std, static_argnums=1)


# --------------------------------------------------------------------------------------------
# Latent entropy
# --------------------------------------------------------------------------------------------
def _states(x: jax.Array, num_states: int, binning: str, fixed_range: tuple[float, float]) -> jax.Array:
    """Per-pixel binning of ``x`` (B, T, P) into states ``(B, T, P)`` uint32 in [0, K).

    Bins come from each pixel's series (min/max, or sorted quantile edges) or the fixed range;
    every frame is binned in one vectorised pass.
    """
    K = num_states
    if binning == "quantile":
        T = x.shape[1]
        # Edge k is the order statistic of rank floor(k T / K): without ties every state holds
        # floor/ceil(T / K) frames; ties at an edge go up, so a constant series is one state.
        ranks = [(k * T) // K for k in range(1, K)]
        edges = jnp.sort(x, axis=1)[:, jnp.array(ranks)]  # (B, K-1, P)
        return jnp.sum(x[:, :, None, :] >= edges[:, None], axis=2, dtype=jnp.uint32)
    if binning == "minmax":
        lo = jnp.min(x, axis=1, keepdims=True)
        span = jnp.max(x, axis=1, keepdims=True) - lo
        # A constant series (span 0) has x - lo = 0: all state 0.
        span = jnp.where(span > 0, span, 1)
    else:  # fixed
        a, b = fixed_range
        lo, span = jnp.asarray(a, x.dtype), jnp.asarray(b - a, x.dtype)
    # floor((x - lo) / span * K), in this order, as the definition reads (a reciprocal multiply
    # would move a few values that sit within one ulp of a bin edge). Clipping closes the last
    # bin on the right (x = max -> K-1) and clips fixed-range outliers.
    return jnp.clip(jnp.floor((x - lo) / span * K), 0, K - 1).astype(jnp.uint32)


def _code_dtype(num_states: int):
    """The narrowest unsigned type whose largest value, as a padding code, shifts past every
    packed word (``code * _FIELD_BITS >= 32 * num_words``) and exceeds every real code."""
    num_words = -(-num_states * num_states // _FIELDS_PER_WORD)
    for dtype in (jnp.uint8, jnp.uint16):
        top = int(jnp.iinfo(dtype).max)
        if top * _FIELD_BITS >= 32 * num_words and top >= num_states * num_states:
            return dtype
    return jnp.uint32


def _pair_counts(states: jax.Array, lag: int, num_states: int) -> jax.Array:
    """Transition counts ``(B, K*K, P)`` float32 with code ``s[t+lag] * K + s[t]``.

    The codes of all frames are computed at once, narrow (``_code_dtype``: a quarter of the
    state movie's bytes for K <= 15, so a block of them stays in cache), and padded to whole
    blocks with a code that shifts past every word. Each step then adds ``1 << 4*(code mod 8)``
    to packed word ``code // 8``; shifts of 32 or more (other words, padding) give 0 in XLA, so
    no compare or select is needed. Blocks of ``_BLOCK`` steps fit the 4-bit fields.
    """
    K = num_states
    B, T, P = states.shape
    n = T - lag
    num_codes = K * K
    num_words = -(-num_codes // _FIELDS_PER_WORD)
    num_blocks = -(-n // _BLOCK)
    dtype = _code_dtype(K)
    codes = (states[:, lag:] * K + states[:, :n]).astype(dtype)
    codes = jnp.pad(codes, ((0, 0), (0, num_blocks * _BLOCK - n), (0, 0)), constant_values=jnp.iinfo(dtype).max)

    def block(b, counts):
        block_codes = jax.lax.dynamic_slice_in_dim(codes, b * _BLOCK, _BLOCK, axis=1)

        def step(j, words):
            shift = jax.lax.dynamic_index_in_dim(block_codes, j, axis=1, keepdims=False).astype(jnp.uint32) * _FIELD_BITS
            return tuple(w + jnp.left_shift(jnp.uint32(1), shift - jnp.uint32(32 * g)) for g, w in enumerate(words))

        words = jax.lax.fori_loop(0, _BLOCK, step, tuple(jnp.zeros((B, P), jnp.uint32) for _ in range(num_words)))
        fields = [
            (words[c // _FIELDS_PER_WORD] >> (_FIELD_BITS * (c % _FIELDS_PER_WORD))) & _BLOCK
            for c in range(num_codes)
        ]
        return counts + jnp.stack(fields, axis=1).astype(jnp.float32)

    return jax.lax.fori_loop(0, num_blocks, block, jnp.zeros((B, num_codes, P), jnp.float32))


def _entropy_from_counts(counts: jax.Array, weighting: str, normalize: bool) -> jax.Array:
    """Latent entropy (nats) from counts ``(..., K, K, P)`` indexed ``[next i, current j]``."""
    K = counts.shape[-2]
    col = jnp.sum(counts, axis=-3, keepdims=True)  # N_j
    visited = col > 0
    ratio = jnp.where(visited, counts / jnp.where(visited, col, 1), 1)  # Lambda[i, j]
    # xlogy gives 0 ln 0 = 0; ratio <= 1 so every term is <= 0 and S >= 0 exactly.
    plogp = jax.scipy.special.xlogy(counts, ratio)
    if weighting == "frequency":
        s = -jnp.sum(plogp, axis=(-3, -2)) / jnp.sum(col, axis=(-3, -2))
    else:  # uniform over visited columns
        h_col = -jnp.sum(plogp, axis=-3) / jnp.where(visited[..., 0, :, :], col[..., 0, :, :], 1)
        s = jnp.sum(h_col, axis=-2) / jnp.sum(visited[..., 0, :, :], axis=-2)
    return s / math.log(K) if normalize else s


def _flat_counts(x, num_states, binning, lag, fixed_range) -> jax.Array:
    """Transition counts of ``x (..., T, ny, nx)`` as ``(B, K, K, ny * nx)``, B the leading axes flattened."""
    T, ny, nx = x.shape[-3:]
    flat = x.reshape((-1, T, ny * nx))
    counts = _pair_counts(_states(flat, num_states, binning, fixed_range), lag, num_states)
    return counts.reshape(flat.shape[0], num_states, num_states, ny * nx)


def _latent_entropy(x, num_states, binning, lag, fixed_range, weighting, normalize):
    s = _entropy_from_counts(_flat_counts(x, num_states, binning, lag, fixed_range), weighting, normalize)
    return s.reshape(x.shape[:-3] + x.shape[-2:]).astype(x.dtype)


_OPTION_NAMES = ("num_states", "binning", "lag", "fixed_range", "weighting", "normalize")


def transition_counts(
    movie: Any,
    *,
    num_states: int = 4,
    binning: str = "minmax",
    lag: int = 1,
    fixed_range: tuple[float, float] = (-1.0, 1.0),
) -> jax.Array:
    """Counts ``N[i, j] = #{t: s[t+lag] = i, s[t] = j}``: ``(..., T, ny, nx) -> (..., K, K, ny, nx)`` float32.

    The relation matrix of the definition is ``N / N.sum(axis=-4, keepdims=True)`` over visited j.
    """
    x = working_float(check_movie(movie))
    check_options(num_frames=x.shape[-3], measures=("latent_entropy",), num_states=num_states,
                  binning=binning, lag=lag, fixed_range=fixed_range)
    return _jit_counts(x, num_states, binning, lag, tuple(map(float, fixed_range)))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _jit_counts(x, num_states, binning, lag, fixed_range):
    counts = _flat_counts(x, num_states, binning, lag, fixed_range)
    return counts.reshape(x.shape[:-3] + (num_states, num_states) + x.shape[-2:])


def latent_entropy(
    movie: Any,
    *,
    num_states: int = 4,
    binning: str = "minmax",
    lag: int = 1,
    fixed_range: tuple[float, float] = (-1.0, 1.0),
    weighting: str = "frequency",
    normalize: bool = False,
) -> jax.Array:
    """Latent entropy H(s[t+lag] | s[t]) in nats (or / ln K when ``normalize``): ``(..., T, ny, nx) -> (..., ny, nx)``.

    ``binning``: ``minmax`` (equal width between each pixel's min and max), ``fixed`` (equal width
    on ``fixed_range``, values outside clipped) or ``quantile`` (per-pixel equal-count bins).
    ``weighting``: ``frequency`` (columns weighted by how often the state occurs) or ``uniform``
    (plain mean over visited states).
    """
    return compute_measures(movie, measures=("latent_entropy",), num_states=num_states, binning=binning,
                            lag=lag, fixed_range=fixed_range, weighting=weighting,
                            normalize=normalize)["latent_entropy"]


# --------------------------------------------------------------------------------------------
# The registry: a measure is a function (x (..., T, ny, nx), options) -> (..., ny, nx)
# --------------------------------------------------------------------------------------------
MeasureFn = Callable[[jax.Array, MeasureOptions], jax.Array]

MEASURE_FUNCTIONS: dict[str, MeasureFn] = {
    "mean": lambda x, o: _mean(x),
    "std": lambda x, o: _std(x, o.ddof),
    "latent_entropy": lambda x, o: _latent_entropy(x, o.num_states, o.binning, o.lag, o.fixed_range, o.weighting,
                                                   o.normalize),
}
MEASURES = tuple(MEASURE_FUNCTIONS)
"""The built-in measures, the default set a job computes; checks read ``MEASURE_FUNCTIONS`` itself,
so a measure registered later is accepted wherever it is named."""


# --------------------------------------------------------------------------------------------
# All measures in one call
# --------------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("measures", "options"))
def measure_maps(x: jax.Array, measures: tuple[str, ...] = MEASURES, *,
                 options: MeasureOptions = MeasureOptions()) -> dict[str, jax.Array]:
    """Jitted, unchecked core: ``x (..., T, ny, nx)`` float32/float64 -> ``{measure: (..., ny, nx)}``.

    ``measures`` and ``options`` are static (hashable); compose it with vmap/jit.
    """
    return {name: MEASURE_FUNCTIONS[name](x, options) for name in measures}


@functools.partial(jax.jit, static_argnames=("measures", "ddof") + _OPTION_NAMES)
def measures_kernel(
    x: jax.Array,
    *,
    measures: tuple[str, ...] = MEASURES,
    num_states: int = 4,
    binning: str = "minmax",
    lag: int = 1,
    fixed_range: tuple[float, float] = (-1.0, 1.0),
    weighting: str = "frequency",
    normalize: bool = False,
    ddof: int = 0,
) -> dict[str, jax.Array]:
    """``measure_maps`` with the options as keywords (all static)."""
    options = MeasureOptions(num_states=num_states, binning=binning, lag=lag, fixed_range=fixed_range,
                             weighting=weighting, normalize=normalize, ddof=ddof)
    return measure_maps(x, tuple(measures), options=options)


def compute_measures(
    movie: Any,
    *,
    measures: Sequence[str] = MEASURES,
    options: MeasureOptions | None = None,
    **kwargs: Any,
) -> dict[str, jax.Array]:
    """Temporal measures of a movie ``(..., T, ny, nx)`` in one jitted call: ``{name: (..., ny, nx)}``.

    ``measures`` is any subset of ``MEASURES``; mean and std are in the movie's units (std with
    ``ddof``), latent entropy in nats (see ``latent_entropy``). The options come from
    ``options`` or, one by one, as keywords (``num_states=5``); not both.
    """
    x = working_float(check_movie(movie))
    measures = tuple(dict.fromkeys(measures))
    if options is not None and kwargs:
        raise TypeError("pass either options=MeasureOptions(...) or option keywords, not both")
    options = options if options is not None else check_options(num_frames=x.shape[-3], measures=measures, **kwargs)
    options.check(x.shape[-3], measures)
    return measure_maps(x, measures, options=options)
