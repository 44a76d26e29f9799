"""The one transform list from reader output to network input, shared by training, the MindRecord converter and the
labelled splits: resize the short side -> center crop -> channel conversion -> scale to [-1, 1] -> HWC to CHW."""
from src.data.source import mindspore_dataset


def _add_channel_axis(image):
    # ConvertColor(RGB2GRAY) returns (H, W); the network wants a channel axis.
    return image[..., None]


def pixel_transforms(image_size, source_nc, nc):
    _, vision = mindspore_dataset()
    ops = [vision.Resize(image_size, vision.Inter.BILINEAR),  # an int resizes the short side, keeping the aspect
           vision.CenterCrop(image_size)]
    if source_nc == 1 and nc == 3:
        ops.append(vision.ConvertColor(vision.ConvertMode.COLOR_GRAY2RGB))
    elif source_nc == 3 and nc == 1:
        ops += [vision.ConvertColor(vision.ConvertMode.COLOR_RGB2GRAY), _add_channel_axis]
    # uint8 0..255 -> float32 -1..1. Normalize hits both ends exactly; Rescale(1/127.5, -1) gives 255 -> 1.0000001.
    ops += [vision.Normalize(mean=[127.5] * nc, std=[127.5] * nc), vision.HWC2CHW()]
    return ops
