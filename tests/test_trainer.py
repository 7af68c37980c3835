"""The Trainer, built from composed configs, run in-process with an in-memory logger."""

import itertools
import json
import math
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ganopt.checkpoint import load
from ganopt.diagnostics import Probe
from ganopt.objective import Phase
from tests.conftest import first_state, make_trainer

LOSSES = ["standard", "nonsaturating", "wgan"]
OPTIMS = ["sgd", "sgd_clip", "adam", "rmsprop", "rmsprop_clip"]
# The fast subset trains each loss and each optimizer once; the other pairs run with the slow tests.
FAST_PAIRS = {
    ("standard", "sgd"),
    ("nonsaturating", "adam"),
    ("wgan", "sgd_clip"),
    ("wgan", "rmsprop_clip"),
    ("standard", "rmsprop"),
}
SMALL = ["trainer.batch_size=64", "model.g.hidden=[32,32,32]", "model.d.hidden=[32,32,32]"]
#: a small DCGAN on the digits with BatchNorm in D
DIGITS = [
    *["model=dcgan", "data=digits", "data.resolution=16", "model.d.norm=batch"],
    *["reg=none", "model.g.width=4", "model.d.width=4"],
]


@pytest.mark.parametrize(
    ("loss", "optim"),
    [
        pair if pair in FAST_PAIRS else pytest.param(*pair, marks=pytest.mark.slow)
        for pair in itertools.product(LOSSES, OPTIMS)
    ],
)
def test_every_loss_and_optimizer_trains_with_finite_values(loss, optim, run_dir):
    trainer, logger = make_trainer(
        [f"loss={loss}", f"optim={optim}", "trainer.steps=20", "trainer.log_every=5", *SMALL],
        run_dir,
    )
    result = trainer.fit()
    assert result.status == "ok"
    assert result.step == 20
    assert [s for s, _ in logger.scalar_log["loss/D"]] == [1, 5, 10, 15, 20]
    for tag, series in logger.scalar_log.items():
        assert all(math.isfinite(v) for _, v in series), tag
    for p in [*trainer.G.parameters(), *trainer.D.parameters()]:
        assert torch.isfinite(p).all()
    sigmoid = loss != "wgan"
    assert ("D/prob_real" in logger.scalar_log) == sigmoid
    assert ("wasserstein/estimate" in logger.scalar_log) == (not sigmoid)


@pytest.mark.parametrize("optim", ["sgd_clip", "rmsprop_clip"])
def test_weight_clipping_bounds_hold_after_training(optim, run_dir):
    trainer, _ = make_trainer([f"optim={optim}", "loss=wgan", "trainer.steps=15", *SMALL], run_dir)
    trainer.fit()
    assert max(p.abs().max().item() for p in trainer.D.parameters()) <= 0.01
    # clipping is for D only
    assert max(p.abs().max().item() for p in trainer.G.parameters()) > 0.01


def _trained_weights(seed, run_dir):
    trainer, _ = make_trainer(["trainer.steps=10", f"trainer.seed={seed}", *SMALL], run_dir)
    trainer.fit()
    return [p.detach().clone() for p in [*trainer.G.parameters(), *trainer.D.parameters()]]


@pytest.mark.slow
def test_same_seed_gives_identical_weights(tmp_path):
    first, second = _trained_weights(3, tmp_path / "a"), _trained_weights(3, tmp_path / "b")
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    other = _trained_weights(4, tmp_path / "c")
    assert not torch.equal(first[0], other[0])


def test_toy_results_depend_on_the_thread_count_only_in_their_last_bits(tmp_path):
    """docs, "Threads": a toy run repeats bit for bit at the thread count it ran with; at another
    count a BLAS may split a matrix-vector product's sum differently (seen on AVX-512 Xeons), so
    weights agree to float32 rounding, not bit for bit."""

    def trained(threads: int, name: str) -> list[torch.Tensor]:
        overrides = ["trainer.steps=5", f"trainer.threads={threads}", "diagnostics.game_every=0"]
        trainer, _ = make_trainer(overrides, tmp_path / name)
        trainer.fit()
        return [p.detach().clone() for p in trainer.G.parameters()]

    try:
        two, two_again, one = trained(2, "a"), trained(2, "b"), trained(1, "c")
    finally:
        torch.set_num_threads(1)  # the suite's one thread per process
    assert all(torch.equal(a, b) for a, b in zip(two, two_again, strict=True))
    for a, b in zip(one, two, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "preset",
    ["adam_decay", "sgd_clip", "rmsprop_clip", "extra_adam", "optimistic_sgd", "dcgan"],
)
def test_one_buffer_and_foreach_train_to_the_bits_of_torchs_per_tensor_loop(preset, tmp_path):
    """docs/performance.md: by default each network's optimizer steps one buffer
    (trainer.flat_params), and with separate tensors it runs torch's foreach kernels, which a
    CPU does not get by default: neither may change a result published before them."""
    implementations = {
        "one buffer": [],
        "foreach": ["trainer.flat_params=false"],
        "per tensor": [  # torch's CPU default
            "trainer.flat_params=false",
            "+optim.g.foreach=false",
            "+optim.d.foreach=false",
        ],
    }
    model = ["model=dcgan", "data=digits", "model.g.width=8", "model.d.width=8"]
    weights = []
    for name, overrides in implementations.items():
        trainer, _ = make_trainer(
            [
                *(model if preset == "dcgan" else [f"optim={preset}"]),
                *(["loss=wgan"] if preset.endswith("clip") else []),
                *overrides,
                "trainer.steps=6",
                "trainer.log_every=3",
                "trainer.batch_size=32",
                "diagnostics.game_every=0",
            ],
            tmp_path / name.replace(" ", "_"),
        )
        assert set(trainer.updates.flat) == ({"G", "D"} if name == "one buffer" else set())
        assert trainer.opt_D.param_groups[0]["foreach"] is (name == "foreach")
        trainer.fit()
        weights.append(
            [
                t.detach().clone()
                for t in [*trainer.G.state_dict().values(), *trainer.D.state_dict().values()]
            ]
        )
    for other in weights[1:]:
        assert all(torch.equal(a, b) for a, b in zip(weights[0], other, strict=True))


def _subnormal_count(optimizer: torch.optim.Optimizer) -> int:
    tiny = torch.finfo(torch.float32).tiny
    moments = [t for s in optimizer.state.values() for k, t in s.items() if k.startswith("exp_")]
    return sum(int(((t != 0) & (t.abs() < tiny)).sum()) for t in moments)


def _arithmetic_is_ieee() -> bool:
    return bool(torch.tensor([1e-39]) * 1.0 != 0)  # a subnormal survives a product


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU cannot flush")
def test_flush_denormal_flushes_the_optimizer_steps_alone_and_keeps_the_weights(tmp_path):
    """docs/performance.md: within the optimizer steps Adam's subnormal moments become 0,
    the weights come out bit for bit as without, and the arithmetic is IEEE again after."""
    runs = {}
    for flush in ("false", "true"):
        overrides = [
            f"trainer.flush_denormal={flush}",
            "trainer.steps=200",
            "trainer.log_every=100",
            "diagnostics.game_every=0",
        ]
        trainer, _ = make_trainer(overrides, tmp_path / flush)
        inside = []

        def spied(*args, step=trainer.opt_G.step, inside=inside, **kwargs):
            inside.append(_arithmetic_is_ieee())
            return step(*args, **kwargs)

        trainer.opt_G.step = spied
        trainer.fit()
        assert _arithmetic_is_ieee()  # IEEE again after the steps
        assert set(inside) == {flush == "false"}
        runs[flush] = trainer
    assert _subnormal_count(runs["false"].opt_G) > 0  # by step 200 Adam's first moments have some
    assert _subnormal_count(runs["true"].opt_G) == 0
    weights = [[p.detach() for p in [*t.G.parameters(), *t.D.parameters()]] for t in runs.values()]
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_d_steps_updates_d_n_times_per_g_update_each_on_fresh_data(run_dir):
    trainer, _ = make_trainer(["trainer.steps=4", "trainer.d_steps=3", *SMALL], run_dir)
    batches = []
    source = trainer.data

    def recording():
        while True:
            batches.append(next(source))
            yield batches[-1]

    trainer.data = recording()
    trainer.fit()
    assert len(batches) == 12
    assert len({b.sum().item() for b in batches}) == 12
    assert first_state(trainer.opt_D)["step"].item() == 12
    assert first_state(trainer.opt_G)["step"].item() == 4


@pytest.mark.parametrize("probe", [None, Probe(histograms=True)], ids=["plain", "log step"])
def test_g_step_leaves_d_untouched_and_d_step_leaves_g_untouched(probe, run_dir):
    """Also on log steps: measuring (input gradients, shadow losses) adds no gradient."""
    trainer, _ = make_trainer(["optim=sgd_clip", *SMALL], run_dir)
    g_before = [p.detach().clone() for p in trainer.G.parameters()]
    trainer.run_phase(Phase("D"), probe, extrapolate=False)
    assert all(torch.equal(a, b) for a, b in zip(g_before, trainer.G.parameters(), strict=True))
    assert all(p.grad is None for p in trainer.G.parameters())

    d_weights = [p.detach().clone() for p in trainer.D.parameters()]
    d_grads = [p.grad.clone() for p in trainer.D.parameters()]
    trainer.run_phase(Phase("G"), probe, extrapolate=False)
    assert all(torch.equal(a, b) for a, b in zip(d_weights, trainer.D.parameters(), strict=True))
    assert all(torch.equal(a, p.grad) for a, p in zip(d_grads, trainer.D.parameters(), strict=True))
    assert all(p.requires_grad for p in trainer.D.parameters())


def test_logged_tags_and_per_parameter_norms(run_dir):
    trainer, logger = make_trainer(["loss=standard", "trainer.steps=3", *SMALL], run_dir)
    trainer.fit()
    tags = set(logger.scalar_log)
    expected = {
        "loss/D",
        "loss/G",
        "D/out_real",
        "D/out_fake",
        "D/prob_real",
        "D/prob_fake",
        "grad_norm/G/total",
        "grad_norm/D/total",
        "grad_signal/G",
        "perf/steps_per_sec",
    }
    assert expected <= tags
    for net, module in (("G", trainer.G), ("D", trainer.D)):
        for name, _ in module.named_parameters():
            assert f"grad_norm/{net}/{name}" in tags
    # per-layer norms combine into the total
    final = {tag: series[-1][1] for tag, series in logger.scalar_log.items()}
    layers = [
        v for t, v in final.items() if t.startswith("grad_norm/D/") and t != "grad_norm/D/total"
    ]
    assert math.sqrt(sum(v * v for v in layers)) == pytest.approx(
        final["grad_norm/D/total"], rel=1e-4
    )


def test_metrics_json_and_final_checkpoint(run_dir):
    trainer, _ = make_trainer(["trainer.steps=6", "trainer.ckpt_every=3", *SMALL], run_dir)
    trainer.fit()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in (
        "step",
        "steps_per_sec",
        "loss_D",
        "loss_G",
        "grad_norm_G",
        "grad_norm_D",
        "status",
    ):
        assert metrics[key] is not None, key
    assert metrics["status"] == "ok"
    assert metrics["step"] == 6
    # the process's peak resident set: torch alone is over 100 MB, and no test run needs 64 GB
    assert 100 < metrics["peak_memory_mb"] < 65536
    ckpt = load(run_dir / "checkpoints" / "last.pt")
    assert {"G", "D", "opt_G", "opt_D", "step", "rng"} <= set(ckpt)
    assert ckpt["step"] == 6
    for name, value in trainer.G.state_dict().items():
        assert torch.equal(ckpt["G"][name], value)
    assert (run_dir / "checkpoints" / "step_0000003.pt").exists()


class _Counter:
    """Counts host-syncing Tensor calls made from ganopt's own code."""

    METHODS = ("item", "tolist", "__bool__", "__float__", "__int__", "numpy", "cpu")

    def __init__(self, monkeypatch):
        self.count = 0
        package = str(Path(__file__).resolve().parents[1] / "ganopt")
        for name in self.METHODS:
            original = getattr(torch.Tensor, name)

            def wrapper(tensor, *args, _original=original, **kwargs):
                if sys._getframe(1).f_code.co_filename.startswith(package):
                    self.count += 1
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, wrapper)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [SMALL, [*DIGITS, "trainer.batch_size=16", "aug=diffaugment"]],
    ids=["mlp", "diffaugment_heldout"],
)
def test_no_host_sync_between_log_steps(model, tmp_path, monkeypatch):
    """Syncs happen on log steps only: 10 or 150 steps with the same log steps cost the same
    (150 steps also refill the divergence guard's device buffer of 64 steps)."""
    counts = []
    for steps in (10, 150):
        trainer, _ = make_trainer(
            [f"trainer.steps={steps}", "trainer.log_every=1000", *model], tmp_path / str(steps)
        )
        counter = _Counter(monkeypatch)
        trainer.fit()
        counts.append(counter.count)
        monkeypatch.undo()
    assert counts[0] > 0  # the log steps themselves do sync: the counter works
    assert counts[0] == counts[1]


class _PoisonedData:
    """Real batches, then NaN from batch ``at`` on."""

    def __init__(self, data, at):
        self.data, self.at, self.n, self.shape = data, at, 0, data.shape

    def __next__(self):
        self.n += 1
        batch = next(self.data)
        return batch * math.nan if self.n >= self.at else batch


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(run_dir):
    trainer, logger = make_trainer(
        ["trainer.steps=50", "trainer.log_every=5", "trainer.ckpt_every=5", *SMALL], run_dir
    )
    trainer.data = _PoisonedData(trainer.data, at=7)
    result = trainer.fit()
    assert result.status == "diverged"
    assert result.exit_code == 0
    assert result.metrics["diverged_step"] == 7
    assert result.metrics["diverged_network"] == "D"
    assert result.step == 10  # detected at the first log step after the NaN
    ckpt = load(run_dir / "checkpoints" / "last.pt")
    assert ckpt["step"] == 5
    assert all(torch.isfinite(v).all() for v in ckpt["D"].values())
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "diverged"
    assert logger.texts
    assert logger.texts[0][0] == "alerts"


class _SignalAt:
    """Delivers a real signal to this process when batch ``at`` is drawn."""

    def __init__(self, data, at, signum):
        self.data, self.at, self.signum, self.n, self.shape = data, at, signum, 0, data.shape

    def __next__(self):
        self.n += 1
        if self.n == self.at:
            signal.raise_signal(self.signum)
        return next(self.data)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_finishes_the_step_saves_and_reports_interrupted(signum, code, run_dir):
    trainer, _ = make_trainer(["trainer.steps=100", *SMALL], run_dir)
    trainer.data = _SignalAt(trainer.data, at=4, signum=signum)
    previous = signal.getsignal(signum)
    result = trainer.fit()
    assert result.status == "interrupted"
    assert result.exit_code == code
    assert result.step == 4
    assert load(run_dir / "checkpoints" / "last.pt")["step"] == 4
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
    assert signal.getsignal(signum) is previous  # handlers restored


def test_an_exception_mid_run_records_failed_and_propagates(run_dir):
    trainer, _ = make_trainer(["trainer.steps=10", *SMALL], run_dir)

    source = trainer.data

    def broken():
        yield next(source)
        raise RuntimeError("disk on fire")

    trainer.data = broken()
    with pytest.raises(RuntimeError, match="disk on fire"):
        trainer.fit()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"


def test_sample_figures_follow_sample_every(run_dir):
    figures = ["trainer.figures=true", "trainer.sample_every=3"]
    trainer, logger = make_trainer(["trainer.steps=6", *figures, *SMALL], run_dir)
    trainer.fit()
    images = [(tag, step) for tag, step, _ in logger.images]
    assert [i for i in images if i[0] == "samples"] == [("samples", 3), ("samples", 6)]
    assert [i for i in images if i[0] == "gradient_flow/D"] == [
        ("gradient_flow/D", 3),
        ("gradient_flow/D", 6),
    ]
    assert (run_dir / "samples.png").stat().st_size > 0
    assert (run_dir / "gradient_flow.png").stat().st_size > 0


def test_without_figures_a_run_draws_nothing_and_measures_everything(run_dir):
    """trainer.figures=false: no sample, gradient-flow or spectrum figure, no PNG, and nothing
    started to draw them; the scalars, the game's numbers and the evaluation are all there."""
    every = ["trainer.sample_every=3", "diagnostics.game_every=3", "diagnostics.game_iters=6"]
    trainer, logger = make_trainer(["trainer.steps=6", *every, *SMALL], run_dir)
    submitted = []
    trainer.recorder.figure_writer.drawing.submit = lambda *job: submitted.append(job)
    assert trainer.fit().status == "ok"
    assert submitted == [] and logger.images == []
    assert not (run_dir / "samples.png").exists() and not (run_dir / "gradient_flow.png").exists()
    assert [s for s, _ in logger.scalar_log["game/rotation"]] == [3, 6]
    assert [s for s, _ in logger.scalar_log["metrics/modes"]] == [6]


@pytest.mark.slow
@pytest.mark.parametrize(("loss", "vanishes"), [("standard", True), ("nonsaturating", False)])
def test_alarm_catches_the_saturating_loss_vanishing_and_not_the_nonsaturating(
    loss, vanishes, run_dir
):
    """experiment=vanishing, shortened: D learns 5x per step at 100x G's rate."""
    trainer, logger = make_trainer(
        [
            "experiment=vanishing",
            f"loss={loss}",
            "trainer.steps=200",
            "diagnostics.shadow=false",
            "diagnostics.input_gradients=false",
        ],
        run_dir,
    )
    result = trainer.fit()
    assert result.status == "ok"  # the alarm reports; it never stops a run
    assert (result.metrics["vanishing_step"] is not None) == vanishes
    vanishing = [text for tag, text, _ in logger.texts if tag == "alerts" and "vanishing" in text]
    assert len(vanishing) == vanishes
    # D rejects every fake under both losses; only the saturating one passes that on to G
    assert logger.scalar_log["D/saturated_fake"][-1][1] > 0.99
    # the gradient-flow picture shows it: G's late columns orders of magnitude below its early
    # ones in every layer, or not
    flow = trainer.recorder.flows["G"]
    assert flow.layers == ["fc1.weight", "fc2.weight", "fc3.weight", "out.weight"]
    early, late = flow.matrix()[:, 1:4].mean(axis=1), flow.matrix()[:, -3:].mean(axis=1)
    drop = np.log10(early / late)
    assert (drop > 2).all() if vanishes else (drop < 0.5).all(), drop


def test_histograms_follow_hist_every(run_dir):
    trainer, logger = make_trainer(
        ["trainer.steps=6", "trainer.log_every=2", "trainer.hist_every=3", *SMALL], run_dir
    )
    trainer.fit()
    steps = sorted({step for tag, step in logger.histograms if tag == "hist/D/out_fake"})
    assert steps == [3, 6]  # and early ones: 100, 300, ... below hist_every
    assert ("hist/grad/G/fc1.weight", 3) in logger.histograms
    assert [s for s, _ in logger.scalar_log["loss/D"]] == [1, 2, 4, 6]  # scalars: log_every


def test_the_last_step_always_has_histograms(run_dir):
    """A short sweep job (steps < hist_every) has histograms too: its last step's; a longer
    run's also at 100, 300, ... below hist_every, where a collapse at step 160 shows."""
    trainer, logger = make_trainer(
        ["trainer.steps=5", "trainer.log_every=2", "trainer.hist_every=500", *SMALL], run_dir
    )
    trainer.fit()
    steps = {step for tag, step in logger.histograms if tag == "hist/D/out_fake"}
    assert sorted(steps) == [5]


def test_histograms_come_early_too_where_a_collapse_shows(run_dir):
    """Every hist_every (500) steps alone missed a collapse at step 160: 100 and 300 too."""
    trainer, _ = make_trainer(["trainer.steps=2000", "trainer.hist_every=500", *SMALL], run_dir)
    due = [s for s in range(1, 2001) if trainer.recorder.histograms_due(s)]
    assert due == [100, 300, 500, 1000, 1500, 2000]


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [
        SMALL,
        [*SMALL, "model.d.spectral_norm=true"],  # power iterations must not advance to measure
        [
            *["model=dcgan", "data=digits", "data.resolution=16", "model.d.norm=batch"],
            *["reg=none", "model.g.width=4", "model.d.width=4"],
        ],
        # D on held-out reals, seen augmented, before D's backward: BatchNorm and spectral norm
        [*DIGITS, "model.d.spectral_norm=true", "aug=diffaugment", "data.limit=100"],
    ],
    ids=["mlp", "spectral_norm", "dcgan_batchnorm", "diffaugment_heldout"],
)
def test_logging_and_measuring_never_change_the_training_trajectory(model, tmp_path):
    """Every diagnostic at every step (interpolates, shadows, histograms, figures) vs none:
    the same weights and buffers (spectral norm's vectors, BatchNorm's statistics)."""
    every_step = [
        "trainer.log_every=1",
        "trainer.hist_every=1",
        "trainer.sample_every=5",
        "trainer.eval_every=4",
    ]
    rarely = ["trainer.log_every=1000", "diagnostics.shadow=false"]
    weights = []
    for i, logging in enumerate([every_step, rarely]):
        trainer, _ = make_trainer(
            ["trainer.steps=12", "trainer.batch_size=64", *model, *logging], tmp_path / str(i)
        )
        trainer.fit()
        state = [*trainer.G.state_dict().values(), *trainer.D.state_dict().values()]
        weights.append([t.detach().clone() for t in state])
    if "model=dcgan" in model:
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trainer.D.modules())
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_evaluation_every_eval_every_and_at_the_end(run_dir):
    trainer, logger = make_trainer(["trainer.steps=7", "trainer.eval_every=3", *SMALL], run_dir)
    trainer.fit()
    assert [s for s, _ in logger.scalar_log["metrics/modes"]] == [3, 6, 7]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert {"modes", "hq_ratio", "kl"} <= set(metrics)
    assert metrics["modes"] == logger.scalar_log["metrics/modes"][-1][1]


@pytest.mark.slow
def test_image_runs_log_a_real_grid_once_and_sample_grids(run_dir):
    trainer, logger = make_trainer(
        [
            "model=dcgan",
            "data=digits",
            "model.g.width=8",
            "model.d.width=8",
            "trainer.batch_size=16",
            "trainer.steps=4",
            "trainer.figures=true",
            "trainer.sample_every=2",
        ],
        run_dir,
    )
    trainer.fit()
    steps = [(tag, step) for tag, step, _ in logger.images if tag in ("real", "samples")]
    assert steps == [("real", 0), ("samples", 2), ("samples", 4)]
    assert logger.images[0][2] == (8 * 33 + 1, 8 * 33 + 1, 3)  # 8x8 digits shown at 32 px
    assert (run_dir / "samples.png").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"fd_digits", "classes_covered", "class_kl", "digits_classifier_acc"} <= set(metrics)


@pytest.mark.slow
def test_cuda_options_change_nothing_on_cpu(tmp_path):
    """trainer.amp, trainer.cuda_graphs and trainer.channels_last act on CUDA only."""
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the options are live here")
    weights = []
    for i, extra in enumerate([[], ["trainer.amp=bf16", "trainer.cuda_graphs=true"]]):
        trainer, _ = make_trainer(
            [
                "model=dcgan",
                "data=digits",
                "model.g.width=8",
                "model.d.width=8",
                "trainer.batch_size=16",
                "trainer.steps=3",
                *extra,
            ],
            tmp_path / str(i),
        )
        trainer.fit()
        weights.append([t.clone() for t in trainer.G.state_dict().values()])
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_d_is_measured_once_per_log_step_on_its_last_critic_step(run_dir, monkeypatch):
    trainer, logger = make_trainer(
        ["trainer.steps=4", "trainer.d_steps=3", "trainer.log_every=2", *SMALL], run_dir
    )
    calls = []
    measure = trainer.diagnostics.on_d_backward

    def counting(probe, *args, **kwargs):  # Adam's step count tells which critic step it is
        step_tensor = first_state(trainer.opt_D).get("step")
        calls.append(0 if step_tensor is None else int(step_tensor.item()))
        return measure(probe, *args, **kwargs)

    monkeypatch.setattr(trainer.diagnostics, "on_d_backward", counting)
    trainer.fit()
    # log steps 1, 2, 4: the 3rd, 6th and 12th D update (counted before that update's step)
    assert calls == [2, 5, 11]
    assert [s for s, _ in logger.scalar_log["grad_norm/D/total"]] == [1, 2, 4]
