#!/usr/bin/env python3
"""Input-pipeline throughput: images/s of the training pipeline (src/dataset.py) over a folder of full-size JPEGs,
and over the same images converted to MindRecord by prepare_data.py.

Creates --num_images synthetic 500x375 JPEGs (ImageNet-like size, smooth content, quality 90) in --data_dir (kept and
reused), then iterates the `folder` pipeline train.py uses (decode, resize, center crop, normalise, batch) at each
image size and prints one JSON line per size. With the `mindrecord` format (default: both) it also converts the
folder once per size with src/data/convert.py (into <data_dir>_mindrecord<size>, kept and reused) and times
the `mindrecord` pipeline (MindDataset, normalise, batch): one more JSON line per size, with the one-off conversion
rate. Compare with bench/train_step.py's images_per_s: the pipeline should deliver several times what the training
step consumes, so training never waits for data.

usage: python bench/data.py [--data_dir /tmp/dcgan_bench_jpegs] [--num_images 2048] [--batch_size 128]
                            [--workers 2] [--image_sizes 32 64] [--epochs 2] [--formats jpeg mindrecord]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def make_jpegs(path, count, seed=0):
    """Write `count` 500x375 RGB JPEGs with smooth random content (what a photo costs to decode, roughly)."""
    os.makedirs(path, exist_ok=True)
    existing = [f for f in os.listdir(path) if f.endswith(".jpg")]
    if len(existing) >= count:
        return
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
    for i in range(count):
        a, b, c = rng.uniform(0.005, 0.05, 3)
        phase = rng.uniform(0, 6.3, 3)
        img = np.stack([np.sin(a * xx + b * yy + phase[k]) * np.cos(c * yy - phase[k]) for k in range(3)], -1)
        img = (img + 1) * 127.5 + rng.normal(0, 8, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(path, f"img_{i:06d}.jpg"), quality=90)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default="/tmp/dcgan_bench_jpegs")
    p.add_argument("--num_images", type=int, default=2048)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--image_sizes", type=int, nargs="+", default=[32, 64])
    p.add_argument("--formats", nargs="+", choices=("jpeg", "mindrecord"), default=["jpeg", "mindrecord"])
    a = p.parse_args()
    make_jpegs(a.data_dir, a.num_images)

    from src.cpu import device
    device.prepare_cpu_environment("CPU")
    from src.dataset import create_dataset

    def measure(name, path, size):
        ds, info = create_dataset(name, path, image_size=size,
                                  batch_size=a.batch_size, nc=3, shuffle=True, num_parallel_workers=a.workers)
        rates = []
        for _ in range(a.epochs):  # the first epoch includes pipeline start-up; report each and the best
            count, start = 0, time.perf_counter()
            for (batch,) in ds.create_tuple_iterator(num_epochs=1, output_numpy=True):
                count += batch.shape[0]
            rates.append(count / (time.perf_counter() - start))
        return info, {"num_images": info.num_images, "image_size": size, "batch_size": a.batch_size,
                      "workers": a.workers, "epochs_images_per_s": [round(r, 1) for r in rates],
                      "images_per_s": round(max(rates), 1)}

    for size in a.image_sizes:
        if "jpeg" in a.formats:
            _, result = measure("folder", a.data_dir, size)
            print(json.dumps({"what": "input pipeline", "format": "jpeg folder", "source": "500x375 JPEG",
                              **result}), flush=True)
        if "mindrecord" in a.formats:
            out, conversion = mindrecord_copy(a.data_dir, size, a.workers)
            _, result = measure("mindrecord", out, size)
            print(json.dumps({"what": "input pipeline", "format": "mindrecord", "source": f"prepare_data.py of "
                              f"the JPEG folder, uint8 {size}x{size}x3", **result, **conversion}), flush=True)


def mindrecord_copy(data_dir, size, workers):
    """The JPEG folder converted to MindRecord at `size` (made once, reused while it holds every JPEG), and
    {"conversion_images_per_s": ...} of the conversion (None when reused)."""
    from src.data import convert, mindrecord

    out = os.path.abspath(data_dir).rstrip(os.sep) + f"_mindrecord{size}"
    jpegs = len([f for f in os.listdir(data_dir) if f.endswith(".jpg")])
    if os.path.isdir(out):
        try:
            if mindrecord.read_metadata(out)["count"] == jpegs:
                return out, {"conversion_images_per_s": None, "conversion": "reused " + out}
        except Exception:  # noqa: BLE001 - unfinished or stale: made again below
            pass
        convert.remove_output(out, created_dir=True)
    start = time.perf_counter()
    meta = convert.convert("folder", data_dir, out, size, nc=3, num_parallel_workers=workers,
                                   log=lambda line: print(line, file=sys.stderr, flush=True))
    return out, {"conversion_images_per_s": round(meta["count"] / (time.perf_counter() - start), 1),
                 "conversion": "prepare_data to " + out}


if __name__ == "__main__":
    main()
