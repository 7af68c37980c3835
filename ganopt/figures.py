"""The run's figures: the samples (D's contour for 2-D data, a grid for images), the gradient
flow heatmaps, the real images and the game's spectrum; and the log steps' histograms. The
training thread hands each over as host arrays, tensors of its own or copies of the networks
taken at its step; computing what it shows from them, drawing it (ganopt/rendering.py) and
writing it (TensorBoard, the run directory's PNGs) is a job for the worker of
ganopt/drawing.py."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ganopt.diagnostics.flow import GradientFlow
from ganopt.drawing import Drawing
from ganopt.evaluation import generate
from ganopt.logger import TensorBoardLogger
from ganopt.losses import GANLoss
from ganopt.plots import image_grid, toy_picture
from ganopt.rendering import FlowPicture, flows_rgb, samples_rgb, spectrum_rgb
from ganopt.rundir import write_atomic
from ganopt.tags import GAME_SPECTRUM


def _frozen_copy(module: nn.Module) -> nn.Module:
    """The weights and buffers of ``module`` as they are now, for a figure's job alone."""
    return copy.deepcopy(module).requires_grad_(False)


def save_png_atomic(rgb: np.ndarray, path: Path) -> None:
    """A picture written as the run's other files are: whole, never through a symlink."""
    write_atomic(path, lambda f: Image.fromarray(rgb).save(f, format="PNG"))


@dataclass
class Figures:
    """What the sample figures draw: the generator that samples (the EMA weights when kept),
    and for 2-D data D's contour under its loss."""

    sampler: Callable[[], nn.Module]
    D: nn.Module
    loss: GANLoss
    data: object


class FigureWriter:
    """Each figure's arrays taken now, its drawing and writing handed to ``drawing``."""

    def __init__(
        self,
        figures: Figures,
        logger: TensorBoardLogger,
        run_dir: Path,
        seed: int,
        background: bool = True,
    ) -> None:
        self.figures, self.logger, self.run_dir, self.seed = figures, logger, run_dir, seed
        self.drawing = Drawing(logger, background=background)

    def samples(self, step: int, flows: list[GradientFlow], save_png: bool) -> None:
        """``samples`` and ``gradient_flow/G``, ``/D`` (with their PNGs at the end)."""
        draw = self._samples_drawer(step)
        if draw is None:
            return
        samples_png = self.run_dir / "samples.png" if save_png else None
        self.drawing.submit("samples", step, lambda: self._write_samples(draw(), step, samples_png))
        shown = [flow.picture() for flow in flows if flow.steps]
        if shown:
            flow_png = self.run_dir / "gradient_flow.png" if save_png else None
            self.drawing.submit(
                "gradient_flow", step, lambda: self._write_flows(shown, step, flow_png)
            )

    def histograms(self, step: int, tensors: dict[str, Tensor]) -> None:
        """A log step's histograms, binned and written by the worker: ``tensors`` are the
        step's own (copies of the gradients, D's detached outputs), which nothing changes."""

        def write() -> None:
            for tag, values in tensors.items():
                self.logger.histogram(tag, values, step)

        self.drawing.submit("histograms", step, write)

    def real(self, step: int) -> None:
        """A grid of real images, for comparison (image data only)."""
        data = self.figures.data
        if getattr(data, "kind", None) != "images":
            return
        rng = torch.Generator().manual_seed(self.seed)
        grid = image_grid(data.sample(64, generator=rng))
        self.drawing.submit("real", step, lambda: self.logger.image("real", grid, step))

    def spectrum(self, eigenvalues: np.ndarray, step: int) -> None:
        """The game's top eigenvalues in the complex plane."""
        copy = np.array(eigenvalues)  # the worker's own

        def write() -> None:
            self.logger.image(GAME_SPECTRUM, self.drawing.draw(spectrum_rgb, copy, step), step)

        self.drawing.submit("game spectrum", step, write)

    def _samples_drawer(self, step: int) -> Callable[[], np.ndarray] | None:
        """The samples picture's drawing (None: no figure). What it shows comes from
        generators of its own, without gradients, in eval mode. A worker beside training gets
        copies of the networks taken now, as training moves the live weights meanwhile; on
        the training thread the networks themselves serve."""
        f = self.figures
        kind = getattr(f.data, "kind", None)  # a data source without one gets no figure
        now = _frozen_copy if self.drawing.background else (lambda module: module)
        if kind == "points":
            G, D = now(f.sampler()), now(f.D)
            return lambda: self.drawing.draw(samples_rgb, toy_picture(G, D, f.data, f.loss), step)
        if kind == "images":
            G = now(f.sampler())
            return lambda: image_grid(generate(G, 64, seed=self.seed))
        return None

    def _write_samples(self, rgb: np.ndarray, step: int, png: Path | None) -> None:
        self.logger.image("samples", rgb, step)
        if png is not None:
            save_png_atomic(rgb, png)

    def _write_flows(self, flows: list[FlowPicture], step: int, png: Path | None) -> None:
        pictures = self.drawing.draw(flows_rgb, flows)
        for flow, picture in zip(flows, pictures, strict=True):
            self.logger.image(f"gradient_flow/{flow.network}", picture, step)
        if png is not None:  # G above D; the figures share their width
            save_png_atomic(np.concatenate(pictures), png)
