"""scripts/scalars.py: the docs' numbers from training curves, read back from event files."""

import pytest
from torch.utils.tensorboard import SummaryWriter

from tests.conftest import load_script


@pytest.fixture(scope="module")
def scalars():
    return load_script("scalars")


@pytest.fixture
def run(tmp_path):
    with SummaryWriter(tmp_path) as writer:
        for step in (1, 50, 100):
            writer.add_scalar("loss/G", step / 100, step)
            if step > 1:
                writer.add_scalar("metrics/kl", 1 / step, step)
    return tmp_path


def test_a_row_per_step_and_a_column_per_tag_for_the_steps_asked(scalars, run, capsys):
    assert scalars.main([str(run), "loss/G", "metrics/kl", "--steps", "1,100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "| step | loss/G | metrics/kl |",
        "|---|---|---|",
        "| 1 | 0.01 |  |",  # not logged at step 1: an empty cell
        "| 100 | 1 | 0.01 |",
    ]


def test_bad_steps_a_missing_tag_or_no_events_are_refused_with_exit_2(scalars, run, capsys):
    with pytest.raises(SystemExit) as stopped:
        scalars.main([str(run), "loss/G", "--steps", "1,x"])
    assert stopped.value.code == 2
    assert "--steps: comma-separated integers, got '1,x'" in capsys.readouterr().err
    assert scalars.main([str(run), "loss/D"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {run} has no scalar loss/D"]
    assert scalars.main([str(run / "nothing"), "loss/G"]) == 2
