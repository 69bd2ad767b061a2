"""The named configs of `python -m experiments.train --config=NAME`: one module per config.

`experiments/configs/NAME.py` defines `get_config()`, which returns the
`base.PaperConfig` called NAME: a run the papers report, with its network, data,
optimizer arguments, schedule and the paper's error (the layout of flax's
examples, `configs/*.py`). `base.py` holds the row type, the papers and the
constants several rows share. `experiments.paper_configs` collects them
(`names()`, `resolve(name)`, the `--config=list` table).

Adding a config is adding one module here (and its line in BUILD's
`experiments_lib`); `ORDER` only places it in the listing (a module not in
`ORDER` comes after those, in name order).
"""

# The order of `--config=list`: the Entropy-SGD paper's Table 1, then the Deep Relaxation paper's
# HJ and Elastic-SGD rows, then Parle's.
ORDER = ("esgd_mnistfc", "adam_mnistfc", "esgd_lenet", "sgd_lenet", "esgd_allcnn", "sgd_allcnn",
         "hj_mnistfc", "hj_lenet", "hj_allcnn", "elastic_mnistfc", "elastic_lenet", "elastic_allcnn",
         "parle_wrn28_10_cifar10", "parle_wrn28_10_cifar100")
