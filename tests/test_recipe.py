"""The training recipe: --recipe paper reproduces the paper's settings, --real_label is one-sided label smoothing,
and both are fixed for the life of a run."""
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
