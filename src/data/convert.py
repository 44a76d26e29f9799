"""prepare_data.py's library: convert a source that create_dataset reads into MindRecord files at the training
resolution, once (see src/data/mindrecord.py for the format and how it is read back).

The stylegan2 `dataset_tool` idea in MindSpore terms: decoding and resizing full-size photos every epoch costs more
CPU than reading small ready-made images, so `convert` runs a source once through the training pipeline's own
readers and pixel ops and stores each image as uint8 HWC bytes. Like training, it reads one split of the source
(`split`, default "train"). `OUT_DIR/dataset.json` is written last, so a conversion that did not finish is never
read as data; on any failure the files written so far are removed.
"""
import json
import os
import pathlib
import time

import numpy as np

from src.data.bad_files import BadFiles, Decoder, is_ok
from src.data.mindrecord import FILE_STEM, FORMAT, META_FILE, SCHEMA, VERSION
from src.data.options import BUILT_IN, DATASETS, NO_SPLIT, check_int, check_options
from src.data.readers import detect_format, existing_dir, open_reader
from src.data.source import Request, count_images, mindspore_reason
from src.data.transforms import pixel_transforms
from src.errors import UserError
from src.files import write_atomically

MAX_SHARDS = 1000  # FileWriter's limit
WRITE_ROWS = 256  # images per pipeline batch and per write_raw_data call
PROGRESS_SECONDS = 5.0
SOURCES = tuple(n for n in DATASETS if n != "mindrecord")  # what can be converted


def _pixel_ops(image_size, source_nc, nc):
    """The training transforms up to uint8 HWC at the training resolution: all but the last two
    (Normalize to [-1, 1], HWC2CHW), so the stored pixels are exactly those train.py would compute."""
    ops = pixel_transforms(image_size, source_nc, nc)
    tail = [type(op).__name__ for op in ops[-2:]]
    if tail != ["Normalize", "HWC2CHW"]:  # pragma: no cover - guards a change of the transforms
        raise RuntimeError(f"src/data/transforms.py's list end with {tail}, not Normalize, HWC2CHW")
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


def remove_output(out, created_dir):
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
    check_options(name, image_size, WRITE_ROWS, nc, num_parallel_workers, None, None, 0, None, None, split)
    check_int(num_shards, "num_shards", 1)
    if num_shards > MAX_SHARDS:
        raise UserError(f"num_shards must be at most {MAX_SHARDS} (MindRecord's limit), not {num_shards}")
    path = None
    if name not in BUILT_IN:
        path = existing_dir(data_path, name)
        if name == "auto":
            name = detect_format(path)
            if name == "mindrecord":
                raise UserError(f"{path} is already MindRecord (prepare_data.py output)")
    out = _check_output(output_path)
    if path and (out == path or out.startswith(path + os.sep)):
        raise UserError(f"the output directory {out} must not be inside the source {path}")
    reader = open_reader(name, Request(path, image_size, nc, 0, WRITE_ROWS, None, split))
    workers = min(num_parallel_workers, os.cpu_count() or 1)
    source = reader.open(shuffle=False, num_parallel_workers=workers)
    total = count_images(source, name, reader.root)
    where = f" in {reader.root}" if reader.root else ""
    if reader.split != NO_SPLIT:
        where += f" (split {reader.split})"
    if total == 0:
        raise UserError(f"{name}{where} has no images")
    if num_shards > total:
        raise UserError(f"num_shards {num_shards} is more than the {total} images{where}")
    out_nc = nc or reader.source_nc

    pipeline = source.project(["image"])
    bad_files = BadFiles(strict, reader.locate, reader.root)
    if reader.encoded:  # as in create_dataset: a bad file is skipped and counted, never stored
        pipeline = pipeline.map(operations=Decoder(reader.encoded, bad_files), input_columns="image",
                                output_columns=["image", "ok"], num_parallel_workers=workers,
                                python_multiprocessing=False)
        pipeline = pipeline.filter(predicate=is_ok, input_columns=["ok"], num_parallel_workers=1)
        pipeline = pipeline.project(["image"])
    pipeline = pipeline.map(operations=_pixel_ops(image_size, reader.source_nc, out_nc), input_columns="image",
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
                bad_files.check_strict()
                if images.shape[1:] != (image_size, image_size, out_nc) or images.dtype != np.uint8:
                    raise AssertionError(f"the pixel ops made {images.dtype} {images.shape[1:]} images")
                writer.write_raw_data([{"image": image.tobytes()} for image in images])
                count += len(images)
                now = time.perf_counter()
                if now - last >= progress_seconds:
                    last = now
                    log(f"  {count}/{total} images ({count / total:.0%}), {count / (now - start):.0f} images/s")
        except RuntimeError as error:
            raise UserError(f"cannot read {name} data{where}: {mindspore_reason(error)}") from None
        bad_files.check_strict()
        if count == 0:
            raise UserError(f"{name}{where}: none of the {total} image files could be read ({bad_files.summary()})")
        if count < num_shards:
            raise UserError(f"only {count} images could be read{where}, fewer than num_shards {num_shards}")
        writer.commit()
        files = [FILE_STEM] if num_shards == 1 else [f"{FILE_STEM}{i}" for i in range(num_shards)]
        import mindspore

        meta = dict(format=FORMAT, version=VERSION, image_size=image_size, nc=out_nc, count=count, files=files,
                    layout="uint8 HWC bytes in column 'image'",
                    source=dict(dataset=name, path=reader.root, split=reader.split, images=total,
                                skipped_bad_files=bad_files.count),
                    mindspore=mindspore.__version__)
        text = json.dumps(meta, indent=1) + "\n"
        write_atomically(os.path.join(out, META_FILE), lambda tmp: pathlib.Path(tmp).write_text(text))
    except BaseException:
        remove_output(out, created_dir)
        raise
    seconds = time.perf_counter() - start
    for line in bad_files.report():
        log(line)
    pixels = count * image_size * image_size * out_nc  # the files are sparse: ls shows more than they hold
    log(f"wrote {count} images to {out} in {seconds:.1f} s ({count / seconds:.0f} images/s), "
        f"{pixels / 2 ** 20:.1f} MiB of pixels in {len(files)} file{'s' if len(files) > 1 else ''}; "
        f"train with: python train.py --dataset mindrecord --data_path {out} --image_size {image_size}")
    return meta
