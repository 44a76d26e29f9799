"""G, D, their optimizers and the compiled D-then-G step of a run's configuration (training, bench/, tests)."""
import numpy as np
import mindspore as ms
import mindspore.nn as nn

from src.augment import build_augment
from src.contrastive import build_contrastive, contrastive_weight
from src.dcgan import DCGAN
from src.discriminator import Discriminator
from src.generator import Generator
from src.layers import layers_for
from src.mixed_precision import apply_to_networks, loss_scaled
from src.step_cells import step_cells
from src.weight_init import init_weights


def build_generator(cfg, mixed_precision=False):
    """G of the configured architecture; in the run's --amp_level only if `mixed_precision` (the G that trains):
    the averaged G and the tools that sample compute in fp32."""
    layers = layers_for(cfg if mixed_precision else dict(cfg, amp_level="O0"))
    return Generator(cfg["image_size"], cfg["nz"], cfg["ngf"], cfg["nc"], layers=layers)


def build_networks(cfg):
    """G and D of the configured architecture, initialised from the seed (so every rank starts identical)."""
    rng = np.random.default_rng(cfg["seed"])
    netG = build_generator(cfg, mixed_precision=True)
    netD = Discriminator(cfg["image_size"], cfg["ndf"], cfg["nc"], layers=layers_for(cfg),
                         projection_head=contrastive_weight(cfg) > 0)
    init_weights(netG, rng)
    init_weights(netD, rng)
    return netG, netD


def build_training_step(cfg, fused=True):
    """The networks, their Adam optimizers and the compiled D-then-G step, as training uses them (and bench/).
    fused=False: G's step runs G's forward pass again (the model zoo's two-pass form; same weights). Float16 training
    (--amp_level O1/O2 on GPU/Ascend) always takes that form: its loss scales live in the step cells."""
    netG, netD = build_networks(cfg)
    optimizerG = nn.Adam(netG.trainable_params(), learning_rate=cfg["lr"], beta1=cfg["beta1"])
    lr_d = cfg.get("lr_d") or cfg["lr"]  # two time-scale update rule (Heusel et al. 2017) when it differs
    optimizerD = nn.Adam(netD.trainable_params(), learning_rate=lr_d, beta1=cfg["beta1"])
    stepG, stepD = apply_to_networks(cfg, netG, netD)  # float16 on GPU/Ascend: the same Parameters
    # D's contrastive term runs on the fp32 D (the same Parameters): it calls D's `features` and head, which
    # mindspore.amp's rewritten float16 cell need not keep; its gradients are scaled and checked with the rest.
    cells = step_cells(stepG, stepD, optimizerG, optimizerD, loss_scaled(cfg), cfg.get("real_label") or 1.0,
                       build_augment(cfg), build_contrastive(cfg, netD))
    train_step = DCGAN(*cells, fused=fused)
    train_step.set_train(True)
    return train_step, netG, netD, optimizerG, optimizerD


def sample(netG, noise):
    """G's images for `noise` (a NumPy array) with BN in inference mode (running statistics), as eval.py draws
    them. G is left in the mode it was in (the averaged G is always in inference mode)."""
    training = netG.training
    netG.set_train(False)
    images = netG(ms.Tensor(noise)).asnumpy()
    netG.set_train(training)
    return images


def parameter_checksum(*nets):
    """Sum of every trainable weight in float64: equal on all ranks while they stay in sync. (BN running
    statistics are left out: each rank keeps its own, from its own batches; checkpoints hold rank 0's.)"""
    return sum(float(p.asnumpy().astype(np.float64).sum()) for net in nets for p in net.trainable_params())
