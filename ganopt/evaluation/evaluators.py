"""Evaluators: a generator in, named numbers out (``metrics/<name>`` and metrics.json).

Each draws its latents from a generator of its own, with G in eval mode and without
gradients, so evaluating never changes the training trajectory.
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import Tensor, nn

from ganopt.data import GaussianMixture
from ganopt.evaluation.digits_classifier import load_digits_classifier
from ganopt.evaluation.frechet import feature_stats, frechet_distance
from ganopt.evaluation.manifold import kth_neighbour_radii, prdc
from ganopt.evaluation.modes import mode_metrics, uniform_kl
from ganopt.evidence import TOY_SUCCESS

log = logging.getLogger(__name__)


#: the split of the real images into reference and floor sample, and the toy evaluator's real
#: sample: the same for every run, one yardstick whatever trainer.seed is
SPLIT_SEED = 0


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
    #: {metric: threshold} a run meets to succeed (docs/sweeps.md); None: no criterion
    success: dict[str, float | str] | None = None

    @property
    def info(self) -> dict[str, float]:
        """Constants of the evaluator worth recording with the results."""
        return {}

    @abstractmethod
    def __call__(self, G: nn.Module) -> dict[str, float | None]:
        """Evaluate G; return metric name → value (None where it is undefined)."""


class ModeCoverage(Evaluator):
    """``modes``, ``hq_ratio`` and ``kl`` of ``n`` samples on a Gaussian mixture, and the
    manifold metrics of the raw points against ``n`` samples of the mixture (drawn once, from a
    private generator)."""

    def __init__(
        self,
        data: GaussianMixture,
        n: int = 2500,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.centers, self.std, self.n, self.seed = data.centers, data.std, n, seed
        self.success = dict(TOY_SUCCESS)
        real_rng = torch.Generator(device=data.rng_device).manual_seed(SPLIT_SEED)
        self.real = data.sample(n, generator=real_rng).to(device)
        self.real_radii = reference_radii(self.real)

    @property
    def info(self) -> dict[str, float]:
        return {"n_modes": float(len(self.centers))}

    def __call__(self, G: nn.Module) -> dict[str, float | None]:
        fake = generate(G, self.n, self.seed)
        scores = mode_metrics(fake, self.centers, self.std)
        return scores | prdc(self.real, fake.to(self.real.device), real_radii=self.real_radii)


#: the k-th neighbour radii of recent reference samples, by their bytes
_RADII: dict[tuple[object, ...], Tensor] = {}
#: how many reference samples' radii are kept
KEPT_RADII = 8


def reference_radii(real: Tensor) -> Tensor:
    """The k-th neighbour radii of a reference sample, computed once a process for the same
    sample: the toy evaluator's real sample is the same for every run of a data config, and
    a sweep's jobs (Hydra's basic launcher) and the tests run many in one process."""
    digest = hashlib.sha256(real.detach().cpu().numpy().tobytes()).hexdigest()
    key = (digest, tuple(real.shape), real.dtype, str(real.device))
    if key not in _RADII:
        if len(_RADII) >= KEPT_RADII:
            del _RADII[next(iter(_RADII))]
        _RADII[key] = kth_neighbour_radii(real.double())
    return _RADII[key]


class FeatureScore(Evaluator):
    """A Fréchet distance and the manifold metrics in a feature network's space, against half
    of the real images (the reference), with the floor beside it: the distance of the other
    half, as many real images as the generator draws, to the same reference. A Fréchet
    distance of finite samples is biased upwards by about tr(Σ)/n, so it means something only
    next to this floor at the same counts (docs/evaluation.md)."""

    name = "fd"

    def __init__(self, real_images: Tensor, n: int, seed: int, device: torch.device | str) -> None:
        self.device = torch.device(device)
        split = torch.Generator().manual_seed(SPLIT_SEED)  # one yardstick for every run
        order = torch.randperm(len(real_images), generator=split)
        half = len(order) // 2
        reference, held = real_images[order[:half][:n]], real_images[order[half:][:n]]
        self.n = len(held)
        reference_features = self._features(reference)
        self.real_stats = feature_stats(reference_features)
        self.reference = reference_features.double()
        self.real_radii = kth_neighbour_radii(self.reference)
        self.floor = frechet_distance(*feature_stats(self._features(held)), *self.real_stats)
        self.seed = seed

    @property
    def info(self) -> dict[str, float]:
        return {
            f"{self.name}_floor": self.floor,
            f"{self.name}_n": float(self.n),
            f"{self.name}_n_real": float(len(self.reference)),
        }

    @abstractmethod
    def _features(self, images: Tensor) -> Tensor:
        """(N, d) features of images in [-1, 1]."""

    def scores(self, features: Tensor) -> dict[str, float | None]:
        """The Fréchet distance and the manifold metrics of generated features."""
        distance = frechet_distance(*feature_stats(features), *self.real_stats)
        manifold = prdc(self.reference, features, real_radii=self.real_radii)
        return {self.name: distance} | manifold


class DigitsScore(FeatureScore):
    """``fd_digits`` (on the digits CNN's 128-d features), ``classes_covered`` (classes
    predicted for at least 1% of samples), ``class_kl`` (KL of the predicted-class histogram to
    uniform) and the manifold metrics in the same features."""

    name = "fd_digits"
    MIN_SHARE = 0.01

    def __init__(
        self, real_images: Tensor, n: int = 2000, seed: int = 0, device: torch.device | str = "cpu"
    ) -> None:
        self.classifier, self.classifier_accuracy = load_digits_classifier(device)
        super().__init__(real_images, n, seed, device)
        log.info("digits classifier: %.1f%% held-out accuracy", 100 * self.classifier_accuracy)

    @property
    def info(self) -> dict[str, float]:
        return super().info | {"digits_classifier_acc": self.classifier_accuracy}

    @torch.no_grad()
    def _features(self, images: Tensor) -> Tensor:
        return torch.cat(
            [self.classifier.features(chunk.to(self.device)) for chunk in images.split(500)]
        )

    @torch.no_grad()
    def __call__(self, G: nn.Module) -> dict[str, float | None]:
        features = self._features(generate(G, self.n, self.seed))
        predicted = self.classifier.logits(features).argmax(dim=1)
        counts = torch.bincount(predicted, minlength=10)
        return self.scores(features) | {
            "classes_covered": float((counts >= self.MIN_SHARE * self.n).sum()),
            "class_kl": uniform_kl(counts),
        }


class InceptionFID(FeatureScore):
    """Inception-v3 FID through ``pytorch-fid`` (``pip install 'ganopt[fid]'``), on at most
    ``n`` samples against as many real images: comparable across ganopt runs, not to FID-50k."""

    name = "fid"

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
        self.network = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device).eval()
        super().__init__(real_images, n, seed, device)

    @torch.no_grad()
    def _features(self, images: Tensor) -> Tensor:
        chunks = []
        for chunk in images.split(100):
            x = (chunk.to(self.device).float() + 1) / 2  # pytorch-fid expects [0, 1]
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            chunks.append(self.network(x)[0].flatten(1))
        return torch.cat(chunks)

    def __call__(self, G: nn.Module) -> dict[str, float | None]:
        return self.scores(self._features(generate(G, self.n, self.seed)))
