"""SGD on ZCA-whitened CIFAR-10 with All-CNN-BN: the baseline of esgd_allcnn (the paper's 7.71 %)."""

from experiments.configs.base import CIFAR_SGD_SCHEDULE, ENTROPY_SGD_PAPER, SGD_CIFAR, PaperConfig


def get_config() -> PaperConfig:
    return PaperConfig(
        name="sgd_allcnn", model="allcnn_bn", dataset="cifar10", optimizer="sgd", batch_size=128, epochs=200,
        lr_schedule=CIFAR_SGD_SCHEDULE, reference=ENTROPY_SGD_PAPER, reported_error=7.71,
        model_kwargs=dict(authors_code=True), dataset_kwargs=dict(preprocess="zca"), hyperparameters=SGD_CIFAR,
        notes="paper: 200 epochs of SGD with Nesterov momentum, lr 0.1 divided by 5 every 60 epochs; L2 1e-3 "
              "(authors' README).")
