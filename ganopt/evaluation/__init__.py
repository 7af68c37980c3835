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


def evaluator_for(data: object, device: torch.device, seed: int) -> Evaluator | None:
    """Mode coverage for Gaussian mixtures, the digits CNN for digits, Inception FID for other
    images where it can run (otherwise one message, and the run goes on without it)."""
    if isinstance(data, GaussianMixture):
        return ModeCoverage(data.centers, data.std, seed=seed)
    if isinstance(data, ImageBatches):
        if data.name == "digits":
            return DigitsScore(data.images, seed=seed, device=device)
        try:
            return InceptionFID(data.images, seed=seed, device=device)
        except EvaluatorUnavailable as e:
            log.warning("no image metric for this run: %s", e)
    return None
