"""Elastic-SGD on 3 replicas on MNIST, fully connected (the batch of 128 is per replica)."""

from experiments.configs.base import DEEP_RELAXATION_PAPER, ELASTIC_UNCHECKED, MNIST_SGD_SCHEDULE, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="elastic_mnistfc", model="mnistfc", dataset="mnist", optimizer="elastic_sgd", batch_size=128,
        epochs=100, lr_schedule=MNIST_SGD_SCHEDULE, reference=DEEP_RELAXATION_PAPER, reported_error=None,
        model_kwargs={}, dataset_kwargs={},
        hyperparameters=dict(momentum=0.9, nesterov=True, l2=0.0, replicas=3, rho=None, communication_period=None),
        notes=ELASTIC_UNCHECKED)
