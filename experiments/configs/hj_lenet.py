"""HJ (the Hopf-Lax proximal step) on MNIST with the authors' LeNet: the Deep Relaxation paper's method."""

from experiments.configs.base import DEEP_RELAXATION_PAPER, DR_UNCHECKED, HJ, L, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="hj_lenet", model="lenet", dataset="mnist", optimizer="hopf_lax", batch_size=128, epochs=5 * L,
        lr_schedule="0:1,40:0.1", reference=DEEP_RELAXATION_PAPER, reported_error=None,
        model_kwargs=dict(authors_code=True), dataset_kwargs={}, hyperparameters=dict(HJ, gamma=1e-4, l2=0.0),
        notes="HJ (fixed-point proximal, docs/math.md section 4) with the Entropy-SGD row's scope and schedule; "
              + DR_UNCHECKED)
