"""DCGAN weight initialisation (paper, section 4): conv weights ~ N(0, 0.02), BN gamma ~ N(1, 0.02), beta = 0.
The dense layers of --d_contrastive's projection head, which the paper does not have, start as LeCun normal
(N(0, 1 / fan_in), bias 0), so that each keeps the scale of its input.

One NumPy generator seeded once from --seed draws every tensor in turn, so layers of the same shape get different
weights. (The model zoo re-seeds NumPy inside its initializer on every call, which gives every same-shape layer
identical weights.)
"""
import numpy as np
import mindspore as ms
import mindspore.nn as nn


def init_weights(net, rng):
    """Initialise every conv and BatchNorm of `net` in place from the numpy Generator `rng`."""
    for _, cell in net.cells_and_names():
        if isinstance(cell, (nn.Conv2d, nn.Conv2dTranspose)):
            set_value(cell.weight, rng.normal(0.0, 0.02, cell.weight.shape))
        elif isinstance(cell, nn.BatchNorm2d):
            set_value(cell.gamma, rng.normal(1.0, 0.02, cell.gamma.shape))
            set_value(cell.beta, np.zeros(cell.beta.shape))
        elif isinstance(cell, nn.Dense):
            set_value(cell.weight, rng.normal(0.0, 1.0 / np.sqrt(cell.in_channels), cell.weight.shape))
            set_value(cell.bias, np.zeros(cell.bias.shape))


def set_value(parameter, array):
    parameter.set_data(ms.Tensor(array.astype(np.float32)))
