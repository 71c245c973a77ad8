"""What every jaxmag figure of a map shares: a nanometre scale bar, a colour bar that names its
quantity and unit, a mask-against-truth key, and sizes a person reads without zooming.

* ``style()``: the rc parameters (fonts of at least 9 pt) to draw under
  (``with matplotlib.rc_context(style()): ...``); ``MAP_INCHES`` per map column and ``DPI``
  (4 in at 120 dpi: a 64-cell film gets about 7 screen pixels per cell, and a 9 pt label stays
  legible beside it).
* ``add_scale_bar(ax, pixel_size_m, nx, ny)``: a bar of a round length (1, 2 or 5 × 10^k m) near a
  fifth of the image width, labelled in nm or µm, white on a translucent black box so it reads
  on any colour map.
* ``add_colour_bar(fig, image, ax, label)``: a colour bar beside ``ax``, labelled
  ``"quantity (unit)"``.
* ``channel_label("std:z")``: ``"temporal std of m_z (M_z/M_s)"`` for an input channel
  ``MEASURE:COMPONENT``; ``PROBABILITY_LABEL`` for the U-Net's output.
* ``comparison_rgb(prediction, truth)`` and ``add_comparison_key(ax)``: one map of hits, misses
  and false alarms (Okabe–Ito colours, distinguishable with colour-blindness), with its key.
* ``map_figure(panels, ny, nx)`` and ``map_panel(fig, ax, image, label=..., pixel_size_m=...)``:
  maps side by side, each with its colour bar, an optional mask outline and a scale bar.

matplotlib is imported inside the functions: nothing else in the library needs it.
"""
from __future__ import annotations

import math

import numpy as np

MAP_INCHES = 4.0  # per map column, colour bar included
DPI = 120
FONT_PT = 10
SMALL_PT = 9  # ticks, legends, scale-bar labels: never smaller

PROBABILITY_LABEL = "defect probability (unitless)"

# Measures whose label says more than their name; any other measure reads "NAME of m_c" in the
# movie's units (the contract of jaxmag.measures: measures keep the movie's units unless stated).
_MEASURE_QUANTITY = {"mean": "temporal mean", "std": "temporal std", "latent_entropy": "latent entropy"}
_MEASURE_UNIT = {"latent_entropy": "nats"}

# Okabe & Ito (2008) colours: hit, missed, false alarm; background dark grey
COMPARISON = (("hit (defect found)", "#F0E442"), ("missed defect", "#0072B2"),
              ("false alarm", "#D55E00"), ("background", "#3A3A3A"))


def measure_name(measure: str) -> str:
    """A measure in words: ``"std"`` -> ``"temporal std"`` (any other name with spaces for underscores)."""
    return _MEASURE_QUANTITY.get(measure, measure.replace("_", " "))


def style() -> dict:
    """rc parameters of jaxmag's figures: text of ``FONT_PT``, ticks and legends of ``SMALL_PT``."""
    return {"font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT,
            "xtick.labelsize": SMALL_PT, "ytick.labelsize": SMALL_PT, "legend.fontsize": SMALL_PT,
            "figure.titlesize": FONT_PT + 1, "savefig.dpi": DPI}


def component_symbol(component: str) -> str:
    """``"x"`` -> ``"$m_x$"`` (mathtext)."""
    return f"$m_{{{component}}}$"


def channel_label(channel: str, *, normalized_entropy: bool = False, rescaled: bool = False) -> str:
    """The colour-bar label of an input map ``MEASURE:COMPONENT`` (the first of ``"a:x,b:z"``).

    ``mean:x`` -> ``"temporal mean of $m_x$ ($M_x/M_s$)"``; a latent entropy is in nats, or
    dimensionless when ``normalized_entropy`` (divided by ln K); ``rescaled`` (a movie mapped onto
    [-1, 1] by ``--rescale minmax|maxabs``) says so instead of M/M_s.
    """
    measure, _, component = channel.split(",")[0].partition(":")
    quantity = f"{measure_name(measure)} of {component_symbol(component)}"
    unit = _MEASURE_UNIT.get(measure)
    if measure == "latent_entropy" and normalized_entropy:
        unit = "÷ ln K"
    if unit is None:
        unit = "rescaled to [−1, 1]" if rescaled else f"$M_{{{component}}}/M_s$"
    return f"{quantity} ({unit})"


def nice_length(limit_m: float) -> float:
    """The largest 1, 2 or 5 × 10^k metres not above ``limit_m`` (> 0)."""
    if not limit_m > 0:
        raise ValueError(f"a scale bar needs a positive length, got {limit_m!r} m")
    exponent = math.floor(math.log10(limit_m))
    for mantissa in (5, 2, 1):
        length = mantissa * 10.0 ** exponent
        if length <= limit_m * (1 + 1e-9):
            return length
    return 10.0 ** exponent


def format_length(length_m: float) -> str:
    """``5e-8`` -> ``"50 nm"``, ``2e-6`` -> ``"2 µm"``."""
    if length_m < 1e-6:
        return f"{length_m * 1e9:g} nm"
    if length_m < 1e-3:
        return f"{length_m * 1e6:g} µm"
    return f"{length_m * 1e3:g} mm"


def add_scale_bar(ax, pixel_size_m: float, nx: int, ny: int, *, fraction: float = 0.2, location: str = "lower right"):
    """A bar of ``nice_length(fraction * nx * pixel_size_m)`` on an ``imshow`` of ``ny x nx`` pixels."""
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = nice_length(fraction * nx * pixel_size_m)
    bar = AnchoredSizeBar(ax.transData, length / pixel_size_m, format_length(length), location, pad=0.3,
                          borderpad=0.4, sep=3, color="white", frameon=True, size_vertical=max(ny / 70, 0.4),
                          fontproperties=FontProperties(size=SMALL_PT, weight="bold"))
    bar.patch.set(facecolor="black", alpha=0.55, edgecolor="none")  # reads on any colour map
    ax.add_artist(bar)
    return bar


def add_colour_bar(fig, image, ax, label: str, **kwargs):
    """A colour bar of ``image`` beside ``ax``, labelled ``label`` ("quantity (unit)")."""
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, **kwargs)
    bar.set_label(label, fontsize=FONT_PT)
    bar.ax.tick_params(labelsize=SMALL_PT)
    return bar


def comparison_rgb(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """RGB ``(ny, nx, 3)`` of ``COMPARISON``: hit (both), missed (truth only), false alarm
    (prediction only), background (neither)."""
    from matplotlib.colors import to_rgb

    p, t = np.asarray(prediction, bool), np.asarray(truth, bool)
    colours = [np.asarray(to_rgb(c)) for _, c in COMPARISON]
    rgb = np.empty(p.shape + (3,))
    for where, colour in zip((p & t, t & ~p, p & ~t, ~p & ~t), colours):
        rgb[where] = colour
    return rgb


def add_comparison_key(ax, *, loc: str = "upper center", ncol: int = 2) -> None:
    """The key of ``comparison_rgb`` under ``ax``."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=c, edgecolor="0.5", label=name) for name, c in COMPARISON]
    ax.legend(handles=handles, loc=loc, bbox_to_anchor=(0.5, -0.02), ncol=ncol, frameon=False,
              fontsize=SMALL_PT, handlelength=1.2, columnspacing=1.0)


def map_inches(nx: int) -> float:
    """Width of one map column: ``MAP_INCHES``, growing to 7 in for wide movies (about 8 screen
    pixels per cell up to 84 cells across)."""
    return min(7.0, max(MAP_INCHES, nx / 12))


def map_figure(panels: int, ny: int, nx: int, *, extra_height: float = 0.6):
    """``(fig, axes)``: ``panels`` maps of ``ny x nx`` side by side, ``map_inches(nx)`` per map column
    (colour bar included), laid out by matplotlib's constrained layout. Draw under ``style()``."""
    import matplotlib.pyplot as plt

    width = map_inches(nx)
    fig, axes = plt.subplots(1, panels, figsize=(width * panels, 0.85 * width * ny / nx + extra_height),
                             squeeze=False, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.1)
    return fig, list(axes[0])


def map_panel(fig, ax, image: np.ndarray, *, label: str, pixel_size_m: float, title: str = "", cmap: str = "viridis",
              vmin: float | None = None, vmax: float | None = None, outline: np.ndarray | None = None,
              outline_colour: str = "#D55E00") -> None:
    """One map: ``image`` with a colour bar labelled ``label``, ``outline`` (a mask) drawn as a contour,
    a scale bar from ``pixel_size_m``, no pixel ticks."""
    ny, nx = image.shape
    shown = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    if outline is not None and outline.any() and not outline.all():
        ax.contour(np.asarray(outline, float), levels=[0.5], colors=outline_colour, linewidths=1.8)
    add_colour_bar(fig, shown, ax, label)
    ax.set_title(title)
    strip_ticks(ax)
    add_scale_bar(ax, pixel_size_m, nx, ny)


def strip_ticks(ax) -> None:
    """Maps carry a scale bar instead of pixel ticks."""
    ax.set_xticks([])
    ax.set_yticks([])
