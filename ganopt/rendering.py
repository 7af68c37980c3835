"""Figures turned into pixels: matplotlib over plain host arrays, importing neither torch nor
any module of ganopt that does, so that a process of its own can draw them. Drawing is
Python that holds the interpreter's lock for most of a figure's drawing; on a thread beside
the training loop it slows every step it overlaps, in a process it runs on a core of its own
(ganopt/drawing.py). What each figure shows is computed on the training thread
(ganopt/figures.py, ganopt/plots.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: log10 of the gradient norms the heatmaps span, whatever the run (docs/tensorboard.md)
FLOW_SCALE = (-8.0, 2.0)


@dataclass(frozen=True)
class ToyPicture:
    """What the 2-D figure draws, as host arrays: real and generated points, the grid's axis,
    D's output on it, and whether that output is a probability."""

    real: np.ndarray
    fake: np.ndarray
    axis: np.ndarray
    surface: np.ndarray
    probability: bool


@dataclass(frozen=True)
class FlowPicture:
    """One network's per-layer gradient norms as the heatmap draws them: (layers, steps), the
    output layer in row 0."""

    network: str
    layers: list[str]  # input first
    steps: list[int]
    matrix: np.ndarray


def load_matplotlib() -> None:
    """Import what drawing a figure imports, ahead of the first figure: it takes longer than
    drawing one."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """Render a matplotlib figure to an (H, W, 3) uint8 array, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def samples_rgb(picture: ToyPicture, step: int) -> np.ndarray:
    return figure_to_rgb(toy_samples_figure(picture, step))


def flows_rgb(flows: list[FlowPicture]) -> list[np.ndarray]:
    return [figure_to_rgb(gradient_flow_figure(flow)) for flow in flows]


def spectrum_rgb(eigenvalues: np.ndarray, step: int) -> np.ndarray:
    return figure_to_rgb(spectrum_figure(eigenvalues, step))


def toy_samples_figure(picture: ToyPicture, step: int) -> Figure:
    """Real vs. generated points over a contour of D's output, for 2-D data."""
    from matplotlib.figure import Figure

    p = picture
    lim = float(p.axis[-1])
    fig = Figure(figsize=(5.2, 4.6), dpi=100)  # a fixed layout draws in half the time
    fig.subplots_adjust(left=0.08, right=0.84, bottom=0.07, top=0.93)
    ax = fig.add_subplot()
    levels = np.linspace(0, 1, 11) if p.probability else 12
    contour = ax.contourf(p.axis, p.axis, p.surface, levels=levels, cmap="RdBu_r", alpha=0.55)
    fig.colorbar(contour, ax=ax, label="D(x) = sigmoid(logit)" if p.probability else "critic")
    ax.scatter(p.real[:, 0], p.real[:, 1], s=3, c="black", label="real", alpha=0.6)
    ax.scatter(p.fake[:, 0], p.fake[:, 1], s=3, c="#e8a000", label="generated", alpha=0.6)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=f"step {step}")
    ax.legend(loc="upper right", markerscale=3, fontsize=8)
    return fig


def gradient_flow_figure(flow: FlowPicture) -> Figure:
    """One network's per-layer gradient norms as a heatmap: layers from the output (top) to the
    input (bottom), log steps from left to right, on a fixed log10 colour scale (FLOW_SCALE;
    beyond it the extreme colours). A gradient that dies with depth or with time shows as a
    dark band or a dark end."""
    from matplotlib.figure import Figure

    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.where(flow.matrix > 0, flow.matrix, np.nan))
    names = flow.layers[::-1]
    # margins fixed in inches (a fixed layout draws faster than a constrained one, which
    # measures every label first): the left one holds the longest name at 7 pt, about 0.06
    # inch a character, and the axis label; the heatmap keeps its width, the figure grows
    left = 0.5 + 0.06 * max(map(len, names), default=0)
    width, height = max(7.0, left + 5.3), 1.2 + 0.3 * len(names)
    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(
        left=left / width, right=1 - 0.7 / width, bottom=0.55 / height, top=1 - 0.3 / height
    )
    ax = fig.add_subplot()
    low, high = FLOW_SCALE  # one scale for every run, so that colours compare across runs
    image = ax.imshow(
        logs, aspect="auto", cmap="viridis", interpolation="nearest", vmin=low, vmax=high
    )
    fig.colorbar(image, ax=ax, label="log10 ||grad||", fraction=0.05)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    shown = np.linspace(0, len(flow.steps) - 1, min(8, len(flow.steps))).round().astype(int)
    ax.set_xticks(shown, [str(flow.steps[i]) for i in shown], fontsize=7)
    ax.set_xlabel("generator step")
    ax.set_ylabel("layer (output at the top)")
    ax.set_title(f"gradient flow through {flow.network}", fontsize=9)
    return fig


def spectrum_figure(eigenvalues: np.ndarray, step: int) -> Figure:
    """The top eigenvalues of the Jacobian of -v in the complex plane: left of the imaginary
    axis they attract, above and below the real axis they rotate."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0, 4.0), dpi=100)
    fig.subplots_adjust(left=0.24, right=0.95, bottom=0.13, top=0.92)
    ax = fig.add_subplot()
    ax.axhline(0, color="0.7", lw=0.8)
    ax.axvline(0, color="0.7", lw=0.8)
    ax.scatter(eigenvalues.real, eigenvalues.imag, color="C3", zorder=3)
    reach = max(float(np.abs(eigenvalues).max(initial=0.0)), 1e-12) * 1.15
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(f"step {step}: top eigenvalues of ∂(-v)/∂w", fontsize=9)
    return fig
