"""Entropy-SGD on ZCA-whitened CIFAR-10 with All-CNN-BN: the Entropy-SGD paper's Table 1 (7.81 %)."""

from experiments.configs.base import CIFAR_ENTROPY_SCHEDULE, ENTROPY_CIFAR, ENTROPY_SGD_PAPER, L, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="esgd_allcnn", model="allcnn_bn", dataset="cifar10", optimizer="entropy_sgd", batch_size=128,
        epochs=10 * L, lr_schedule=CIFAR_ENTROPY_SCHEDULE, reference=ENTROPY_SGD_PAPER, reported_error=7.81,
        model_kwargs=dict(authors_code=True), dataset_kwargs=dict(preprocess="zca"),
        hyperparameters=ENTROPY_CIFAR,
        notes="paper: L = 20 for 10 outer epochs, outer lr 1 dropping by 5 every 4 epochs, eta' = 0.1, "
              "noise 1e-4, gamma 0.03 growing by 1.001 per update; ZCA-whitened CIFAR-10, no augmentation. "
              "(The authors' train.lua drops every 3 outer epochs instead.)")
