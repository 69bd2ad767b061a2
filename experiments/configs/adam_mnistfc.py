"""Adam on MNIST, fully connected: the baseline of esgd_mnistfc (the Entropy-SGD paper's 1.39 %)."""

from experiments.configs.base import ADAM, ENTROPY_SGD_PAPER, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="adam_mnistfc", model="mnistfc", dataset="mnist", optimizer="adam", batch_size=128, epochs=100,
        lr_schedule="0:0.001", reference=ENTROPY_SGD_PAPER, reported_error=1.39, hyperparameters=ADAM,
        notes="the baseline of esgd_mnistfc; Adam's defaults (lr 1e-3): the authors' code does not state them.")
