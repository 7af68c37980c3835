"""scripts/mode_coverage.py --game on tiny settings: what its tables hold."""

import pytest

from tests.conftest import load_script

pytestmark = pytest.mark.slow  # two short training runs in subprocesses


def test_game_tables_hold_coverage_steps_to_all_modes_and_the_game(tmp_path, capsys):
    coverage = load_script("mode_coverage")
    argv = ["--game", "--methods", "alternating,extra_adam", "--data", "ring8", "--seeds", "0"]
    assert coverage.main([*argv, "--steps", "20", "--jobs", "2", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| alternating Adam (the default) |" in printed
    game_header = next(line for line in printed.splitlines() if "steps to all modes" in line)
    assert game_header.count("|") - 1 == 1 + 1 + len(coverage.GAME_COLUMNS)  # a cell per column
    details = coverage.game_details(tmp_path / "extra_adam" / "ring8" / "seed_0", "ring8")
    assert set(details) == {"steps_to_all_modes", *(tag for _, tag, _ in coverage.GAME_COLUMNS)}
    assert details["game/rotation"] is not None  # measured at the end of the run
    assert (tmp_path / "mode_coverage.md").read_text().count("| method |") == 2
    # the same runs read at an evaluated step (here the end, step 20): the same first table
    capsys.readouterr()
    assert coverage.main([*argv, "--steps", "20", "--out", str(tmp_path), "--at", "20"]) == 0
    assert "| alternating Adam (the default) |" in capsys.readouterr().out
    assert coverage.main([*argv, "--steps", "20", "--out", str(tmp_path), "--at", "7"]) == 1


def test_seeds_that_are_not_integers_are_a_usage_error(capsys):
    mode_coverage = load_script("mode_coverage")
    with pytest.raises(SystemExit) as stopped:
        mode_coverage.parse_args(["--seeds", "0,a"])
    assert stopped.value.code == 2
    assert "--seeds: comma-separated integers, got '0,a'" in capsys.readouterr().err
    assert mode_coverage.parse_args(["--seeds", "3,4"]).seeds == [3, 4]
