"""Elastic-SGD on 3 replicas on ZCA-whitened CIFAR-10 with All-CNN-BN (the batch of 128 is per replica)."""

from experiments.configs.base import CIFAR_SGD_SCHEDULE, DEEP_RELAXATION_PAPER, ELASTIC_UNCHECKED, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="elastic_allcnn", model="allcnn_bn", dataset="cifar10", optimizer="elastic_sgd", batch_size=128,
        epochs=200, lr_schedule=CIFAR_SGD_SCHEDULE, reference=DEEP_RELAXATION_PAPER, reported_error=None,
        model_kwargs=dict(authors_code=True), dataset_kwargs=dict(preprocess="zca"),
        hyperparameters=dict(momentum=0.9, nesterov=True, l2=1e-3, replicas=3, rho=None, communication_period=None),
        notes=ELASTIC_UNCHECKED)
