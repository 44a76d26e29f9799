"""The two DCGAN losses, written as loss cells: the readable definition of what each network minimises.

D outputs logits. Both losses use BCE-with-logits, log(1 + exp(-|x|)) + max(x, 0) - x*y, which is finite for any
logit; the sigmoid + BCE of the references takes log(0) once D saturates and then yields inf/NaN gradients.
The generator uses the paper's non-saturating loss: maximise log D(G(z)) rather than minimise log(1 - D(G(z))).
Each cell also returns the mean D probabilities that the training log reports, as auxiliary outputs. With
--diffaug, every image D sees goes through `augment` first (src/augment.py), in both losses; with --d_contrastive,
D's loss also has the contrastive term on the real images (src/contrastive.py).
The losses are computed in float32 even when D computes in float16 (mixed precision on GPU/Ascend).
"""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops


def bce_with_logits(logits, target):
    """Mean binary cross-entropy of the sigmoid of `logits` against a constant 0/1 target (in float32)."""
    if logits.dtype != ms.float32:
        logits = ops.cast(logits, ms.float32)
    targets = ops.fill(logits.dtype, logits.shape, target)
    return ops.binary_cross_entropy_with_logits(logits, targets, ops.ones_like(logits), ops.ones_like(logits))


class WithLossCellD(nn.Cell):
    """Discriminator loss: -log D(x) - log(1 - D(G(z))), on a real batch and a (detached) fake batch.

    real_label < 1 is one-sided label smoothing (Salimans et al. 2016): D's target for real images is, say, 0.9
    instead of 1, so it is not rewarded for ever more confident logits on them; fakes keep the target 0.
    `contrastive` (a src/contrastive.py ContrastiveLoss, or None) adds its term on the real batch as it came.
    Returns (loss, mean D(x), mean D(G(z))).
    """

    def __init__(self, netD, real_label=1.0, augment=None, contrastive=None):
        super().__init__(auto_prefix=False)
        self.netD = netD
        self.real_label = real_label
        self.augment = augment
        self.contrastive = contrastive

    def construct(self, real, fake):
        images = real
        if self.augment is not None:
            real, fake = self.augment(real), self.augment(fake)
        logits_real = self.netD(real)
        logits_fake = self.netD(fake)
        loss = bce_with_logits(logits_real, self.real_label) + bce_with_logits(logits_fake, 0.0)
        if self.contrastive is not None:
            loss = loss + self.contrastive(images)
        return loss, mean_probability(logits_real), mean_probability(logits_fake)


class WithLossCellG(nn.Cell):
    """Generator loss (non-saturating): -log D(fake), where fake = G(z). Returns (loss, mean D(G(z)))."""

    def __init__(self, netD, augment=None):
        super().__init__(auto_prefix=False)
        self.netD = netD
        self.augment = augment

    def construct(self, fake):
        if self.augment is not None:
            fake = self.augment(fake)
        logits = self.netD(fake)
        return bce_with_logits(logits, 1.0), mean_probability(logits)


def mean_probability(logits):
    """The mean of D's probabilities, in float32."""
    if logits.dtype != ms.float32:
        logits = ops.cast(logits, ms.float32)
    return ops.sigmoid(logits).mean()
