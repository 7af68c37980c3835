"""What a process costs before its steps (docs/performance.md, "Start-up"): a refused command
line never loads torch, a run that compiles nothing never loads torch's compiler, and
trainer.threads=auto's choice. Timings are scripts/bench.py --startup's, never asserted here."""

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from ganopt import launch
from ganopt.composition import RunComposer, compose_config
from ganopt.config import ConfigError
from ganopt.distributed import SINGLE_PROCESS
from ganopt.launch import check_flags, single_run
from ganopt.rundir import release
from ganopt.setup import device
from ganopt.setup.checks import check_config
from ganopt.setup.device import auto_threads, busy_cores, small_mlp
from tests.conftest import REPO

#: what a refused command line must not have imported
HEAVY = ("torch", "numpy", "tensorboard", "matplotlib", "sklearn")

REFUSE = f"""
import json, sys
sys.argv = ["train.py", *sys.argv[1:]]
from ganopt.entry import train
try:
    train()
except SystemExit as e:
    print(json.dumps([e.code, [m for m in {HEAVY!r} if m in sys.modules]]))
"""


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss=wgna", "loss=wgna: no such option"),
        ("+optim.g.lrr=0.1", "optim.g.lrr: not an argument of optimizer 'adam'"),
        ("optim.g.name=adamm", "optim.g.name: no optimizer 'adamm'"),
        ("trainer.steps=0", "trainer.steps: must be >= 1"),
        ("+trainer.step=3", "trainer.step: unknown key"),
    ],
)
def test_a_refused_command_line_never_imports_torch(override, message, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", REFUSE, override, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    code, imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert code == 2 and message in proc.stderr, proc.stderr
    assert imported == [], f"{override} was refused after importing {imported}"
    assert not (tmp_path / "run").exists()


EAGER = """
import sys, torch
from ganopt.eager import without_compiler

def trained():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3)).square().sum().backward()
        opt.step()
    opt.load_state_dict(opt.state_dict())
    return torch.cat([p.detach().flatten() for p in net.parameters()])

without_compiler(torch.optim.Adam)
eager = trained()
loaded = "torch._dynamo" in sys.modules
import torch._dynamo  # from now on torch's own wrappers run
print(loaded, torch.equal(eager, trained()))
"""


@pytest.mark.slow
def test_optimizers_step_without_the_compiler_stack_to_the_same_bits():
    """ganopt/eager.py: built, stepped, saved and loaded without importing torch._dynamo, and
    the same weights as torch's own wrappers give once it is imported."""
    out = subprocess.run(
        [sys.executable, "-c", EAGER], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.split() == ["False", "True"], out.stderr


@pytest.mark.slow
def test_a_short_run_composes_once_and_never_imports_the_compiler_stack(tmp_path):
    """Hydra composed a run's config three times (train.py's check, once to read the mode,
    once for the run): now the checked composition is the one that runs."""
    run = f"""
import sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
composed = []
compose = ConfigLoaderImpl._load_configuration_impl
def counted(self, *args, **kwargs):
    composed.append(1)
    return compose(self, *args, **kwargs)
ConfigLoaderImpl._load_configuration_impl = counted
sys.argv = ["train.py", "trainer.steps=3", "trainer.progress=false",
            "hydra.run.dir={tmp_path / "run"}"]
from ganopt.entry import train
try:
    train()
except SystemExit:
    pass
print(len(composed), sorted(m for m in ("torch._dynamo", "torch._inductor") if m in sys.modules))
"""
    proc = subprocess.run(
        [sys.executable, "-c", run], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert proc.stdout.strip().splitlines()[-1] == "1 []", proc.stderr
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"
    record = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert record["mode"] == "RUN"  # Hydra's record, as hydra.main writes it
    assert record["overrides"]["task"] == ["trainer.steps=3", "trainer.progress=false"]
    assert record["overrides"]["hydra"] == [f"hydra.run.dir={run_dir}", "hydra.mode=RUN"]
    assert record["runtime"]["output_dir"] == str(run_dir)


@pytest.mark.parametrize(
    ("cores", "cpus", "busy", "small", "count", "why"),
    [
        (2, 2, 0, False, 2, "one per idle core; 0 of 2 cores busy"),
        (2, 2, 1, False, 1, "one per idle core; 1 of 2 cores busy"),
        (2, 2, 12.5, False, 1, "one per idle core; 12.5 of 2 cores busy"),
        (8, 16, 11, False, 5, "one per idle core; 11 of 16 cores busy"),
        (8, 16, 0, False, 8, "one per idle core; 0 of 16 cores busy"),
        (2, 2, 0, True, 1, "small MLP; 0 of 2 cores busy"),
    ],
)
def test_auto_threads_follows_the_idle_cores_and_gives_a_small_mlp_one(
    cores, cpus, busy, small, count, why
):
    assert auto_threads(cores, cpus, busy, small) == (count, why)


def test_auto_threads_under_omp_num_threads_keeps_torchs_count_without_reading_the_load(
    monkeypatch,
):
    """OMP_NUM_THREADS chooses (torchrun, the joblib launcher, this suite): the load, which
    takes a few milliseconds to read, is not."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(device, "busy_cores", lambda: pytest.fail("the load was read"))
    line = device.set_threads("auto", torch.device("cpu"))
    assert line == f"threads {torch.get_num_threads()} (auto: OMP_NUM_THREADS=1)"


def test_busy_cores_counts_the_runnable_tasks_but_this_one(tmp_path, monkeypatch):
    """Three runnable tasks, this one among them: two cores busy, whatever the load average
    (which lags a minute behind); without /proc, the load average."""
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.31 0.20 0.10 3/412 9999\n")
    monkeypatch.setattr(device, "LOADAVG", str(loadavg))
    assert busy_cores() == 2
    monkeypatch.setattr(device, "LOADAVG", str(tmp_path / "absent"))
    monkeypatch.setattr(device.os, "getloadavg", lambda: (3.5, 1.0, 0.5))
    assert busy_cores() == 3.5


def test_a_small_mlp_is_two_mlps_no_wider_than_128():
    mlp = {"name": "mlp", "hidden": [128, 128, 128]}
    assert small_mlp({"g": mlp, "d": mlp})
    assert not small_mlp({"g": mlp, "d": {"name": "mlp", "hidden": [256]}})
    assert not small_mlp({"g": {"name": "dcgan", "width": 64}, "d": mlp})
    assert not small_mlp(None)
    assert not small_mlp({"g": {"name": "mlp", "hidden": 14}, "d": mlp})  # building refuses it


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--foo"], r"--foo: no such flag; python train\.py --help"),
        (["--multirum", "loss=wgan,standard"], "--multirum: no such flag"),
        (["-x"], "-x: no such flag"),
        (["--version"], "--version: no such flag"),
        (["--resolve", "loss=wgan"], "--resolve: only with --cfg or --help"),
        (["-p", "trainer"], "-p: only with --cfg or --help"),
    ],
)
def test_a_flag_hydra_does_not_know_is_refused_not_passed_over(argv, message):
    """``python train.py --foo`` trained, the flag silently dropped (and --version, or
    --resolve without --cfg)."""
    with pytest.raises(ConfigError, match=message):
        check_flags(["train.py", *argv])


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "loss=wgan,standard"],
        ["--cfg", "job", "-p", "trainer"],
        ["--cfg=job", "--resolve"],
        ["--info", "defaults"],
        ["-i", "loss=wgan"],
        ["--hydra-help"],
        ["-r", "trainer.steps=-1"],
    ],
)
def test_hydras_own_flags_and_their_values_pass(argv):
    check_flags(["train.py", *argv])


@pytest.mark.slow  # a whole train.py process
def test_train_py_ends_a_single_run_at_once_with_its_files_whole(tmp_path):
    """Taking torch apart at exit cost a quarter of a second per process: a single run now
    ends without the interpreter's exit handlers, once its files are closed and its log
    flushed; a failed run keeps its exit code."""
    script = """
import atexit, sys
atexit.register(lambda: print("exit handlers ran", flush=True))
sys.argv = ["train.py", *sys.argv[1:]]
from ganopt.entry import train_and_exit
train_and_exit()
"""
    quick = ["trainer.steps=3", "trainer.progress=false", "trainer.eval_every=0"]
    ran = subprocess.run(
        [sys.executable, "-c", script, *quick, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 0, ran.stderr
    assert "exit handlers ran" not in ran.stdout
    assert "ok at step 3" in (tmp_path / "run" / "train.log").read_text().splitlines()[-1]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "ok"
    refused = subprocess.run(
        [sys.executable, "-c", script, "trainer.steps=0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert refused.returncode == 2 and "trainer.steps: must be >= 1" in refused.stderr


def test_shell_completion_never_trains():
    """``--shell-completion query=...`` took query=... as its value and trained a run."""
    assert not single_run(["train.py", "--shell-completion", "query=trainer"])
    assert not single_run(["train.py", "-sc", "install=bash"])


def test_hydras_resolvers_are_there_when_the_run_is_composed():
    """``objective.metric=${now:%Y}`` composed under hydra.main, not before Hydra started."""
    cfg = compose_config(["objective.metric=${now:%Y}"], RunComposer(), ["hydra.run.dir=x"])
    check_config(cfg)
    assert cfg.objective.metric.isdigit()


def test_the_run_directory_composed_is_the_one_made_when_the_clock_turns(tmp_path, monkeypatch):
    """The name was read from the clock twice, before composing and before making it: a
    second between them and the composition checked was not the one that ran."""
    seconds = iter(range(100))

    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2026, 1, 1, 12, 0, next(seconds))

    monkeypatch.setattr(launch, "datetime", Clock)
    monkeypatch.chdir(tmp_path)
    run = RunComposer()
    argv = launch.preflight(["train.py", "trainer.steps=2"], SINGLE_PROCESS, run)
    try:
        assert run._held is not None and run._held[0][1] == tuple(argv[1:])
    finally:
        release(Path(argv[-2].partition("=")[2]))


#: command lines whose composition is Hydra's own, value by value and error by error
HYDRAS_OWN = [
    [],
    ["loss=wgan", "trainer.steps=7"],
    ["trainer.steps=7", "loss=wgan", "trainer.steps=8"],
    ["experiment=vanishing", "optim.d.lr=0.5"],
    ["model=dcgan", "data=digits", "model.g.width=16"],
    ["model=dcgan", "model.g.channels=16"],
    ["loss={name: hinge}", "reg=none"],
    ["trainer.eval_every=${trainer.steps}", "trainer.steps=40"],
    ["optim.g={name: sgd, lr: 0.1}"],
    ["++data.std=0.1", "~reg", "reg=none"],
    ["+optim.g.weight_decay=0.01", "optim.clip=0.01"],
    ["hydra.run.dir=elsewhere", "trainer.seed=3"],
    ["trainer.stepz=3"],
    ["loss=wgan", "optim.g.betas=[0.5,0.9,1]", "+trainer.extra=1"],
    ["trainer.steps=abc"],
    ["~reg"],
    ["trainer.stepz=3", "hydra.launcher.n_jobs=2"],
    ["trainer.steps=abc", "hydra.job.env_copy=[NOPE_XYZ]"],
    ["trainer.device=${hydra.job.name}", "+trainer.device=cpu"],
    ["+foo=${hydrax}", "~foo", "+hydrax=1"],
]


@pytest.mark.parametrize("overrides", HYDRAS_OWN, ids=" ".join)
def test_a_composition_is_hydras_own_though_its_groups_options_are_composed_once(overrides):
    from hydra import compose, initialize_config_dir

    from ganopt import composition

    def outcome(compose_now):
        try:
            cfg = compose_now()
        except Exception as e:  # the same error, or the same config
            return type(e), str(e)
        return OmegaConf.to_yaml(cfg), OmegaConf.is_struct(cfg), OmegaConf.is_readonly(cfg)

    def hydras():
        with initialize_config_dir(config_dir=str(composition.config_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=overrides)

    composition.register()
    expected = outcome(hydras)
    assert outcome(lambda: composition._compose(overrides)) == expected
    assert outcome(lambda: composition._compose(overrides)) == expected  # once composed


def test_a_composition_follows_the_config_directory_and_the_environment(tmp_path, monkeypatch):
    """The options kept are those of the config directory composed from (scripts and tests
    compose a copy of configs/), and an interpolation is Hydra's to resolve, each time."""
    from ganopt import composition

    assert compose_config(["loss=wgan"]).loss.name == "wgan"
    copied = tmp_path / "configs"
    shutil.copytree(composition.config_dir(), copied)
    (copied / "loss" / "wgan.yaml").write_text("name: hinge\n")
    monkeypatch.setattr(composition, "config_dir", lambda: copied)
    assert compose_config(["loss=wgan"]).loss.name == "hinge"
    for reg in ("r1", "r2"):
        monkeypatch.setenv("GANOPT_TEST_REG", reg)
        assert composition._compose(["reg=${oc.env:GANOPT_TEST_REG}"]).reg.name == reg


def test_a_config_composed_again_is_a_copy_that_changes_nothing_of_the_next():
    first = compose_config(["loss=wgan"])
    first.trainer.steps = 3
    first.loss.name = "hinge"
    again = compose_config(["loss=wgan"])
    assert again.trainer.steps != 3 and again.loss.name == "wgan"
