"""Beyond one process: two simulated nodes (torchrun; SLURM's variables through the shipped sbatch
script), one cache shared by the nodes, and the one-node DDP run they must match."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from speechrnn.cli.hydra_app import RANK_VARIABLES, follower_overrides, launched_as_follower
from speechrnn.data.datamodule import SpeechCommandsDataModule
from speechrnn.training.settings import TrainSettings

from support.cli import compose_config, console_script, run_console, small_task_overrides

REPO = Path(__file__).resolve().parents[1]
SBATCH = REPO / "scripts" / "slurm" / "train.sbatch"
SUPPORT = Path(__file__).resolve().parent / "support"  # holds the stand-in `srun`
# 2 epochs, seed 1, batch norm in the stem (per-process statistics), 3 test batches of 10 clips
RECIPE = (
    "trainer.max_epochs=2",
    "seed=1",
    "data.batch_size=10",
    "model.conv_channels=4",
    "model.conv_stride=2",
)
TWO_NODES = ("trainer=cpu_ddp", "trainer.devices=1", "trainer.num_nodes=2")
NODE_TIMEOUT = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_env(**extra: str) -> dict[str, str]:
    """This environment, one thread per process (as Lightning gives each of two DDP processes)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def overrides(corpus: Path, run_dir: Path, *extra: str) -> list[str]:
    return small_task_overrides(corpus, run_dir, *RECIPE, *extra)


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def one_node(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run dir of one node running two DDP processes (Lightning starts the second)."""
    run_dir = tmp_path_factory.mktemp("one_node")
    args = overrides(small_corpus, run_dir, "trainer=cpu_ddp")
    result = run_console("speechrnn-train", *args, timeout=NODE_TIMEOUT, env=node_env())
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def clips(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """How many clips the validation and test splits of the task hold."""
    cfg = compose_config("train", overrides(small_corpus, tmp_path_factory.mktemp("count")))
    data = TrainSettings.from_config(cfg)
    module = SpeechCommandsDataModule(data.data, data.augment, progress=False)
    module.setup("fit")
    return {"val": module.num_val_clips, "test": module.num_test_clips}


def assert_matches_one_node(run_dir: Path, one_node: Path, clips: dict[str, int]) -> None:
    """Same metrics as the one-node run; every validation and test clip counted exactly once."""
    metrics, reference = metrics_of(run_dir), metrics_of(one_node)
    for key in ("best_val_acc", "test_acc", "epochs", "val_clips", "test_clips"):
        assert metrics[key] == reference[key], key
    assert (metrics["val_clips"], metrics["test_clips"]) == (clips["val"], clips["test"])
    report = json.loads((run_dir / "report" / "metrics.json").read_text())
    assert report["clips"] == clips["test"]
    assert metrics["test_acc"] == pytest.approx(report["accuracy"], abs=1e-6)
    assert len(list((run_dir / "checkpoints").glob("best-*.ckpt"))) == 1


def assert_cache_built_once(cache_dir: Path) -> None:
    """One complete entry per split and for the noise; no builder's temp file left behind."""
    (folder,) = (cache_dir / "waves").iterdir()
    names = sorted(p.name.split("-")[0] for p in folder.glob("*.npy"))
    assert names == ["noise", "test", "train", "validation"], names
    assert not list(folder.glob("*.building-*")) and not list(folder.glob("*.tmp"))


def test_one_node_two_processes_rank_zero_alone_writes(
    one_node: Path, clips: dict[str, int]
) -> None:
    metrics = metrics_of(one_node)
    assert metrics["epochs"] == 2
    assert (metrics["val_clips"], metrics["test_clips"]) == (clips["val"], clips["test"])
    assert len(list((one_node / "checkpoints").glob("best-*.ckpt"))) == 1
    # The two processes' test shares add up to the single-process report, clip for clip: the same
    # fixed test set (silence crops) whatever the training seed.
    report = json.loads((one_node / "report" / "metrics.json").read_text())
    assert metrics["test_acc"] == pytest.approx(report["accuracy"], abs=1e-6)
    # Lightning starts the second process as `... hydra.job.name=train_ddp_process_1`: its log
    # file must not land in rank 0's run dir.
    assert [p.name for p in one_node.glob("*.log")] == ["speechrnn-train.log"]


def test_two_nodes_under_torchrun_match_one_node(
    small_corpus: Path, tmp_path: Path, one_node: Path, clips: dict[str, int]
) -> None:
    run_dir, shared_cache = tmp_path / "run", tmp_path / "shared_cache"
    follower = tmp_path / "node1_hydra"  # where node 1's Hydra would write, if it wrote at all
    args = overrides(small_corpus, run_dir, *TWO_NODES, f"data.cache_dir={shared_cache}")
    port = free_port()
    nodes = []
    for rank, extra in ((0, []), (1, [f"hydra.run.dir={follower}"])):
        command = [
            console_script("torchrun"),
            "--nnodes=2",
            "--nproc-per-node=1",
            f"--node-rank={rank}",
            "--master-addr=127.0.0.1",
            f"--master-port={port}",
            "--no-python",
            console_script("speechrnn-train"),
            *args,
            *extra,
        ]
        nodes.append(
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node_env()
            )
        )
    outputs = [node.communicate(timeout=NODE_TIMEOUT) for node in nodes]
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err[-3000:]
    assert_matches_one_node(run_dir, one_node, clips)
    assert not follower.exists() or not any(follower.iterdir())
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert "run dir:" in outputs[0][0] and "run dir:" not in outputs[1][0]
    assert outputs[0][0].count("model:") == 1 and "model:" not in outputs[1][0]
    assert_cache_built_once(shared_cache)


def test_sbatch_script_under_slurm_variables_matches_one_node(
    small_corpus: Path, tmp_path: Path, one_node: Path, clips: dict[str, int]
) -> None:
    """scripts/slurm/train.sbatch as sbatch would run it on 2 nodes x 1 task, `srun` standing in."""
    run_dir, shared_cache = tmp_path / "run", tmp_path / "shared_cache"
    args = [
        o
        for o in overrides(small_corpus, run_dir)
        if not o.startswith(("trainer=", "run_dir="))  # the script sets both
    ]
    env = node_env(
        PATH=f"{SUPPORT}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        SLURM_JOB_ID="4242",
        SLURM_JOB_NAME="speechrnn-train",
        SLURM_NNODES="2",
        SLURM_NTASKS_PER_NODE="1",
        SLURM_NODELIST="127.0.0.1",
        MASTER_PORT=str(free_port()),
        SPEECHRNN_CACHE=str(shared_cache),
        RUN_DIR=str(run_dir),
    )
    result = subprocess.run(
        ["bash", str(SBATCH), *args, "trainer.accelerator=cpu"],
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run dir:") == 1
    assert_matches_one_node(run_dir, one_node, clips)
    assert_cache_built_once(shared_cache)


# One process preparing a corpus into a cache dir, logging each split it decodes (fresh processes:
# a fork of the test process could deadlock in torch's thread pool).
PREPARE_LOGGING_BUILDS = """
import sys
import time
from speechrnn.data import cache
from speechrnn.data.corpus import prepare
from speechrnn.data.settings import DataConfig

root, cache_dir, log = sys.argv[1:]
build = cache._build_split

def logged(*args, **kwargs):
    with open(log, "a") as out:
        out.write(args[1] + "\\n")
    time.sleep(3)  # a slow decode: the other process arrives while this one builds
    build(*args, **kwargs)

cache._build_split = logged
prepare(DataConfig(root=root, cache_dir=cache_dir, words=None), progress=False)
"""


def test_two_processes_preparing_one_shared_cache_build_each_split_once(
    toy_corpus: Path, tmp_path: Path
) -> None:
    """One builds while the other waits on the lock, then finds the caches complete."""
    log, shared = tmp_path / "builds.log", tmp_path / "shared_cache"
    command = [sys.executable, "-c", PREPARE_LOGGING_BUILDS, str(toy_corpus), str(shared), str(log)]
    workers = [
        subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=node_env())
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=NODE_TIMEOUT)
        assert worker.returncode == 0, err[-3000:]
    assert sorted(log.read_text().split()) == ["test", "train", "validation"]
    assert_cache_built_once(shared)


@pytest.mark.parametrize("variable", ["RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"])
def test_a_process_started_as_rank_above_zero_keeps_hydra_out_of_the_run_dir(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "0")
    assert not launched_as_follower()
    monkeypatch.setenv(variable, "1")
    assert launched_as_follower()
    # Lightning's own second process comes with hydra.output_subdir=null already
    assert follower_overrides(["a=1", "hydra.output_subdir=null"]) == ["hydra/job_logging=stdout"]
