"""A config, a command line and a run directory are data: they never run code (each payload
below would copy a secret file to a canary path if it did), nothing ganopt writes or deletes
follows a symlink out of a run directory, a run never overwrites another, and a checkpoint is
verified before it loads. Each case was reproduced on the code before these rules held."""

import hashlib
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

import ganopt.cli
import ganopt.rundir
from ganopt.checkpoint import CheckpointDir, CheckpointError, load, save_atomic
from ganopt.config import ConfigError
from ganopt.rundir import WriteError, lock, new_run_dir, release, write_atomic
from tests.conftest import REPO
from tests.test_hostile import QUICK, assert_refused, run_entry, run_main


@pytest.fixture
def secret(tmp_path):
    """A file a payload would copy, and the canary path it would copy it to."""
    source = tmp_path / "secret"
    source.write_text("secret")
    return source, tmp_path / "canary"


def copy_payload(secret) -> str:
    source, canary = secret
    return f"{{_target_:shutil.copyfile,src:{source},dst:{canary}}}"


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 4-step run directory, through train.py's entry point in this process. Without
    figures: no test here reads them, and a run that draws them starts a drawing process (half
    a second of a CPU the other test worker is using), as does every resume that finishes it."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert run_entry([*QUICK, "trainer.steps=4", "trainer.figures=false"], run_dir) == 0
    return run_dir


@pytest.fixture
def run(finished, tmp_path):
    """A private copy of a finished 4-step run."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


# ---------------------------------------------------------------- the command line
COMMAND_LINE = [
    lambda p: [f"+model.d.extra=[{p}]"],  # a list value
    lambda p: [f"+model.g.more=[[{p}]]"],  # a list of lists
    lambda p: [f"model.g.hidden=[{p}]"],  # an existing list's value
    lambda p: [f"+data.opts={{a:{{b:[{p}]}}}}"],  # dicts and lists
    lambda p: ["+model.d.extra='${oc.create:\"" + p.replace(",", ", ").replace(":", ": ") + "\"}'"],
    lambda p: [f"+hydra.callbacks.x={p}"],
    lambda p: [
        "+hydra.callbacks.x._target_=shutil.copyfile",
        *(f"+hydra.callbacks.x.{k}" for k in p.strip("{}").split(",")[1:]),
    ],
    lambda p: [f"+hydra.job_logging.handlers.x={p.replace('_target_', 'class')}"],
    lambda p: ["+hydra.launcher.x='${oc.create:\"" + p.replace(",", ", ") + "\"}'"],
]


@pytest.mark.parametrize("payload", COMMAND_LINE, ids=range(len(COMMAND_LINE)))
def test_no_override_runs_code(payload, secret, tmp_path, capfd):
    run_dir = tmp_path / "run"
    code, err = run_main(
        [*QUICK, "trainer.steps=2", *payload(copy_payload(secret))], run_dir, capfd
    )
    assert_refused(code, err, run_dir, "refused")
    assert not secret[1].exists()


@pytest.mark.parametrize(
    "flag", ["--experimental-rerun={pickle}", "-cd={tmp}", "--config-dir={tmp}", "-cn=config"]
)
def test_flags_that_read_configs_or_pickles_from_elsewhere_are_refused(
    flag, secret, tmp_path, capfd
):
    pickled = tmp_path / "config.pickle"
    pickled.write_bytes(pickle.dumps(Copy(*secret)))
    argv = [flag.format(pickle=pickled, tmp=tmp_path)]
    code, err = run_main(argv, tmp_path / "run", capfd)
    assert_refused(code, err, tmp_path / "run", "refused; ganopt reads its own configs/ only")
    assert not secret[1].exists()


class Copy:
    """A pickle that copies a file when it is loaded."""

    def __init__(self, source, canary):
        self.args = (str(source), str(canary))

    def __reduce__(self):
        return (shutil.copyfile, self.args)


# ---------------------------------------------------------------- a run directory's record
RECORDED = [
    lambda p, run: [f"+model.d.extra=[{p}]"],
    lambda p, run: [f"--experimental-rerun={run}/.hydra/config.pickle"],
    lambda p, run: [f"+hydra.callbacks.x={p}"],
    lambda p, run: ["data._target_=shutil.copyfile"],
    lambda p, run: ["trainer.steps=4", f"+loss.x={{y:[[{p}]]}}"],
]


@pytest.mark.parametrize("payload", RECORDED, ids=range(len(RECORDED)))
def test_a_recorded_override_never_runs_code_on_resume(payload, run, secret, tmp_path, capfd):
    (run / ".hydra" / "config.pickle").write_bytes(pickle.dumps(Copy(*secret)))
    overrides = run / ".hydra" / "overrides.yaml"
    overrides.write_text(json.dumps(payload(copy_payload(secret), run)))
    before = snapshot(run)
    code, err = run_main([f"resume={run}", "trainer.steps=8"], tmp_path / "unused", capfd)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not secret[1].exists()
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "node",
    [
        {"name": "mlp", "hidden": ["PAYLOAD"]},
        {"name": "mlp", "hidden": [128], "extra": {"x": "PAYLOAD"}},
        "PAYLOAD",
    ],
)
@pytest.mark.slow
def test_ganopt_sample_never_runs_code_from_a_recorded_config(node, run, secret, tmp_path):
    source, canary = secret
    payload = {"_target_": "shutil.copyfile", "src": str(source), "dst": str(canary)}
    config = run / ".hydra" / "config.yaml"
    recorded = yaml.safe_load(config.read_text())
    recorded["model"]["g"] = json.loads(json.dumps(node).replace('"PAYLOAD"', json.dumps(payload)))
    config.write_text(yaml.safe_dump(recorded))
    proc = subprocess.run(
        [sys.executable, "-m", "ganopt.sample", str(run), "--out", str(tmp_path / "s.npy")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not canary.exists() and not (tmp_path / "s.npy").exists()


@pytest.mark.slow
def test_path_angle_reads_a_run_through_the_checked_loader(run, secret, tmp_path):
    (run / ".hydra" / "overrides.yaml").write_text(
        json.dumps([f"+data.x=[{copy_payload(secret)}]"])
    )
    proc = subprocess.run(
        [sys.executable, "scripts/path_angle.py", str(run), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "refused" in proc.stderr
    assert not secret[1].exists()


# ---------------------------------------------------------------- symlinks
MANAGED = [".lock", "samples.png", "gradient_flow.png", "train.log", "metrics.json"]


@pytest.mark.parametrize("name", MANAGED)
def test_a_symlinked_file_in_a_run_directory_is_refused_and_left_alone(name, run, tmp_path, capfd):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(outside)
    code, err = run_main([f"resume={run}", "trainer.steps=8"], tmp_path / "unused", capfd)
    assert code == 2 and f"{run / name} is a symlink" in err and len(err.splitlines()) == 1, err
    assert outside.read_text() == "keep me"


@pytest.mark.parametrize("name", ["checkpoints", ".hydra"])
def test_a_symlinked_folder_in_a_run_directory_is_refused_and_left_alone(
    name, run, tmp_path, capfd
):
    outside = tmp_path / "outside"
    shutil.move(run / name, outside)
    (outside / "step_0000001.pt").write_text("not ganopt's")  # pruning once deleted this
    (run / name).symlink_to(outside)
    before = snapshot(outside)
    code, err = run_main([f"resume={run}", "trainer.steps=12"], tmp_path / "unused", capfd)
    assert code == 2 and f"{run / name} is a symlink" in err, err
    assert snapshot(outside) == before


def test_a_special_file_in_a_run_directory_is_refused(run, tmp_path, capfd):
    os.mkfifo(run / "notes")
    code, err = run_main([f"resume={run}", "trainer.steps=8"], tmp_path / "unused", capfd)
    assert code == 2 and "is not a regular file" in err


def test_writes_and_pruning_never_follow_a_symlink(tmp_path):
    """What check_run_dir refuses up front, each writer refuses too (a link made since)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").symlink_to(outside)
    with pytest.raises(WriteError, match="is a symlink"):
        write_atomic(tmp_path / "run" / "checkpoints" / "x", lambda f: f.write(b"x"))
    with pytest.raises(WriteError, match="is a symlink"):
        CheckpointDir(tmp_path / "run" / "checkpoints", keep=1).save({"step": 1}, 1, True)
    (tmp_path / "run" / ".lock").symlink_to(outside / "lock")
    with pytest.raises(ConfigError, match=r"\.lock is a symlink"):
        lock(tmp_path / "run")
    assert list(outside.iterdir()) == []

    real = tmp_path / "real"
    checkpoints = CheckpointDir(real, keep=1)
    (real).mkdir()
    (real / "step_0000001.pt").symlink_to(outside / "victim")
    (outside / "victim").write_text("keep")
    for step in (2, 3):
        checkpoints.save({"step": step}, step, periodic=True)
    assert (outside / "victim").read_text() == "keep"
    assert (real / "step_0000001.pt").is_symlink()  # not ganopt's: left as it is
    assert not (real / "step_0000002.pt").exists() and (real / "step_0000003.pt").exists()


# ---------------------------------------------------------------- one run per directory
def test_a_new_run_never_writes_into_a_finished_one(run, tmp_path, capfd):
    before = snapshot(run)
    code, err = run_main([*QUICK, "trainer.steps=2"], run, capfd)  # hydra.run.dir=<that run>
    assert code == 2 and "holds another run; resume=" in err and len(err.splitlines()) == 1
    assert snapshot(run) == before


def test_a_sweep_never_writes_into_an_existing_sweep_directory(run, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    shutil.copytree(run, sweep / "0_loss=standard")
    before = snapshot(sweep)
    proc = subprocess.run(
        [sys.executable, "train.py", "-m", *QUICK, "trainer.steps=2", "loss=standard,wgan",
         f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "already holds files of another sweep" in proc.stderr
    assert snapshot(sweep) == before


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    names = [new_run_dir(tmp_path / "outputs" / "12-00-00_loss=wgan") for _ in range(3)]
    assert [p.name for p in names] == [
        "12-00-00_loss=wgan",
        "12-00-00_loss=wgan-1",
        "12-00-00_loss=wgan-2",
    ]


# ---------------------------------------------------------------- checkpoints
def _flip_a_bit_in_a_stored_tensor(checkpoint: Path) -> None:
    with zipfile.ZipFile(checkpoint) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size > 64)
    data = bytearray(checkpoint.read_bytes())
    header = 30 + len(info.filename.encode()) + len(info.extra)  # the local file header
    data[info.header_offset + header + info.file_size // 2] ^= 0x40
    checkpoint.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_stored_tensor_is_refused(run, tmp_path, capfd):
    checkpoint = run / "checkpoints" / "last.pt"
    _flip_a_bit_in_a_stored_tensor(checkpoint)
    torch.load(checkpoint, weights_only=True)  # torch alone loads it without a word
    with pytest.raises(CheckpointError, match="do not match its digest"):
        load(checkpoint)
    code, err = run_main([f"resume={run}", "trainer.steps=8"], tmp_path / "unused", capfd)
    assert code == 2 and "do not match its digest" in err


def test_a_checkpoint_without_its_digest_is_refused(tmp_path):
    save_atomic({"step": 1}, tmp_path / "last.pt")
    (tmp_path / "last.pt.sha256").unlink()
    with pytest.raises(CheckpointError, match="no digest"):
        load(tmp_path / "last.pt")


def test_the_digest_file_checks_with_sha256sum(tmp_path):
    save_atomic({"step": 1}, tmp_path / "last.pt")
    save_atomic({"step": 2}, tmp_path / "last.pt")  # one line again after the second save
    line = (tmp_path / "last.pt.sha256").read_text()
    assert line == f"{hashlib.sha256((tmp_path / 'last.pt').read_bytes()).hexdigest()}  last.pt\n"


# ---------------------------------------------------------------- the rest of the report
def test_a_lock_that_cannot_be_written_leaves_no_folder(tmp_path, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ganopt.rundir.os, "open", full)
    with pytest.raises(ConfigError, match="No space left on device"):
        lock(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_lock_clears_what_a_killed_run_left_half_written(tmp_path):
    (tmp_path / "checkpoints").mkdir(parents=True)
    leftovers = [tmp_path / "checkpoints" / ".last.pt.k2j3.tmp", tmp_path / ".metrics.json.x.tmp"]
    for path in leftovers:
        path.write_bytes(b"\0" * 1000)
    (tmp_path / "notes.tmp").write_text("the user's")
    lock(tmp_path)
    release(tmp_path)
    assert not any(p.exists() for p in leftovers)
    assert (tmp_path / "notes.tmp").exists()


def test_a_run_killed_after_its_final_checkpoint_is_finished_by_resume(run, tmp_path, capfd):
    metrics = run / "metrics.json"
    metrics.write_text(json.dumps(json.loads(metrics.read_text()) | {"status": "running"}))
    code, err = run_main([f"resume={run}"], tmp_path / "unused", capfd)
    assert code == 0, err
    assert json.loads(metrics.read_text())["status"] == "ok"
    code, err = run_main([f"resume={run}"], tmp_path / "unused", capfd)  # now it is finished
    assert code == 2 and err.startswith("error: invalid config: resume: the checkpoint is at")
    assert "raise trainer.steps to go on" in err and len(err.splitlines()) == 1  # not a log line


# ---------------------------------------------------------------- a second round of probes
SUBMITIT_SETUP = '+hydra.launcher.setup=["touch {canary}"]'


@pytest.mark.parametrize(
    "overrides",
    [
        ["hydra/launcher=submitit_local", SUBMITIT_SETUP],  # ran a shell command
        ["hydra/sweeper=optuna", "hydra.sweeper.custom_search_space=this.s"],  # imported it
        ["hydra/sweeper=optuna", "hydra.sweeper.storage=sqlite:///{tmp}/outside.db"],
        ["hydra.output_subdir={tmp}/outside"],  # wrote Hydra's record elsewhere
        ["hydra.job.name=../outside"],  # moved the log out
        ["hydra.mode=MULTIRUN"],  # skipped the sweep directory's check
        ["hydra.sweep.subdir=../other"],  # wrote over another run's record
        ["hydra.run.dir={tmp}/run${{oc.env:HOME}}"],
    ],
)
def test_hydra_settings_outside_the_allowed_few_are_refused(overrides, tmp_path, capfd):
    canary = tmp_path / "canary"
    argv = [o.format(canary=canary, tmp=tmp_path) for o in overrides]
    code, err = run_main([*QUICK, "trainer.steps=2", *argv], tmp_path / "run", capfd)
    expected = "plain" if argv[-1].startswith("hydra.run.dir") else "refused"
    assert_refused(code, err, tmp_path / "run", expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_interpolation_never_names_a_run_directory(tmp_path, monkeypatch):
    """A value's ${...} in the directory name ganopt makes from the overrides was resolved by
    Hydra as a path: it once moved a new run into another run's directory."""
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "metrics.json").write_text("{}")  # a run's
    # sorted, objective.metric comes last in the name, so its value ends the path
    argv = ["data=folder", "data.path=/../../../victim", "objective.metric=${data.path}"]
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    handlers = list(logging.root.handlers)
    try:
        with pytest.raises(SystemExit):
            ganopt.cli.main()
    finally:
        for handler in logging.root.handlers[:]:
            if handler not in handlers:
                handler.close()
                logging.root.removeHandler(handler)
    assert [p.name for p in victim.iterdir()] == ["metrics.json"]


def test_resume_takes_a_plain_path(run, tmp_path, capfd):
    link = tmp_path / "dl" / "${oc.select:nokey,victim}"
    shutil.copytree(run, link)
    code, err = run_main([f"resume={link}", "trainer.steps=8"], tmp_path / "unused", capfd)
    assert code == 2 and "resume: a run directory or checkpoint path, without ${...}" in err


@pytest.mark.parametrize("name", [".lock", "train.log"])
def test_a_hard_linked_file_written_in_place_is_refused(name, run, tmp_path, capfd):
    outside = tmp_path / "secret.txt"
    outside.write_text("keep me")
    (run / name).unlink(missing_ok=True)
    os.link(outside, run / name)
    code, err = run_main([f"resume={run}", "trainer.steps=8"], tmp_path / "unused", capfd)
    assert code == 2 and "is linked to another file" in err, err
    assert outside.read_text() == "keep me"


@pytest.mark.slow
def test_path_angle_never_writes_through_a_symlink_in_the_run(run, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "path_angle").symlink_to(outside)
    proc = subprocess.run(
        [sys.executable, "scripts/path_angle.py", str(run), "--points", "2"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "is a symlink" in proc.stderr, proc.stderr
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("file", "content"),
    [
        (".hydra/overrides.yaml", "[" * 200_000),  # a RecursionError traceback
        (".hydra/overrides.yaml", "- &a x\n- *a\n"),
        ("metrics.json", "[" * 100_000),
    ],
)
def test_a_record_too_deep_or_with_aliases_is_one_line(file, content, run, tmp_path, capfd):
    (run / file).write_text(content)
    code, err = run_main([f"resume={run}", "trainer.steps=8"], tmp_path / "unused", capfd)
    assert "Traceback" not in err and "RecursionError" not in err
    if file == "metrics.json":  # not a record resume needs: it goes on
        assert code == 0, err
    else:
        assert code == 2 and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_an_alias_bomb_in_a_recorded_config_is_refused_at_once(run, tmp_path):
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
    bomb += "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]\n" for i in range(1, 10))
    (run / ".hydra" / "config.yaml").write_text(bomb + "loss: *a9\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ganopt.sample", str(run), "--out", str(tmp_path / "s.npy")],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "aliases" in proc.stderr, proc.stderr


def test_a_path_too_long_for_the_file_system_is_one_line(tmp_path, capfd):
    code, err = run_main([f"resume={'a' * 300}"], tmp_path / "unused", capfd)
    assert code == 2 and "File name too long" in err and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------- a third round of probes
EVIL_PRESET = '# @package _global_\nhydra: {job_logging: {handlers: {x: {"()": builtins.print}}}}\n'


@pytest.mark.parametrize(
    "search",
    [
        "+hydra.sweeper.params.loss=../../../../../../{tmp}/evil",  # a YAML from elsewhere
        '+hydra.sweeper.params.hydra="{{sweep: {{subdir: ../other}}}}"',  # another run's record
        "+hydra.sweeper.params.hydra='{{job_logging: {{handlers: {{file: {{filename: x}}}}}}}}'",
    ],
)
def test_a_search_space_is_checked_like_the_overrides_it_hands_each_job(search, tmp_path, capfd):
    (tmp_path / "evil.yaml").write_text(EVIL_PRESET)
    argv = ["hparams_search=ring8_optuna", search.format(tmp=str(tmp_path).lstrip("/"))]
    code, err = run_main(argv, tmp_path / "run", capfd)
    assert_refused(code, err, tmp_path / "run", "hydra.sweeper.params.")


@pytest.mark.parametrize(
    "override", ["hydra/job_logging=../../evil", "hydra.sweep.dir=choice(/elsewhere)"]
)
def test_hydra_options_are_names_and_its_settings_are_not_swept(override, tmp_path, capfd):
    code, err = run_main([*QUICK, "trainer.steps=2", override], tmp_path / "run", capfd)
    assert_refused(code, err, tmp_path / "run")


def test_a_rejected_run_leaves_a_folder_that_was_there_before(tmp_path, capfd):
    keep = tmp_path / "keep" / "run"
    keep.mkdir(parents=True)
    code, err = run_main(["trainer.steps=2", "data=folder", "data.path=/nowhere"], keep, capfd)
    assert code == 2 and "is not a folder" in err
    assert keep.is_dir() and list(keep.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("table", ["x.txt", "run/metrics.md"])
def test_a_table_is_a_markdown_file_outside_any_run(table, run, tmp_path):
    target = tmp_path / table
    proc = subprocess.run(
        [sys.executable, "scripts/scalars.py", str(run), "loss/G", "--table", str(target)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "--table" in proc.stderr and not target.exists()


@pytest.mark.slow
def test_mode_coverage_never_deletes_through_a_symlinked_method_folder(run, tmp_path):
    victim = tmp_path / "victim" / "ring8" / "seed_0"
    shutil.copytree(run, victim)
    out = tmp_path / "mc"
    out.mkdir()
    (out / "default").symlink_to(tmp_path / "victim")
    before = snapshot(victim)
    proc = subprocess.run(
        [sys.executable, "scripts/mode_coverage.py", "--out", str(out), "--steps", "5",
         "--seeds", "0", "--methods", "default", "--data", "ring8"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0 and "symlink" in proc.stderr
    assert snapshot(victim) == before


# ---------------------------------------------------------------- a fourth round of probes
@pytest.mark.parametrize(
    "override",
    ["+reg@hydra.callbacks.x=none", "+reg@hydra.job_logging.handlers.x=none", "+reg@_global_=none"],
)
def test_a_package_override_never_reaches_hydras_settings(override, tmp_path, capfd):
    code, err = run_main([*QUICK, "trainer.steps=2", override], tmp_path / "run", capfd)
    assert_refused(code, err, tmp_path / "run", "a group's option goes to a ganopt key")


def test_a_recorded_package_override_into_hydra_is_refused(run, tmp_path, capfd):
    overrides = run / ".hydra" / "overrides.yaml"
    overrides.write_text(json.dumps(["+reg@hydra.callbacks.evil=none"]))
    code, err = run_main([f"resume={run}", "trainer.steps=8"], tmp_path / "unused", capfd)
    assert code == 2 and "may set ganopt's own settings" in err


def test_an_unknown_top_level_key_is_refused(tmp_path, capfd):
    code, err = run_main([*QUICK, "+foo=1"], tmp_path / "run", capfd)
    assert_refused(code, err, tmp_path / "run", "foo: unknown key")


def test_a_new_run_never_lies_inside_another(run, tmp_path, capfd):
    inside = run / ".hydra" / "resumed_2026-01-01_00-00-00"
    code, err = run_main([*QUICK, "trainer.steps=2"], inside, capfd)
    assert code == 2 and "lies inside the run directory" in err and not inside.exists()


@pytest.mark.parametrize(
    ("script", "csv"), [("dirac_gan", "dirac"), ("clipping_depth", "clipping_depth")]
)
@pytest.mark.slow
def test_a_scripts_files_never_go_through_a_symlink(script, csv, tmp_path):
    out, victim = tmp_path / "out", tmp_path / "victim.csv"
    out.mkdir()
    victim.write_text("keep me")
    (out / f"{csv}.csv").symlink_to(victim)
    quick = ["--steps", "5"] if script == "dirac_gan" else ["--iters", "1", "--depth", "2"]
    proc = subprocess.run(
        [sys.executable, f"scripts/{script}.py", "--out", str(out), *quick],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "keep me"  # the link was replaced, its target left alone


@pytest.mark.slow
def test_mode_coverage_never_trains_into_a_symlinked_folder(tmp_path):
    out, elsewhere = tmp_path / "mc", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "default").symlink_to(elsewhere)
    proc = subprocess.run(
        [sys.executable, "scripts/mode_coverage.py", "--out", str(out), "--steps", "4",
         "--seeds", "0", "--methods", "default", "--data", "ring8", "--jobs", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0 and "is a symlink" in proc.stderr
    assert list(elsewhere.iterdir()) == []
