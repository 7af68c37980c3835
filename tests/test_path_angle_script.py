"""scripts/path_angle.py: Berard et al. (2020)'s path-angle plot of a run."""

import csv
import subprocess
import sys

import pytest

from tests.conftest import REPO, load_script


@pytest.fixture(scope="module")
def path_angle():
    return load_script("path_angle")


@pytest.mark.slow
def test_walks_from_the_initial_to_the_final_weights_and_writes_csv_png_events(
    path_angle, tmp_path
):
    run = tmp_path / "run"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "trainer.steps=40",
            "trainer.progress=false",
            "trainer.eval_every=0",
            "model.g.hidden=[16,16]",
            "model.d.hidden=[16,16]",
            f"hydra.run.dir={run}",
        ],
        check=True,
        capture_output=True,
    )
    assert path_angle.main([str(run), "--points", "7", "--end", "1.2", "--batch", "64"]) == 0
    out = run / "path_angle"
    with open(out / "path_angle.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["alpha"]) for r in rows] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2])
    assert all(-1 <= float(r["cosine"]) <= 1 and float(r["field_norm"]) > 0 for r in rows)
    assert (out / "path_angle.png").stat().st_size > 0
    assert list(out.glob("events.out.tfevents.*"))
    # the initial weights are rebuilt from the run's config and seed: at alpha = 0 the
    # networks are those of a fresh build, which the walk leaves at the final weights
    probe, start, end, _ = path_angle.probe_for(str(run), 64)
    assert not (start == end).all()
    assert (path_angle.parameters(probe.G, probe.D) == end).all()


def test_a_path_that_is_not_a_run_gets_one_line_and_exit_2(path_angle, tmp_path, capsys):
    assert path_angle.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert not (tmp_path / "nowhere").exists()
