"""What D's last-stage channels respond to: guided backpropagation (Springenberg et al. 2015), the paper's Fig. 5.

For a channel c of D's last conv stage, the real images that excite it most are those with the largest activation
anywhere in c's map. The guided-backpropagation map of such an image is the gradient of that single activation (the
maximum of c's map) with respect to the image, computed with every ReLU / LeakyReLU's backward pass replaced by
the guided rule
    grad_in = grad_out * [input > 0] * [grad_out > 0]
so only paths that increase the activation, through units that were on, reach the pixels: the map shows the image
structure the channel detects. A trained D's maps show strokes and parts; an untrained D's (the same architecture at
train.py's initialisation) are noise-like, which is the contrast the paper draws.

The guided rule is a custom bprop of GuidedActivation, a cell that computes the (Leaky)ReLU it replaces, so the
forward values are D's own; MindSpore's autograd (ops.GradOperation) does the rest. BatchNorm runs on its running
statistics (inference mode), so each image's map depends on that image only and batches can be mixed freely.
"""
import os

import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops
import numpy as np

from src.analysis import figures
from src.errors import UserError

GUIDED_FIGURE = "guided_backprop.png"
CHANNELS = 6  # the paper shows the first 6 channels of the last stage
TOP_IMAGES = 4  # top-activating images shown per channel
CLIP_PERCENTILE = 99  # each map is shown scaled to this percentile of its |values| (see normalise)


class GuidedActivation(nn.Cell):
    """max(x, alpha * x) (ReLU for alpha 0, LeakyReLU otherwise) with the guided backward pass."""

    def __init__(self, alpha=0.0):
        super().__init__()
        self.alpha = float(alpha)

    def construct(self, x):
        return ops.maximum(x, x * self.alpha)

    def bprop(self, x, out, dout):
        return (dout * ops.cast(x > 0, dout.dtype) * ops.cast(dout > 0, dout.dtype),)


def guided(cell):
    """`cell` with every nn.ReLU / nn.LeakyReLU (and their subclasses, e.g. the oneDNN layers) replaced by a
    GuidedActivation; SequentialCells are rebuilt around the same layer objects (the weights are shared, not
    copied). Other cells are returned as they are."""
    if isinstance(cell, nn.LeakyReLU):
        return GuidedActivation(getattr(cell, "alpha", 0.2))
    if isinstance(cell, nn.ReLU):
        return GuidedActivation(0.0)
    if isinstance(cell, nn.SequentialCell):
        return nn.SequentialCell([guided(layer) for layer in cell])
    return cell


class GuidedStages(nn.Cell):
    """images -> the activations after the last of `stages` (cells applied in order), guided."""

    def __init__(self, stages):
        super().__init__()
        self.stages = nn.CellList([guided(stage) for stage in stages])
        self.set_train(False)

    def construct(self, x):
        for stage in self.stages:
            x = stage(x)
        return x


class _Objective(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def construct(self, x, weight):
        return (self.net(x) * weight).sum()


def guided_maps(net, images, weights, batch_size=64):
    """d sum(net(images) * weights) / d images with the guided backward rule: (N, C, H, W), the images' shape.
    `net` is a GuidedStages; `weights` has the shape of net's output (one-hot weights pick single activations)."""
    grad = ops.GradOperation()(_Objective(net))
    images = np.asarray(images, np.float32)
    weights = np.asarray(weights, np.float32)
    maps = [grad(ms.Tensor(images[i:i + batch_size]), ms.Tensor(weights[i:i + batch_size])).asnumpy()
            for i in range(0, len(images), batch_size)]
    return np.concatenate(maps)


def top_activating(net, images, channels, top=TOP_IMAGES, batch_size=128):
    """For each channel in `channels`: the `top` images with the largest maximum activation in that channel's map,
    as {"indices": (len(channels), top), "scores": (len(channels), top), "positions": (len(channels), top) flat
    positions of the maximum in the map, "stage_shape": (C, h, w) of the stage}. Memory: one batch and
    N * len(channels) scores."""
    from src.outputs.generate import run_batched

    images = np.asarray(images, np.float32)
    if len(images) < top:
        raise UserError(f"{len(images)} images, fewer than the {top} top-activating ones to show per channel")
    scores, positions, shape = [], [], None
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        stage = run_batched(lambda x: net(ms.Tensor(x)).asnumpy(), chunk, len(chunk))
        if max(channels) >= stage.shape[1]:
            raise UserError(f"channel {max(channels)} does not exist: D's last stage has channels 0 to "
                            f"{stage.shape[1] - 1}")
        shape = stage.shape[1:]
        flat = stage[:, list(channels)].reshape(len(chunk), len(channels), -1)
        scores.append(flat.max(axis=2))
        positions.append(flat.argmax(axis=2))
    scores, positions = np.concatenate(scores).T, np.concatenate(positions).T  # (channels, N)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    return {"indices": order, "scores": np.take_along_axis(scores, order, axis=1),
            "positions": np.take_along_axis(positions, order, axis=1), "stage_shape": tuple(shape)}


def visualize(stages, images, channels=tuple(range(CHANNELS)), top=TOP_IMAGES, batch_size=128):
    """Guided-backprop maps of the top-activating `images` of each channel of the last of `stages` (D's blocks).
    Returns {"channels", "indices", "scores", "images": (channels, top, C, H, W), "maps": the same shape}."""
    channels = [int(c) for c in channels]
    if not channels or min(channels) < 0:
        raise UserError(f"channels must be non-negative indices, not {channels}")
    net = GuidedStages(stages)
    found = top_activating(net, images, channels, top, batch_size)
    num_channels, h, w = found["stage_shape"]
    picked = np.asarray(images, np.float32)[found["indices"].reshape(-1)]
    weights = []
    for row, channel in enumerate(channels):
        for col in range(top):
            weight = np.zeros((num_channels, h * w), np.float32)
            weight[channel, found["positions"][row, col]] = 1.0  # the channel's strongest activation only
            weights.append(weight.reshape(num_channels, h, w))
    maps = guided_maps(net, picked, np.stack(weights), batch_size)
    shape = (len(channels), top) + picked.shape[1:]
    return {"channels": channels, "indices": found["indices"], "scores": found["scores"],
            "images": picked.reshape(shape), "maps": maps.reshape(shape)}


def normalise(maps, percentile=CLIP_PERCENTILE):
    """Each map divided by the `percentile`-th percentile of its absolute values and clipped to [-1, 1] (0 stays 0:
    mid-grey in the figure). A few extreme gradients would otherwise set the scale and leave the rest of the map
    near grey; the usual display of saliency maps clips them (99th percentile)."""
    maps = np.asarray(maps, np.float32)
    flat = maps.reshape(len(maps), -1)
    scale = np.percentile(np.abs(flat), percentile, axis=1)
    scale = np.where(scale > 0, scale, np.abs(flat).max(axis=1))  # a sparse map: its largest value
    return np.clip(flat / np.where(scale > 0, scale, 1.0)[:, None], -1.0, 1.0).reshape(maps.shape)


def panel(result, title):
    """One D's rows: per channel, its top images, then their guided-backprop maps."""
    top = result["images"].shape[1]
    width = top * (figures.TILE + figures.GAP) - figures.GAP
    rows = [[figures.label(title, 54 + 2 * width + 18, 20, size=14)],
            [figures.label("", 54, 16), figures.label("top-activating real images", width, 16, size=11),
             figures.gap(10, 16), figures.label("guided backpropagation", width, 16, size=11)]]
    for row, channel in enumerate(result["channels"]):
        cells = [figures.label(f"ch {channel}", 54, size=12)]
        cells += [figures.tile(image) for image in result["images"][row]]
        cells.append(figures.gap(10))
        cells += [figures.tile(m) for m in normalise(result["maps"][row])]
        rows.append(cells)
    return figures.compose(rows)


def write(trained, untrained, output_path):
    """guided_backprop.png: the trained D's panel next to the untrained D's. Returns the path."""
    picture = figures.side_by_side([panel(trained, "trained D"), panel(untrained, "untrained D (initialisation)")])
    return figures.save(picture, os.path.join(output_path, GUIDED_FIGURE))
