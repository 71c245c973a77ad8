"""Training recipes, applied: the loss and the training source of each recipe of
``jaxmag.recipes.RECIPES`` (the table, with what each recipe means), and the U-Net dropout a
recipe sets.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

from jaxmag.learn.metrics import cross_entropy
from jaxmag.recipes import RECIPES, Recipe

LOSSES = ("ce", "ce_dice")


def get_recipe(name: str) -> Recipe:
    """The ``RECIPES`` entry ``name``, or ``ValueError`` naming the known ones."""
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
    probability of any defect (``jaxmag.learn.classes.any_defect_probability``: the defect
    class of a binary model, ``1 - p(background)`` of a typed one) and ``t = labels > 0``: it
    rewards finding the ~10 % defect pixels as much as the background, which cross-entropy
    alone does not when the signal is weak (a model that predicts no defect at all scores a
    cross-entropy near the prior, but a Dice loss of 1). The types of a typed model are learnt
    by the K-class cross-entropy."""
    from jaxmag.learn.classes import any_defect_probability

    p = any_defect_probability(logits)
    t = (labels > 0).astype(jnp.float32)
    return 1.0 - (2.0 * jnp.sum(p * t) + eps) / (jnp.sum(p) + jnp.sum(t) + eps)


def loss_fn(name: str):
    """The batch loss ``(logits, labels) -> scalar`` of a recipe's ``loss``."""
    if name == "ce":
        return lambda logits, labels: jnp.mean(cross_entropy(logits, labels))
    if name == "ce_dice":
        return lambda logits, labels: jnp.mean(cross_entropy(logits, labels)) + soft_dice_loss(logits, labels)
    raise ValueError(f"unknown loss {name!r}: expected one of {', '.join(LOSSES)}")


def check_recorded_inputs(config, inputs) -> None:
    """With an ``[instrument]`` the films are what its detector records, one signal: the component
    ``"p"`` (``jaxmag.channels.PROBE_COMPONENT``). ``ValueError`` naming it for inputs on x, y or z."""
    from jaxmag.channels import PROBE_COMPONENT, as_channels

    if not config.instrument.enabled:
        return
    others = [c.name for c in as_channels(inputs) if c.component != PROBE_COMPONENT]
    if others:
        raise ValueError(f"the config's [instrument] records one signal, component {PROBE_COMPONENT!r} (the probe "
                         f"signal in units of Ms): inputs {', '.join(others)} name m_x/m_y/m_z, which the detector "
                         f"does not see; use e.g. std:{PROBE_COMPONENT} (--inputs, [run] models, [study] components)")


def make_source(recipe: Recipe, config, *, data_path, measures_path, inputs, train_condition, **kw):
    """The training source of ``recipe``: ``MeasuresSource`` on the measures file, or ``MovieSource``
    on the dataset (same split, normalisation from the clean training films).

    With an ``[instrument]`` (``config.instrument.enabled``) the inputs must be on ``"p"``
    (``check_recorded_inputs``); a measures recipe reads the record's maps of the measures file,
    a movie recipe records the dataset's films anew every step (``RecordedSource.from_dataset``:
    fresh shot and read noise, the training condition's noise on top, its fixed validation
    records those of the measures file's clean condition). ``recorded_source`` says more."""
    from jaxmag.assemble import measure_options
    from jaxmag.learn.sources.measures import MeasuresSource
    from jaxmag.learn.sources.movies import MovieSource

    check_recorded_inputs(config, inputs)
    t = config.training
    # the labels as [model] classes reads them (jaxmag.learn.classes): blob ids -> classes
    common = dict(train_condition=train_condition, batch_size=t.batch_size, split=t.split, seed=t.seed,
                  classes=config.model.classes, num_a=config.defects.num_a, **kw)
    if recipe.source == "measures" and config.instrument.enabled and config.model.classes != "binary":
        raise ValueError(f"[model] classes = {config.model.classes!r} needs the blob ids of the labels, but the "
                         "measures file of an [instrument] stores pixel labels (0/1, jaxmag.recording.pixel_labels): "
                         "train typed classes on the dataset's films with a movie recipe (e.g. training.recipe = "
                         "\"robust\"), which records them anew and bins the classes onto the pixels")
    if recipe.source == "measures":
        return MeasuresSource(measures_path, inputs, **common)
    if config.instrument.enabled:
        return recorded_source(recipe, config, data_path, inputs, **common)
    return MovieSource.from_dataset(data_path, inputs, measure_options(config.measures), noise_seed=config.noise.seed,
                                    periodic=config.grid.boundary == "periodic", easy_axis=config.material.easy_axis,
                                    augment=recipe.augment,
                                    fresh_noise=recipe.fresh_noise, **common)


def recorded_source(recipe: Recipe, config, data_path, inputs, *, train_condition, **kw):
    """``RecordedSource`` of the dataset's films seen through ``config.instrument``.

    The plan is ``jaxmag.assemble.instrument_plan`` on the grid of the config stored in the
    dataset (the films' own) with the training config's instrument; its exposure must be the
    films' (the solver applied it). ``binning = "fixed"`` needs ``fixed_range_p`` for a latent
    entropy input (``jaxmag.assemble.check_record_range``, whose error suggests a range), so the
    source bins as the measures file does. A recipe without fresh noise (``robust_fixed``) is
    refused: a recorded film gets fresh detector noise at every step. ``kw``: as
    ``RecordedSource`` (``batch_size``, ``split``, ``seed``, ``indices``, ``norm_stats``, ``mesh``)."""
    from jaxmag.assemble import check_record_range, dataset_config, instrument_plan
    from jaxmag.channels import PROBE_COMPONENT, as_channels
    from jaxmag.io.dataset import open_dataset
    from jaxmag.learn.sources.recorded import RecordedSource

    if not recipe.fresh_noise:
        raise ValueError(f"training.recipe = {recipe.name!r} keeps one noise draw per film, but an [instrument] "
                         "records every film anew at each step (fresh shot and read noise): choose a recipe with "
                         "fresh noise (e.g. \"robust\") or one that trains on the measures file (\"paper\")")
    if not Path(data_path).is_file():
        raise FileNotFoundError(f"movie dataset not found: {data_path}")
    inputs = tuple(tuple(c) for c in as_channels(inputs))
    plan = instrument_plan(dataset_config(data_path), open_dataset(data_path).components, config.instrument)
    check_record_range(config.measures, [m for m, _ in inputs], data_path, plan, config.noise.seed)
    return RecordedSource.from_dataset(data_path, inputs, {PROBE_COMPONENT: config.measures.options(PROBE_COMPONENT)},
                                       plan, noise=train_condition, noise_seed=config.noise.seed,
                                       easy_axis=config.material.easy_axis, augment=recipe.augment, **kw)


# -- the report: recipes side by side, the spread over training seeds ----------------------------


def recipes_in(records) -> list[str]:
    """The recipes of a results table in first-seen order (``""``: the config's own)."""
    return list(dict.fromkeys(r.get("recipe", "") for r in records))


def seed_section(records, base_records=()) -> list[str]:
    """Markdown: per recipe, the units trained with several seeds (same input, training and
    evaluation condition) as mean ± std of test Dice, beside the baseline; and the matched
    models at σ² ≤ 1e-2 whose predicted defect fraction is below a third of the true one."""
    import numpy as np

    from jaxmag.noise import condition_label  # conditions are printed as KIND:LEVEL

    base = {(b["inputs"], b["eval_condition"]): b["dice"] for b in base_records}
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        # typed and binary models (``classes``) are different models: never one group
        groups.setdefault((r.get("recipe", ""), r["inputs"], r["train_condition"], r["eval_condition"],
                           r.get("classes", "binary")), []).append(r)
    multi = {k: v for k, v in groups.items() if len(v) > 1 and k[2] == k[3]}
    lines = []
    if multi:
        lines += ["## Headline rows over training seeds", "",
                  "Same data, split and normalisation; training seeds differ (initialisation, order, dropout where the recipe has it, noise and augmentation draws).", "",
                  "| recipe | inputs | trained and evaluated on | seeds | test Dice mean ± std | min – max | baseline |",
                  "|---|---|---|---|---|---|---|"]
        for (rec, inputs, train, ev, classes), rows in multi.items():
            d = np.array([r["dice"] for r in rows])
            b = base.get((inputs, ev))
            lines.append(f"| {rec or 'config'}{'' if classes == 'binary' else f' ({classes})'} | {inputs} | {condition_label(ev)} | {len(d)} | {d.mean():.3f} ± {d.std(ddof=1):.3f} | "
                         f"{d.min():.3f} – {d.max():.3f} | {'n/a' if b is None else f'{b:.3f}'} |")
        lines.append("")
    collapsed = [r for r in records if r["train_condition"] == r["eval_condition"] != "clean"
                 and r["noise_variance"] <= 1e-2 and r["pred_fraction"] < r["true_fraction"] / 3]
    lines += ["Noise-matched models at σ² ≤ 1e-2 that collapse (predicted defect fraction below a third of the true one): "
              + (", ".join(f"{r['inputs']} {condition_label(r['eval_condition'])} [{r.get('recipe') or 'config'}{'' if r.get('classes', 'binary') == 'binary' else ', ' + r['classes']}] {r['pred_fraction']:.3f}/{r['true_fraction']:.3f}"
                           for r in collapsed) or "none"), ""]
    return lines
