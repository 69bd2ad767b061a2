"""Entry points that run the papers' experiments with control_opt, and their shared parts.

  train.py          `python -m experiments.train`: the default experiment (Entropy-SGD on
                    MNIST-1D); only flags, the work is `experiments.training.train_and_evaluate`
  training/         the training runner as a library (config, schedules, registry, data,
                    rundir, callbacks, run)
  hj_smoothing.py   `python -m experiments.hj_smoothing`: HJ smoothings of a non-convex loss
  sde_landscape.py  `python -m experiments.sde_landscape`: controlled SDE paths, narrow vs wide valley
  configs/          the named configs of --config=NAME: one module per paper row (get_config())
  paper_configs.py  collects them: names(), resolve(name), the --config=list table
  stop_signals.py   SIGTERM / SIGINT kept for the main thread (blocked before NumPy/TF start threads)
  config_flags.py   absl flags derived from a config dataclass (used by every entry point)
  landscapes.py     the toy landscapes of hj_smoothing and sde_landscape
  figures.py        headless pyplot, atomic PNGs and the panels the experiments share

Importing any of these defines no command-line flags.
"""
