"""D's contrastive task, `--d_contrastive WEIGHT`: SimCLR's loss (Chen et al. 2020) on D's features of the real
images, added to D's real-vs-fake loss. ContraD (Jeong & Shin 2021, "Training GANs with Stronger Augmentations via
Contrastive Discriminator") also gives D SimCLR's task; this is its simplest form, on the paper's D.

The real-vs-fake task alone lets D's features stop at what tells a real digit from a drawn one; the paper's
representation test (verify.py) then finds them barely better than an untrained D's. Here D also has to recognise
each real image under two random augmentations among all the batch's others: both views go through D's conv stages,
a small projection head maps D's last stage to a unit vector, and the NT-Xent loss pulls the two views of an image
together and pushes the other views away. G's loss is unchanged; D's loss (loss_d in the log) includes the weighted
term. The head belongs to D (its weights are in the discriminator checkpoint) and is used only by this loss.
The views are DiffAugment's color, translation and cutout (src/augment.py) with draws of their own. In
data-parallel training each rank contrasts the views of its own batch (the other images are not gathered across
ranks).
"""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

from src.augment import DiffAugment

VIEWS = "color,translation,cutout"
TEMPERATURE = 0.2  # SimCLR's tau, the value the MNIST probes used (bench/RESULTS.md)
HIDDEN, PROJECTION = 256, 128
# The views' draws: the run's seed plus this, so they never repeat --diffaug's (an operator with the same seed
# would draw the same numbers).
VIEW_SEED_OFFSET = 1


class ProjectionHead(nn.Cell):
    """D's last stage, flattened (B, C * 4 * 4) -> (B, PROJECTION): SimCLR's two-layer MLP."""

    def __init__(self, in_features):
        super().__init__()
        self.mlp = nn.SequentialCell([nn.Dense(in_features, HIDDEN), nn.ReLU(), nn.Dense(HIDDEN, PROJECTION)])

    def construct(self, x):
        return self.mlp(x)


def nt_xent(z, temperature=TEMPERATURE):
    """SimCLR's normalised-temperature cross-entropy for 2B embeddings, rows i and i + B being two views of one image:
    each row must pick its partner out of the other 2B - 1 rows by cosine similarity / temperature."""
    z = ops.cast(z, ms.float32)
    z = z / ops.sqrt((z * z).sum(axis=1, keepdims=True) + 1e-12)
    count = z.shape[0]
    half = count // 2
    similarity = ops.matmul(z, z.T) / temperature
    similarity = similarity - ops.eye(count, count, ms.float32) * 1e9  # a row is never its own partner
    partner = (z[:half] * z[half:]).sum(axis=1) / temperature
    return ops.logsumexp(similarity, 1).mean() - partner.mean()  # row i + B has the same partner similarity as i


class ContrastiveLoss(nn.Cell):
    """real (B, nc, S, S) -> weight * NT-Xent of D's embeddings of two augmented views of each image."""

    def __init__(self, netD, weight, image_size, seed):
        super().__init__(auto_prefix=False)
        self.netD = netD
        self.weight = weight
        self.views = DiffAugment(VIEWS, image_size, seed + VIEW_SEED_OFFSET)

    def construct(self, real):
        batch = real.shape[0]
        views = self.views(ops.concat((real, real)))  # every row draws its own augmentation
        last_stage = self.netD.features(views)[-1]
        embeddings = self.netD.projection(ops.reshape(last_stage, (2 * batch, -1)))
        return self.weight * nt_xent(embeddings)


def contrastive_weight(cfg):
    """--d_contrastive of a run's config (0: off; None in a run saved before the option)."""
    return float(cfg.get("d_contrastive") or 0.0)


def describe(cfg):
    """A few words for the log header."""
    weight = contrastive_weight(cfg)
    return f"D's contrastive loss x {weight:g} (in loss_d)" if weight > 0 else "no contrastive loss"


def build_contrastive(cfg, netD):
    """The run's contrastive loss on `netD` (the D the step trains), or None when --d_contrastive is 0."""
    weight = contrastive_weight(cfg)
    return ContrastiveLoss(netD, weight, cfg["image_size"], cfg["seed"]) if weight > 0 else None
