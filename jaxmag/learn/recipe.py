"""Training recipes: what data a model sees and which loss it minimises (``training.recipe``).

A recipe fixes four choices; everything else (model, optimiser, schedule, epochs) stays in
``[model]``/``[training]``:

===================  ======================================  ============================================
recipe               data                                    loss
===================  ======================================  ============================================
``paper``            measures file: one fixed noise draw     pixel-wise cross-entropy (appendix A)
                     per film, no augmentation
``robust``           movies (``MovieSource``): a fresh       cross-entropy + soft Dice of the defect class
                     noise draw every step, random mirrors
                     and periodic shifts
``robust_ce``        as ``robust``                           cross-entropy only (ablation)
``robust_noaug``     as ``robust`` without augmentation      as ``robust`` (ablation)
``robust_fixed``     as ``robust`` with the fixed draws      as ``robust`` (ablation)
``paper_dice``       as ``paper``                            as ``robust`` (ablation)
``robust_argmax``    as ``robust``                           as ``robust``, argmax decision (ablation)
``robust_datanorm``  as ``robust``, without per-image input  as ``robust`` (ablation)
                     standardisation
``robust_dropout``   as ``robust``, with ``[model] dropout``   as ``robust`` (ablation)
===================  ======================================  ============================================

All recipes select the checkpoint with the best validation Dice; validation and test always use
the fixed noise draws of the measures file. The ``robust`` family then chooses the decision
threshold of that checkpoint on the validation split (``jaxmag.learn.calibration``), and its
U-Net standardises every input map per image (``UNet(input_norm="per_image")``) and trains
without dropout (``model_dropout``); ``paper`` and ``paper_dice`` keep the argmax, the plain
inputs and ``[model] dropout``, as the appendix does. A run records
its ``input_norm`` in ``run.json`` (absent: ``"none"``, runs from before the option), and
loading or resuming a run follows the record, not today's recipe. The ablation rows of ``docs/training.md`` justify
each piece of ``robust``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxmag.learn.metrics import cross_entropy


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    source: str  # "measures" (the measures file) or "movies" (MovieSource)
    loss: str  # "ce" or "ce_dice"
    augment: bool = False
    fresh_noise: bool = False
    calibrate: bool = False  # decision threshold chosen on the validation split (jaxmag.learn.calibration)
    input_norm: str = "none"  # jaxmag.models.UNet's input_norm: "none" or "per_image"
    dropout: float | None = None  # overrides [model] dropout; None keeps it


RECIPES = {
    r.name: r
    for r in (
        Recipe("paper", "measures", "ce"),
        Recipe("robust", "movies", "ce_dice", augment=True, fresh_noise=True, calibrate=True, input_norm="per_image", dropout=0.0),
        Recipe("robust_ce", "movies", "ce", augment=True, fresh_noise=True, calibrate=True, input_norm="per_image", dropout=0.0),
        Recipe("robust_noaug", "movies", "ce_dice", augment=False, fresh_noise=True, calibrate=True, input_norm="per_image", dropout=0.0),
        Recipe("robust_fixed", "movies", "ce_dice", augment=True, fresh_noise=False, calibrate=True, input_norm="per_image", dropout=0.0),
        Recipe("robust_argmax", "movies", "ce_dice", augment=True, fresh_noise=True, input_norm="per_image", dropout=0.0),
        Recipe("robust_datanorm", "movies", "ce_dice", augment=True, fresh_noise=True, calibrate=True, dropout=0.0),
        Recipe("robust_dropout", "movies", "ce_dice", augment=True, fresh_noise=True, calibrate=True, input_norm="per_image"),
        Recipe("paper_dice", "measures", "ce_dice"),
    )
}
LOSSES = ("ce", "ce_dice")


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown training.recipe {name!r}: expected one of {', '.join(RECIPES)}")
    return RECIPES[name]


def model_dropout(config) -> float:
    """The U-Net's spatial dropout probability for ``config``: the recipe's ``dropout`` where it
    sets one, else ``[model] dropout``. The ``robust`` recipes train without dropout: a fresh
    noise draw, mirror and shift every step already regularise, and dropout on top slowed
    learning at the CPU budget (``docs/training.md``, ablation ``robust_dropout``)."""
    r = get_recipe(config.training.recipe).dropout
    return config.model.dropout if r is None else r


def soft_dice_loss(logits: jax.Array, labels: jax.Array, eps: float = 1.0) -> jax.Array:
    """``1 - (2 Σ p t + eps) / (Σ p + Σ t + eps)`` over the whole batch, ``p`` the softmax
    probability of the defect class: it rewards finding the ~10 % defect pixels as much as the
    background, which cross-entropy alone does not when the signal is weak (a model that
    predicts no defect at all scores a cross-entropy near the prior, but a Dice loss of 1)."""
    p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[..., 1]
    t = labels.astype(jnp.float32)
    return 1.0 - (2.0 * jnp.sum(p * t) + eps) / (jnp.sum(p) + jnp.sum(t) + eps)


def loss_fn(name: str):
    """The batch loss ``(logits, labels) -> scalar`` of a recipe's ``loss``."""
    if name == "ce":
        return lambda logits, labels: jnp.mean(cross_entropy(logits, labels))
    if name == "ce_dice":
        return lambda logits, labels: jnp.mean(cross_entropy(logits, labels)) + soft_dice_loss(logits, labels)
    raise ValueError(f"unknown loss {name!r}: expected one of {', '.join(LOSSES)}")


def make_source(recipe: Recipe, config, *, data_path, measures_path, inputs, train_condition, **kw):
    """The training source of ``recipe``: ``HDF5Source`` on the measures file, or ``MovieSource``
    on the dataset (same split, normalisation from the clean training films)."""
    from jaxmag.learn.data import HDF5Source, MovieSource

    t = config.training
    common = dict(train_condition=train_condition, batch_size=t.batch_size, split=t.split, seed=t.seed, **kw)
    if recipe.source == "measures":
        return HDF5Source(measures_path, inputs, **common)
    return MovieSource(data_path, inputs, config.measures, noise_seed=config.noise.seed,
                       periodic=config.grid.boundary == "periodic", augment=recipe.augment,
                       fresh_noise=recipe.fresh_noise, **common)


# -- the report: recipes side by side, the spread over training seeds ----------------------------


def recipes_in(records) -> list[str]:
    """The recipes of a results table in first-seen order (``""``: the config's own)."""
    return list(dict.fromkeys(r.get("recipe", "") for r in records))


def seed_section(records, base_records=()) -> list[str]:
    """Markdown: per recipe, the units trained with several seeds (same input, training and
    evaluation condition) as mean ± std of test Dice, beside the baseline; and the matched
    models at σ² ≤ 1e-2 whose predicted defect fraction is below a third of the true one."""
    import numpy as np

    base = {(b["inputs"], b["eval_condition"]): b["dice"] for b in base_records}
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r.get("recipe", ""), r["inputs"], r["train_condition"], r["eval_condition"]), []).append(r)
    multi = {k: v for k, v in groups.items() if len(v) > 1 and k[2] == k[3]}
    lines = []
    if multi:
        lines += ["## Headline rows over training seeds", "",
                  "Same data, split and normalisation; training seeds differ (initialisation, order, dropout where the recipe has it, noise and augmentation draws).", "",
                  "| recipe | inputs | trained and evaluated on | seeds | test Dice mean ± std | min – max | baseline |",
                  "|---|---|---|---|---|---|---|"]
        for (rec, inputs, train, ev), rows in multi.items():
            d = np.array([r["dice"] for r in rows])
            b = base.get((inputs, ev))
            lines.append(f"| {rec or 'config'} | {inputs} | {ev} | {len(d)} | {d.mean():.3f} ± {d.std(ddof=1):.3f} | "
                         f"{d.min():.3f} – {d.max():.3f} | {'n/a' if b is None else f'{b:.3f}'} |")
        lines.append("")
    collapsed = [r for r in records if r["train_condition"] == r["eval_condition"] != "clean"
                 and r["noise_variance"] <= 1e-2 and r["pred_fraction"] < r["true_fraction"] / 3]
    lines += ["Noise-matched models at σ² ≤ 1e-2 that collapse (predicted defect fraction below a third of the true one): "
              + (", ".join(f"{r['inputs']} {r['eval_condition']} [{r.get('recipe') or 'config'}] {r['pred_fraction']:.3f}/{r['true_fraction']:.3f}"
                           for r in collapsed) or "none"), ""]
    return lines
