"""A small CNN trained on scikit-learn's bundled digits: the offline feature network for
``fd_digits`` and the judge of which classes a generator covers.

Trained on first use (a few seconds on a CPU) and cached under the user's cache directory
(``$GANOPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganopt``, else ``~/.cache/ganopt``). Training
forks the RNG, so it never changes a run's trajectory whether or not the cache exists.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganopt.checkpoint import save_atomic

log = logging.getLogger(__name__)

#: v2: trained at TRAINING_THREADS whatever the process's count (v1 took the process's)
CACHE_FILE = "digits_cnn_v2.pt"
INPUT_SIDE = 8
#: the intra-op threads the classifier is trained with, whatever the process runs with: torch's
#: convolutions add up in an order that depends on the thread count, so a classifier trained at
#: another count has other weights, and every fd_digits another value. One: a fixed count above
#: one stalls on a machine whose cores are busy (two test workers training it at once took
#: minutes instead of seconds).
TRAINING_THREADS = 1


def cache_dir() -> Path:
    if env := os.environ.get("GANOPT_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ganopt"


class DigitsCNN(nn.Module):
    """8×8 image in [-1, 1] → 10 logits; ``features`` is the 128-d penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(1, 32, 3, padding=1),
                act1=nn.ReLU(),
                conv2=nn.Conv2d(32, 64, 3, padding=1),
                act2=nn.ReLU(),
                pool=nn.MaxPool2d(2),
                flatten=nn.Flatten(),
                fc=nn.Linear(64 * 4 * 4, 128),
                act3=nn.ReLU(),
            )
        )
        self.logits = nn.Linear(128, 10)

    def features(self, x: Tensor) -> Tensor:
        return self.body(to_classifier_input(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(self.features(x))


def to_classifier_input(images: Tensor) -> Tensor:
    """Any (N, C, R, R) image batch → (N, 1, 8, 8): channels averaged, area-resized."""
    x = images.float().mean(dim=1, keepdim=True)
    if x.shape[-1] != INPUT_SIDE:
        x = F.interpolate(
            x, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", antialias=True, align_corners=False
        )
    return x


def _digits_split() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32)).unsqueeze(1) / 8.0 - 1.0
    labels = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    test, train = order[:360], order[360:]  # a fixed 20% hold-out
    return images[train], labels[train], images[test], labels[test]


def train_digits_classifier(epochs: int = 30, seed: int = 0) -> tuple[DigitsCNN, float]:
    """Train on 1437 digits, at TRAINING_THREADS, and report accuracy on the 360 held out.
    Leaves the RNG and the thread count as they were."""
    x_train, y_train, x_test, y_test = _digits_split()
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAINING_THREADS)
    try:
        return _trained(x_train, y_train, x_test, y_test, epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _trained(
    x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, epochs: int, seed: int
) -> tuple[DigitsCNN, float]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsCNN()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            for idx in torch.randperm(len(x_train)).split(64):
                # small random shifts make the features robust to a generator's imprecision
                x = torch.roll(
                    x_train[idx], shifts=tuple(torch.randint(-1, 2, (2,)).tolist()), dims=(2, 3)
                )
                loss = F.cross_entropy(model(x), y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return model, accuracy


def load_digits_classifier(device: torch.device | str = "cpu") -> tuple[DigitsCNN, float]:
    """The cached classifier and its held-out accuracy; trained and cached on first use."""
    path = cache_dir() / CACHE_FILE
    if path.exists():
        with torch.random.fork_rng(devices=[]):  # its random init is overwritten anyway
            model = DigitsCNN()
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        accuracy = float(state["test_accuracy"])
    else:
        log.info("training the digits classifier for fd_digits (once; cached at %s)", path)
        model, accuracy = train_digits_classifier()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomic({"model": model.state_dict(), "test_accuracy": accuracy}, path)
    model.eval().requires_grad_(False)
    return model.to(device), accuracy
