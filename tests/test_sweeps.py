"""Sweeps: job directory names, the summary, HParams, a real multirun and a real TensorBoard."""

import contextlib
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from ganopt.composition import MAX_DIRNAME, compose_config, safe_dirname
from ganopt.sweeps import read_sweep, summarize_sweep
from tests.conftest import REPO, load_script


def test_safe_dirname_removes_slashes_and_bounds_the_length():
    assert safe_dirname("data=folder,data.path=/home/me/faces") == (
        "data=folder,data.path=_home_me_faces"
    )
    long_a, long_b = "x=" + "a" * 300, "x=" + "a" * 299 + "b"
    assert len(safe_dirname(long_a)) == MAX_DIRNAME
    assert safe_dirname(long_a) != safe_dirname(long_b)  # the hash keeps them apart
    assert safe_dirname("loss=wgan,optim=sgd_clip") == "loss=wgan,optim=sgd_clip"


def make_job(sweep, number, overrides, metrics=None, log=""):
    job = sweep / f"{number}_{','.join(overrides)}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    (job / "train.log").write_text(log)


def test_summary_groups_seeds_with_their_interval_and_keeps_statuses(tmp_path):
    sweep = tmp_path / "sweep"
    bookkeeping = {"step": 5, "checkpoint_step": 5}  # not results: no columns
    make_job(
        sweep, 0, ["loss=standard", "trainer.seed=0"], {"status": "ok", "kl": 1.0, **bookkeeping}
    )
    make_job(sweep, 1, ["loss=standard", "trainer.seed=1"], {"status": "ok", "kl": 3.0, "step": 5})
    make_job(sweep, 2, ["loss=wgan", "trainer.seed=0"], {"status": "diverged", "kl": None})
    rejected = {"status": "rejected", "error": "invalid config: optim.d.lr: must be > 0"}
    make_job(sweep, 3, ["loss=wgan", "trainer.seed=1"], rejected)
    make_job(sweep, 4, ["loss=wgan", "trainer.seed=2"], None, log="ERROR - invalid config:")
    table, terminal = summarize_sweep(sweep)
    lines = table.strip().splitlines()
    assert lines[0] == "| loss | seeds | status | verdict | alarms | kl ↓ |"
    assert "95 % bootstrap interval" in table  # the notes come with the table
    # [1, 3]: a resample's mean is 1, 2 or 3 with probabilities 1/4, 1/2, 1/4
    assert lines[2] == "| standard | 2 | ok x2 | clean x2 | – | 2 [1, 3] |"
    # the status a job recorded, never one guessed from its log; a missing kl is no value
    assert lines[3] == "| wgan | 3 | diverged, no metrics.json, rejected | failed x3 | – | – |"
    assert table in (sweep / "summary.md").read_text()
    rows = (sweep / "summary.csv").read_text().splitlines()
    assert rows[0] == (
        "loss,seeds,status,verdict,alarms,successes,success_rate,steps_to_success_median,"
        "kl_mean,kl_ci_low,kl_ci_high,kl_std"
    )
    assert rows[1].startswith("standard,2,ok x2,clean x2,–,,,,2,1,3,1.4142")
    assert rows[2] == 'wgan,3,"diverged, no metrics.json, rejected",failed x3,–,,,,,,,'
    assert (sweep / "summary.png").stat().st_size > 0
    status = "status".ljust(len("diverged, no metrics.json, rejected"))
    assert terminal.splitlines()[0] == f"loss      seeds  {status}  verdict    alarms  kl ↓"


def make_toy_job(sweep, number, overrides, final, history, **extra):
    """A job on a 2-D mixture with its evaluations over training."""
    metrics = {"status": "ok", "n_modes": 8, **final, **extra}
    make_job(sweep, number, overrides, metrics)
    job = next(sweep.glob(f"{number}_*"))
    columns = list(history[0])
    lines = [",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in history]
    (job / "evaluations.csv").write_text("\n".join(lines) + "\n")


def test_seed_evidence_success_rate_steps_to_success_and_best_over_training(tmp_path):
    sweep = tmp_path / "sweep"
    good = [
        {"step": 1000, "modes": 8, "hq_ratio": 0.70, "kl": 0.3},
        {"step": 2000, "modes": 8, "hq_ratio": 0.85, "kl": 0.05},
        {"step": 3000, "modes": 8, "hq_ratio": 0.90, "kl": 0.1},
    ]
    late = [
        {"step": 1000, "modes": 7, "hq_ratio": 0.9, "kl": 0.2},
        {"step": 2000, "modes": 8, "hq_ratio": 0.8, "kl": 0.1},
        {"step": 3000, "modes": 8, "hq_ratio": 0.9, "kl": 0.1},
    ]
    collapsed = [
        {"step": 1000, "modes": 8, "hq_ratio": 0.9, "kl": 0.02},  # met it, then lost it
        {"step": 2000, "modes": 3, "hq_ratio": 0.9, "kl": 0.9},
        {"step": 3000, "modes": 0, "hq_ratio": 0.0, "kl": ""},
    ]
    for seed, history in enumerate((good, late, collapsed)):
        final = {k: v for k, v in history[-1].items() if k != "step" and v != ""}
        make_toy_job(sweep, seed, ["loss=hinge", f"trainer.seed={seed}"], final, history)
    wild = [{"step": 1000, "modes": 2, "hq_ratio": 0.1, "kl": 1.5}]
    make_toy_job(sweep, 3, ["loss=wgan", "trainer.seed=0"], wild[0] | {}, wild, exploding_step=50)
    table, terminal = summarize_sweep(sweep)
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header, _, *groups = (line.strip("| ").split(" | ") for line in lines)
    hinge, wgan = (dict(zip(header, row, strict=True)) for row in groups)
    assert hinge["verdict"] == "missed, success x2"
    assert hinge["success"] == "2/3"
    assert hinge["steps to success"] == "2000 (3 of 3)"  # the median of 2000, 2000 and 1000
    assert hinge["kl best ↓"] == f"{(0.05 + 0.1 + 0.02) / 3:.4g} [0.02, 0.1]"
    assert hinge["modes ↑"].startswith("**5.333 [")  # the best group's mean, in bold
    assert wgan["alarms"] == "exploding" and wgan["verdict"] == "missed"
    assert wgan["steps to success"] == "–"
    assert "success" in terminal.splitlines()[0]
    text = (sweep / "summary.md").read_text()
    assert "Success: modes >= n_modes, hq_ratio >= 0.8" in text
    # a criterion of the user's own
    table, _ = summarize_sweep(sweep, criterion={"kl": 0.5})
    assert " | 3/3 | 1000 (3 of 3) | " not in table  # the collapsed seed ends without a kl
    assert " | 2/3 | 1000 (3 of 3) | " in table


def test_a_symlinked_evaluations_file_is_not_followed(tmp_path):
    sweep = tmp_path / "sweep"
    make_job(sweep, 0, ["loss=standard"], {"status": "ok", "kl": 0.5})
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("step,kl\n1000,0.1\n")
    (next(sweep.glob("0_*")) / "evaluations.csv").symlink_to(outside)
    table, _ = summarize_sweep(sweep)
    assert "| unreadable evaluations.csv |" in table


def test_missing_values_are_never_drawn_as_zero(tmp_path, monkeypatch):
    from ganopt.sweeps import figure

    sweep = tmp_path / "sweep"
    make_job(sweep, 0, ["optim.d.lr=0.1"], {"status": "ok", "kl": None, "modes": 0})
    make_job(sweep, 1, ["optim.d.lr=0.2"], {"status": "ok", "kl": 0.4, "modes": 6})
    drawn = []
    original = figure._group

    def spy(ax, x, group, metric, criterion, rng):
        before = len(ax.collections)
        original(ax, x, group, metric, criterion, rng)
        drawn.append((metric, x, len(ax.collections) - before, [t.get_text() for t in ax.texts]))

    monkeypatch.setattr(figure, "_group", spy)
    summarize_sweep(sweep)
    kl_first = next(d for d in drawn if d[:2] == ("kl", 0))
    assert kl_first[2] == 0 and "no value" in kl_first[3]  # no point, no bar, at zero or else


def test_the_terminal_table_fits_100_columns_and_sorts_by_the_objective(tmp_path):
    sweep = tmp_path / "sweep"
    metrics = {f"metric_number_{i}": 1.0 + i for i in range(12)}
    for job, kl in enumerate((0.5, 0.1, None)):
        make_job(sweep, job, [f"optim.g.lr={job}"], {"status": "ok", "kl": kl, **metrics})
    markdown, terminal = summarize_sweep(sweep, objective=("kl", "minimize"))
    lines = terminal.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[-1].endswith("more columns in summary.md and summary.csv)")
    assert [line.split()[0] for line in lines[2:5]] == ["1", "0", "2"]  # best kl first
    assert markdown.count("metric_number_") == 12  # summary.md keeps every column
    _, maximized = summarize_sweep(sweep, objective=("kl", "maximize"))
    assert [line.split()[0] for line in maximized.splitlines()[2:5]] == ["0", "1", "2"]


def summarize_script():
    return load_script("summarize")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("file", "content", "status"),
    [
        ("metrics.json", "{not json", "unreadable metrics.json"),
        ("metrics.json", "[1, 2]", "unreadable metrics.json"),
        ("metrics.json", b"\xff\xfe", "unreadable metrics.json"),
        (".hydra/overrides.yaml", "[unclosed", "unreadable 1_loss=wgan/.hydra/overrides.yaml"),
        (".hydra/overrides.yaml", "key: value", "unreadable 1_loss=wgan/.hydra/overrides.yaml"),
    ],
)
def test_a_job_file_that_cannot_be_read_is_its_status_and_the_rest_is_summarized(
    tmp_path, file, content, status
):
    sweep = tmp_path / "sweep"
    make_job(sweep, 0, ["loss=standard"], {"status": "ok", "kl": 0.5})
    make_job(sweep, 1, ["loss=wgan"], {"status": "ok", "kl": 0.25})
    broken = next(sweep.glob("1_*")) / file
    broken.write_bytes(content if isinstance(content, bytes) else content.encode())
    table, _ = summarize_sweep(sweep)
    assert "| standard | 1 | ok | clean | – | 0.5 |" in table
    assert f"| {status} |" in table


@pytest.mark.slow
def test_summary_script_prints_the_table_and_rejects_an_empty_dir(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    make_job(sweep, 0, ["loss=standard"], {"status": "ok", "kl": 0.5})
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "summarize.py"), str(sweep)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "loss      seeds  status  verdict  alarms  kl ↓" in proc.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    assert summarize_script().main([str(empty)]) == 2
    assert "no job directories" in capsys.readouterr().err


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A real 2x2 multirun in which the two jobs with D's lr = 10 diverge on purpose."""
    sweep_dir = tmp_path_factory.mktemp("multirun") / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            "loss=nonsaturating,wgan",
            "optim=sgd",
            "optim.d.lr=0.0002,10",
            "trainer.d_steps=1",
            "trainer.steps=12",
            "trainer.log_every=4",
            "trainer.progress=false",
            "trainer.sample_every=0",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return sweep_dir, proc


@pytest.mark.slow
def test_multirun_names_jobs_records_failures_and_summarizes_itself(sweep):
    sweep_dir, proc = sweep
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert jobs[0] == "0_loss=nonsaturating,optim.d.lr=0.0002"  # what differs, no more
    assert [j.split(",")[0] for j in jobs] == [
        "0_loss=nonsaturating",
        "1_loss=nonsaturating",
        "2_loss=wgan",
        "3_loss=wgan",
    ]
    statuses = {job.name.split("_")[0]: job.status for job in read_sweep(sweep_dir)}
    assert statuses == {"0": "ok", "1": "diverged", "2": "ok", "3": "diverged"}
    summary = (sweep_dir / "summary.md").read_text()
    assert summary.count("\n| ") == 5  # header + 4 configurations
    assert "| diverged |" in summary
    assert "status" in proc.stdout.splitlines()[0]  # the callback printed the table
    header = proc.stdout.splitlines()[0]
    assert {"verdict", "alarms", "success", "steps to success"} <= set(re.split(r"\s{2,}", header))
    assert "success" in summary and "[" in summary  # intervals and the criterion
    assert max(len(line) for line in proc.stdout.splitlines()) <= 100


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, data=None):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_serves_every_job_its_gradient_norms_and_hparams(sweep):
    sweep_dir, _ = sweep
    tensorboard = shutil.which("tensorboard", path=str(Path(sys.executable).parent))
    port = _free_port()
    server = subprocess.Popen(
        [
            tensorboard or "tensorboard",
            "--logdir",
            str(sweep_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast=false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        runs = []
        while len(runs) < 5:  # the four jobs and the sweep's HParams experiment at "."
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, f"TensorBoard served {runs}"
            with contextlib.suppress(OSError):
                runs = _get(f"{base}/data/runs")
            time.sleep(0.5)
        jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
        assert sorted(runs) == [".", *jobs]  # one run per job, named by its overrides
        tags = _get(f"{base}/data/plugin/scalars/tags")
        assert all("grad_norm/G/total" in tags[run] for run in jobs)
        experiment = _get(
            f"{base}/data/plugin/hparams/experiment",
            data=json.dumps({"experimentName": ""}).encode(),
        )
        # what differs across the sweep first; the evaluation metrics before the losses
        hparams = [h["name"] for h in experiment["hparamInfos"]]
        differing = [h["name"] for h in experiment["hparamInfos"] if h.get("differs")]
        assert set(hparams[: len(differing)]) == set(differing)
        assert {"loss", "reg", "optim.d.lr", "status"} <= set(differing)  # wgan brings reg=none
        assert {"optim", "trainer.seed", "trainer.d_steps"} <= set(hparams) - set(differing)
        metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
        assert metrics[:4] == ["metrics/success", "metrics/modes", "metrics/hq_ratio", "metrics/kl"]
        assert metrics.index("grad_norm/G/total") < metrics.index("loss/D")
        clip = next(h for h in experiment["hparamInfos"] if h["name"] == "optim.clip")
        assert clip["type"] == "DATA_TYPE_STRING"  # "none", not 0.0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def test_objective_is_returned_for_sweepers():
    from ganopt.cli import objective
    from ganopt.trainer import RunResult

    cfg = compose_config(["objective.metric=kl"])
    assert objective(cfg, RunResult("ok", 5, {"kl": 0.25})) == 0.25
    assert objective(cfg, RunResult("diverged", 5, {"kl": 0.1})) == math.inf
    assert objective(cfg, None) == math.inf
    maximize = compose_config(["objective.metric=modes", "objective.direction=maximize"])
    assert objective(maximize, RunResult("failed", 1, {})) == -math.inf
    assert objective(compose_config(), RunResult("ok", 5, {"kl": 0.25})) is None


@pytest.mark.slow
def test_optuna_search_in_parallel_jobs_gets_the_objective(tmp_path):
    """configs/hparams_search/ring8_optuna.yaml through the optuna sweeper, two trials at once
    on the joblib launcher."""
    sweep_dir = tmp_path / "search"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            "hparams_search=ring8_optuna",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.n_jobs=2",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "trainer.steps=10",
            "trainer.progress=false",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    # kl is undefined (absent) for a run without a single high-quality sample: the worst value
    kls = [job.metrics.get("kl", math.inf) for job in read_sweep(sweep_dir)]
    assert len(kls) == 2
    assert results["best_value"] == pytest.approx(min(kls))
    assert set(results["best_params"]) == {"optim.g.lr", "optim.d.lr"}


def test_slurm_launcher_example_composes():
    from hydra import compose, initialize_config_dir

    from ganopt.composition import config_dir, register

    register()  # the schema configs/config.yaml names; no other test may be relied on for it
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name="config",
            return_hydra_config=True,
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu"
    assert launcher.array_parallelism == 16
