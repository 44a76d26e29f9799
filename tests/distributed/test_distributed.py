"""Data-parallel training with real processes: msrun workers on CPU (MCCL), two launcher invocations forming one
multi-node job, the rank-table launcher's environment, a killed worker, and resume."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.cli import command as tool_command, run_tool, start_tool, user_env
from tests.conftest import ROOT

SMALL = ["--ngf", "8", "--ndf", "8", "--nz", "16", "--batch_size", "4", "--log_interval", "1"]
PYTHON_DIR = os.path.dirname(sys.executable)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher_env(**extra):
    env = user_env(PATH=PYTHON_DIR + os.pathsep + os.environ["PATH"], PYTHON=sys.executable)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def msrun(workers, dataset, save, *args, env=None, wait=True):
    launch = ("scripts/run_distribute_train_msrun.sh", workers, dataset, save, "CPU", *args)
    env = env or launcher_env(MASTER_PORT=free_port())
    if not wait:
        return start_tool(*launch, env=env, start_new_session=True)
    result = run_tool(*launch, env=env)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def logged(run, name, rank):
    """The value of a '<name> X' line in rank's own train log."""
    log = (run / ("train.log" if rank == 0 else f"train_rank{rank}.log")).read_text()
    return re.findall(rf"{name} (\S+)", log)


@pytest.mark.parametrize("recipe", [[], ["--d_contrastive", "5"]], ids=["default", "d_contrastive"])
def test_two_msrun_workers_stay_identical_read_different_shards_and_only_rank0_writes(tmp_path, recipe):
    run = tmp_path / "run"
    msrun(2, "digits", run, "--max_steps", "4", *SMALL, *recipe)
    # The same parameters on both ranks (gradients all-reduced; with --d_contrastive its head's too), from different
    # data.
    assert logged(run, "parameter checksum", 0) == logged(run, "parameter checksum", 1)
    assert logged(run, "first batch checksum", 0) != logged(run, "first batch checksum", 1)
    assert "world size 2 (this is rank 1), batch 4 per device, global batch 8" in (run / "train_rank1.log").read_text()
    assert ("D's contrastive loss x 5" in (run / "train_rank1.log").read_text()) == bool(recipe)
    # One set of checkpoints, written by rank 0 alone; one metrics file and config.
    assert sorted(os.listdir(run / "ckpt")) == ["discriminator_00000004.ckpt", "generator_00000004.ckpt",
                                                "train_state_00000004.ckpt"]
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    # An epoch covers the training split once in total: 1347 digits in 2 shards of 674 -> 168 steps of 4 per rank.
    assert "168 steps/epoch" in (run / "train.log").read_text()


@pytest.fixture
def second_host():
    """A second network host on this machine: a network namespace joined to the host by a veth pair.

    msrun decides that it runs on the master node when --master_addr is one of its own addresses, and then starts
    the job's scheduler; two invocations on one host both do, and the second scheduler cannot bind the port. So
    node 1 runs in its own namespace (10.213.0.2) and reaches node 0's scheduler at 10.213.0.1, as a real second
    machine would.
    """
    name = f"dcgan{os.getpid() % 100000}"
    commands = [f"ip netns add {name}", f"ip link add {name}h type veth peer name {name}p",
                f"ip link set {name}p netns {name}", f"ip addr add 10.213.0.1/24 dev {name}h",
                f"ip link set {name}h up", f"ip netns exec {name} ip addr add 10.213.0.2/24 dev {name}p",
                f"ip netns exec {name} ip link set {name}p up", f"ip netns exec {name} ip link set lo up"]
    for command in commands:
        if subprocess.run(command.split(), capture_output=True).returncode != 0:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            subprocess.run(["ip", "link", "del", f"{name}h"], capture_output=True)
            pytest.skip(f"cannot create a network namespace for the second node ('{command}' failed: needs root "
                        "and iproute2)")
    yield ["ip", "netns", "exec", name]
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", f"{name}h"], capture_output=True)


def test_two_launcher_invocations_with_node_ranks_form_one_job(tmp_path, second_host):
    run = tmp_path / "run"
    env = dict(NODES=2, MASTER_ADDR="10.213.0.1", MASTER_PORT=free_port())
    command = tool_command("scripts/run_distribute_train_msrun.sh", 2, "fake", run, "CPU", "--max_steps", 3, *SMALL)
    nodes = [subprocess.Popen(prefix + command, cwd=ROOT, env=launcher_env(NODE_RANK=rank, **env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank, prefix in ((0, []), (1, second_host))]
    for node in nodes:
        out, err = node.communicate(timeout=600)
        assert node.returncode == 0, out[-2000:] + err[-2000:]
    assert "world size 2 (this is rank 1)" in (run / "train_rank1.log").read_text()
    assert logged(run, "parameter checksum", 0) == logged(run, "parameter checksum", 1)
    assert (run / "ckpt" / "generator_00000003.ckpt").exists()


def test_distributed_resume_matches_an_uninterrupted_distributed_run(tmp_path):
    msrun(2, "fake", tmp_path / "straight", "--max_steps", "4", *SMALL)
    msrun(2, "fake", tmp_path / "split", "--max_steps", "2", *SMALL)
    msrun(2, "fake", tmp_path / "split", "--resume", "--max_steps", "4")
    assert "resumed from" in (tmp_path / "split" / "train_rank1.log").read_text()
    import mindspore as ms
    straight = ms.load_checkpoint(str(tmp_path / "straight" / "ckpt" / "train_state_00000004.ckpt"))
    split = ms.load_checkpoint(str(tmp_path / "split" / "ckpt" / "train_state_00000004.ckpt"))
    for name, value in straight.items():
        if not isinstance(value, str):
            np.testing.assert_allclose(split[name].asnumpy(), value.asnumpy(), rtol=1e-6, atol=1e-7, err_msg=name)


def test_a_killed_worker_ends_the_whole_job_with_a_clear_message(tmp_path):
    run = tmp_path / "run"
    job = msrun(2, "digits", run, "--max_steps", "100000", *SMALL, wait=False)
    worker = worker_once_training(job, run, rank=1)
    os.kill(worker, signal.SIGKILL)
    killed_at = time.time()
    try:
        _, err = job.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        pytest.fail("the job hung after a worker was killed")
    assert job.returncode != 0
    assert "error: the distributed job stopped" in err and "worker failed or was killed" in err
    assert time.time() - killed_at < 180
    assert not [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if is_worker(pid, str(run))]


def test_sigterm_to_one_worker_stops_every_rank_at_the_same_step_and_rank0_saves_it(tmp_path):
    run = tmp_path / "run"
    job = msrun(2, "digits", run, "--max_steps", "100000", "--metrics_interval", "0", *SMALL, wait=False)
    worker = worker_once_training(job, run, rank=1)
    os.kill(worker, signal.SIGTERM)  # what a scheduler sends; here to one rank only
    try:
        job.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        pytest.fail("the job hung after a worker was asked to stop")
    steps = [re.findall(r"interrupted at step (\d+)", (run / name).read_text()) for name in ("train.log",
                                                                                            "train_rank1.log")]
    assert steps[0] and steps[0] == steps[1]  # both ranks stopped after the same step
    assert (run / "ckpt" / f"train_state_{int(steps[0][0]):08d}.ckpt").is_file()


def test_workers_wait_for_rank0_measuring_quality_for_longer_than_the_schedulers_timeout(tmp_path):
    # Rank 0 alone measures quality while rank 1 waits in the next all-reduce; the first measurement trains the
    # quality classifier (~25 s at 64 px on a 2-core VM). MS_NODE_TIMEOUT=10 makes msrun's scheduler quick to
    # notice a dead worker; the workers must still wait longer than that for each other.
    # A home of its own, so that no classifier cached by an earlier run makes the measurement short; the CPU
    # kernels built once per user are shared, not rebuilt.
    home = tmp_path / "home"
    (home / ".cache" / "dcgan").mkdir(parents=True)
    kernels = os.path.join(os.path.expanduser("~"), ".cache", "dcgan", "custom_ops")
    if os.path.isdir(kernels):
        os.symlink(kernels, home / ".cache" / "dcgan" / "custom_ops")
    run = tmp_path / "run"
    env = launcher_env(MASTER_PORT=free_port(), MS_NODE_TIMEOUT=10, HOME=home)
    msrun(2, "digits", run, "--max_steps", "20", "--metrics_interval", "10", "--image_size", "64", *SMALL, env=env)
    measured = re.search(r"quality at step 10: .*\[(\d+\.\d) s\]", (run / "train.log").read_text())
    assert measured and float(measured.group(1)) > 10  # rank 1 did wait longer than the scheduler's timeout
    assert logged(run, "parameter checksum", 0) == logged(run, "parameter checksum", 1)


def worker_once_training(job, run, rank):
    """The pid of rank's worker, once its log shows it training."""
    log = run / ("train.log" if rank == 0 else f"train_rank{rank}.log")
    deadline = time.time() + 300
    while not (log.exists() and "[2/" in log.read_text()):
        assert time.time() < deadline and job.poll() is None, "the job did not start training"
        time.sleep(1)
    return next(pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if is_worker(pid, str(run), rank))


def is_worker(pid, run, rank=None):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f"--output_path\0{run}\0".encode() not in f.read():
                return False
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    except OSError:
        return False
    return env.get(b"MS_ROLE") == b"MS_WORKER" and (rank is None or env.get(b"RANK_ID") == str(rank).encode())


RANK_TABLE = {"version": "1.0", "server_count": "1", "status": "completed", "server_list": [
    {"server_id": "10.0.0.1", "host_nic_ip": "reserve", "device": [
        {"device_id": "4", "device_ip": "192.1.27.6", "rank_id": "0"},
        {"device_id": "5", "device_ip": "192.2.27.6", "rank_id": "1"}]}]}


def recording_interpreter(tmp_path):
    """A stand-in for python that records how train.py was started, and is the real python for everything else."""
    record = tmp_path / "launches.txt"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/bash
if [ "$1" != "{ROOT}/train.py" ]; then exec "{sys.executable}" "$@"; fi
echo "$PWD|$RANK_TABLE_FILE|$RANK_SIZE|$RANK_ID|$DEVICE_ID|$*" >> "{record}"
""")
    fake.chmod(0o755)
    return fake, record


def test_rank_table_launcher_starts_one_process_per_device_with_its_environment(tmp_path):
    table = tmp_path / "rank_table_2pcs.json"
    table.write_text(json.dumps(RANK_TABLE))
    fake, record = recording_interpreter(tmp_path)
    save = tmp_path / "run"
    result = run_tool("scripts/run_distribute_train.sh", table, "digits", save, "--max_steps", 5,
                      env=user_env(PYTHON=fake), timeout=120)
    assert result.returncode == 0, result.stderr
    for _ in range(100):  # the ranks run in the background
        if record.exists() and len(record.read_text().splitlines()) == 2:
            break
        time.sleep(0.1)
    launches = sorted(line.split("|") for line in record.read_text().splitlines())
    assert [launch[:5] for launch in launches] == [
        [str(save / "device0"), str(table), "2", "0", "4"], [str(save / "device1"), str(table), "2", "1", "5"]]
    for launch in launches:
        args = launch[5]
        assert f"--dataset digits --output_path {save} --device_target Ascend --run_distribute --max_steps 5" in args
    assert len((save / "pids").read_text().split()) == 2


@pytest.mark.parametrize("content, message", [
    (None, "rank table not found"),
    ("{not json", "is not valid JSON"),
    (json.dumps({"version": "1.0", "server_list": [{"server_id": "1", "device": []}]}), "lists no devices"),
])
def test_rank_table_launcher_refuses_a_bad_table_in_one_line(tmp_path, content, message):
    table = tmp_path / "table.json"
    if content is not None:
        table.write_text(content)
    result = run_tool("scripts/run_distribute_train.sh", table, "digits", tmp_path / "run",
                      env=user_env(PYTHON=sys.executable), timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
