"""Training images converted once into MindRecord at the training resolution (prepare_data.py), and read back.

The stylegan2 `dataset_tool` idea in MindSpore terms: decoding and resizing full-size photos every epoch costs more
CPU than reading small ready-made images, so `convert` runs a source (image folder, ImageNet, LSUN, CelebA,
CIFAR-10, MNIST, ... anything create_dataset reads) once through the training pipeline's own readers and pixel ops
(decode -> resize the short side -> center crop -> channel conversion, see src/dataset.py) and stores each image as
uint8 HWC bytes (4x smaller than the float32 the networks see) in MindRecord files written by
mindspore.mindrecord.FileWriter, optionally sharded into several files. Like training, it reads one split of the
source (`split`, default "train"; see src/dataset.py), so a converted dataset holds the training images only.
`OUT_DIR/dataset.json` records what was stored (image_size, nc, count, files, source with its split); it is written
last, so a conversion that did not finish is never read as data.

`reader(path, image_size)` is the `mindrecord` reader of create_dataset: MindDataset over those files (shuffle,
shards, seed and workers as for the other readers), each row's bytes viewed as (size, size, nc) uint8, after which
the shared transform list only normalises to [-1, 1] and transposes to CHW (its resize and crop are no-ops at the
stored size); its DatasetInfo.split is the source's split recorded in dataset.json. Like src/dataset.py, this
module imports MindSpore on first use only.
"""
import json
import os
import time

import numpy as np

from src import dataset as data
from src.errors import UserError

FORMAT = "dcgan-mindrecord"  # dataset.json's "format": what this module wrote
VERSION = 1
META_FILE = "dataset.json"
FILE_STEM = "images.mindrecord"  # FileWriter names the shards images.mindrecord0, 1, ... (one shard: no suffix)
SCHEMA = {"image": {"type": "bytes"}}  # MindRecord has no uint8 arrays; bytes hold the HWC pixels as they are
MAX_SHARDS = 1000  # FileWriter's limit
WRITE_ROWS = 256  # images per pipeline batch and per write_raw_data call
PROGRESS_SECONDS = 5.0
SOURCES = tuple(n for n in data.DATASETS if n != "mindrecord")  # what can be converted


def is_mindrecord_dir(names):
    """True if a directory listing holds MindRecord files (how detect_format recognises prepare_data's output)."""
    return any(FILE_STEM in name for name in names)


# ---------------------------------------------------------------------------------------------------------------
# Reading

def read_metadata(path):
    """dataset.json of a converted directory, checked: the format, the sizes, and that every listed file is there."""
    meta_file = os.path.join(path, META_FILE)
    if not os.path.isfile(meta_file):
        raise UserError(f"{path} has MindRecord files but no {META_FILE}: the conversion did not finish; "
                        "delete the directory and run prepare_data.py again")
    try:
        with open(meta_file) as f:
            meta = json.load(f)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {meta_file}: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{meta_file} was not written by prepare_data.py (no \"format\": \"{FORMAT}\")")
    if meta.get("version") != VERSION:
        raise UserError(f"{meta_file} is version {meta.get('version')!r} of the format; this code reads {VERSION}")
    if meta.get("image_size") not in data.IMAGE_SIZES or meta.get("nc") not in data.CHANNELS \
            or not isinstance(meta.get("files"), list) or not meta["files"]:
        raise UserError(f"{meta_file} is damaged: needs image_size in {data.IMAGE_SIZES}, nc in {data.CHANNELS} "
                        "and a list of files")
    missing = [f for f in meta["files"] if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}, listed in {META_FILE}")
    return meta


class _Unpack:
    """Map op: a row's bytes (MindDataset yields them as a 1-element fixed-width bytes array) -> uint8 HWC."""

    def __init__(self, shape):
        self.shape = shape

    def __call__(self, value):
        pixels = np.asarray(value).view(np.uint8)  # no copy; fixed width keeps trailing zero bytes
        if pixels.size != np.prod(self.shape):
            raise ValueError(f"a MindRecord image has {pixels.size} bytes, not {np.prod(self.shape)} "
                             f"({'x'.join(map(str, self.shape))}); the files do not match {META_FILE}")
        return pixels.reshape(self.shape)


def reader(path, image_size):
    """The create_dataset reader of a directory written by convert(): a _Reader yielding uint8 HWC images."""
    meta = read_metadata(path)
    if meta["image_size"] != image_size:
        raise UserError(f"the MindRecord data in {path} is stored at {meta['image_size']} px but image_size "
                        f"{image_size} was asked: use --image_size {meta['image_size']}, or convert the source "
                        f"again with prepare_data.py --image_size {image_size}")
    files = [os.path.join(path, f) for f in meta["files"]]
    unpack = _Unpack((meta["image_size"], meta["image_size"], meta["nc"]))
    ds, _ = data._ms()

    def open_(num_parallel_workers=1, **options):
        source = ds.MindDataset(files, columns_list=["image"], num_parallel_workers=num_parallel_workers, **options)
        return source.map(operations=unpack, input_columns="image", num_parallel_workers=num_parallel_workers)

    # The files hold one split of their source, all of which is read; say which (older conversions did not record it).
    source = meta.get("source")
    split = source.get("split") if isinstance(source, dict) else None
    return data._Reader(open_, source_nc=meta["nc"], root=path,
                        split=split if isinstance(split, str) and split else data.NO_SPLIT)


# ---------------------------------------------------------------------------------------------------------------
# Converting

def _pixel_ops(image_size, source_nc, nc):
    """The training transforms up to uint8 HWC at the training resolution: all but the last two
    (Normalize to [-1, 1], HWC2CHW), so the stored pixels are exactly those train.py would compute."""
    ops = data._transforms(image_size, source_nc, nc)
    tail = [type(op).__name__ for op in ops[-2:]]
    if tail != ["Normalize", "HWC2CHW"]:  # pragma: no cover - guards a change of src/dataset.py
        raise RuntimeError(f"src/dataset.py's transforms end with {tail}, not Normalize, HWC2CHW")
    return ops[:-2]


def _check_output(output_path):
    """The absolute output directory; refuses anything that exists and is not an empty directory."""
    if not output_path:
        raise UserError("give an output directory (--output_path)")
    out = os.path.abspath(os.path.expanduser(str(output_path)))
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise UserError(f"output path {out} exists and is not a directory")
        if os.listdir(out):
            raise UserError(f"output directory {out} is not empty; give a new or empty directory "
                            "(prepare_data.py never overwrites)")
    elif not os.path.isdir(os.path.dirname(out)):
        raise UserError(f"the parent directory of {out} does not exist")
    return out


def _remove_output(out, created_dir):
    """Undo a conversion that did not finish: only the files this module writes (the directory was empty)."""
    for name in os.listdir(out) if os.path.isdir(out) else []:
        if name.startswith(FILE_STEM) or name == META_FILE:
            os.remove(os.path.join(out, name))
    if created_dir and os.path.isdir(out) and not os.listdir(out):
        os.rmdir(out)


def convert(name, data_path, output_path, image_size, nc=None, num_shards=1, num_parallel_workers=2,
            strict=False, log=print, progress_seconds=PROGRESS_SECONDS, split="train"):
    """Convert a source that create_dataset reads (name: one of SOURCES; 'auto' detects it) into MindRecord files
    of uint8 HWC images at image_size, in `num_shards` files, plus dataset.json. `split` (train, test, all) picks
    the part of a source with official splits, as create_dataset does. Logs a progress line every
    progress_seconds and a summary. Bad image files are skipped and counted (strict: the first one stops the
    conversion). Returns the metadata written to dataset.json. Bad input is a UserError, raised before writing."""
    if name not in SOURCES:
        hint = " (it is already MindRecord)" if name == "mindrecord" else ""
        raise UserError(f"cannot convert dataset '{name}'{hint}; choose one of: {', '.join(SOURCES)}")
    data._check_options(name, image_size, WRITE_ROWS, nc, num_parallel_workers, None, None, 0, None, None, split)
    data._check_int(num_shards, "num_shards", 1)
    if num_shards > MAX_SHARDS:
        raise UserError(f"num_shards must be at most {MAX_SHARDS} (MindRecord's limit), not {num_shards}")
    path = None
    if name not in data.BUILT_IN:
        path = data._existing_dir(data_path, name)
        if name == "auto":
            name = data.detect_format(path)
            if name == "mindrecord":
                raise UserError(f"{path} is already MindRecord (prepare_data.py output)")
    out = _check_output(output_path)
    if path and (out == path or out.startswith(path + os.sep)):
        raise UserError(f"the output directory {out} must not be inside the source {path}")
    src = data._BUILDERS[name](data._Request(path, image_size, nc, 0, WRITE_ROWS, None, split))
    workers = min(num_parallel_workers, os.cpu_count() or 1)
    source = src.open(shuffle=False, num_parallel_workers=workers)
    total = data._count(source, name, src.root)
    where = f" in {src.root}" if src.root else ""
    if src.split != data.NO_SPLIT:
        where += f" (split {src.split})"
    if total == 0:
        raise UserError(f"{name}{where} has no images")
    if num_shards > total:
        raise UserError(f"num_shards {num_shards} is more than the {total} images{where}")
    out_nc = nc or src.source_nc

    pipeline = source.project(["image"])
    bad_files = data.BadFiles(strict, src.locate, src.root)
    if src.encoded:  # as in create_dataset: a bad file is skipped and counted, never stored
        pipeline = pipeline.map(operations=data._Decoder(src.encoded, bad_files), input_columns="image",
                                output_columns=["image", "ok"], num_parallel_workers=workers,
                                python_multiprocessing=False)
        pipeline = pipeline.filter(predicate=data._is_ok, input_columns=["ok"], num_parallel_workers=1)
        pipeline = pipeline.project(["image"])
    pipeline = pipeline.map(operations=_pixel_ops(image_size, src.source_nc, out_nc), input_columns="image",
                            num_parallel_workers=workers)
    pipeline = pipeline.batch(WRITE_ROWS, drop_remainder=False)

    from mindspore.mindrecord import FileWriter

    created_dir = not os.path.exists(out)
    os.makedirs(out, exist_ok=True)
    log(f"converting {total} {name} images{where} to {image_size}x{image_size}x{out_nc} MindRecord in {out} "
        f"({num_shards} shard file{'s' if num_shards > 1 else ''})")
    count, start = 0, time.perf_counter()
    last = start
    try:
        writer = FileWriter(os.path.join(out, FILE_STEM), shard_num=num_shards, overwrite=False)
        writer.add_schema(SCHEMA, "dcgan training images, uint8 HWC")
        try:
            for (images,) in pipeline.create_tuple_iterator(num_epochs=1, output_numpy=True):
                if strict and bad_files.count:
                    raise UserError(f"bad image file {bad_files.first} (--strict stops at the first one; without "
                                    "it bad files are skipped and counted)")
                if images.shape[1:] != (image_size, image_size, out_nc) or images.dtype != np.uint8:
                    raise AssertionError(f"the pixel ops made {images.dtype} {images.shape[1:]} images")
                writer.write_raw_data([{"image": image.tobytes()} for image in images])
                count += len(images)
                now = time.perf_counter()
                if now - last >= progress_seconds:
                    last = now
                    log(f"  {count}/{total} images ({count / total:.0%}), {count / (now - start):.0f} images/s")
        except RuntimeError as error:
            raise UserError(f"cannot read {name} data{where}: {data._mindspore_reason(error)}") from None
        if strict and bad_files.count:
            raise UserError(f"bad image file {bad_files.first} (--strict stops at the first one)")
        if count == 0:
            raise UserError(f"{name}{where}: none of the {total} image files could be read ({bad_files.summary()})")
        if count < num_shards:
            raise UserError(f"only {count} images could be read{where}, fewer than num_shards {num_shards}")
        writer.commit()
        files = [FILE_STEM] if num_shards == 1 else [f"{FILE_STEM}{i}" for i in range(num_shards)]
        import mindspore

        meta = dict(format=FORMAT, version=VERSION, image_size=image_size, nc=out_nc, count=count, files=files,
                    layout="uint8 HWC bytes in column 'image'",
                    source=dict(dataset=name, path=src.root, split=src.split, images=total,
                                skipped_bad_files=bad_files.count),
                    mindspore=mindspore.__version__)
        with open(os.path.join(out, META_FILE + ".tmp"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        os.replace(os.path.join(out, META_FILE + ".tmp"), os.path.join(out, META_FILE))
    except BaseException:
        if os.path.exists(os.path.join(out, META_FILE + ".tmp")):
            os.remove(os.path.join(out, META_FILE + ".tmp"))
        _remove_output(out, created_dir)
        raise
    seconds = time.perf_counter() - start
    for line in bad_files.report():
        log(line)
    pixels = count * image_size * image_size * out_nc  # the files are sparse: ls shows more than they hold
    log(f"wrote {count} images to {out} in {seconds:.1f} s ({count / seconds:.0f} images/s), "
        f"{pixels / 2 ** 20:.1f} MiB of pixels in {len(files)} file{'s' if len(files) > 1 else ''}; "
        f"train with: python train.py --dataset mindrecord --data_path {out} --image_size {image_size}")
    return meta
