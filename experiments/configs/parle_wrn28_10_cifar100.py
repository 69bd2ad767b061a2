"""Parle on 3 replicas with WRN-28-10 on augmented, standardized CIFAR-100: parle_wrn28_10_cifar10's
setting on the other data set (the Parle paper reports both)."""

import dataclasses

from experiments.configs import parle_wrn28_10_cifar10
from experiments.configs.base import PaperConfig


def get_config() -> PaperConfig:
    return dataclasses.replace(parle_wrn28_10_cifar10.get_config(), name="parle_wrn28_10_cifar100", dataset="cifar100")
