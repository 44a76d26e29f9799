"""A feature network supplied by the user (--feature_model) for FID and KID: a MINDIR or an ONNX file.

The model maps a batch of images (B, C, H, W) float32 to features (B, ...), flattened here to (B, D). Its input
shape is read from the file; images are adapted to it:
  size      bilinearly resized (half-pixel centres, no antialiasing) when H, W differ from the images';
            an ONNX model with free H, W gets the images at their own size
  channels  a 1-channel image is replicated to 3 channels; a 3-channel image is averaged to 1 channel
  values    passed as they are, in [-1, 1] (DCGAN's range): export the model with whatever normalisation it needs
            from [-1, 1] inside it (e.g. an Inception expecting [0, 1] needs x * 0.5 + 0.5 as its first op)
  batch     a MINDIR runs at the batch size it was exported with (the last batch padded); an ONNX model with a
            free batch dimension runs batches of DEFAULT_BATCH
"""
import os

import numpy as np

from src.errors import UserError

EXTENSIONS = (".mindir", ".onnx")
DEFAULT_BATCH = 64


def _bilinear_matrix(size_in, size_out):
    """(size_out, size_in) matrix of bilinear interpolation with half-pixel centres (align_corners=False)."""
    matrix = np.zeros((size_out, size_in), np.float32)
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    centres = np.clip(centres, 0, size_in - 1)
    low = np.floor(centres).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    weight = (centres - low).astype(np.float32)
    matrix[np.arange(size_out), low] += 1.0 - weight
    matrix[np.arange(size_out), high] += weight
    return matrix


def adapt(images, channels, height, width):
    """Images (N, C, H, W) resized to (height, width) and converted to `channels` (None: keep)."""
    images = np.asarray(images, np.float32)
    n, c, h, w = images.shape
    if channels not in (None, c):
        if c == 1:
            images = np.repeat(images, channels, axis=1)
        elif channels == 1:
            images = images.mean(axis=1, keepdims=True)
        else:
            raise UserError(f"the feature model takes {channels}-channel images; cannot convert {c}-channel ones")
    if (height, width) != (h, w):
        rows, cols = _bilinear_matrix(h, height), _bilinear_matrix(w, width)
        images = np.einsum("yh,nchw,xw->ncyx", rows, images, cols, optimize=True).astype(np.float32)
    return np.ascontiguousarray(images)


def _dim(value):
    return value if isinstance(value, int) and value > 0 else None


class FeatureModel:
    """features(images) -> (N, D) float64 from a MINDIR or ONNX file; `description` says what was loaded."""

    def __init__(self, path):
        if not path or not os.path.isfile(path):
            raise UserError(f"feature model not found: {path}")
        self.path = path
        ext = os.path.splitext(path)[1].lower()
        if ext not in EXTENSIONS:
            raise UserError(f"feature model {path}: expected a .mindir or .onnx file")
        try:
            if ext == ".onnx":
                self._load_onnx(path)
            else:
                self._load_mindir(path)
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - any failure to load is a bad file given by the user
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"cannot load feature model {path}: {reason}") from None
        if self.channels not in (None, 1, 3):
            raise UserError(f"feature model {path} takes {self.channels}-channel images; 1 or 3 are supported")
        shape = "x".join(str(d or "?") for d in (self.batch, self.channels, self.height, self.width))
        self.description = f"{os.path.basename(path)} (input {shape})"

    def _load_onnx(self, path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # fatal only: a failing model is reported in one line of ours, not its log
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        quiet = ort.RunOptions()
        quiet.log_severity_level = 4
        first = session.get_inputs()[0]
        if len(first.shape) != 4:
            raise UserError(f"feature model {path} takes input of shape {first.shape}; expected (B, C, H, W)")
        if first.type != "tensor(float)":
            raise UserError(f"feature model {path} takes {first.type} input; images are fed as tensor(float) "
                            "(float32, in [-1, 1]): export the model with a float input")
        self.batch, self.channels, self.height, self.width = (_dim(d) for d in first.shape)
        name = first.name
        self._forward = lambda x: session.run(None, {name: x}, quiet)[0]

    def _load_mindir(self, path):
        import mindspore as ms
        import mindspore.nn as nn

        from src.outputs.export_model import mindir_input_shape
        shape = mindir_input_shape(path)
        if len(shape) != 4:
            raise UserError(f"feature model {path} takes input of shape {shape}; expected (B, C, H, W)")
        self.batch, self.channels, self.height, self.width = (int(d) for d in shape)
        graph = nn.GraphCell(ms.load(path))
        self._forward = lambda x: graph(ms.Tensor(x)).asnumpy()

    def _run(self, batch):
        """The model on one batch; any failure inside it (a bad Reshape, an unsupported operator at run time) is
        the model's, reported as a UserError with its own first line."""
        try:
            return np.asarray(self._forward(batch))
        except Exception as error:  # noqa: BLE001 - whatever the runtime raises, the user's model failed
            text = str(error).strip()
            reason = " ".join(text.splitlines()[0].split()) if text else type(error).__name__
            raise UserError(f"feature model {self.path} failed on a batch of shape {batch.shape}: "
                            f"{reason[:300]}") from None

    def features(self, images):
        from src.outputs.generate import run_batched

        images = np.asarray(images, np.float32)
        height, width = self.height or images.shape[2], self.width or images.shape[3]
        outputs = []
        # adapted chunk by chunk: a 299x299 model input for 10,000 images would not fit in memory at once
        chunk = (self.batch or DEFAULT_BATCH) * 8
        for start in range(0, len(images), chunk):
            adapted = adapt(images[start:start + chunk], self.channels, height, width)
            outputs.append(run_batched(self._run, adapted, self.batch or DEFAULT_BATCH))
        try:
            features = np.concatenate(outputs)
            features = features.reshape(len(features), -1).astype(np.float64)
        except (ValueError, TypeError) as error:
            raise UserError(f"feature model {self.path} returned outputs that are not one feature vector per "
                            f"image: {error}") from None
        bad = int((~np.isfinite(features)).any(axis=1).sum())
        if bad:  # before any statistics: NaN in a covariance makes the matrix square root never finish
            raise UserError(f"the feature model returned NaN for {bad} images (NaN or infinite features for {bad} "
                            f"of {len(features)}; {self.path})")
        return features
