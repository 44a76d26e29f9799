"""The analyses on trained checkpoints, as eval.py and verify.py run them: networks in, files out.

    numbered / arithmetic  eval.py --numbered, eval.py --arithmetic "A - B + C"   (src/analysis/arithmetic.py)
    nearest                eval.py --nearest K --dataset NAME [--data_path PATH]   (src/analysis/nearest.py)
    guided                 verify.py --visualize                                   (src/analysis/guided_backprop.py)

MindSpore is imported inside the functions: the CLIs import this module after src/cpu/device.py has set up the CPU.
"""
import os

import numpy as np

from src.errors import UserError

PROGRESS_STEPS = 10  # progress lines over a large training set (one every 10%)
PROGRESS_MIN_BATCHES = 20  # smaller sets get one line at the end


def forward_of(net):
    import mindspore as ms
    return lambda x: net(ms.Tensor(np.asarray(x, np.float32))).asnumpy()


def numbered(netG, arch, output_path, num_images, seed, batch_size, ckpt_file):
    from src.analysis import arithmetic
    return arithmetic.write_numbered(forward_of(netG), arch["nz"], output_path, num_images, seed, batch_size,
                                     ckpt_file)


def arithmetic(netG, arch, output_path, expression, seed):
    from src.analysis import arithmetic as latent_arithmetic
    path, _ = latent_arithmetic.write_arithmetic(forward_of(netG), output_path, expression, arch["nz"], seed)
    return [path]


def discriminator_of(g_file):
    """(netD, arch) of the discriminator saved with the generator `g_file` (same step, same folder), or
    (None, None) when there is none."""
    from src.run import trained

    name = os.path.basename(g_file)
    d_file = os.path.join(os.path.dirname(g_file), name.replace("generator_", "discriminator_"))
    if d_file == g_file or not os.path.isfile(d_file):
        return None, None
    netD, arch, _ = trained.load(d_file, "D")
    return netD, arch


def _read(dataset, data_path, image_size, nc, batch_size, split, seed, log, num_samples=None):
    """(batches of numpy images, info) through the training pipeline, in a fixed order (shuffle only when
    sampling)."""
    from src.dataset import create_dataset

    options = dict(image_size=image_size, batch_size=batch_size, nc=nc, shuffle=num_samples is not None,
                   seed=seed, drop_remainder=False, split=split, num_samples=num_samples)
    pipeline, info = create_dataset(dataset, data_path, **options)
    batches = (np.asarray(row[0].asnumpy(), np.float32)
               for row in info.bad_files.iterate(pipeline, info.batches_per_epoch, log))
    return batches, info


def _progress(log, what, batch_size):
    """progress(seen, total) for nearest.search: a line every 10% of a large set, one at the end of a small one."""
    state = {"next": 0}

    def report(seen, total):
        if total is None or total <= 0:
            return
        small = total < PROGRESS_MIN_BATCHES * batch_size
        if seen >= total or (not small and seen >= state["next"]):
            log(f"{what}: {seen:,} / {total:,} training images")
            state["next"] = seen + max(1, total // PROGRESS_STEPS)
    return report


def nearest(netG, arch, g_file, k, dataset, data_path, output_path, num_images=64, seed=0, batch_size=128,
            log=print):
    """nearest.png and nearest.json for `num_images` samples of `seed` (generate.png's first images). The
    reference: as many real test images when the dataset has a test split, else as many training images searched
    among the others (leave-one-out). Returns the paths written."""
    from src.analysis import nearest as memorisation
    from src.outputs.generate import latent, run_batched

    if k < 1:
        raise UserError(f"--nearest must be at least 1 (training images shown per sample), not {k}")
    if not dataset:
        raise UserError("--nearest needs --dataset (and --data_path unless it is built in): the data the "
                        "generator was trained on")
    forward = forward_of(netG)
    generated = run_batched(forward, latent(seed, num_images, arch["nz"]), batch_size)
    size, nc = arch["image_size"], arch["nc"]

    netD, d_arch = discriminator_of(g_file)
    featurize, feature_note = None, "no discriminator saved with this generator: pixel distance only"
    if netD is not None and (d_arch["image_size"], d_arch["nc"]) == (size, nc):
        from src.evaluation.representation import FeatureExtractor, extract
        extractor = FeatureExtractor(netD, size)
        featurize = lambda images: extract(extractor, images, batch_size)  # noqa: E731
        feature_note = f"the discriminator saved with the generator ({sum(extractor.stage_dims)} dims)"

    test_indices, reference = None, None
    try:
        batches, test_info = _read(dataset, data_path, size, nc, batch_size, "test", seed, log,
                                   num_samples=num_images)
        if test_info.split == "test":
            test = np.concatenate(list(batches))
            reference = f"{len(test)} real test images (a seeded sample of {test_info.num_images}) -> train"
    except UserError:
        pass  # no test images on disk
    _, train_info = _read(dataset, data_path, size, nc, batch_size, "train", seed, log)
    total = train_info.images_per_epoch
    if reference is None:
        # No test split: training images, each searched among the others (one extra pass to read them).
        count = min(num_images, total - 1)
        if count < 1:
            raise UserError(f"{dataset} has {total} training image(s): too few for a nearest-neighbour reference")
        test_indices = np.sort(np.random.default_rng([seed, 11]).choice(total, count, replace=False))
        picked, seen = [], 0
        batches, _ = _read(dataset, data_path, size, nc, batch_size, "train", seed, log)
        for batch in batches:
            rows = test_indices[(test_indices >= seen) & (test_indices < seen + len(batch))] - seen
            picked.append(batch[rows])
            seen += len(batch)
        test = np.concatenate(picked)
        reference = (f"{len(test)} training images (seeded), each to its nearest other training image: "
                     f"{dataset} has no test split here")

    log(f"nearest: {num_images} generated images against {total:,} {train_info.name} training images "
        f"(batches of {batch_size}; memory does not grow with the training set)")
    batches, _ = _read(dataset, data_path, size, nc, batch_size, "train", seed, log)
    found = memorisation.search(generated, test, batches, k, featurize=featurize, total=total,
                                progress=_progress(log, "nearest", batch_size), test_indices=test_indices)
    provenance = {"checkpoint": g_file, "dataset": train_info.name, "data_path": train_info.data_path,
                  "train_split": train_info.split, "seed": seed, "reference": reference,
                  "features": feature_note}
    paths, report = memorisation.write(generated, found, output_path, provenance)
    pixel = report["distances"]["pixel"]
    log(f"nearest pixel L2, median: generated->train {pixel['generated_to_train']['p50']:.4g}, "
        f"reference {pixel['test_to_train']['p50']:.4g}; copies: {len(report['copies'])} of {num_images}")
    return paths


def parse_channels(text):
    """"0,3,7" -> [0, 3, 7] (--channels)."""
    try:
        channels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--channels '{text}': give comma-separated channel numbers, e.g. 0,1,2,3,4,5") from None
    if not channels or min(channels) < 0:
        raise UserError(f"--channels '{text}': give comma-separated channel numbers (0 or more), e.g. 0,1,2")
    return channels


def guided(netD, arch, images, output_path, channels, top, seed=0, batch_size=64):
    """guided_backprop.png for the trained `netD` and an untrained D of the same architecture (train.py's
    initialisation with `seed`), on the real `images`. Returns the path written."""
    from src.run import trained
    from src.analysis import guided_backprop
    from src.weight_init import init_weights

    untrained = trained.build(arch)
    init_weights(untrained, np.random.default_rng(seed))
    results = [guided_backprop.visualize(list(net.blocks), images, channels, top, batch_size)
               for net in (netD, untrained)]
    return guided_backprop.write(*results, output_path)
