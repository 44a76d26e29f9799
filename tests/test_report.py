"""The run report: a page whose every image exists, a GIF with one frame per grid, the config on the page, a page
for a run that has not logged anything yet, and the report of a real short training run seen by a real browser."""
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image, ImageSequence

from src.errors import UserError
from src.outputs.visuals import save_grid
from src.run.directory import write_status
from src.report import render_report
from src.report.figures import GIF_LAST_FRAME_MS, epoch_boundaries, smooth
from tests.cli import check, run_tool, train

STEPS_PER_EPOCH, EPOCHS, LOG_INTERVAL, SAMPLE_INTERVAL = 12, 3, 3, 8


class Page(HTMLParser):
    """What the tests look at in index.html: referenced files, table rows (as tuples of cell texts), all text."""

    def __init__(self, text):
        super().__init__()
        self.sources, self.rows, self.text = [], [], []
        self._row = self._cell = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("img", "script", "link", "source") or (tag == "a" and "href" in attrs):
            self.sources.append(attrs.get("src") or attrs.get("href"))
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(tuple(self._row))
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def read_page(index):
    with open(index, encoding="utf-8") as f:
        return Page(f.read())


def referenced_paths(index, page):
    """Every file the page points to, as a local path; a network or absolute reference fails the test."""
    paths = []
    for source in page.sources:
        assert source and "://" not in source and not source.startswith("/"), f"not a relative path: {source}"
        paths.append(os.path.join(os.path.dirname(index), unquote(source)))
    return paths


def random_images(seed, n=16):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, 32, 32)).astype(np.float32)


def write_fixture_run(run_dir, dataset="digits", batch_size=64):
    """A run directory as train.py leaves it after 3 epochs of 12 steps (log every 3, grid every 8 steps), with
    checkpoints, a half-written metrics line and the results of an evaluation."""
    samples = run_dir / "samples"
    samples.mkdir(parents=True)
    cfg = {"dataset": dataset, "data_path": None, "output_path": str(run_dir), "device_target": "CPU",
           "device_id": 0, "image_size": 32, "nz": 100, "ngf": 32, "ndf": 32, "nc": 3, "batch_size": batch_size,
           "lr": 0.0002, "beta1": 0.5, "epoch_size": EPOCHS, "max_steps": 0, "seed": 1,
           "log_interval": LOG_INTERVAL, "sample_interval": SAMPLE_INTERVAL}
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    rng = np.random.default_rng(0)
    with open(run_dir / "metrics.jsonl", "w") as f:
        for step in range(LOG_INTERVAL, STEPS_PER_EPOCH * EPOCHS + 1, LOG_INTERVAL):
            f.write(json.dumps({"step": step, "epoch": (step - 1) // STEPS_PER_EPOCH + 1,
                                "loss_d": float(rng.uniform(0.5, 1.5)), "loss_g": float(rng.uniform(1, 4)),
                                "d_x": float(rng.uniform(0.5, 0.9)), "d_g_z1": float(rng.uniform(0.1, 0.5)),
                                "d_g_z2": float(rng.uniform(0.05, 0.4)), "images_per_s": 100.0 + step}) + "\n")
        f.write('{"step": 39, "epoch": 4, "loss_d"')  # a line being written when the report is rendered
    save_grid(random_images(100), str(run_dir / "real_samples.png"))
    for step in range(SAMPLE_INTERVAL, STEPS_PER_EPOCH * EPOCHS + 1, SAMPLE_INTERVAL):
        save_grid(random_images(step), str(samples / f"fake_step_{step:08d}.png"))
    for epoch in range(1, EPOCHS + 1):
        step = epoch * STEPS_PER_EPOCH
        save_grid(random_images(step), str(samples / f"fake_epoch_{epoch:04d}_step_{step:08d}.png"))
    shutil.copy(samples / f"fake_epoch_{EPOCHS:04d}_step_{EPOCHS * STEPS_PER_EPOCH:08d}.png",
                samples / "fake_latest.png")
    (run_dir / "ckpt").mkdir()
    for kind, size in (("generator", 1000), ("discriminator", 700), ("train_state", 5000)):
        for step in (24, 36):
            (run_dir / "ckpt" / f"{kind}_{step:08d}.ckpt").write_bytes(b"\0" * size)
    (run_dir / "train.log").write_text("2026-01-01 10:00:00 DCGAN on digits: the log is for people; the report "
                                       "reads status.json\n")
    write_status(str(run_dir), "finished", 36, 36, started=1_767_261_600.0)
    (run_dir / "eval").mkdir()
    save_grid(random_images(7), str(run_dir / "eval" / "generate.png"))
    (run_dir / "verify.json").write_text(json.dumps({"accuracy": 0.9123, "baselines": {"pixels": 0.8012}}))
    return cfg


# Distinct steps with a grid in the fixture: every 8th step and every epoch end (24 is both, one frame).
FIXTURE_GRID_STEPS = sorted(set(range(SAMPLE_INTERVAL, 37, SAMPLE_INTERVAL)) | {12, 24, 36})


@pytest.fixture
def fixture_run(tmp_path):
    run_dir = tmp_path / "run"
    write_fixture_run(run_dir)
    return run_dir


def test_the_page_references_only_existing_files_and_shows_every_part(fixture_run):
    index = render_report(str(fixture_run))
    assert index == os.path.join(str(fixture_run), "index.html")
    page = read_page(index)
    paths = referenced_paths(index, page)
    assert paths and all(os.path.isfile(p) for p in paths), [p for p in paths if not os.path.isfile(p)]
    names = {os.path.relpath(p, fixture_run) for p in paths}
    expected = {"report/curves.png", "report/progress.gif", "report/real_vs_fake.png", "samples/fake_latest.png",
                "eval/generate.png"}
    expected |= {f"samples/fake_epoch_{e:04d}_step_{e * STEPS_PER_EPOCH:08d}.png" for e in range(1, EPOCHS + 1)}
    assert expected <= names
    text = " ".join(page.text)
    for name in ("generator_00000036.ckpt", "discriminator_00000024.ckpt", "train_state_00000036.ckpt"):
        assert name in text
    assert "4.9 KB" in text  # the train_state size
    assert ("accuracy", "0.9123") in page.rows and ("baselines.pixels", "0.8012") in page.rows  # verify.json
    assert ("steps", "36 of 36") in page.rows and ("world size", "1") in page.rows
    assert "finished" in text


def test_the_analyses_get_their_own_section_with_captions_and_the_distance_summary(fixture_run):
    analyses = fixture_run / "analyses"
    analyses.mkdir()
    for name in ("guided_backprop.png", "nearest.png", "arithmetic.png"):
        save_grid(random_images(4), str(analyses / name))
    (analyses / "nearest.json").write_text(json.dumps({"distances": {"pixel": {"median": 9.4}}, "copies": 0}))
    index = render_report(str(fixture_run))
    page = read_page(index)
    text = " ".join(page.text)
    section = text[text.index("Analyses"):]
    # In the paper's order (arithmetic, nearest, guided backprop), each with what it shows, and not again among
    # the generic evaluation files.
    positions = [section.index(f"analyses/{name}") for name in ("arithmetic.png", "nearest.png", "guided_backprop.png")]
    assert positions == sorted(positions)
    assert "Vector arithmetic" in section and "Memorisation check" in section and "What D responds to" in section
    assert ("distances.pixel.median", "9.4") in page.rows and ("copies", "0") in page.rows
    assert {os.path.join(str(analyses), n) for n in ("arithmetic.png", "nearest.png", "guided_backprop.png")} <= \
        set(referenced_paths(index, page))


def test_the_page_names_every_config_value(fixture_run):
    cfg = json.loads((fixture_run / "config.json").read_text())
    page = read_page(render_report(str(fixture_run)))
    assert ("batch_size", "64") in page.rows and ("dataset", "digits") in page.rows
    assert ("lr", "0.0002") in page.rows and ("data_path", "null") in page.rows
    config_keys = {row[0] for row in page.rows if len(row) == 2}
    assert set(cfg) <= config_keys


def test_the_gif_has_one_frame_per_saved_grid_in_step_order_and_holds_the_last(fixture_run):
    render_report(str(fixture_run))
    with Image.open(fixture_run / "report" / "progress.gif") as gif:
        assert gif.n_frames == len(FIXTURE_GRID_STEPS)
        durations = [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]
    assert durations[-1] == GIF_LAST_FRAME_MS > durations[0]


def test_identical_grids_still_make_one_frame_each(tmp_path):
    """Pillow merges identical consecutive GIF frames; a generator that did not change must not lose frames."""
    run_dir = tmp_path / "run"
    (run_dir / "samples").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"dataset": "fake", "batch_size": 8}))
    for step in (2, 4, 6):
        save_grid(random_images(0), str(run_dir / "samples" / f"fake_step_{step:08d}.png"))
    render_report(str(run_dir))
    with Image.open(run_dir / "report" / "progress.gif") as gif:
        assert gif.n_frames == 3


def test_a_run_that_has_not_logged_anything_yet_gets_a_page_saying_so(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "fake", "batch_size": 8}))
    index = render_report(str(tmp_path))
    page = read_page(index)
    text = " ".join(page.text)
    assert "No metrics yet" in text and "No grids yet" in text and "No checkpoints yet" in text
    assert all(os.path.isfile(p) for p in referenced_paths(index, page))
    assert not os.path.exists(tmp_path / "report" / "progress.gif")


def test_rendering_leaves_no_temporary_files_and_can_be_repeated(fixture_run):
    render_report(str(fixture_run))
    render_report(str(fixture_run))
    leftovers = [n for d in (fixture_run, fixture_run / "report") for n in os.listdir(d) if n.endswith(".tmp")]
    assert not leftovers


def test_smoothing_and_epoch_marks():
    assert smooth([4.0, 4.0, 4.0], 0.9) == pytest.approx([4.0, 4.0, 4.0])  # debiased: no pull towards zero
    records = [{"step": s, "epoch": (s - 1) // 4 + 1} for s in range(2, 13, 2)]
    assert epoch_boundaries(records) == [(4, 2), (8, 3)]


def test_a_bad_run_directory_is_refused_by_name(tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        render_report(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        render_report(str(tmp_path))


def test_a_bad_run_directory_is_one_line_and_exit_code_2(tmp_path):
    result = run_tool("report.py", tmp_path / "missing", timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a run directory" in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# A real training run, rendered by the command-line tool, and looked at in a real browser

@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """`train.py --dataset fake` for 4 steps (grids at steps 2 and 4), then `report.py` on its run directory."""
    run_dir = tmp_path_factory.mktemp("real") / "run"
    train("--dataset", "fake", "--max_steps", 4, "--batch_size", 8, "--output_path", run_dir, "--sample_interval", 2,
          "--log_interval", 1)
    report = check(run_tool("report.py", run_dir, timeout=120))
    return run_dir, report.stdout.strip()


def test_the_report_of_a_real_run(real_run):
    run_dir, index = real_run
    assert index == os.path.join(str(run_dir), "index.html") and os.path.isfile(index)
    page = read_page(index)
    paths = referenced_paths(index, page)
    assert all(os.path.isfile(p) for p in paths), [p for p in paths if not os.path.isfile(p)]
    assert {"report/curves.png", "report/progress.gif", "report/real_vs_fake.png"} <= \
        {os.path.relpath(p, run_dir) for p in paths}
    grids = [n for n in os.listdir(run_dir / "samples") if n.startswith("fake_step_")]
    with Image.open(run_dir / "report" / "progress.gif") as gif:
        assert gif.n_frames == len(grids) == 2
    assert ("batch_size", "8") in page.rows and ("dataset", "fake") in page.rows
    assert ("device", "CPU:0") in page.rows and ("steps", "4 of 4") in page.rows
    assert any(row[0] == "throughput" and "images/s" in row[1] for row in page.rows)


def test_the_report_of_a_real_run_renders_in_headless_chromium(real_run, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium); "
                    "the page cannot be checked in a browser")
    _, index = real_run
    shot = tmp_path / "page.png"
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
         "file://" + os.path.abspath(index)],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"no screenshot (exit code {result.returncode}): {result.stderr[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (2000, 1200)
    assert pixels.std() > 20, "the screenshot is blank"
    # The images loaded: a blank page with text only has few dark pixels; grids and curves add many.
    assert (pixels < 128).mean() > 0.02
