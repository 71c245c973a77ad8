"""What a ``jaxmag detect`` run spends: the simulated films, the model's size and the training.

``BUDGETS`` names the three levels (``--budget quick|standard|full``; ``docs/detect.md`` lists their
wall times); a regime file written with one of them gives it back (``budget_of``).
"""
from __future__ import annotations

import dataclasses

from jaxmag.config import Config


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much simulation and training a ``detect`` run spends (``BUDGETS``)."""

    films: int  # clean films simulated: training + validation + test
    val_films: int
    test_films: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    base_features: int
    depth: int
    learning_rate: float = 2e-3
    eval_draws: int = 4  # fixed noise draws of each validation and test film
    ensemble: int = 1  # models trained with different seeds, averaged (jaxmag.learn.confidence)

    def model(self) -> dict:
        return {"base_features": self.base_features, "depth": self.depth, "dropout": 0.1}

    def training(self) -> dict:
        # cross-entropy + soft Dice: plain cross-entropy under-segments to "no defect" here
        return {"epochs": self.epochs, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                "schedule": "cosine", "eval_every": 1, "recipe": "robust"}

    def key(self) -> str:
        """What the regime config does not hold of the budget (its split and step counts), for cache names."""
        return f"v{self.val_films}t{self.test_films}s{self.steps_per_epoch}d{self.eval_draws}"


BUDGETS = {
    "quick": Budget(films=24, val_films=4, test_films=4, epochs=20, steps_per_epoch=16, batch_size=8,
                    base_features=8, depth=2, learning_rate=3e-3),
    "standard": Budget(films=64, val_films=8, test_films=8, epochs=40, steps_per_epoch=32, batch_size=8,
                       base_features=16, depth=3, learning_rate=2e-3, ensemble=3),
    "full": Budget(films=256, val_films=32, test_films=32, epochs=80, steps_per_epoch=64, batch_size=16,
                   base_features=32, depth=3, learning_rate=1e-3, ensemble=3),
}


def budget_by_name(budget: str | Budget) -> tuple[str, Budget]:
    """``(name, budget)`` of a ``BUDGETS`` name or a ``Budget`` (named "custom"), checked."""
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(f"--budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
        name, budget = budget, BUDGETS[budget]
    else:
        name = "custom"
    if budget.ensemble < 1:
        raise ValueError(f"the budget's ensemble must be at least 1 model, got {budget.ensemble}")
    if budget.films < budget.val_films + budget.test_films + 2:
        raise ValueError("the budget needs at least 2 training films besides the validation and test films")
    return name, budget


def budget_of(config: Config) -> tuple[str, Budget]:
    """The budget a regime file was written with: the named one whose films, ``[model]`` and
    ``[training]`` it holds, else ``("file", ...)``: its own values with the quick budget's split,
    steps per epoch and noise draws (which a config does not hold)."""
    t, m = config.training, config.model
    for name, b in BUDGETS.items():
        if (config.dataset.num_runs == b.films and all(getattr(m, k) == v for k, v in b.model().items())
                and all(getattr(t, k) == v for k, v in b.training().items())):
            return name, b
    own = dataclasses.replace(BUDGETS["quick"], films=config.dataset.num_runs, epochs=t.epochs, batch_size=t.batch_size,
                              base_features=m.base_features, depth=m.depth, learning_rate=t.learning_rate)
    return "file", budget_by_name(own)[1]
