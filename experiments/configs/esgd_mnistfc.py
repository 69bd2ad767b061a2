"""Entropy-Adam on MNIST, fully connected: the Entropy-SGD paper's Table 1 (1.37 % test error)."""

from experiments.configs.base import ENTROPY_MNIST, ENTROPY_SGD_PAPER, L, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="esgd_mnistfc", model="mnistfc", dataset="mnist", optimizer="entropy_adam", batch_size=128,
        epochs=5 * L, lr_schedule="0:1,40:0.1", reference=ENTROPY_SGD_PAPER, reported_error=1.37,
        hyperparameters=dict(ENTROPY_MNIST, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
        notes="Adam in the outer loop (Entropy-Adam), against Adam; schedule and epochs from the authors' "
              "train.lua for mnistfc (lr 1 for 2 outer epochs, then 0.1; 5 outer epochs). The outer-loop "
              "choice (Adam vs SGD) is from the paper's text as recalled, not re-checked here.")
