"""Evaluation metrics on hand-made cases, the digits classifier, and the evaluator choice."""

import logging
import math
import sys
import types

import pytest
import torch
from torch import nn

from ganopt.data import SwissRoll, digits, folder, ring
from ganopt.evaluation import (
    DigitsScore,
    InceptionFID,
    ModeCoverage,
    evaluator_for,
    frechet_distance,
    frechet_distance_of,
    manifold,
    mode_metrics,
)
from ganopt.evaluation.digits_classifier import load_digits_classifier
from ganopt.evaluation.manifold import kth_neighbour_radii, prdc


class Replay(nn.Module):
    """A 'generator' that returns given samples in order, whatever z is."""

    z_dim = 2

    def __init__(self, samples):
        super().__init__()
        self.samples = samples
        self.anchor = nn.Parameter(torch.zeros(()))  # evaluators look up the device
        self.position = 0

    def forward(self, z):
        idx = torch.arange(self.position, self.position + len(z)) % len(self.samples)
        self.position += len(z)
        return self.samples[idx]


RING = ring(batch_size=8)


def test_samples_exactly_at_the_eight_modes():
    samples = RING.centers.repeat(100, 1)
    assert mode_metrics(samples, RING.centers, RING.std) == {"modes": 8, "hq_ratio": 1.0, "kl": 0.0}


def test_all_samples_at_one_mode():
    samples = RING.centers[:1].repeat(400, 1) + 0.01 * torch.randn(400, 2)
    result = mode_metrics(samples, RING.centers, RING.std)
    assert result["modes"] == 1
    assert result["hq_ratio"] == 1.0
    assert result["kl"] == pytest.approx(math.log(8))


def test_samples_far_from_every_mode_are_not_high_quality():
    result = mode_metrics(torch.zeros(100, 2), RING.centers, RING.std)  # the ring's center
    assert result == {"modes": 0, "hq_ratio": 0.0, "kl": None}  # no high-quality histogram


def test_kl_counts_only_high_quality_samples_as_pacgan_does():
    """Four modes with 300 and 100 and 100 and 100 high-quality samples, and 400 samples
    between modes. Those 400 are left out of the histogram (counting them, as before, put most
    of them into their nearest modes and gave a kl below PacGAN's floor log(K / modes))."""
    c = RING.centers
    near = [c[0].repeat(300, 1), c[1].repeat(100, 1), c[2].repeat(100, 1), c[3].repeat(100, 1)]
    between = ((c[4] + c[5]) / 2).repeat(400, 1)  # 0.77 from both modes: 38 std
    samples = torch.cat([*near, between])
    result = mode_metrics(samples, c, RING.std)
    p = torch.tensor([0.5, 1 / 6, 1 / 6, 1 / 6], dtype=torch.float64)
    assert result["modes"] == 4
    assert result["hq_ratio"] == pytest.approx(0.6)
    assert result["kl"] == pytest.approx(float((p * (8 * p).log()).sum()))
    assert result["kl"] > math.log(8 / 4)  # never below the floor


def test_kl_of_modes_covered_evenly_is_the_floor_log_k_over_modes():
    c = RING.centers
    samples = torch.cat([c[:5].repeat(50, 1), torch.full((300, 2), 5.0)])  # 300 far away
    result = mode_metrics(samples, c, RING.std)
    assert result["modes"] == 5
    assert result["kl"] == pytest.approx(math.log(8 / 5))


def test_high_quality_means_strictly_within_three_standard_deviations():
    c = RING.centers[0]
    inside = c + torch.tensor([2.999 * RING.std, 0.0])
    outside = c + torch.tensor([3.001 * RING.std, 0.0])
    assert mode_metrics(inside[None], RING.centers, RING.std)["hq_ratio"] == 1.0
    assert mode_metrics(outside[None], RING.centers, RING.std)["hq_ratio"] == 0.0


def test_mode_coverage_of_a_generator_uses_2500_samples():
    G = Replay(RING.centers.repeat(400, 1))
    result = ModeCoverage(RING)(G)
    assert G.position == 2500
    assert result["modes"] == 8
    assert result["hq_ratio"] == 1.0
    assert result["kl"] == pytest.approx(0.0, abs=1e-5)  # 2500 is not a multiple of 8


def test_manifold_metrics_agree_with_naeem_et_al_s_code():
    """prdc (the package of Naeem et al. 2020) on fixed points, k = 5."""
    prdc_package = pytest.importorskip("prdc")  # a dev dependency: installed with .[dev]
    g = torch.Generator().manual_seed(0)
    real = torch.randn(700, 6, generator=g, dtype=torch.float64)
    for fake in (
        0.8 * torch.randn(600, 6, generator=g, dtype=torch.float64) + 0.3,
        torch.randn(300, 6, generator=g, dtype=torch.float64)[:, [0, 0, 1, 2, 3, 4]],
    ):
        ours = prdc(real, fake)
        theirs = prdc_package.compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
        assert ours == pytest.approx({k: float(v) for k, v in theirs.items()}, abs=1e-12)


def test_chunked_distances_give_the_same_metrics(monkeypatch):
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(300, 3, generator=g), torch.randn(250, 3, generator=g) + 0.5
    whole = prdc(real, fake)
    monkeypatch.setattr(manifold, "CHUNK", 64)
    assert prdc(real, fake) == whole


def test_half_the_modes_fool_frechet_distance_but_not_coverage():
    """A generator that covers every other mode of ring8 well: its mean and covariance match
    the ring's, so its Fréchet distance is as low as fresh real samples' (their noise floor);
    coverage and recall halve."""
    g = torch.Generator().manual_seed(1)
    evaluator = ModeCoverage(RING)
    fresh = [RING.sample(2500, generator=g) for _ in range(5)]
    floor = sum(frechet_distance_of(x, evaluator.real) for x in fresh) / len(fresh)
    four = RING.centers[torch.randint(4, (2500,), generator=g) * 2]
    four = four + RING.std * torch.randn(2500, 2, generator=g)
    assert frechet_distance_of(four, evaluator.real) < 2 * floor < 0.01
    scores = evaluator(Replay(four))
    assert scores["coverage"] == pytest.approx(0.5, abs=0.05)
    assert scores["recall"] == pytest.approx(0.5, abs=0.05)
    assert scores["precision"] > 0.95
    assert evaluator(Replay(fresh[0]))["coverage"] > 0.9


def test_frechet_distance_of_a_set_to_itself_is_zero_and_grows_with_a_shift():
    x = torch.randn(2000, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance_of(x, x) == pytest.approx(0.0, abs=1e-8)
    shifts = [frechet_distance_of(x, x + d) for d in (0.1, 0.5, 1.0)]
    assert shifts == pytest.approx([16 * 0.01, 16 * 0.25, 16 * 1.0], rel=1e-6)


def test_frechet_distance_between_known_gaussians():
    d = 5
    mu, eye = torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
    # 1-D: (σ1 - σ2)², here (1 - 2)² per dimension
    assert frechet_distance(mu, eye, mu, 4 * eye) == pytest.approx(d)
    assert frechet_distance(mu, eye, mu + 3, eye) == pytest.approx(9 * d)


@pytest.mark.slow
def test_digits_classifier_is_accurate(private_cache):
    from ganopt.evaluation import digits_classifier

    _, accuracy = load_digits_classifier()  # the session's cached one
    assert accuracy > 0.95
    assert (private_cache / digits_classifier.CACHE_FILE).exists()


def test_the_classifier_has_the_same_weights_whatever_the_processs_thread_count():
    """Its weights decide every fd_digits: trained at a fixed count (a short training here),
    and the caller's count is given back."""
    from ganopt.evaluation.digits_classifier import TRAINING_THREADS, train_digits_classifier

    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (2, 3):
            torch.set_num_threads(threads)
            model, _ = train_digits_classifier(epochs=1)
            assert torch.get_num_threads() == threads != TRAINING_THREADS
            weights.append(model.state_dict())
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.slow
def test_training_or_loading_the_classifier_leaves_the_rng_alone(tmp_path, monkeypatch):
    """Whether it is trained now (a short training here) or loaded from the cache, the global
    RNG does not move: a cache hit or miss must never change a run."""
    from ganopt.evaluation import digits_classifier

    monkeypatch.setenv("GANOPT_CACHE_DIR", str(tmp_path))
    quick = digits_classifier.train_digits_classifier
    monkeypatch.setattr(digits_classifier, "train_digits_classifier", lambda: quick(epochs=1))
    accuracies = []
    for _ in ("trained", "cached"):
        torch.manual_seed(0)
        expected = torch.randn(3)
        torch.manual_seed(0)
        _, accuracy = load_digits_classifier()
        assert torch.equal(torch.randn(3), expected)
        assert (tmp_path / digits_classifier.CACHE_FILE).exists()
        accuracies.append(accuracy)
    assert accuracies[0] == accuracies[1]


@pytest.mark.slow
def test_digits_score_of_the_real_digits_is_near_its_floor():
    """Real digits score about the real-vs-real floor, which is measured at the counts the
    score uses: half the digits generated against the other half."""
    images = digits(batch_size=8, holdout=0).images
    score = DigitsScore(images, n=len(images))
    result = score(Replay(images.flip(0)))
    assert score.info["fd_digits_n"] == 899 and score.info["fd_digits_n_real"] == 898
    assert 0.3 * score.floor < result["fd_digits"] < 3 * score.floor
    assert score.floor > 0.5  # finite samples: a real sample is not at distance 0
    assert result["coverage"] > 0.9 and result["precision"] > 0.9
    assert result["classes_covered"] == 10
    assert result["class_kl"] < 0.01
    assert score.info["digits_classifier_acc"] > 0.95


@pytest.mark.slow
def test_digits_score_of_a_generator_that_draws_one_digit():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = digits(batch_size=8, holdout=0).images
    threes = images[torch.from_numpy(bunch.target) == 3]
    result = DigitsScore(images, n=500)(Replay(threes))
    assert result["classes_covered"] == 1
    assert result["class_kl"] > 0.9 * math.log(10)
    assert result["fd_digits"] > 20


def test_evaluator_for_each_kind_of_data(tmp_path, caplog):
    cpu = torch.device("cpu")
    assert isinstance(evaluator_for(RING, cpu, 0), ModeCoverage)
    assert evaluator_for(SwissRoll(batch_size=4), cpu, 0) is None
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    images = folder(batch_size=2, path=str(tmp_path), resolution=8, holdout=0)  # one image
    if "pytorch_fid" in sys.modules or _importable("pytorch_fid"):
        pytest.skip("pytorch-fid is installed here")
    with caplog.at_level(logging.WARNING):
        assert evaluator_for(images, cpu, 0) is None
    assert "no image metric for this run" in caplog.text
    assert "pip install 'ganopt[fid]'" in caplog.text


@pytest.mark.slow
def test_digits_get_the_digits_score(private_cache):
    """Slow only where the session's classifier is not cached yet: it trains it."""
    assert isinstance(evaluator_for(digits(batch_size=4), torch.device("cpu"), 0), DigitsScore)


def _importable(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_inception_fid_glue_with_a_stand_in_network(tmp_path, monkeypatch):
    """pytorch-fid's InceptionV3 replaced by a tiny network with the same interface."""

    class StandIn(nn.Module):
        BLOCK_INDEX_BY_DIM = types.MappingProxyType({2048: 3})

        def __init__(self, blocks):
            super().__init__()
            assert blocks == [3]

        def forward(self, x):
            assert x.shape[1] == 3 and x.min() >= 0 and x.max() <= 1  # RGB in [0, 1]
            return [torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)[:, :, None, None]]

    package = types.ModuleType("pytorch_fid")
    inception = types.ModuleType("pytorch_fid.inception")
    inception.InceptionV3 = StandIn
    inception.FID_WEIGHTS_URL = "https://example.invalid/pt_inception-weights.pth"
    monkeypatch.setitem(sys.modules, "pytorch_fid", package)
    monkeypatch.setitem(sys.modules, "pytorch_fid.inception", inception)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    real = torch.rand(300, 1, 8, 8) * 2 - 1
    with pytest.raises(Exception, match="weights are not at"):
        InceptionFID(real, n=300)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "pt_inception-weights.pth").write_bytes(b"")
    fid = InceptionFID(real, n=300)
    assert fid.info == {"fid_floor": fid.floor, "fid_n": 150.0, "fid_n_real": 150.0}
    reference = real[torch.randperm(300, generator=torch.Generator().manual_seed(0))[:150]]
    scores = fid(Replay(reference))
    assert scores["fid"] == pytest.approx(0.0, abs=1e-6)
    assert scores["coverage"] == 1.0 and scores["precision"] == 1.0
    assert fid(Replay(real * 0.2))["fid"] > 0.01


def test_a_reference_samples_radii_are_computed_once_and_a_new_sample_gets_its_own(monkeypatch):
    from ganopt.evaluation import evaluators

    computed = []
    monkeypatch.setattr(evaluators, "_RADII", {})
    monkeypatch.setattr(
        evaluators, "kth_neighbour_radii", lambda x: computed.append(x) or kth_neighbour_radii(x)
    )
    first, second = (ModeCoverage(RING, n=300) for _ in range(2))
    assert len(computed) == 1 and second.real_radii is first.real_radii
    assert torch.equal(first.real_radii, kth_neighbour_radii(first.real.double()))
    other = torch.randn(300, 2)
    assert torch.equal(evaluators.reference_radii(other), kth_neighbour_radii(other.double()))
    assert len(computed) == 2
    for _ in range(evaluators.KEPT_RADII + 3):
        evaluators.reference_radii(torch.randn(50, 2))
    assert len(evaluators._RADII) == evaluators.KEPT_RADII
