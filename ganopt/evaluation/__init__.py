"""Evaluation metrics (docs/evaluation.md) and which ones fit a dataset."""

from __future__ import annotations

import logging

import torch

from ganopt.data import GaussianMixture, ImageBatches
from ganopt.evaluation.evaluators import (
    DigitsScore,
    Evaluator,
    EvaluatorUnavailable,
    InceptionFID,
    ModeCoverage,
    generate,
)
from ganopt.evaluation.frechet import frechet_distance, frechet_distance_of
from ganopt.evaluation.modes import mode_metrics, uniform_kl

log = logging.getLogger(__name__)

__all__ = [
    "DigitsScore",
    "Evaluator",
    "EvaluatorUnavailable",
    "InceptionFID",
    "ModeCoverage",
    "evaluator_for",
    "frechet_distance",
    "frechet_distance_of",
    "generate",
    "mode_metrics",
    "uniform_kl",
]


def evaluator_for(
    data: object, device: torch.device, seed: int, success: dict | None = None
) -> Evaluator | None:
    """Mode coverage for Gaussian mixtures, the digits CNN for digits, Inception FID for other
    images where it can run (otherwise one message, and the run goes on without it). A
    ``success`` criterion replaces the evaluator's own (docs/sweeps.md)."""
    evaluator = _evaluator(data, device, seed)
    if evaluator is not None and success is not None:
        evaluator.success = dict(success)
    return evaluator


def _evaluator(data: object, device: torch.device, seed: int) -> Evaluator | None:
    if isinstance(data, GaussianMixture):
        return ModeCoverage(data, seed=seed, device=device)
    if isinstance(data, ImageBatches):
        if data.name == "digits":
            return DigitsScore(data.reference, seed=seed, device=device)
        try:
            return InceptionFID(data.reference, seed=seed, device=device)
        except EvaluatorUnavailable as e:
            log.warning("no image metric for this run: %s", e)
    return None
