"""Parle on 3 replicas with WRN-28-10 on augmented, standardized CIFAR10 (the Parle paper's setting)."""

from experiments.configs.base import PARLE_PAPER, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="parle_wrn28_10_cifar10", model="wide_resnet", dataset="cifar10", optimizer="parle", batch_size=128,
        epochs=10, lr_schedule="0:0.1", reference=PARLE_PAPER, reported_error=None,
        model_kwargs=dict(depth=28, width=10), dataset_kwargs=dict(preprocess="standardize"), augment=True,
        hyperparameters=dict(langevin_steps=25, gamma=0.01, rho=0.01, replicas=3, momentum=0.9, nesterov=True,
                             l2=5e-4),
        notes="WRN-28-10 with the standard augmentation "
              "(reflect pad 4, random 32x32 crop, horizontal flip) on per-channel standardized data. "
              "Epochs, L, gamma, rho and the reported error are placeholders to be taken from the Parle paper "
              "(its README: 5-10 epochs suffice; lr as for SGD; gamma and rho scoped and capped, docs/distributed.md).")
