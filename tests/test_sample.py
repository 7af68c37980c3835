"""ganopt-sample: samples of a run's final generator, the very ones its evaluation saw."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ganopt.data import ring
from ganopt.evaluation import mode_metrics
from ganopt.sample import main
from tests.conftest import REPO, write_digest
from tests.test_train_cli import QUIET, train

pytestmark = pytest.mark.slow  # end-to-end: python -m pytest -m "not slow" skips it


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("toy") / "run"
    proc = train("trainer.steps=40", "trainer.log_every=20", f"hydra.run.dir={run_dir}", *QUIET)
    assert proc.returncode == 0, proc.stderr
    return run_dir


def test_samples_are_those_the_runs_own_evaluation_saw(toy_run, tmp_path, capsys):
    out = tmp_path / "samples.npy"
    assert main([str(toy_run), "--n", "2500", "--out", str(out)]) == 0
    assert "wrote 2500 samples of shape (2,)" in capsys.readouterr().out
    samples = np.load(out)
    assert samples.shape == (2500, 2) and samples.dtype == np.float32
    metrics = json.loads((toy_run / "metrics.json").read_text())
    data = ring(batch_size=1)
    mine = mode_metrics(torch.from_numpy(samples), data.centers, data.std)
    assert mine == {k: metrics[k] for k in ("modes", "hq_ratio", "kl")}


def test_another_seed_gives_other_samples_and_a_checkpoint_file_works(toy_run, tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert main([str(toy_run), "--n", "10", "--out", str(a), "--seed", "1"]) == 0
    checkpoint = toy_run / "checkpoints" / "last.pt"
    assert main([str(checkpoint), "--n", "10", "--out", str(b), "--device", "cpu"]) == 0
    assert not np.array_equal(np.load(a), np.load(b))


def test_image_runs_give_nchw_arrays_in_range_or_a_png_grid(tmp_path):
    run_dir = tmp_path / "run"
    proc = train(
        "model=dcgan",
        "data=digits",
        "model.g.width=8",
        "model.d.width=8",
        "trainer.steps=3",
        "trainer.batch_size=16",
        "trainer.eval_every=0",
        f"hydra.run.dir={run_dir}",
        *QUIET,
    )
    assert proc.returncode == 0, proc.stderr
    images = np.load(_sample(run_dir, tmp_path / "x.npy", "--n", "5"))
    assert images.shape == (5, 1, 8, 8)
    assert images.min() >= -1 and images.max() <= 1
    assert main([str(run_dir), "--out", str(tmp_path / "grid.png"), "--n", "16", "--grid"]) == 0
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (8 * 33 + 1, 2 * 33 + 1)  # 8 columns of 32-px cells, 1-px gaps


def _sample(run_dir, out, *args):
    """Through ``python -m ganopt.sample``, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "ganopt.sample", str(run_dir), "--out", str(out), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}", "--out", "{tmp}/x.npy"], "nope does not exist"),
        (["{run}", "--out", "{tmp}/x.npy", "--grid"], "--grid writes a PNG"),
        (["{run}", "--out", "{tmp}/x.png", "--grid"], "--grid is for image data"),
        (["{run}", "--out", "{tmp}/x.txt"], "--out must end in .npy"),
        (["{junk}", "--out", "{tmp}/x.npy"], "not a readable checkpoint"),
        (["{run}", "--out", "{file}/sub/x.npy"], "a_file is not a writable directory"),
        (["{run}", "--out", "{tmp}/dir.npy"], "dir.npy: it is a directory"),
        (["{run}", "--out", "/proc/x.npy"], "cannot write /proc/x.npy"),
        (["{run}", "--out", "{tmp}/x.npy", "--device", "banana"], "--device: unknown device"),
        (["{run}", "--out", "{tmp}/x.npy", "--device", "cuda:7"], "--device: 'cuda:7' requested"),
        (["{gpu_run}", "--out", "{tmp}/x.npy"], "trained on 'cuda:7', which this machine"),
    ],
    ids=[
        *("missing", "grid-npy", "grid-toy", "suffix", "corrupt", "under-a-file", "a-dir"),
        *("proc", "bad-device", "absent-device", "run-device"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(toy_run, tmp_path, capsys, args, message):
    junk_run = tmp_path / "junk"
    (junk_run / "checkpoints").mkdir(parents=True)
    (junk_run / ".hydra").mkdir()
    (junk_run / ".hydra" / "config.yaml").write_text((toy_run / ".hydra/config.yaml").read_text())
    (junk_run / ".hydra" / "overrides.yaml").write_text("[]")
    (junk_run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    write_digest(junk_run / "checkpoints" / "last.pt")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "dir.npy").mkdir()
    fill = {"missing": tmp_path / "nope", "tmp": tmp_path, "run": toy_run, "junk": junk_run}
    fill["file"] = tmp_path / "a_file"
    fill["gpu_run"] = shutil.copytree(toy_run, tmp_path / "gpu_run")  # as if trained on a GPU
    config = fill["gpu_run"] / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("device: auto", "device: cuda:7"))
    assert main([a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
