"""The training recipe: --recipe paper reproduces the paper's settings, --real_label is one-sided label smoothing,
--diffaug augments what D sees, and all are fixed for the life of a run."""
import numpy as np
import pytest
import mindspore as ms

from src.config import parse_train_args, resolve_train_config, resume_config
from src.errors import UserError


def config(*args):
    return resolve_train_config(parse_train_args(["--dataset", "fake", *args]))


def test_paper_recipe_turns_off_what_the_paper_does_not_have_and_flags_still_win():
    default, paper = config(), config("--recipe", "paper")
    assert default["recipe"] == "default" and default["ema_decay"] == 0.99 and default["real_label"] == 1.0
    assert (default["lr"], default["lr_d"]) == (4e-4, 2e-4)  # G at twice D's rate
    assert paper["recipe"] == "paper" and paper["ema_decay"] == 0.0 and paper["real_label"] == 1.0
    assert paper["lr_d"] is None and (paper["lr"], paper["beta1"], paper["batch_size"]) == (2e-4, 0.5, 128)
    assert config("--recipe", "paper", "--ema_decay", "0.9")["ema_decay"] == 0.9  # the command line comes last


@pytest.mark.parametrize("value", ["0.5", "1.1", "0"])
def test_real_label_outside_its_range_is_one_line(value):
    with pytest.raises(UserError, match=r"--real_label must be in \(0.5, 1\]"):
        config("--real_label", value)


def test_recipe_and_real_label_are_fixed_when_resuming():
    saved = dict(config("--real_label", "0.9"), output_path="run")
    cfg, changes = resume_config(saved, parse_train_args(["--resume", "--output_path", "run"]))
    assert cfg["real_label"] == 0.9 and cfg["recipe"] == "default" and changes == []
    with pytest.raises(UserError, match=r"--real_label 1.0 cannot change when resuming: this run has real_label=0.9"):
        resume_config(saved, parse_train_args(["--resume", "--output_path", "run", "--real_label", "1"]))
    with pytest.raises(UserError, match=r"--recipe paper cannot change when resuming"):
        resume_config(saved, parse_train_args(["--resume", "--output_path", "run", "--recipe", "paper"]))
    older = {k: v for k, v in saved.items() if k not in ("real_label", "recipe")}  # saved before the options
    cfg, _ = resume_config(older, parse_train_args(["--resume", "--output_path", "run", "--recipe", "default"]))
    assert cfg["real_label"] == 1.0 and cfg["recipe"] == "default"


def test_smoothed_real_label_is_the_target_of_d_on_real_images_only():
    """D's loss with real_label 0.9 is BCE(D(x), 0.9) + BCE(D(G(z)), 0): checked against the formula in NumPy."""
    from src.cell import WithLossCellD
    from src.discriminator import Discriminator

    netD = Discriminator(32, 8, 1)
    rng = np.random.default_rng(0)
    real, fake = (ms.Tensor(rng.uniform(-1, 1, (4, 1, 32, 32)).astype(np.float32)) for _ in range(2))
    logits_real, logits_fake = netD(real).asnumpy().ravel(), netD(fake).asnumpy().ravel()

    def bce(logits, target):
        p = 1 / (1 + np.exp(-logits.astype(np.float64)))
        return float(np.mean(-(target * np.log(p) + (1 - target) * np.log(1 - p))))

    for label in (1.0, 0.9):
        loss = float(WithLossCellD(netD, label)(real, fake)[0].asnumpy())
        assert loss == pytest.approx(bce(logits_real, label) + bce(logits_fake, 0.0), rel=1e-5)


def test_diffaug_policies_are_checked_written_in_one_order_and_fixed_when_resuming():
    assert config()["diffaug"] == "" and config("--recipe", "paper")["diffaug"] == ""
    assert config("--diffaug", "cutout, translation")["diffaug"] == "translation,cutout"
    with pytest.raises(UserError, match=r"--diffaug: unknown policy flip; give a comma-separated list of color, "
                                        r"translation, cutout"):
        config("--diffaug", "translation,flip")
    saved = dict(config("--diffaug", "translation"), output_path="run")
    cfg, changes = resume_config(saved, parse_train_args(["--resume", "--output_path", "run"]))
    assert cfg["diffaug"] == "translation" and changes == []
    with pytest.raises(UserError, match=r"--diffaug cutout cannot change when resuming: this run has "
                                        r"diffaug=translation"):
        resume_config(saved, parse_train_args(["--resume", "--output_path", "run", "--diffaug", "cutout"]))
    older = {k: v for k, v in saved.items() if k != "diffaug"}  # saved before the option: no augmentation
    assert resume_config(older, parse_train_args(["--resume", "--output_path", "run"]))[0]["diffaug"] == ""


def shifted(image, dy, dx):
    """`image` (C, S, S) moved down by dy and right by dx, the uncovered border zero."""
    out, size = np.zeros_like(image), image.shape[-1]
    out[:, max(dy, 0):size + min(dy, 0), max(dx, 0):size + min(dx, 0)] = \
        image[:, max(-dy, 0):size + min(-dy, 0), max(-dx, 0):size + min(-dx, 0)]
    return out


def test_diffaugment_shifts_and_cuts_each_image_at_random_and_passes_gradients_to_g():
    from src.augment import DiffAugment

    images = np.random.default_rng(0).uniform(-1, 1, (16, 3, 32, 32)).astype(np.float32)
    translation = DiffAugment("translation", 32, seed=1)
    out = translation(ms.Tensor(images)).asnumpy()
    shifts = set()
    for image, moved in zip(images, out):  # each image is its own shift by at most 32/8 = 4 pixels each way
        found = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                 if np.array_equal(moved, shifted(image, dy, dx))]
        assert len(found) == 1, "not a shift of at most 4 pixels"
        shifts.add(found[0])
    assert len(shifts) > 8  # drawn per image, independently in x and y

    holes = DiffAugment("cutout", 32, seed=1)(ms.Tensor(np.ones((16, 1, 32, 32), np.float32))).asnumpy()[:, 0]
    for hole in holes == 0:  # one axis-aligned rectangle of zeros per image, at most half the image on each side
        rows, columns = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
        assert 8 <= len(rows) <= 16 and 8 <= len(columns) <= 16
        assert hole.sum() == len(rows) * len(columns) and np.ptp(rows) == len(rows) - 1
    assert len({hole.tobytes() for hole in holes}) > 8

    everything = DiffAugment("color,translation,cutout", 32, seed=1)

    def augmented_energy(x):
        return (everything(x) ** 2).sum()

    grad = ms.grad(augmented_energy)(ms.Tensor(images)).asnumpy()
    assert np.isfinite(grad).all() and (grad != 0).mean() > 0.5  # G's gradient flows back through the augmentation


def test_the_augmented_losses_see_augmented_images_in_both_steps():
    """WithLossCellD and WithLossCellG pass every image through `augment`: with an augmentation that blanks the
    images, D's logits no longer depend on what it was given."""
    import mindspore.nn as nn
    from src.cell import WithLossCellD, WithLossCellG
    from src.discriminator import Discriminator

    class Blank(nn.Cell):
        def construct(self, x):
            return x * 0.0

    netD = Discriminator(32, 8, 1)
    netD.set_train(False)
    rng = np.random.default_rng(0)
    real, fake = (ms.Tensor(rng.uniform(-1, 1, (4, 1, 32, 32)).astype(np.float32)) for _ in range(2))
    blank = ms.Tensor(np.zeros((4, 1, 32, 32), np.float32))
    assert float(WithLossCellD(netD, 1.0, Blank())(real, fake)[0].asnumpy()) == pytest.approx(
        float(WithLossCellD(netD, 1.0)(blank, blank)[0].asnumpy()), rel=1e-6)
    assert float(WithLossCellG(netD, Blank())(fake)[0].asnumpy()) == pytest.approx(
        float(WithLossCellG(netD)(blank)[0].asnumpy()), rel=1e-6)
