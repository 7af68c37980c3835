"""Seeds as evidence: the bootstrap interval, success criteria, best over training."""

import pytest

from ganopt import evidence


def test_bootstrap_interval_of_a_hand_computed_case():
    """[0, 0, 3]: a resample's mean is the number k of 3s drawn, k ~ Binomial(3, 1/3), so
    P(mean = 0) = 8/27 > 2.5 % and P(mean <= 2) = 26/27 < 97.5 %: the interval is [0, 3]."""
    assert evidence.bootstrap_interval([0.0, 0.0, 3.0]) == (0.0, 3.0)
    # [1, 2]: means 1, 1.5, 2 with probabilities 1/4, 1/2, 1/4
    assert evidence.bootstrap_interval([1.0, 2.0]) == (1.0, 2.0)


def test_bootstrap_interval_narrows_with_seeds_and_reproduces():
    few = [0.1, 0.5, 0.3, 0.9, 0.2]
    many = few * 8
    low_few, high_few = evidence.bootstrap_interval(few)
    low_many, high_many = evidence.bootstrap_interval(many)
    assert low_few < low_many <= evidence.mean(many) <= high_many < high_few
    assert evidence.bootstrap_interval(few) == (low_few, high_few)  # a fixed resampling seed


def test_no_interval_for_one_seed_and_missing_values_are_left_out():
    assert evidence.bootstrap_interval([0.4]) is None
    assert evidence.bootstrap_interval([]) is None
    assert evidence.mean([None, float("nan"), 2.0, 4.0]) == 3.0
    assert evidence.mean([None]) is None


def test_best_of_follows_the_metric_direction():
    assert evidence.best_of([0.5, 0.2, None, 0.9], "kl") == 0.2
    assert evidence.best_of([5.0, 8.0, 7.0], "modes") == 8.0
    assert evidence.best_of([1.0, 2.0], "loss_D") is None  # no better direction


def test_success_criterion_with_a_named_threshold():
    toy = evidence.TOY_SUCCESS
    assert evidence.meets(toy, {"n_modes": 8, "modes": 8, "hq_ratio": 0.85})
    assert not evidence.meets(toy, {"n_modes": 8, "modes": 7, "hq_ratio": 0.99})
    assert not evidence.meets(toy, {"n_modes": 8, "modes": 8, "hq_ratio": 0.7})
    assert not evidence.meets(toy, {"modes": 8, "hq_ratio": 0.9})  # n_modes unknown
    assert evidence.meets({"kl": 0.1}, {"kl": 0.05})
    assert not evidence.meets({"kl": 0.1}, {"kl": None})  # undefined meets nothing


def test_first_success_is_the_first_evaluation_that_met_it():
    history = [
        {"step": 1000, "modes": 6, "hq_ratio": 0.9},
        {"step": 2000, "modes": 8, "hq_ratio": 0.7},
        {"step": 3000, "modes": 8, "hq_ratio": 0.81},
        {"step": 4000, "modes": 7, "hq_ratio": 0.9},
    ]
    assert evidence.first_success(evidence.TOY_SUCCESS, history, {"n_modes": 8}) == 3000
    assert evidence.first_success(evidence.TOY_SUCCESS, history[:2], {"n_modes": 8}) is None


@pytest.mark.parametrize(
    ("criterion", "problem"),
    [
        ({"loss_D": 1.0}, "loss_D has no better direction"),
        ({"kl": [1, 2]}, "objective.success.kl: a number or a metrics.json key"),
        ({"kl": True}, "objective.success.kl: a number or a metrics.json key"),
    ],
)
def test_criterion_problems(criterion, problem):
    assert any(problem in p for p in evidence.criterion_problems(criterion))
    assert evidence.criterion_problems({"modes": "n_modes", "hq_ratio": 0.8}) == []


def test_describe_says_which_way_each_threshold_points():
    text = evidence.describe({"modes": "n_modes", "kl": 0.2})
    assert text == "modes >= n_modes, kl <= 0.2"
