"""Export a trained generator, or the discriminator's feature extractor, for deployment.

  MINDIR  MindSpore's own format: mindspore.load + nn.GraphCell, MindSpore Lite, Ascend 310. The network's
          architecture is written into the file's user_info, so infer.py needs nothing but the file.
  ONNX    for onnxruntime and other runtimes. MindSpore 2.10 writes each Conv2dTranspose as an ONNX ConvTranspose
          whose `output_shape` attribute holds all four dims (N, C, H, W); the ONNX spec wants the spatial dims
          only, and onnxruntime refuses to load the file ("Attribute output_shape has incorrect size").
          MindSpore also writes explicit `pads`, which determine the same output size, so the repair removes
          `output_shape` (see repair_onnx) and the runtime computes the shape from the pads.
  AIR     Ascend's format: MindSpore writes it only through the Ascend toolchain, so only with --device_target
          Ascend.
Input shapes are fixed at export (--batch_size): G takes (B, nz, 1, 1), the feature extractor (B, nc, S, S).
"""
import os
import shutil
import tempfile

from src.errors import UserError

FORMATS = ("MINDIR", "ONNX", "AIR")
SUFFIXES = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}


def output_file(file_name, file_format):
    """MindSpore's naming: the format's suffix is appended unless file_name already ends with it."""
    suffix = SUFFIXES[file_format]
    return file_name if file_name.endswith(suffix) else file_name + suffix


def check_output(file_name, file_format):
    """Refuse, before anything is loaded, an output that cannot be written: a directory of that name, a missing
    or unwritable folder. Returns the path export() will write."""
    path = output_file(file_name, file_format)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"cannot write {path}: it is an existing directory (give another --file_name)")
    if not os.path.isdir(folder):
        raise UserError(f"cannot write {path}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: directory {folder} is not writable")
    return path


def check_target(file_format, device_target):
    """Refuse what cannot work on this device before anything is loaded."""
    if file_format not in FORMATS:
        raise UserError(f"unknown file format '{file_format}'; choose one of: {', '.join(FORMATS)}")
    if file_format == "AIR" and device_target != "Ascend":
        raise UserError(f"AIR export needs an Ascend device (--device_target Ascend), not {device_target}; "
                        "on CPU or GPU export MINDIR (for MindSpore Lite / Ascend 310) or ONNX")


def export(network, example_input, file_name, file_format, info):
    """Write `network` traced on `example_input` (numpy) in `file_format`; `info` (str -> str) is stored in the
    file's metadata. Returns the path written."""
    import mindspore as ms

    path = check_output(file_name, file_format)
    folder = os.path.dirname(os.path.abspath(path))
    inputs = ms.Tensor(example_input)
    # MindSpore's exporters chmod the folder they write into (ONNX: 700) and the file (read-only): they write
    # into a private temporary folder beside the target, and only the finished file is moved into place, so the
    # user's folder keeps its permissions and never holds half a model.
    try:
        private = tempfile.mkdtemp(prefix=".export_", dir=folder)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror}") from None
    try:
        staged = os.path.join(private, os.path.basename(path))
        if file_format == "MINDIR":
            ms.export(network, inputs, file_name=staged, file_format="MINDIR",
                      custom_func=lambda proto: proto.user_info.update(info))
        elif file_format == "ONNX":
            ms.export(network, inputs, file_name=staged, file_format="ONNX")
            os.chmod(staged, 0o644)  # MindSpore left it read-only; the repair rewrites it
            repair_onnx(staged, info)
        else:
            ms.export(network, inputs, file_name=staged, file_format="AIR")
        os.chmod(staged, 0o644 & ~_umask())
        try:
            os.replace(staged, path)
        except OSError as error:
            raise UserError(f"cannot write {path}: {error.strerror}") from None
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def repair_onnx(path, info=None):
    """Make MindSpore's ONNX file loadable by onnxruntime (see the module docstring) and store `info` in its
    metadata. Returns the number of ConvTranspose nodes repaired."""
    try:
        import onnx
    except ImportError:
        raise UserError("ONNX export needs the onnx package to repair MindSpore's ConvTranspose nodes: "
                        "pip install onnx") from None
    model = onnx.load(path)
    repaired = 0
    for node in model.graph.node:
        if node.op_type != "ConvTranspose":
            continue
        attributes = {a.name: a for a in node.attribute}
        shape = attributes.get("output_shape")
        if shape is not None and len(shape.ints) != 2:
            if "pads" not in attributes:  # without pads the output size would be lost: keep the spatial dims
                shape.ints[:] = shape.ints[-2:]
            else:
                node.attribute.remove(shape)
            repaired += 1
    for key, value in (info or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return repaired


def _mindir_proto(mindir_file):
    if not os.path.isfile(mindir_file):
        raise UserError(f"MINDIR file not found: {mindir_file}")
    if not mindir_file.endswith(".mindir"):  # mindspore.load insists on the suffix too
        raise UserError(f"{mindir_file} is not a MINDIR file (a .mindir file, as export.py writes)")
    from mindspore.train.mind_ir_pb2 import ModelProto

    proto = ModelProto()
    try:
        with open(mindir_file, "rb") as f:
            proto.ParseFromString(f.read())
    except Exception as error:  # noqa: BLE001 - protobuf raises its own DecodeError; any failure means "not a MINDIR"
        raise UserError(f"{mindir_file} is not a MINDIR file ({error})") from None
    if not proto.graph.input or not proto.graph.input[0].tensor:
        raise UserError(f"{mindir_file} is not a MINDIR file of a network (it has no graph inputs)")
    return proto


def mindir_input_shape(mindir_file):
    """The input shape a MINDIR was exported with, e.g. [64, 100, 1, 1] for a generator."""
    return list(_mindir_proto(mindir_file).graph.input[0].tensor[0].dims)


def mindir_info(mindir_file):
    """The user_info export() stored in a MINDIR (empty for files exported elsewhere)."""
    return dict(_mindir_proto(mindir_file).user_info)
