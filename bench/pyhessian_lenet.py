"""PyHessian (Yao et al. 2020; power iteration with deflation, Hutchinson's trace) on our LeNet, for
bench/bench_analysis_scale.py's `pyhessian_torch` row: the Keras network rebuilt in torch with the
same weights, and PyHessian's top-k and trace timed against a torch gradient of the same data.
torch and pyhessian are not dependencies of this project: importing this module fails without them.
"""

import json
import os
import statistics
import sys

import numpy as np
import torch
from pyhessian import hessian as pyhessian_hessian

_PYHESSIAN_MODULE = sys.modules["pyhessian.hessian"]  # the package's `hessian` attribute is the class


class _CountedProducts:
    """Counts PyHessian's Hessian-vector products (its module-level `hessian_vector_product`), so
    that its cost can be stated in products, a count that does not depend on the machine's load."""

    def __init__(self):
        self.count, self._product = 0, _PYHESSIAN_MODULE.hessian_vector_product

    def __call__(self, *args, **kwargs):
        self.count += 1
        return self._product(*args, **kwargs)

    def __enter__(self):
        _PYHESSIAN_MODULE.hessian_vector_product = self
        return self

    def __exit__(self, *exc):
        _PYHESSIAN_MODULE.hessian_vector_product = self._product

from bench.timing import timed


def torch_lenet(model):
    """The Keras LeNet as a torch module with the same weights (NHWC flatten order kept)."""
    layers = {layer.name: layer for layer in model.layers}

    class LeNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = torch.nn.Conv2d(1, 20, 5), torch.nn.Conv2d(20, 50, 5)
            eps = layers["bn1"].epsilon
            self.bn1, self.bn2 = torch.nn.BatchNorm2d(20, eps=eps), torch.nn.BatchNorm2d(50, eps=eps)
            self.dense, self.logits = torch.nn.Linear(800, 500), torch.nn.Linear(500, 10)

        def forward(self, x):
            h = self.bn1(torch.max_pool2d(torch.relu(self.conv1(x)), 2))
            h = self.bn2(torch.max_pool2d(torch.relu(self.conv2(h)), 2))
            h = h.permute(0, 2, 3, 1).flatten(1)  # Keras flattens NHWC
            return self.logits(torch.relu(self.dense(h)))

    net = LeNet()
    with torch.no_grad():
        for name in ("conv1", "conv2"):
            kernel, bias = (w.numpy() for w in layers[name].weights)
            getattr(net, name).weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            getattr(net, name).bias.copy_(torch.from_numpy(bias))
        for name in ("dense", "logits"):
            kernel, bias = (w.numpy() for w in layers[name].weights)
            getattr(net, name).weight.copy_(torch.from_numpy(kernel.T.copy()))
            getattr(net, name).bias.copy_(torch.from_numpy(bias))
        for name in ("bn1", "bn2"):
            gamma, beta, mean, var = (w.numpy() for w in layers[name].weights)
            bn = getattr(net, name)
            bn.weight.copy_(torch.from_numpy(gamma))
            bn.bias.copy_(torch.from_numpy(beta))
            bn.running_mean.copy_(torch.from_numpy(mean))
            bn.running_var.copy_(torch.from_numpy(var))
    return net.eval()


def run(model, x, y, parts):
    """PyHessian's `parts` ("top1", "top10", "trace", in the order given, each printed as a `PARTIAL`
    line when done, so that a long run can be stopped) on the torch copy of `model` over (x, y)."""
    torch.set_num_threads(os.cpu_count() or 1)
    net = torch_lenet(model)
    xt, yt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y.astype(np.int64))
    logits_gap = float(np.max(np.abs(net(xt).detach().numpy() - np.asarray(model(x, training=False)))))
    criterion = torch.nn.CrossEntropyLoss()

    def torch_gradient():
        net.zero_grad()
        criterion(net(xt), yt).backward()

    torch_gradient()
    t_torch = statistics.median(timed(torch_gradient)[1] for _ in range(3))
    result = dict(logits_max_abs_diff=logits_gap, torch_gradient_seconds=t_torch,
                  product_over_gradient=_product_over_gradient(net, criterion, xt, yt, torch_gradient))
    torch.manual_seed(0)
    for what in parts:
        with _CountedProducts() as products:
            if what == "trace":
                samples, seconds = timed(lambda: pyhessian_hessian(net, criterion, data=(xt, yt), cuda=False).trace())
                result["trace"] = dict(value=float(np.mean(samples)), probes=len(samples),
                                       stderr=float(np.std(samples, ddof=1) / np.sqrt(len(samples))), seconds=seconds)
            else:
                k = int(what[3:])
                (values, _), seconds = timed(lambda: pyhessian_hessian(net, criterion, data=(xt, yt), cuda=False)
                                              .eigenvalues(top_n=k))
                result[what] = dict(values=[float(v) for v in values], seconds=seconds)
        result[what]["products"] = products.count
        print("PARTIAL " + json.dumps(result), flush=True)
    return result


def _product_over_gradient(net, criterion, xt, yt, torch_gradient, repeats=3):
    """Median over `repeats` of one PyHessian product's time over a torch gradient's timed just
    before it (paired, so that a change of load between the two mostly cancels)."""
    h = pyhessian_hessian(net, criterion, data=(xt, yt), cuda=False)
    v = [torch.randn_like(p) for p in h.params]
    ratios = []
    for _ in range(repeats):
        gradient_seconds = timed(torch_gradient)[1]
        ratios.append(timed(lambda: _PYHESSIAN_MODULE.hessian_vector_product(h.gradsH, h.params, v))[1]
                      / gradient_seconds)
    return statistics.median(ratios)


