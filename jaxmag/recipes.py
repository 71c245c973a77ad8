"""Training recipes: what data a model sees and which loss it minimises (``[training] recipe``).

The table of recipes is plain data, here below the configuration so that the config checks
``training.recipe`` and ``study.recipes`` against it without restating the names;
``jaxmag.learn.recipe`` implements them (the loss functions and the training source).
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
without dropout (``jaxmag.learn.recipe.model_dropout``); ``paper`` and ``paper_dice`` keep the
argmax, the plain inputs and ``[model] dropout``, as the appendix does. A run records
its ``input_norm`` in ``run.json`` (absent: ``"none"``, runs from before the option), and
loading or resuming a run follows the record, not today's recipe. The ablation rows of
``docs/training.md`` justify each piece of ``robust``.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    source: str  # "measures" (the measures file) or "movies" (MovieSource)
    loss: str  # "ce" or "ce_dice" (jaxmag.learn.recipe.LOSSES)
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

