"""--d_contrastive: D's SimCLR loss on two augmented views of the real images (src/contrastive.py), its projection
head in D's checkpoints, and its place among the run's fixed settings."""
import numpy as np
import pytest
import mindspore as ms

from src.config import parse_train_args, resolve_train_config, resume_config
from src.errors import UserError


def config(*args):
    return resolve_train_config(parse_train_args(["--dataset", "fake", *args]))


def reference_nt_xent(z, temperature):
    """NT-Xent written out row by row: -log softmax of the partner's similarity among the other 2B - 1 rows."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    count, half = len(z), len(z) // 2
    losses = []
    for i in range(count):
        others = [j for j in range(count) if j != i]
        logits = np.array([z[i] @ z[j] for j in others]) / temperature
        partner = others.index((i + half) % count)
        losses.append(np.log(np.exp(logits).sum()) - logits[partner])
    return float(np.mean(losses))


def test_nt_xent_is_simclrs_loss_and_rewards_views_that_agree():
    from src.contrastive import nt_xent

    rng = np.random.default_rng(0)
    z = rng.normal(size=(12, 5)).astype(np.float32)
    assert float(nt_xent(ms.Tensor(z), 0.5).asnumpy()) == pytest.approx(reference_nt_xent(z, 0.5), rel=1e-5)
    agreeing = np.concatenate([z[:6], z[:6] + 0.01 * rng.normal(size=(6, 5)).astype(np.float32)])
    assert float(nt_xent(ms.Tensor(agreeing)).asnumpy()) < float(nt_xent(ms.Tensor(z)).asnumpy())


def test_d_contrastive_is_off_by_default_checked_and_fixed_when_resuming():
    assert config()["d_contrastive"] == 0.0 and config("--recipe", "paper")["d_contrastive"] == 0.0
    assert config("--recipe", "paper", "--d_contrastive", "2")["d_contrastive"] == 2.0  # a flag overrides the recipe
    assert config("--d_contrastive", "5")["d_contrastive"] == 5.0
    for bad in ("-1", "1000"):
        with pytest.raises(UserError, match=r"^--d_contrastive must be in \[0, 100\] \(0: off\), not "):
            config("--d_contrastive", bad)
    saved = dict(config("--d_contrastive", "5"), output_path="run")
    cfg, changes = resume_config(saved, parse_train_args(["--resume", "--output_path", "run"]))
    assert cfg["d_contrastive"] == 5.0 and changes == []
    with pytest.raises(UserError, match=r"--d_contrastive 1.0 cannot change when resuming: this run has "
                                        r"d_contrastive=5.0"):
        resume_config(saved, parse_train_args(["--resume", "--output_path", "run", "--d_contrastive", "1"]))
    older = {k: v for k, v in saved.items() if k != "d_contrastive"}  # saved before the option: the paper's D
    assert resume_config(older, parse_train_args(["--resume", "--output_path", "run"]))[0]["d_contrastive"] == 0.0


def test_ds_loss_gains_the_weighted_term_and_the_head_learns_from_it_alone():
    """With the term, D's loss is the GAN loss plus weight x NT-Xent of the real batch's views; the projection head's
    gradient comes from that term only (the logits never use the head)."""
    import mindspore.nn as nn
    from src.cell import WithLossCellD
    from src.contrastive import ContrastiveLoss
    from src.discriminator import Discriminator
    from src.weight_init import init_weights

    netD = Discriminator(32, 8, 1, projection_head=True)
    init_weights(netD, np.random.default_rng(0))
    netD.set_train(False)  # BatchNorm from running statistics: the logits do not depend on the rest of the batch
    rng = np.random.default_rng(1)
    real, fake = (ms.Tensor(rng.uniform(-1, 1, (6, 1, 32, 32)).astype(np.float32)) for _ in range(2))
    contrastive = ContrastiveLoss(netD, 2.0, 32, seed=3)
    contrastive.views = nn.Identity()  # every call draws new views: without them the term is the same each time
    plain = float(WithLossCellD(netD)(real, fake)[0].asnumpy())
    term = float(contrastive(real).asnumpy())
    with_term = WithLossCellD(netD, contrastive=contrastive)
    assert term > 0 and float(with_term(real, fake)[0].asnumpy()) == pytest.approx(plain + term, rel=1e-5)

    head = [p for p in netD.trainable_params() if p.name.startswith("projection.")]
    assert len(head) == 4  # two dense layers, weight and bias each
    plain_loss = WithLossCellD(netD)

    def gradients(loss_cell):
        def loss(r, f):
            return loss_cell(r, f)[0]
        grads = ms.grad(loss, None, netD.trainable_params())(real, fake)
        return {p.name: np.abs(g.asnumpy()).sum() for p, g in zip(netD.trainable_params(), grads)}

    assert all(gradients(with_term)[p.name] > 0 for p in head)
    assert all(gradients(plain_loss)[p.name] == 0 for p in head)


def test_a_contrastive_ds_checkpoint_serves_a_plain_d_and_a_plain_one_warm_starts_it(tmp_path):
    """verify.py and export.py build D without the head: they load a --d_contrastive D's checkpoint as it is; a
    --d_contrastive run warm-started from a plain D keeps its head's initial weights."""
    from src.discriminator import Discriminator
    from src.run.checkpoint import as_save_list, load_network, network_entries
    from src.weight_init import init_weights

    with_head = Discriminator(32, 8, 1, projection_head=True)
    init_weights(with_head, np.random.default_rng(0))
    ms.save_checkpoint(as_save_list(network_entries(with_head)), str(tmp_path / "contrastive.ckpt"))
    plain = Discriminator(32, 8, 1)
    load_network(str(tmp_path / "contrastive.ckpt"), plain)
    for (name, p), (_, q) in zip(network_entries(plain), network_entries(with_head)):
        np.testing.assert_array_equal(p.asnumpy(), q.asnumpy(), err_msg=name)

    ms.save_checkpoint(as_save_list(network_entries(plain)), str(tmp_path / "plain.ckpt"))
    fresh = Discriminator(32, 8, 1, projection_head=True)
    init_weights(fresh, np.random.default_rng(1))
    head_before = {name: p.asnumpy().copy() for name, p in network_entries(fresh) if name.startswith("projection.")}
    load_network(str(tmp_path / "plain.ckpt"), fresh)
    assert all(np.array_equal(p.asnumpy(), head_before[name])
               for name, p in network_entries(fresh) if name.startswith("projection."))
    np.testing.assert_array_equal(fresh.blocks[0][0].weight.asnumpy(), with_head.blocks[0][0].weight.asnumpy())


def test_a_contrastive_run_trains_resumes_with_its_head_and_verify_reads_its_d(tmp_path):
    import json
    from tests.cli import check, run_tool, train
    from tests.trained_run import SMALL_RUN

    run = tmp_path / "run"
    args = [*SMALL_RUN, "--output_path", str(run), "--d_contrastive", "5"]
    result = train(*args)
    assert "D's contrastive loss x 5 (in loss_d)" in result.stdout
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss_d"]) and r["loss_d"] > 0 for r in records)
    saved = ms.load_checkpoint(str(run / "ckpt" / "train_state_00000002.ckpt"))
    assert {"D/projection.mlp.0.weight", "optD/moment1.projection.mlp.2.weight"} <= set(saved)  # head and its Adam

    resumed = train("--resume", "--output_path", str(run), "--max_steps", "3")
    assert "resumed from" in resumed.stdout and "D's contrastive loss x 5" in resumed.stdout
    head = ms.load_checkpoint(str(run / "ckpt" / "discriminator_00000003.ckpt"))["projection.mlp.0.weight"]
    assert not np.array_equal(head.asnumpy(), saved["D/projection.mlp.0.weight"].asnumpy())  # it went on learning

    report = json.loads(check(run_tool("verify.py", "--ckpt_file", run, "--dataset", "digits", "--num_labels", "60",
                                       "--output_path", tmp_path)).stdout.strip().splitlines()[-1])
    assert report["checkpoint"].endswith("discriminator_00000003.ckpt") and 0.5 < report["accuracy"] <= 1.0
