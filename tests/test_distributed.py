"""torchrun + DistributedDataParallel on CPU (gloo, 2 processes), and cluster launchers."""

import gc
import json
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml
from torch import nn

from ganopt.config import ConfigError
from ganopt.data import ImageBatches
from ganopt.distributed import World, shutdown
from ganopt.launch import preflight, run_dir_overrides
from tests.conftest import REPO
from tests.test_train_cli import events

pytestmark = pytest.mark.slow  # end-to-end: python -m pytest -m "not slow" skips it

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def torchrun(*args, cwd, timeout=240):
    return subprocess.run(
        [*TORCHRUN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_two_processes_write_one_run_directory_and_resume_it(tmp_path):
    """torchrun: one run directory, rank 0 alone writes, identical weights; then resume=
    continues that run from the command line with its original overrides, TensorBoard
    continuing as one series (the single-process resume path is the same code)."""
    proc = torchrun(
        str(REPO / "train.py"),
        "loss=wgan",
        "optim=rmsprop_clip",
        "trainer.steps=6",
        "trainer.log_every=2",
        "trainer.batch_size=64",
        "trainer.progress=false",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = [p for p in (tmp_path / "outputs").glob("*/*") if p.is_dir()]
    assert len(run_dirs) == 1  # the ranks agreed on one directory
    run = run_dirs[0]
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # rank 0 alone writes events
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert metrics["world_size"] == 2
    assert metrics["ranks_in_sync"] is True  # identical weights on both ranks at the end
    assert (run / "checkpoints" / "last.pt").exists()
    original = (run / ".hydra" / "config.yaml").read_text()

    resumed = torchrun(str(REPO / "train.py"), f"resume={run}", "trainer.steps=9", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [p for p in (tmp_path / "outputs").glob("*/*") if p.is_dir()] == [run]  # same run
    assert (run / ".hydra" / "config.yaml").read_text() == original  # kept
    resumed_dirs = [p for p in (run / ".hydra").glob("resumed_*") if (p / "config.yaml").exists()]
    resumed_cfg = yaml.safe_load((resumed_dirs[-1] / "config.yaml").read_text())
    assert resumed_cfg["loss"]["name"] == "wgan"  # overrides came back
    assert resumed_cfg["optim"]["clip"] == 0.01
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["status"], metrics["step"], metrics["ranks_in_sync"]) == ("ok", 9, True)
    steps = [e.step for e in events(run).Scalars("loss/D")]
    assert steps == [1, 2, 4, 6, 8, 9]  # one series, no duplicate steps


def test_game_update_rules_keep_the_ranks_in_sync(tmp_path):
    """Simultaneous extragradient steps: two passes, two all-reduces per network and step."""
    proc = torchrun(
        str(REPO / "train.py"),
        "optim=extra_adam",
        "trainer.update=simultaneous",
        "trainer.steps=4",
        "trainer.batch_size=64",
        "trainer.progress=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["status"], metrics["world_size"], metrics["ranks_in_sync"]) == ("ok", 2, True)


def test_divergence_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    proc = torchrun(
        str(REPO / "tests" / "scripts" / "diverge_on_one_rank.py"), str(tmp_path), cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for result in ranks:  # rank 1's data turned NaN at step 7, rank 0's never did
        assert (result["status"], result["step"], result["diverged_step"]) == ("diverged", 10, 7)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "diverged"
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 5  # last good


def test_two_ranks_with_half_batches_give_the_gradients_of_one_full_batch(tmp_path):
    """No BatchNorm: the mean over 2 x B/2 equals the mean over B, also with a gradient
    penalty (built with create_graph, reduced in the same single backward)."""
    script = str(REPO / "tests" / "scripts" / "first_step_grads.py")
    proc = torchrun(script, str(tmp_path / "ddp.pt"), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, script, str(tmp_path / "one.pt")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    ddp, one = torch.load(tmp_path / "ddp.pt"), torch.load(tmp_path / "one.pt")
    assert set(ddp) == set(one) == {"nonsaturating", "standard+r1"}
    for case in one:
        for name in one[case]:
            torch.testing.assert_close(
                ddp[case][name], one[case][name], rtol=1e-5, atol=1e-7, msg=f"{case}: {name}"
            )


def test_shutdown_frees_unreferenced_ddp_wrappers_before_it_destroys_the_group(
    tmp_path, monkeypatch
):
    """A DDP wrapper that outlives destroy_process_group keeps the gloo group's threads into
    the interpreter's finalization, where a rank can abort after a good run (the torchrun
    tests above did, now and then). A Trainer's wrappers sit in reference cycles."""
    store = f"file://{tmp_path / 'store'}"
    dist.init_process_group("gloo", init_method=store, rank=0, world_size=1)
    freed_at_destroy = []
    destroy = dist.destroy_process_group
    monkeypatch.setattr(
        dist, "destroy_process_group", lambda: (freed_at_destroy.append(alive() is None), destroy())
    )
    gc.disable()  # only shutdown() may collect the cycle
    try:
        cycle = {"wrapper": World(rank=0, size=2).wrap(nn.Linear(2, 1), torch.device("cpu"))}
        cycle["itself"] = cycle
        alive = weakref.ref(cycle["wrapper"])
        del cycle
        shutdown()
    finally:
        gc.enable()
        if dist.is_initialized():
            destroy()
    assert freed_at_destroy == [True]
    assert not dist.is_initialized()


def test_image_shards_are_disjoint_and_cover_every_image_each_epoch():
    images = torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 8, 8).contiguous()
    shards = [ImageBatches(images, batch_size=5) for _ in range(2)]
    for rank, data in enumerate(shards):
        data.shard(rank, 2, seed=7)
    epoch = [next(data)[:, 0, 0, 0].long().tolist() for data in shards]
    assert sorted(epoch[0] + epoch[1]) == list(range(10))

    # resuming: rank 1 rebuilds its own slice from rank 0's saved state
    state = shards[0].state_dict()
    restored = ImageBatches(images, batch_size=5)
    restored.shard(1, 2, seed=7)
    restored.load_state_dict(state)
    assert torch.equal(next(restored), next(shards[1]))


def test_ranks_agree_on_the_run_directory_and_only_rank_0_writes_logs():
    argv = run_dir_overrides(Path("out/a"), None, World(rank=1, size=2))
    assert "hydra.run.dir=out/a" in argv
    assert "hydra.output_subdir=null" in argv
    assert run_dir_overrides(Path("out/a"), None, World(0, 2)) == [
        "hydra.run.dir=out/a",
        "hydra.mode=RUN",
    ]
    with pytest.raises(ConfigError, match="cannot run under torchrun"):
        preflight(["train.py", "-m", "loss=wgan,standard"], World(0, 2))


def test_a_sweep_through_the_submitit_local_launcher(tmp_path):
    """What hydra/launcher=slurm does on a cluster, on this machine (submitit's local mode)."""
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            "hydra/launcher=submitit_local",
            "loss=standard,wgan",
            "trainer.steps=3",
            "trainer.progress=false",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert [p.name.split(",")[0] for p in jobs] == ["0_loss=standard", "1_loss=wgan"]
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["status"] == "ok"
    assert (sweep / "summary.md").exists()
    assert Path(sweep / ".submitit").is_dir()
