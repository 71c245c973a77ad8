"""The application layer: training, evaluation, studies, reports and the uses of trained runs (see ``docs/training.md``).

- ``sources``: data sources behind one interface (``DataSource``): ``MeasuresSource`` for
  measures files, ``MovieSource`` for clean movies made into batches on the device,
  ``OnlineSource`` for batches generated on the accelerator;
- ``splits``, ``normalization``: reproducible splits and clean-train normalisation;
- ``metrics``: cross-entropy and Dice (per image and aggregated), on device;
- ``sharding``: the data-parallel mesh and multi-host setup;
- ``checkpoint``: orbax best/latest checkpoints;
- ``loop``: ``create_train_state``, ``train_step``, ``eval_step``, ``train_and_evaluate``;
- ``evaluation``: ``load_trained``, ``predict_logits``/``predict_proba``, ``evaluate_run``;
- ``synthetic``: disc-shaped synthetic data for tests and benchmarks.
"""
