"""End-to-end: ``train.py`` in a subprocess, its outputs read back from disk."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from ganopt.checkpoint import load
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # end-to-end: python -m pytest -m "not slow" skips it

QUIET = ["trainer.progress=false"]


def train(
    *overrides: str, cwd: Path = REPO, cmd=(sys.executable, str(REPO / "train.py")), **kwargs
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cmd, *overrides], cwd=cwd, capture_output=True, text=True, timeout=240, **kwargs
    )


def events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(
        str(run_dir), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0}
    )
    acc.Reload()
    return acc


def custom_scalars_layout(acc: EventAccumulator) -> set[str]:
    """Titles of the charts in the run's Custom Scalars layout."""
    (event,) = acc.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    return {chart.title for category in layout.category for chart in category.chart}


def test_a_run_writes_events_metrics_and_checkpoints_into_its_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    proc = train(
        "loss=wgan",
        "optim=sgd_clip",
        "trainer.steps=40",
        "trainer.log_every=10",
        "trainer.sample_every=20",
        "trainer.hist_every=20",
        f"hydra.run.dir={run_dir}",
        *QUIET,
    )
    assert proc.returncode == 0, proc.stderr

    assert list(run_dir.glob("events.out.tfevents.*")), "event files sit directly in the run dir"
    acc = events(run_dir)
    scalars = acc.Tags()["scalars"]
    expected = [
        "loss/D",
        "loss/G",
        "D/out_real",
        "D/out_fake",
        "grad_norm/G/total",
        "grad_norm/D/total",
        "grad_norm/G/fc1.weight",
        "grad_norm/D/out.bias",
        "wasserstein/estimate",
        "grad_signal/G",
        "perf/steps_per_sec",
        "grad_x/D/real",
        "grad_x/D/fake",
        "grad_x/D/interp",
        "clip/at_bound",
        "grad_norm_shadow/G/standard",
        "grad_norm_shadow/G/nonsaturating",
    ]
    for tag in expected:
        assert tag in scalars, tag
        values = acc.Scalars(tag)
        assert [e.step for e in values] == [1, 10, 20, 30, 40], tag
        assert all(math.isfinite(e.value) for e in values), tag
    assert "D/prob_real" not in scalars  # a critic has no probabilities
    assert "D/saturated_fake" not in scalars
    assert "grad_norm_shadow/G/wgan" not in scalars  # shadows are the *other* losses
    assert all(0 <= e.value <= 1 for e in acc.Scalars("clip/at_bound"))

    for tag in (
        "hist/D/out_real",
        "hist/D/out_fake",
        "hist/grad/D/fc1.weight",
        "hist/grad/G/out.bias",
    ):
        assert [e.step for e in acc.Histograms(tag)] == [20, 40], tag
    layout = custom_scalars_layout(acc)
    charts = {"gradient flow", "gradient flow (log10)", "G layers", "update ratio"}
    assert {*charts, "G gradient under each loss"} <= layout
    assert [e.step for e in acc.Scalars("grad_norm_log10/G/total")] == [
        e.step for e in acc.Scalars("grad_norm/G/total")
    ]
    assert "signal" not in layout  # a critic has no probabilities: no empty chart
    assert all(e.value == pytest.approx(1.0) for e in acc.Scalars("grad_signal/G"))
    w = acc.Scalars("wasserstein/estimate")[-1].value
    out_real, out_fake = acc.Scalars("D/out_real")[-1].value, acc.Scalars("D/out_fake")[-1].value
    assert w == pytest.approx(out_real - out_fake, abs=1e-6)
    assert [e.step for e in acc.Images("samples")] == [20, 40]  # the last step once
    for network in ("G", "D"):
        assert [e.step for e in acc.Images(f"gradient_flow/{network}")] == [20, 40]
    flow_png = Image.open(run_dir / "gradient_flow.png")  # G's heatmap above D's
    assert flow_png.width == acc.Images("gradient_flow/G")[-1].width
    assert flow_png.height == sum(acc.Images(f"gradient_flow/{n}")[-1].height for n in "GD")

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert metrics["step"] == 40
    assert metrics["grad_norm_D"] == pytest.approx(acc.Scalars("grad_norm/D/total")[-1].value)
    assert {"vanishing_step", "exploding_step"} <= set(metrics)

    ckpt = load(run_dir / "checkpoints" / "last.pt")
    assert {"G", "D", "opt_G", "opt_D", "step", "rng"} <= set(ckpt)
    assert max(v.abs().max().item() for v in ckpt["D"].values()) <= 0.01
    assert (run_dir / ".hydra" / "config.yaml").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.g.lr=-1", "optim.g.lr: must be a finite number > 0"),
        ("loss=minimax", "loss=minimax: no such option; choose from hinge"),
    ],
)
def test_a_rejected_config_exits_2_in_one_line_and_writes_nothing(tmp_path, override, message):
    run_dir = tmp_path / "run"
    proc = train(override, f"hydra.run.dir={run_dir}", *QUIET)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert message in proc.stderr
    assert not run_dir.exists()


def test_diffaugment_on_limited_digits_logs_the_held_out_gap_and_ada_rt(tmp_path):
    """docs/limited_data.md's command, shortened: D's outputs on training and held-out reals,
    their gap and r_t reach TensorBoard on every log step, and the run says what it trains on."""
    run_dir = tmp_path / "run"
    proc = train(
        *["experiment=dcgan_paper", "data.limit=200", "aug=diffaugment", "trainer.steps=4"],
        *["trainer.batch_size=32", "model.g.width=4", "model.d.width=4", "trainer.log_every=2"],
        *["trainer.eval_every=0", "trainer.sample_every=0", "trainer.hist_every=0"],
        f"hydra.run.dir={run_dir}",
        *QUIET,
    )
    assert proc.returncode == 0, proc.stderr
    assert "data digits: 200 images train, 180 held out" in proc.stderr
    assert "aug diffaugment(policy=color,translation,cutout)" in proc.stderr
    acc = events(run_dir)
    values = {}
    for tag in ("D/out_train", "D/out_heldout", "D/overfit_gap", "D/ada_rt"):
        events_of_tag = acc.Scalars(tag)
        assert [e.step for e in events_of_tag] == [1, 2, 4], tag
        assert all(math.isfinite(e.value) for e in events_of_tag), tag
        values[tag] = [e.value for e in events_of_tag]
    for train_, heldout, gap in zip(
        values["D/out_train"], values["D/out_heldout"], values["D/overfit_gap"], strict=True
    ):
        assert gap == pytest.approx(train_ - heldout, abs=1e-6)
    assert all(-1 <= r <= 1 for r in values["D/ada_rt"])
    assert values["D/out_train"] == [e.value for e in acc.Scalars("D/out_real")]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["aug=diffaugment"], "aug: diffaugment augments images, and this run's data (ring)"),
        (
            ["experiment=dcgan_paper", "aug=diffaugment", "aug.policy=[color,colour]"],
            "aug: no augmentation 'colour' in policy 'color,colour'; choose from color, "
            "translation, cutout",
        ),
        (["experiment=dcgan_paper", "data.holdout=0.6"], "data: data.holdout must be in [0, 0.5]"),
        (["experiment=dcgan_paper", "data.limit=0"], "data: data.limit must be an int from 1"),
        (["experiment=dcgan_paper", "data.limit=1618"], "to the 1617 images left after"),
    ],
    ids=["points", "policy", "holdout", "limit_0", "limit_too_large"],
)
def test_augmentation_and_limited_data_refusals_exit_2_in_one_line(tmp_path, overrides, message):
    run_dir = tmp_path / "run"
    proc = train(*overrides, f"hydra.run.dir={run_dir}", *QUIET)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert message in proc.stderr
    assert not run_dir.exists()


@pytest.mark.slow
def test_a_config_rejected_in_the_task_leaves_no_empty_outputs_date_folder(tmp_path):
    """reg.every=0 is refused while building, after Hydra made outputs/DATE/TIME_.../; the run
    directory went, and so must the folders Hydra made for it."""
    proc = train("reg.every=0", *QUIET, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "reg: every must be an int >= 1, got 0" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_sigterm_stops_cleanly_with_exit_code_143(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "train.py"),
            "trainer.steps=100000",
            "trainer.log_every=10",
            f"hydra.run.dir={run_dir}",
            *QUIET,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(run_dir.glob("events.out.tfevents.*")):  # training has started
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    assert load(run_dir / "checkpoints" / "last.pt")["step"] == metrics["step"] > 0


CONSOLE_SCRIPT = Path(sys.executable).parent / "ganopt-train"


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="needs pip install -e . (as CI does)")
def test_dcgan_on_digits_end_to_end_through_the_console_script_from_another_directory(tmp_path):
    run_dir = tmp_path / "out"  # relative to the working directory below
    proc = train(
        "model=dcgan",
        "data=digits",
        "trainer.steps=6",
        "trainer.batch_size=32",
        "trainer.log_every=3",
        "trainer.sample_every=3",
        "trainer.eval_every=3",
        "hydra.run.dir=out",
        *QUIET,
        cwd=tmp_path,
        cmd=(str(CONSOLE_SCRIPT),),
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    acc = events(run_dir)
    assert [e.step for e in acc.Images("real")] == [0]
    assert [e.step for e in acc.Images("samples")] == [3, 6]
    for tag in ("metrics/fd_digits", "metrics/classes_covered", "metrics/class_kl"):
        assert [e.step for e in acc.Scalars(tag)] == [3, 6], tag
    assert "grad_norm/D/down1.conv.weight" in acc.Tags()["scalars"]
    assert "grad_norm_shadow/G/standard" not in acc.Tags()["scalars"]  # shadows: toy data only
    layout = custom_scalars_layout(acc)
    assert {"gradient flow", "D layers", "signal"} <= layout
    assert "G gradient under each loss" not in layout  # no empty charts
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert metrics["fd_digits"] == pytest.approx(acc.Scalars("metrics/fd_digits")[-1].value)
    assert 0 <= metrics["classes_covered"] <= 10
    assert metrics["digits_classifier_acc"] > 0.95


def test_a_run_directory_is_named_after_what_the_command_line_changed(tmp_path):
    """TensorBoard lists runs by directory: outputs/DATE/TIME_<overrides> says what each one
    changed; the progress bar and resume= change nothing and stay out of the name. The name
    holds '=' and ',', which Hydra's override grammar would read as syntax: resume= takes it
    as typed."""
    proc = train("loss=wgan", "trainer.steps=2", "trainer.log_every=1", *QUIET, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (day,) = (tmp_path / "outputs").iterdir()
    (run,) = day.iterdir()
    time_of_day, _, changed = run.name.partition("_")
    assert len(time_of_day) == len("10-00-00")
    assert changed == "loss=wgan,trainer.log_every=1,trainer.steps=2"

    proc = train(f"resume={run}", "trainer.steps=4", *QUIET, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / "metrics.json").read_text())["step"] == 4
    assert list((tmp_path / "outputs").glob("*/*")) == [run]


def test_help_lists_every_option_of_every_user_facing_group_and_no_internal_group(tmp_path):
    proc = train("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("ganopt: train a GAN")
    assert max(len(line) for line in text.splitlines()) <= 100
    for group in ("loss", "optim", "reg", "model", "data", "aug", "experiment", "hparams_search"):
        assert f"\n  {group} " in text, group
        for option in (REPO / "configs" / group).glob("*.yaml"):
            assert re.search(rf"\b{option.stem}\b", text), f"{group}={option.stem}"
    for internal in ("optimizer", "sn_adam", "ganopt_schema"):
        assert internal not in text
    assert "tensorboard --logdir outputs" in text
    assert not list(tmp_path.iterdir())  # --help writes nothing


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"]], ids=["help", "cfg"])
def test_output_whose_reader_has_gone_ends_quietly(tmp_path, args, buffered):
    """``python train.py --help | head``: the pipe's reader is gone before the help is written,
    which printed a BrokenPipeError traceback (Hydra's, for --cfg); with stdout buffered, as
    it is without PYTHONUNBUFFERED, it is met when the buffer is flushed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED" or not buffered}
    read, write = os.pipe()
    os.close(read)
    try:
        command = [sys.executable, str(REPO / "train.py"), *args]
        proc = subprocess.run(
            command, cwd=tmp_path, stdout=write, stderr=subprocess.PIPE, text=True, env=env
        )
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (1, "")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args", [["--cfg", "job"], [*QUIET, "trainer.steps=2", "trainer.figures=false"]]
)
def test_a_closed_stdout_prints_nothing_and_fails_nothing(tmp_path, args):
    """``>&-``: Python's stdout is None. Hydra's --cfg wrote to it, and a run's last flush
    flushed it: each ended in a traceback."""
    shell = 'exec "$0" "$@" >&-'
    proc = subprocess.run(
        ["sh", "-c", shell, sys.executable, str(REPO / "train.py"), *args],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
