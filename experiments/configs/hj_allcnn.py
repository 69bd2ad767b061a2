"""HJ (the Hopf-Lax proximal step) on ZCA-whitened CIFAR-10 with All-CNN-BN: the Deep Relaxation paper's method."""

from experiments.configs.base import CIFAR_ENTROPY_SCHEDULE, DEEP_RELAXATION_PAPER, DR_UNCHECKED, HJ, L, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="hj_allcnn", model="allcnn_bn", dataset="cifar10", optimizer="hopf_lax", batch_size=128, epochs=10 * L,
        lr_schedule=CIFAR_ENTROPY_SCHEDULE, reference=DEEP_RELAXATION_PAPER, reported_error=None,
        model_kwargs=dict(authors_code=True), dataset_kwargs=dict(preprocess="zca"),
        hyperparameters=dict(HJ, gamma=0.03, l2=1e-3),
        notes="HJ (fixed-point proximal, docs/math.md section 4) with the Entropy-SGD row's scope and schedule; "
              + DR_UNCHECKED)
