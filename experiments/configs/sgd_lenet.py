"""SGD on MNIST with the authors' LeNet: the baseline of esgd_lenet (the Entropy-SGD paper's 0.51 %)."""

from experiments.configs.base import ENTROPY_SGD_PAPER, MNIST_SGD_SCHEDULE, SGD_MNIST, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="sgd_lenet", model="lenet", dataset="mnist", optimizer="sgd", batch_size=128, epochs=100,
        lr_schedule=MNIST_SGD_SCHEDULE, reference=ENTROPY_SGD_PAPER, reported_error=0.51,
        model_kwargs=dict(authors_code=True), hyperparameters=SGD_MNIST,
        notes="authors' train.lua with L = 0: Nesterov 0.9, lr 0.1, x0.2 at epoch 60, 100 epochs.")
