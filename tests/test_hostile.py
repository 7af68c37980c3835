"""Hostile input: every refusal is one line and exit code 2, before anything is written; a run
directory never chooses code; nothing non-finite is ever saved; the run directory is locked."""

import json
import logging
import math
import os
import pickle
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

import ganopt.cli
from ganopt.arguments import output_dir
from ganopt.checkpoint import CheckpointError, load, save_atomic
from ganopt.config import ConfigError
from ganopt.data import DataError, folder
from ganopt.resume import recorded_overrides, resume
from ganopt.rundir import WriteError, lock, release, write_atomic
from tests.conftest import REPO, as_run_dir, load_script, make_trainer, write_digest

SMALL = ["model.g.hidden=[16,16]", "model.d.hidden=[16,16]", "trainer.batch_size=32"]
QUICK = [*SMALL, "trainer.progress=false", "trainer.eval_every=0", "trainer.sample_every=0"]


def run_main(argv, run_dir, capfd):
    """train.py's entry point in this process: (exit code, stderr)."""
    return run_entry(argv, run_dir), capfd.readouterr().err


def run_entry(argv, run_dir):
    """train.py's entry point in this process: its exit code."""
    old, handlers = sys.argv, logging.root.handlers[:]
    resumed = any(a.startswith("resume=") for a in argv)  # a resume writes in its own directory
    sys.argv = ["train.py", *argv, *([] if resumed else [f"hydra.run.dir={run_dir}"])]
    try:
        ganopt.cli.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = old
        release(run_dir)
        for handler in logging.root.handlers[:]:  # Hydra's, bound to this test's stderr
            if handler not in handlers:
                handler.close()
                logging.root.removeHandler(handler)
    return code


def assert_refused(code, err, run_dir, message=""):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert message in lines[0]
    assert not Path(run_dir).exists(), sorted(p.name for p in Path(run_dir).iterdir())


BAD = [
    (["optim.g.betas=[2,3]"], "optim.g: Invalid beta parameter"),
    (["+optim.g.weight_decay=-1"], "optim.g: Invalid weight_decay value: -1"),
    (["+optim.g.eps=-1"], "optim.g: Invalid epsilon value"),
    (["optim=sgd", "+optim.g.momentum=-1"], "optim.g: Invalid momentum value"),
    (["+optim.g.foo=1"], "optim.g.foo: not an argument of optimizer 'adam' (it takes amsgrad"),
    (["model.g=null"], "model.g: must be a config node"),
    (["optim.g=null"], "optim.g: must be a config node"),
    (["~model"], "model"),
    (["~optim"], "optim"),
    (["trainer.steps=${oops}"], "trainer.steps: Interpolation key 'oops' not found"),
    (["trainer.seed=18446744073709551616"], "trainer.seed: must be in [0,"),
    (["optim.g.lr=1e300"], "optim.g.lr: must fit in float32"),
    (["loss=" + "x" * 5000], "loss=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...: no such option"),
    (["model=dcgan", "data=digits", "model.g.width=0"], "model.g: width must be an int >= 1"),
    (["data=grid25", "data.side=0"], "data: side must be an int >= 1"),
    (["trainer.batch_size=1000000000"], "trainer.batch_size: 1000000000 needs about"),
    (["loss=wgan_gp", "loss.lam=nan"], "loss.lam: must be finite"),
    (["reg.gamma=nan"], "reg.gamma: must be finite"),
    (["reg=instance_noise", "reg.sigma=nan"], "reg.sigma: must be finite"),
    (["data.radius=nan"], "data.radius: must be finite"),
    (["data=grid25", "data.std=inf"], "data.std: must be finite"),
    (["optim=sgd", "+optim.g.momentum=nan"], "optim.g.momentum: must be finite"),
    (["+trainer.step=10"], "trainer.step: unknown key (did you mean trainer.steps?)"),
    (["+optim.lr=0.1"], "optim.lr: unknown key"),
    (["model=dcgan", "data=digits", "model.d.norm=foo"], "model.d: norm must be one of"),
    (["model.d.spectral_norm=abc"], "model.d: spectral_norm must be true or false"),
    (["optim.g._target_=builtins.print"], "optim.g._target_: refused, a config sets values"),
    (["+optim.d.foreach=maybe"], "optim.d.foreach: must be true, false or null, got 'maybe'"),
    (["optim=sgd", "+optim.g.nesterov=1"], "optim.g.nesterov: must be true or false, got 1"),
    (["+model.g.x._target_=os.system"], "model.g.x._target_: refused, a config sets values"),
    (["loss._target_=shutil.copyfile"], "loss._target_: refused, a config sets values"),
    (["+model.d.x=[[{a:{_partial_:true}}]]"], "model.d.x.0.0.a._partial_: refused"),
    (["+data.x={_args_:[1]}"], "data.x._args_: refused, a config sets values"),
    (["reg2=abc"], "reg2: must be a config node naming a regularizer, got 'abc'"),
    (["reg2=-1"], "reg2: must be a config node naming a regularizer, got -1"),
    (["reg3=[1]"], "reg3: must be a config node naming a regularizer, got [1]"),
    (["trainer.compile=2"], "trainer.compile: must be true or false, got 2"),
    (["trainer.threads=1000"], "trainer.threads: must be auto or an int from 1 to"),
    (["loss.name=os.system"], "loss.name: no loss 'os.system'; choose from hinge, lsgan"),
    (["loss=minimax"], "loss=minimax: no such option; choose from hinge, lsgan"),
    (["trainer.steps=abc"], "trainer.steps"),
    (["trainer.update=sideways"], "trainer.update: must be alternating or simultaneous"),
    (["optim=extra_adam", "optimizer@optim.d=adam"], "extrapolates both players"),
    (["optim.g.name=Extragradient"], "optim.g.name: no optimizer 'Extragradient'; choose from"),
    (["reg=consensus", "reg.gamma=0"], "reg: gamma must be > 0"),
    (["diagnostics.game_every=-1"], "diagnostics.game_every: must be >= 0"),
    (["diagnostics.game_k=30"], "diagnostics.game_iters: must be >= 30"),
    (["trainer.compile=true", "+reg@reg2=consensus"], "trainer.compile: consensus optimization"),
    (["trainer.compile=yes please"], "trainer.compile"),
]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [  # the digits loads take seconds: slow
        pytest.param(*case, marks=pytest.mark.slow) if "data=digits" in case[0] else case
        for case in BAD
    ],
    ids=[" ".join(o)[:40] for o, _ in BAD],
)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(overrides, message, tmp_path, capfd):
    run_dir = tmp_path / "run"
    code, err = run_main(overrides, run_dir, capfd)
    assert_refused(code, err, run_dir, message)


@pytest.mark.parametrize("value", ["''", "/proc/self/x/run", "x" * 300, "/dev/null/run"])
def test_a_run_directory_that_cannot_be_written_is_refused(value, capfd):
    old = sys.argv
    sys.argv = ["train.py", f"hydra.run.dir={value}"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            ganopt.cli.main()
    finally:
        sys.argv = old
    err = capfd.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: invalid config: hydra.run.dir:") and len(err.splitlines()) == 1


KEYS = [
    "trainer.steps",
    "trainer.batch_size",
    "trainer.d_steps",
    "trainer.seed",
    "optim.g.lr",
    "optim.d.betas",
    "optim.clip",
    "model.z_dim",
    "diagnostics.vanishing_ratio",
    "trainer.device",
    "loss",
    "reg.gamma",
    "model.g.hidden",
    "nonsense.key",
    "+trainer.extra",
    "optim.g._target_",
]
VALUES = st.one_of(
    st.integers(-3, 40).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.sampled_from(
        [
            *("null", "true", "abc", "[]", "[8,8]", "[0]", "cpu", "cuda", "wgan", "''", "1e-3"),
            *("nan", "inf", "[1,", "${oops}", "os.system", "[2,3]", "1e300"),
        ]
    ),
    st.text(max_size=6),
)


@pytest.mark.slow
@settings(
    max_examples=15,
    derandomize=True,  # the same cases on every CI run; the examples below are found bugs
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(overrides=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3))
@example(overrides=[("loss", "[8,8]")])  # Hydra: TypeError, 'int' is not iterable
@example(overrides=[("loss", "[]")])  # composed without a loss: MissingMandatoryValue
@example(overrides=[("optim.d.betas", "[0,0.9]")])  # ints: torch's Adam refused them
def test_random_bad_overrides_through_the_entry_point(overrides, tmp_path_factory, capfd):
    """Through train.py's entry point: a clean refusal (one line, exit 2, nothing left) or a
    run of a couple of steps; never a traceback."""
    run_dir = tmp_path_factory.mktemp("hostile") / "run"
    strings = [f"{k}={v}" for k, v in overrides]
    code, err = run_main(
        [*QUICK, "trainer.steps=2", "trainer.log_every=1", *strings], run_dir, capfd
    )
    assert "Traceback" not in err
    if code == 2:
        assert_refused(code, err, run_dir)
    else:
        assert code == 0, err
        assert json.loads((run_dir / "metrics.json").read_text())["status"] in ("ok", "diverged")


# ---------------------------------------------------------------- run directories and resume
def make_run(tmp_path, *overrides):
    """A finished 4-step run directory, through the entry point."""
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *QUICK, "trainer.steps=4", *overrides,
         f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return run_dir


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("finished"))


@pytest.mark.slow
def test_a_run_directory_cannot_choose_code_on_resume(finished_run, tmp_path, capfd):
    """An edited .hydra/overrides.yaml that would copy a file is refused before anything is
    built or written (it copied the file before this was fixed)."""
    run_dir = tmp_path / "edited"
    shutil.copytree(finished_run, run_dir)
    secret, copy = tmp_path / "secret", tmp_path / "stolen"
    secret.write_text("s")
    evil = [
        "loss._target_=shutil.copyfile",
        f"+loss._args_=[{secret},{copy}]",
    ]
    (run_dir / ".hydra" / "overrides.yaml").write_text(json.dumps(evil))
    before = sorted(str(p) for p in run_dir.rglob("*"))
    code, err = run_main([f"resume={run_dir}", "trainer.steps=8"], tmp_path / "unused", capfd)
    assert code == 2 and "Traceback" not in err
    assert "loss._target_: refused, a config sets values, never code" in err
    assert not copy.exists()
    assert sorted(str(p) for p in run_dir.rglob("*")) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[unclosed", "is not readable YAML"),
        (b"loss: wgan", "must be a list of override strings"),
        (b"- [1, 2]", "must be a list of override strings"),
        (b"\x00\xff\xfe binary", "is not readable YAML"),
        (b"- hydra.run.dir=/tmp/elsewhere", "may set ganopt's own settings .* nothing else"),
        (b"- --experimental-rerun=x.pickle", "is not a key=value override; refused"),
        (b"- ~loss", "is not a key=value override; refused"),
        (b"- loss=wgan,standard", "is not a key=value override; refused"),
        (b"- hydra/launcher=joblib", "may set ganopt's own settings"),
        (b"- resume=elsewhere", "may set ganopt's own settings"),
        (b"- nonsense.key=1", "may set ganopt's own settings"),
        (b"- '+model.d.x=[{_target_: os.system}]'", "model.d.x.0._target_: refused"),
    ],
)
def test_a_corrupt_overrides_file_is_refused(content, message, tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        recorded_overrides(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_a_loose_checkpoint_names_no_run_and_is_refused(finished_run, tmp_path, capfd):
    loose = tmp_path / "somewhere" / "ckpt.pt"
    loose.parent.mkdir()
    loose.write_bytes((finished_run / "checkpoints" / "last.pt").read_bytes())
    code, err = run_main([f"resume={loose}", "trainer.steps=8"], tmp_path / "unused", capfd)
    assert code == 2 and "not inside a run's checkpoints/ folder" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ckpt.pt", "somewhere"]


def test_resume_of_a_missing_run_creates_nothing(tmp_path, capfd):
    code, err = run_main([f"resume={tmp_path / 'nope'}"], tmp_path / "unused", capfd)
    assert code == 2 and "does not exist" in err
    assert list(tmp_path.iterdir()) == []


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def hostile_checkpoints(good: bytes) -> dict[str, bytes | object]:
    import io

    def saved(obj):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()

    state = torch.load(io.BytesIO(good), weights_only=True)
    other_loss = state["identity"] | {
        "components": state["identity"]["components"] | {"loss": "wgan"}
    }
    return {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "random": random.Random(0).randbytes(2048),
        "code": saved({"G": Evil()}),
        "pickled-code": pickle.dumps(Evil()),
        "list": saved([1, 2, 3]),
        "missing-opt": saved({k: v for k, v in state.items() if k != "opt_G"}),
        "empty-identity": saved(state | {"identity": {}}),
        "identity-not-a-dict": saved(state | {"identity": [1]}),
        "other-loss": saved(state | {"identity": other_loss}),
        "bad-step": saved(state | {"step": "ten"}),
        "bad-rng": saved(state | {"rng": {"torch": 5}}),
    }


@pytest.mark.slow
def test_hostile_checkpoints_are_refused_in_one_line(finished_run, tmp_path):
    good = (finished_run / "checkpoints" / "last.pt").read_bytes()
    for name, content in hostile_checkpoints(good).items():
        run_dir = tmp_path / name
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "overrides.yaml").write_text("[]")
        (run_dir / "checkpoints" / "last.pt").write_bytes(content)
        write_digest(run_dir / "checkpoints" / "last.pt")
        trainer, _ = make_trainer([*SMALL, "trainer.steps=8"], run_dir)
        with pytest.raises(ConfigError) as info:
            resume(trainer, str(run_dir))
        message = str(info.value)
        assert "\n" not in message and message.startswith("invalid config: resume: "), name
    assert not Path("pwned").exists()


def test_corrupt_checkpoints_are_refused_in_one_line_whatever_the_parser_raises(tmp_path):
    """Random bytes and a checkpoint with bytes overwritten: torch's weights-only parser
    raised a KeyError on some (a missing memo entry), which escaped a list of the exceptions
    a corrupt file raises. Any error of the parse now means an unreadable file."""
    import io
    import warnings

    buffer = io.BytesIO()
    torch.save({"G": {"w": torch.ones(3)}, "step": 3, "name": "x"}, buffer)
    good, path, refused = buffer.getvalue(), tmp_path / "last.pt", []
    for seed in range(300):
        rng = random.Random(seed)
        data = bytearray(rng.randbytes(2048) if seed % 2 else good)
        for _ in range(8 * (seed % 2 == 0)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        write_digest(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nor does a corrupt file print a warning
            try:
                load(path)
            except CheckpointError as e:
                refused.append(str(e))
    assert len(refused) > 280  # a few overwritten bytes fall in the tensor data and load
    assert all("\n" not in line and line.startswith(str(path)) for line in refused)


def test_a_checkpoint_too_large_for_memory_is_refused_as_such(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"step": 1}, path)

    def short_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 1 TB")

    monkeypatch.setattr(torch, "load", short_of_memory)
    with pytest.raises(CheckpointError, match=r"not enough memory to load it$"):
        load(path)


def test_the_weights_only_loader_names_code_it_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"G": Evil()}, path)
    write_digest(path)
    with pytest.raises(CheckpointError, match="refused, loading it would run code"):
        load(path)


@pytest.mark.slow
def test_a_run_directory_in_use_is_refused_naming_its_holder(finished_run, tmp_path, capfd):
    """A second process on the same directory, and a resume of a run still in progress."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from ganopt.rundir import lock; lock(__import__('pathlib').Path({str(finished_run)!r})); print('locked', flush=True); import time; time.sleep(60)"],  # noqa: E501
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, err = run_main([f"resume={finished_run}", "trainer.steps=8"], tmp_path / "x", capfd)
        assert code == 2 and f"is in use by process {holder.pid}" in err
        code, err = run_main([], finished_run, capfd)  # hydra.run.dir=<the same directory>
        assert code == 2 and "holds another run; resume=" in err
    finally:
        holder.kill()
        holder.wait()
    lock(finished_run)  # free again once its holder is gone
    release(finished_run)


def test_temporary_files_have_unique_names(tmp_path):
    """Two writers of one file never share a temporary name (they crashed on .last.pt.tmp)."""
    names = []

    def write(f):
        names.extend(p.name for p in tmp_path.glob(".f.*.tmp"))
        f.write(b"x")

    write_atomic(tmp_path / "f", lambda outer: write_atomic(tmp_path / "f", write) or write(outer))
    assert len(names) == 3 and len(set(names)) == 2  # the inner writer saw both temporaries


@pytest.mark.slow
# ---------------------------------------------------------------- nothing non-finite is saved
def test_weights_that_turned_non_finite_are_never_saved(tmp_path):
    """G's step at lr 1e36 turns its weights inf at step 1, while the losses and gradient norms
    the old check read (from before the G update) were finite: that checkpoint was saved."""
    trainer, _ = make_trainer(
        [*SMALL, "loss=wgan", "optim=sgd", "optim.d.lr=1e3", "optim.g.lr=1e36",
         "trainer.ckpt_every=1", "trainer.steps=20", "trainer.d_steps=1"],
        tmp_path,
    )  # fmt: skip
    result = trainer.fit()
    assert result.status == "diverged"
    last = tmp_path / "checkpoints" / "last.pt"
    if last.exists():
        state = load(last)
        for key in ("G", "D"):
            assert all(torch.isfinite(t).all() for t in state[key].values()), key
        assert (
            json.loads((tmp_path / "metrics.json").read_text())["checkpoint_step"] == state["step"]
        )


@pytest.mark.slow
def test_an_optimizer_state_that_overflowed_is_divergence(tmp_path):
    """Adam's exp_avg_sq overflows to inf at D lr 1e6 while the run reported ok."""
    trainer, _ = make_trainer(
        ["optim=adam", "reg=none", "optim.d.lr=1e6", "trainer.steps=300", "trainer.ckpt_every=10"],
        tmp_path,
    )
    result = trainer.fit()
    assert result.status == "diverged"  # at the first checkpoint, step 10: nothing was saved
    assert result.metrics["diverged_step"] == 10
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_a_full_disk_fails_in_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    import ganopt.rundir

    trainer, _ = make_trainer([*SMALL, "trainer.steps=6", "trainer.ckpt_every=2"], tmp_path)
    real_fsync = os.fsync
    saves = []

    def filling_fsync(fd):
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".last.pt.") and ".sha256" not in name:  # the checkpoint's own
            saves.append(fd)
            if len(saves) > 1:  # the second checkpoint finds the disk full
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(ganopt.rundir.os, "fsync", filling_fsync)
    result = trainer.fit()
    assert result.status == "failed" and result.exit_code == 1
    assert "no space left on device while writing" in result.metrics["error"]
    assert load(tmp_path / "checkpoints" / "last.pt")["step"] == 2
    assert not list(tmp_path.rglob("*.tmp"))
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


def test_out_of_memory_during_training_is_a_failed_run_in_one_line(tmp_path, monkeypatch):
    trainer, _ = make_trainer([*SMALL, "trainer.steps=5"], tmp_path)
    forward = type(trainer.G).forward
    calls = []

    def failing(G, z):
        if G is trainer.G:  # not its copies (a log step's measurements beside training)
            calls.append(1)
            if len(calls) == 4:
                raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 40 GB")
        return forward(G, z)

    monkeypatch.setattr(type(trainer.G), "forward", failing)
    result = trainer.fit()
    assert result.status == "failed"
    assert result.metrics["error"].startswith("out of memory during step 2")


def test_write_errors_name_the_file(tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    target = tmp_path / "not-a-dir" / "x"
    with pytest.raises(WriteError, match=f"cannot write {target}: Not a directory"):
        save_atomic({"a": 1}, target)


# ---------------------------------------------------------------- resume edges
@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("dirac_gan", ["--steps", "2"]),
        ("clipping_depth", ["--iters", "1"]),
        ("vanishing_gradients", ["--d-iters", "1"]),
        (
            "mode_coverage",
            ["--steps", "1", "--methods", "default", "--data", "ring8", "--seeds", "0"],
        ),
        ("bench", ["--scaling", "--configs", "toy"]),
    ],
)
def test_a_scripts_output_directory_that_cannot_be_made_is_one_line_and_exit_2(
    script, args, tmp_path, capsys
):
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("")
    assert load_script(script).main([*args, "--out", str(in_the_way / "out")]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == f"error: cannot create {in_the_way / 'out'}: Not a directory"
    assert not out and sorted(tmp_path.iterdir()) == [in_the_way]


def test_an_output_directory_without_write_permission_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a non-root user sees it
    with pytest.raises(WriteError, match=r"cannot write into .*: permission denied"):
        output_dir(tmp_path / "out")


def test_a_changed_optimizer_setting_on_resume_applies_and_is_said(tmp_path, caplog):
    trainer, _ = make_trainer([*SMALL, "optim=adam", "trainer.steps=2"], tmp_path)
    trainer.fit()
    again, _ = make_trainer([*SMALL, "optim=adam", "trainer.steps=4", "optim.g.lr=0.01"], tmp_path)
    with caplog.at_level("WARNING"):
        resume(again, as_run_dir(tmp_path))
    assert again.opt_G.param_groups[0]["lr"] == 0.01
    assert "opt_G lr 0.0002 -> 0.01" in caplog.text


def test_a_resume_with_trainer_fused_switches_the_kernels_and_says_so(tmp_path, caplog):
    """A checkpoint of the default (per-tensor) Adam continues with fused kernels, and back."""
    trainer, _ = make_trainer([*SMALL, "optim=adam", "trainer.steps=2"], tmp_path)
    trainer.fit()
    fused, _ = make_trainer(
        [*SMALL, "optim=adam", "trainer.steps=4", "trainer.fused=true"], tmp_path
    )
    with caplog.at_level("WARNING"):
        resume(fused, as_run_dir(tmp_path))
    assert "opt_G fused None -> True" in caplog.text
    assert all(g["fused"] for opt in (fused.opt_G, fused.opt_D) for g in opt.param_groups)
    fused.fit()
    plain, _ = make_trainer([*SMALL, "optim=adam", "trainer.steps=6"], tmp_path)
    resume(plain, as_run_dir(tmp_path))
    assert not plain.opt_D.param_groups[0]["fused"]
    assert plain.fit().status == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("split", [3, 7])  # log_every 5: neither is a log step
def test_a_run_split_at_a_non_log_step_ends_with_the_same_checkpoint(split, tmp_path):
    """Everything the checkpoint holds, alarm history and RNGs included, matches a straight
    run (the first part logs its last step; that used to enter the alarm's history and move
    the diagnostics' generator)."""
    common = [*SMALL, "optim=adam", "trainer.log_every=5", "trainer.ckpt_every=0"]
    straight, _ = make_trainer([*common, "trainer.steps=12"], tmp_path / "a")
    straight.fit()
    first, _ = make_trainer([*common, f"trainer.steps={split}"], tmp_path / "b")
    first.fit()
    second, _ = make_trainer([*common, "trainer.steps=12"], tmp_path / "b")
    resume(second, as_run_dir(tmp_path / "b"))
    second.fit()
    a = load(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert_same(a, b)


def assert_same(a, b, path="checkpoint"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), path


# ---------------------------------------------------------------- signals
def _start(run_dir, *overrides):
    """train.py as a terminal starts it: with Ctrl-C's default disposition, which a pytest-xdist
    worker (it ignores SIGINT) would otherwise pass on to its children."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *QUICK, *overrides, f"hydra.run.dir={run_dir}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


@pytest.mark.slow
def test_two_quick_ctrl_cs_abort_quietly_and_metrics_never_lag_the_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir, "trainer.steps=1000000", "trainer.ckpt_every=50")
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "last.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    saved = load(run_dir / "checkpoints" / "last.pt")["step"]
    assert metrics["step"] >= saved and metrics["checkpoint_step"] == saved


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.15, 0.3, 0.6, 1.0, 1.8])  # imports, checks, Hydra, build
def test_ctrl_c_during_start_up_is_one_line_and_130(delay, tmp_path):
    """A KeyboardInterrupt inside OmegaConf's config building left an AttributeError
    traceback, and one during ``from ganopt.entry import train`` a bare KeyboardInterrupt:
    imports hold Ctrl-C back until they are done, and the entry point catches it around them.
    Sent at several moments of start-up (on a slow machine the last may land in training,
    which stops at the step in flight)."""
    proc = _start(tmp_path / "run")
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    assert last.endswith("interrupted") or "continue it with" in last, err


# ---------------------------------------------------------------- image files
def _png_header_only(path, width, height):
    """A PNG whose header claims width x height; its pixel data is never read."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize(
    ("size", "message"),
    [((1, 1_000_000), "more than 16 times as long"), ((10_000, 10_000), "over data=folder's")],
)
def test_image_bombs_are_refused_naming_the_file(size, message, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "fine.png")
    _png_header_only(tmp_path / "bomb.png", *size)
    with pytest.raises(DataError, match=message) as info:
        folder(batch_size=4, path=str(tmp_path), resolution=64)
    assert "bomb.png" in str(info.value)


def test_ddp_wrapping_raises_no_deprecation_warning(recwarn):
    import torch.distributed as dist

    from ganopt.distributed import World

    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        World(rank=0, size=2).wrap(torch.nn.Linear(2, 2), torch.device("cpu"))
    finally:
        dist.destroy_process_group()
    assert not [w for w in recwarn if "broadcast_buffers" in str(w.message)]
