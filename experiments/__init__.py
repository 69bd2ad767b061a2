"""Entry points that run the papers' experiments with control_opt.

`python -m experiments.train` is the default experiment (Entropy-SGD on MNIST-1D);
its logic lives in the importable `experiments.train.train_and_evaluate`.
"""
