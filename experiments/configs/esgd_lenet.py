"""Entropy-SGD on MNIST with the authors' LeNet: the Entropy-SGD paper's Table 1 (0.50 % test error)."""

from experiments.configs.base import ENTROPY_MNIST, ENTROPY_SGD_PAPER, L, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="esgd_lenet", model="lenet", dataset="mnist", optimizer="entropy_sgd", batch_size=128,
        epochs=5 * L, lr_schedule="0:1,40:0.1", reference=ENTROPY_SGD_PAPER, reported_error=0.50,
        model_kwargs=dict(authors_code=True), hyperparameters=ENTROPY_MNIST,
        notes="the authors' README command (-L 20 --gamma 1e-4 --scoping 1e-3 --noise 1e-4) and train.lua "
              "schedule (lr 1, x0.1 after 2 outer epochs; 5 outer epochs); the authors' LeNet geometry "
              "(3x3 first pooling).")
