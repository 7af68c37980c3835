"""Evaluators: a generator in, named numbers out (``metrics/<name>`` and metrics.json).

Each draws its latents from a generator of its own, with G in eval mode and without
gradients, so evaluating never changes the training trajectory.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import Tensor, nn

from ganopt.evaluation.digits_classifier import load_digits_classifier
from ganopt.evaluation.frechet import feature_stats, frechet_distance
from ganopt.evaluation.modes import mode_metrics, uniform_kl

log = logging.getLogger(__name__)


class EvaluatorUnavailable(RuntimeError):
    """An optional metric that cannot run here (a package or its weights are missing)."""


@torch.no_grad()
def generate(G: nn.Module, n: int, seed: int, batch_size: int = 500) -> Tensor:
    """``n`` samples of G in eval mode from a fixed, private stream of latents."""
    device = next(G.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    was_training = G.training
    G.eval()
    try:
        chunks = [
            G(torch.randn(min(batch_size, n - i), G.z_dim, device=device, generator=rng))
            for i in range(0, n, batch_size)
        ]
    finally:
        G.train(was_training)
    return torch.cat(chunks)


class Evaluator(ABC):
    @property
    def info(self) -> dict[str, float]:
        """Constants of the evaluator worth recording with the results."""
        return {}

    @abstractmethod
    def __call__(self, G: nn.Module) -> dict[str, float]:
        """Evaluate G; return metric name → value."""


class ModeCoverage(Evaluator):
    """``modes``, ``hq_ratio`` and ``kl`` of ``n`` samples on a Gaussian mixture."""

    def __init__(self, centers: Tensor, std: float, n: int = 2500, seed: int = 0) -> None:
        self.centers, self.std, self.n, self.seed = centers, std, n, seed

    def __call__(self, G: nn.Module) -> dict[str, float]:
        return mode_metrics(generate(G, self.n, self.seed), self.centers, self.std)


class DigitsScore(Evaluator):
    """``fd_digits`` (Fréchet distance on the digits CNN's 128-d features, generated vs. the
    training images), ``classes_covered`` (classes predicted for at least 1% of samples) and
    ``class_kl`` (KL of the predicted-class histogram to uniform)."""

    MIN_SHARE = 0.01

    def __init__(
        self, real_images: Tensor, n: int = 2000, seed: int = 0, device: torch.device | str = "cpu"
    ) -> None:
        self.classifier, self.classifier_accuracy = load_digits_classifier(device)
        self.n, self.seed, self.device = n, seed, torch.device(device)
        self.real_stats = feature_stats(self._features(real_images))
        log.info("digits classifier: %.1f%% held-out accuracy", 100 * self.classifier_accuracy)

    @property
    def info(self) -> dict[str, float]:
        return {"digits_classifier_acc": self.classifier_accuracy}

    @torch.no_grad()
    def _features(self, images: Tensor) -> Tensor:
        return torch.cat(
            [self.classifier.features(chunk.to(self.device)) for chunk in images.split(500)]
        )

    @torch.no_grad()
    def __call__(self, G: nn.Module) -> dict[str, float]:
        features = self._features(generate(G, self.n, self.seed))
        predicted = self.classifier.logits(features).argmax(dim=1)
        counts = torch.bincount(predicted, minlength=10)
        return {
            "fd_digits": frechet_distance(*feature_stats(features), *self.real_stats),
            "classes_covered": float((counts >= self.MIN_SHARE * self.n).sum()),
            "class_kl": uniform_kl(counts),
        }


class InceptionFID(Evaluator):
    """Inception-v3 FID through ``pytorch-fid`` (``pip install 'ganopt[fid]'``), computed on
    ``n`` samples against ``n`` real images: comparable across ganopt runs, not to FID-50k."""

    def __init__(
        self, real_images: Tensor, n: int = 5000, seed: int = 0, device: torch.device | str = "cpu"
    ) -> None:
        try:
            from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3
        except Exception as e:  # ImportError, or a torchvision that does not match torch
            raise EvaluatorUnavailable(
                f"Inception FID needs pytorch-fid and torchvision ({type(e).__name__}: {e}); "
                "pip install 'ganopt[fid]'"
            ) from None
        weights = Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_URL.rsplit("/", 1)[-1]
        if not weights.exists():
            raise EvaluatorUnavailable(
                f"Inception FID weights are not at {weights}; run once with network access "
                "(python -c 'from pytorch_fid.inception import fid_inception_v3; "
                "fid_inception_v3()') to fetch them"
            )
        self.device = torch.device(device)
        self.network = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(self.device).eval()
        self.n, self.seed = n, seed
        self.real_stats = feature_stats(self._features(real_images[:n]))

    @torch.no_grad()
    def _features(self, images: Tensor) -> Tensor:
        chunks = []
        for chunk in images.split(100):
            x = (chunk.to(self.device).float() + 1) / 2  # pytorch-fid expects [0, 1]
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            chunks.append(self.network(x)[0].flatten(1))
        return torch.cat(chunks)

    def __call__(self, G: nn.Module) -> dict[str, float]:
        features = self._features(generate(G, self.n, self.seed))
        return {"fid": frechet_distance(*feature_stats(features), *self.real_stats)}
