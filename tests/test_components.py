"""Models, toy data, clipping, gradient norms, the divergence guard and checkpoints, built
directly without the config system."""

import math
import os

import pytest
import torch

from ganopt.checkpoint import CheckpointDir, load, save_atomic
from ganopt.clipping import WeightClipper
from ganopt.data import SwissRoll, grid, ring
from ganopt.diagnostics import NonFiniteGuard, grad_norms, to_host
from ganopt.models import MLPDiscriminator, MLPGenerator


def test_mlp_shapes_and_readable_parameter_names():
    G = MLPGenerator(z_dim=5, data_shape=(2,), hidden=[16, 16, 16])
    D = MLPDiscriminator(data_shape=(2,), hidden=[16, 16, 16])
    assert G(torch.randn(7, 5)).shape == (7, 2)
    assert D(torch.randn(7, 2)).shape == (7,)
    names = [n for n, _ in D.named_parameters()]
    assert names == [
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "fc3.weight",
        "fc3.bias",
        "out.weight",
        "out.bias",
    ]


def test_ring8_samples_sit_on_eight_modes_of_radius_two():
    data = ring(batch_size=4000)
    x = next(data)
    assert x.shape == (4000, 2)
    modes = data.centers
    assert torch.allclose(modes.norm(dim=1), torch.full((8,), 2.0))
    nearest = torch.cdist(x, modes).min(dim=1)
    assert nearest.values.max() < 6 * 0.02  # all within 6 std of a mode
    assert nearest.indices.bincount(minlength=8).min() > 350  # every mode is used
    assert (x - modes[nearest.indices]).std().item() == pytest.approx(0.02, rel=0.1)


def test_grid25_modes():
    data = grid(batch_size=10)
    coords = sorted({round(v, 6) for v in data.centers.flatten().tolist()})
    assert coords == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len(data.centers) == 25
    assert data.std == 0.05


def test_swissroll_range():
    x = SwissRoll(batch_size=5000).sample(5000)
    radius = x.norm(dim=1)
    # t in [1.5π, 4.5π], radius t/7.5 ∈ [0.63, 1.88] before noise
    assert radius.min() > 0.3
    assert radius.max() < 2.3


def test_sampling_with_a_generator_leaves_the_global_rng_alone():
    data = ring(batch_size=8)
    torch.manual_seed(0)
    expected = torch.randn(3)
    torch.manual_seed(0)
    data.sample(100, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.randn(3), expected)


def test_weight_clipper_bounds_every_parameter():
    D = MLPDiscriminator(data_shape=(2,), hidden=[8, 8])
    for p in D.parameters():
        p.data.normal_(0, 1)
    WeightClipper(D.parameters(), 0.01)()
    for p in D.parameters():
        assert p.abs().max() <= 0.01
    assert any((p.abs() == 0.01).any() for p in D.parameters())


def test_grad_norms_match_a_direct_computation():
    D = MLPDiscriminator(data_shape=(2,), hidden=[8, 8])
    D(torch.randn(16, 2)).pow(2).mean().backward()
    stats = to_host(grad_norms("grad_norm/D", list(D.named_parameters())))
    for name, p in D.named_parameters():
        assert stats[f"grad_norm/D/{name}"] == pytest.approx(p.grad.norm().item(), rel=1e-5)
    total = math.sqrt(sum(p.grad.pow(2).sum().item() for p in D.parameters()))
    assert stats["grad_norm/D/total"] == pytest.approx(total, rel=1e-5)


def test_non_finite_guard_reports_the_first_bad_step_and_network():
    guard = NonFiniteGuard(["D", "G"], torch.device("cpu"))
    guard.watch(1, [torch.tensor(1.0), torch.tensor(2.0)])
    assert guard.check() is None
    guard.watch(2, [torch.tensor(1.0), torch.tensor(float("inf"))])
    guard.watch(3, [torch.tensor(float("nan")), torch.tensor(float("nan"))])
    assert guard.check() == ("G", 2)


@pytest.mark.parametrize("capacity", [1, 3, 64])
def test_recorded_losses_report_the_first_bad_step_across_buffer_refills(capacity):
    guard = NonFiniteGuard(["D", "G"], torch.device("cpu"), capacity=capacity)
    for step in range(1, 8):
        guard.record(step, [torch.tensor(1.0), torch.tensor(2.0)])
    assert guard.check() is None
    for step in range(8, 20):
        d_loss = float("nan") if step >= 13 else 1.0
        g_loss = float("-inf") if step in (11, 17) else 2.0
        guard.record(step, [torch.tensor(d_loss), torch.tensor(g_loss)])
    assert guard.check() == ("G", 11)
    assert guard.first_bad.tolist() == [13.0, 11.0]


def test_atomic_save_leaves_no_temporary_and_loads_with_weights_only(tmp_path):
    path = tmp_path / "last.pt"
    save_atomic({"G": {"w": torch.ones(2)}, "step": 3}, path)
    assert sorted(os.listdir(tmp_path)) == ["last.pt", "last.pt.sha256"]
    assert load(path)["step"] == 3


def test_checkpoint_dir_keeps_the_newest_periodic_files(tmp_path):
    ckpts = CheckpointDir(tmp_path, keep=2)
    for step in (10, 20, 30):
        ckpts.save({"step": step}, step, periodic=True)
    ckpts.save({"step": 35}, 35, periodic=False)
    kept = ["last.pt", "step_0000020.pt", "step_0000030.pt"]
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, *(f"{name}.sha256" for name in kept)])
    assert load(tmp_path / "last.pt")["step"] == 35
    assert load(tmp_path / "step_0000020.pt")["step"] == 20
