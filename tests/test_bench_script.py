"""scripts/bench.py on tiny settings: what it reports, not how fast anything is."""

import csv
import json
import subprocess

import pytest
import torch

from ganopt.bench import breakdown, scaling, startup, subnormals, suite, threads, timing
from ganopt.bench.rules import RULES
from ganopt.setup import assembly
from tests.conftest import load_script

pytestmark = pytest.mark.slow  # eight short runs


@pytest.fixture(scope="module")
def bench():
    return load_script("bench")


def test_reports_medians_the_ratio_range_and_its_duration(bench, capsys):
    assert bench.main(["--configs", "toy", "--steps", "10", "--reps", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (toy,) = report["results"]
    assert set(toy["runs"]) == {"trainer", "bare", "per_layer_every_step", "everything_every_step"}
    assert all(len(speeds) == 1 for speeds in toy["runs"].values())
    low, high = toy["trainer_over_bare_range"]
    assert low <= toy["trainer_over_bare"] <= high
    runs = toy["runs"]
    assert toy["trainer_over_bare_best"] == max(runs["trainer"]) / max(runs["bare"])
    assert report["minutes"] > 0


def test_separate_fused_and_compiled_add_their_trainer_runs_against_bare(
    bench, capsys, monkeypatch
):
    compile_ = torch.compile  # dynamo's capture without a compiler: quick, and the same math
    monkeypatch.setattr(torch, "compile", lambda m, mode=None: compile_(m, backend="eager"))
    torch.compiler.reset()
    built = []
    run = timing.run_trainer
    monkeypatch.setattr(timing, "run_trainer", lambda o, n: built.append(o) or run(o, n))
    argv = ["--configs", "plain", "--steps", "10", "--reps", "1", "--device", "cpu"]
    assert bench.main([*argv, "--compiled", "--fused", "--separate"]) == 0
    table = capsys.readouterr().out
    separate = "| separate | separate / bare (range) | fastest / fastest "
    fused = "| fused | fused / bare (range) | fastest / fastest |"
    compiled = " compile | compile / bare (range) | fastest / fastest |"
    assert f"| config | bare loop {separate}{fused}{compiled}" in table
    assert sum("trainer.flat_params=false" in o for o in built) == 2  # warm-up, measured
    assert "| plain |" in table
    assert "cuda_graphs" not in table  # a CPU has none
    torch.compiler.reset()  # later tests compile with the real backend


@pytest.mark.parametrize("mode", [[], ["--breakdown"], ["--scaling"], ["--rules"], ["--startup"]])
def test_a_bad_override_is_refused_in_one_line_before_anything_runs(bench, capsys, mode):
    assert bench.main([*mode, "--quick", "--extra", "trainer.steps=abc"]) == 2
    out, err = capsys.readouterr()
    assert err.strip().startswith("error: ") and "trainer.steps" in err
    assert len(err.strip().splitlines()) == 1 and not out


def test_quick_and_per_config_lengths(bench):
    assert timing.STEPS["dcgan"][0] < timing.STEPS["toy"][0]  # a DCGAN step costs more
    assert all(quick < default for default, quick in timing.STEPS.values())
    with pytest.raises(SystemExit):
        bench.main(["--steps", "5"])


@pytest.mark.parametrize("mode", [[], ["--suite"], ["--startup"], ["--breakdown"]])
def test_zero_repetitions_are_refused_not_taken_for_the_default(bench, mode, capsys):
    with pytest.raises(SystemExit) as exit:
        bench.main([*mode, "--reps", "0"])
    assert exit.value.code == 2 and "--reps >= 1" in capsys.readouterr().err


def test_rules_reports_each_update_rule_against_the_default(bench, capsys):
    assert bench.main(["--rules", "--steps", "10", "--reps", "1", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    assert set(rules) == set(RULES)
    assert rules["alternating"]["time_per_step_vs_default"] == 1.0
    assert rules["extra_adam"]["gradient_evaluations"] == 2
    assert all(r["steps_per_sec"] > 0 for r in rules.values())


def test_breakdown_times_each_part_of_a_runs_training_and_leaves_out_the_final_figures(
    bench, capsys, monkeypatch
):
    every = ["trainer.log_every=4", "trainer.sample_every=5", "trainer.eval_every=6"]
    every += ["diagnostics.game_every=6", "trainer.ckpt_every=6", "trainer.hist_every=0"]
    argv = ["--breakdown", "--steps", "12", "--reps", "1", "--device", "cpu", "--extra", *every]
    monkeypatch.setattr(assembly, "spare_core", lambda device, processes: True)  # a core free
    assert bench.main([*argv, "--json"]) == 0
    (measured,) = json.loads(capsys.readouterr().out).values()
    assert (measured["status"], measured["steps"]) == ("ok", 12)
    parts = {part: row["calls"] for part, row in measured["parts"].items()}
    # log steps 1, 4, 8 and 12 (the last); figures at 5 and 10, evaluation and the game at 6,
    # not at 12: those come after training; checkpoints at 6 and 12 (the last, in training).
    # The evaluation and the game twice each: their copies taken at 6, their numbers shown
    # once done
    assert parts == {
        "steps between log steps": 8,
        "log steps at a plain step's cost": 4,
        "log steps' measurements beyond it": 4,
        "log steps' writes (scalars, histograms, alarms)": 4,
        "sample and gradient-flow figures (trainer.sample_every)": 2,
        "evaluation (trainer.eval_every)": 2,
        "the game's spectrum (diagnostics.game_every)": 2,
        "checkpoints (trainer.ckpt_every)": 2,
        "the loop's own bookkeeping (the rest)": 12,
        "log steps' scalars written once measured beside training": 4,
    }
    seconds = {part: row["seconds"] for part, row in measured["parts"].items()}
    # each part ran; the rest is what the timed parts leave of the training time: not negative
    assert all(s > 0 for part, s in seconds.items() if "beyond" not in part)
    paired = measured["paired"]  # one pair, the default run and the bare one
    assert len(paired["default"]) == len(paired["bare"]) == 1
    assert paired["beyond_steps"] == 1 - paired["bare"][0] / paired["default"][0]
    breakdown.print_table("toy", measured)
    printed = capsys.readouterr().out
    assert "| the game's spectrum (diagnostics.game_every) | 2 |" in printed
    assert "against a bare run of the same steps" in printed


def test_scaling_writes_a_row_per_point_with_memory_and_a_plot(
    bench, tmp_path, monkeypatch, capsys
):
    """One point (each of its three variants is a process of its own: ~5 s of start-up)."""
    small = {"toy width": ((8,), lambda v: [f"model.g.hidden=[{v}]", f"model.d.hidden=[{v}]"])}
    monkeypatch.setattr(scaling, "SCALING", small)
    argv = ["--scaling", "--steps", "10", "--device", "cpu", "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    with open(tmp_path / "bench_scaling.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["axis"], row["value"]) == ("toy width", "8")
    assert float(row["trainer_peak_mb"]) > 0 and float(row["bare_steps_per_sec"]) > 0
    assert (tmp_path / "bench_scaling.png").stat().st_size > 0
    assert "| toy width | 8 |" in capsys.readouterr().out


def test_threads_measures_each_thread_count_beside_autos_pick(bench, capsys):
    argv = ["--threads", "--configs", "toy", "--steps", "10", "--reps", "1", "--json"]
    assert bench.main(argv) == 0
    (toy,) = json.loads(capsys.readouterr().out)
    counts = [str(n) for n in threads.thread_counts()]  # JSON's keys are strings
    assert list(toy["steps_per_sec"]) == counts and counts[0] == "1"
    assert toy["auto"] == torch.get_num_threads() == 1  # torch's own count: one in the suite
    with pytest.raises(SystemExit):
        bench.main(["--threads", "--device", "cuda"])


def test_subnormals_times_each_optimizers_step_ieee_and_flushed(bench, capsys, monkeypatch):
    monkeypatch.setattr(subnormals, "SUBNORMAL_TIMINGS", 2)
    assert bench.main(["--subnormals", "--steps", "10", "--reps", "1", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["steps"] == 10 and measured["ms_per_generator_step"] > 0
    assert measured["same_weights_when_flushed"] is True
    for network in ("G", "D"):
        r = measured["networks"][network]
        assert 0 <= r["subnormal_share"] < 1
        assert set(r["ms"]) == {"ieee", "flushed"} and min(r["ms"].values()) > 0
    assert torch.tensor([1e-39]) * 1.0 != 0  # IEEE again after the flushed steps
    for other in (["--device", "cuda"], ["--configs", "dcgan"]):
        with pytest.raises(SystemExit):
            bench.main(["--subnormals", *other])


def test_variants_take_turns_in_an_order_reversed_every_other_repetition():
    calls = []
    variants = {key: lambda n, key=key: calls.append((key, n)) or 1.0 for key in "ABC"}
    speeds = timing.interleaved(variants, steps=50, reps=3)
    assert [key for key, n in calls if n == 10] == list("ABC")  # the warm-up: shorter runs
    assert [key for key, n in calls if n == 50] == list("ABCCBAABC")
    assert speeds == {key: [1.0] * 3 for key in "ABC"}


def test_the_bare_loop_runs_at_torchs_thread_count_and_like_for_like_beside_it(
    bench, capsys, monkeypatch
):
    """A loop written with PyTorch's defaults runs at torch's own thread count, its optimizers
    stepping each tensor (no trainer.flat_params); where the Trainer's thread count differs
    (trainer.threads=1 here), the bare loop also runs at the Trainer's."""
    seen = []
    loop = timing._bare_loop
    monkeypatch.setattr(
        timing,
        "_bare_loop",
        lambda p, n: seen.append((torch.get_num_threads(), p.flat)) or loop(p, n),
    )
    monkeypatch.setattr(timing, "TORCH_THREADS", 2)
    try:
        argv = ["--configs", "toy", "--steps", "10", "--reps", "1"]
        assert bench.main([*argv, "--extra", "trainer.threads=1"]) == 0
    finally:
        torch.set_num_threads(1)
    assert seen == [(2, {}), (1, {}), (2, {}), (1, {})]  # the warm-up, then the measured runs
    table = capsys.readouterr().out
    assert "the bare loop torch's own 2, the Trainer trainer.threads (toy 1)" in table
    assert (
        "| config | bare loop at the Trainer's threads | Trainer | Trainer / it (range) |" in table
    )
    assert "| toy (1 thread) |" in table


def test_startup_times_each_command_interleaved_and_the_differences(bench, capsys, monkeypatch):
    """The three processes, each as many times as asked, and the two differences; here with
    stand-ins for the commands (a 6-step run's time is not what this checks)."""
    seen = []

    def timed(argv, code, cwd):
        seen.append(argv)
        return {"import torch": 1.0, "loss=wgna": 0.5}.get(argv[-1], 3.0)

    monkeypatch.setattr(startup, "_timed", timed)
    assert bench.main(["--startup", "--reps", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run_minus_import_torch"] == 2.0 and report["typo_over_import_torch"] == 0.5
    assert all(len(r["runs"]) == 2 for r in report["seconds"].values())
    runs = [a for a in seen if "trainer.steps=6" in a]
    assert len(runs) == 3 and all(any(x.startswith("hydra.run.dir=") for x in a) for a in runs)


def test_suite_times_the_whole_suite_and_its_fast_subset_as_a_user_runs_them(
    bench, capsys, monkeypatch
):
    """Each run as many times as asked, first one then the other, with what pytest counted;
    here with stand-ins for pytest (the suite is not run from inside itself)."""
    seen = []

    def timed(args):
        seen.append(args)
        return (30.0 if args else 150.0), "900 passed, 19 skipped"

    monkeypatch.setattr(suite, "_timed", timed)
    assert bench.main(["--suite", "--reps", "2"]) == 0
    table = capsys.readouterr().out
    assert seen == [[], ["-m", "not slow"], ["-m", "not slow"], []]
    assert (
        "| whole suite | `python -m pytest` | 150 | 150 | 150 | 900 passed, 19 skipped |" in table
    )
    assert '| fast subset | `python -m pytest -m "not slow"` | 30 |' in table


def test_suite_reports_a_failing_run_in_one_line_instead_of_timing_it(bench, capsys, monkeypatch):
    failed = subprocess.CompletedProcess([], 1, stdout="== 1 failed, 3 passed in 2.0s ==\n")
    monkeypatch.setattr(suite.subprocess, "run", lambda *a, **k: failed)
    assert bench.main(["--suite"]) == 1
    out, err = capsys.readouterr()
    assert err == "error: pytest exited 1: == 1 failed, 3 passed in 2.0s ==\n" and not out
    passed = subprocess.CompletedProcess([], 0, stdout="x\n== 9 passed, 1 warning in 2.0s ==\n")
    monkeypatch.setattr(suite.subprocess, "run", lambda *a, **k: passed)
    assert suite._timed([])[1] == "9 passed"
