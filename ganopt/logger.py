"""TensorBoard output, written directly into the run directory.

One SummaryWriter per run, so ``tensorboard --logdir`` on a sweep lists one run per job.
(``add_scalars`` and ``add_hparams`` would each open sub-runs; we use neither.)
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.scalar import metadata as scalar_metadata
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from ganopt.stopping import signals_held
from ganopt.tags import description

#: equal-width bins of a histogram
HISTOGRAM_BINS = 64

#: TensorBoard's Custom Scalars tab: title → (the tags it draws, the tag it needs), as
#: regular expressions. A chart is in a run's layout only when the run logs a tag it needs, so
#: a DCGAN run (no shadow losses) or a WGAN run (no probabilities) shows no empty charts.
CHARTS: dict[str, tuple[list[str], str]] = {
    "gradient flow (log10)": (
        [r"grad_norm_log10/G/total", r"grad_norm_log10/D/total"],
        r"grad_norm_log10/G/total",
    ),
    "gradient flow": ([r"grad_norm/G/total", r"grad_norm/D/total"], r"grad_norm/G/total"),
    "G layers": ([r"grad_norm/G/.*"], r"grad_norm/G/.*"),
    "D layers": ([r"grad_norm/D/.*"], r"grad_norm/D/.*"),
    "signal": ([r"grad_signal/G", r"D/prob_fake", r"D/saturated_fake"], r"D/prob_fake"),
    "G gradient under each loss": (
        [r"grad_norm/G/total", r"grad_norm_shadow/G/.*"],
        r"grad_norm_shadow/G/.*",
    ),
    "D input gradients": ([r"grad_x/D/.*"], r"grad_x/D/.*"),
    "D output, real vs fake": ([r"D/out_real", r"D/out_fake"], r"D/out_real"),
    "D on training vs held-out reals": (
        [r"D/out_train", r"D/out_heldout", r"D/overfit_gap"],
        r"D/out_heldout",
    ),
    "update ratio": ([r"update_ratio/G/total", r"update_ratio/D/total"], r"update_ratio/.*"),
    "game": ([r"game/eig_.*", r"game/rotation", r"game/rotational_share"], r"game/.*"),
    "game: Hessians": ([r"game/hessian_.*"], r"game/hessian_.*"),
}


def custom_scalars_layout(tags: Iterable[str]) -> dict[str, dict[str, list]]:
    """The Custom Scalars layout for a run that logs ``tags``."""
    tags = list(tags)
    charts = {
        title: ["Multiline", patterns]
        for title, (patterns, needs) in CHARTS.items()
        if any(re.fullmatch(needs, tag) for tag in tags)
    }
    return {"ganopt": charts}


class TensorBoardLogger:
    """Scalars, images and text for one run; ``step`` is always the generator step."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.purge_step: int | None = None
        self.scalar_tags: set[str] = set()
        self.expected_tags: set[str] = set()  # logged later than the first log step
        self._layout: dict[str, dict[str, list]] | None = None  # the Custom Scalars charts
        self._writer: SummaryWriter | None = None
        self._opening = threading.Lock()  # figures are written from another thread

    def continue_after(self, step: int) -> None:
        """A resumed run: TensorBoard hides whatever the interrupted run logged after ``step``,
        so the run stays one series without duplicate steps. Call before the first write."""
        self.purge_step = step + 1

    @property
    def writer(self) -> SummaryWriter:
        """Opened on first use: a run rejected before training leaves no event file."""
        with self._opening:
            if self._writer is None:
                with signals_held():  # its writing thread never takes the run's signals
                    self._writer = SummaryWriter(
                        log_dir=str(self.run_dir), purge_step=self.purge_step
                    )
        return self._writer

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """All of a step's scalars as one event: logging every layer at every step stays cheap
        (``add_scalar`` would build and queue one event per tag)."""
        summary = Summary(value=[self._scalar(tag, float(v)) for tag, v in values.items()])
        if new_tags := values.keys() - self.scalar_tags:
            # TensorBoard shows the newest layout: each covers every tag so far (a resumed
            # run's first scalars may be an evaluation's alone)
            tags = self.scalar_tags | new_tags | self.expected_tags
            if (layout := custom_scalars_layout(tags)) != self._layout:
                self.writer.add_custom_scalars(layout)
                self._layout = layout
        self.writer.file_writer.add_summary(summary, step)
        self.scalar_tags.update(values)

    def _scalar(self, tag: str, value: float) -> Summary.Value:
        """The first value of a tag carries its description (TensorBoard reads it there)."""
        if tag in self.scalar_tags or (text := description(tag)) is None:
            return Summary.Value(tag=tag, simple_value=value)
        metadata = scalar_metadata.create_summary_metadata(display_name=tag, description=text)
        return Summary.Value(tag=tag, simple_value=value, metadata=metadata)

    def hparams(self, values: Mapping[str, bool | int | float | str]) -> None:
        """This run's entry in the HParams dashboard, written into the run itself (unlike
        ``add_hparams``, which opens a sub-run). No experiment summary: TensorBoard would take
        any one run's as the whole sweep's; a sweep writes its own (ganopt/hparams.py)."""
        _, start, end = hparams_summaries(dict(values), {})
        for summary in (start, end):
            self.writer.file_writer.add_summary(summary)

    def image(self, tag: str, rgb: np.ndarray, step: int) -> None:
        """An (H, W, 3) uint8 image."""
        self.writer.add_image(tag, rgb, step, dataformats="HWC")

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        """64 equal-width bins (TensorBoard re-bins to ~30 for display anyway, and the default
        exponential buckets cost four times as much to compute), binned by torch. TensorBoard's
        own binning takes a numpy dot product, which starts OpenBLAS's threads; their spinning
        slowed the steps of a default toy run (docs/performance.md)."""
        v = values.detach().flatten().double().cpu()
        counts, edges = torch.histogram(v, bins=HISTOGRAM_BINS)
        self.writer.add_histogram_raw(
            tag,
            min=float(v.min()),
            max=float(v.max()),
            num=v.numel(),
            sum=float(v.sum()),
            sum_squares=float((v * v).sum()),
            bucket_limits=edges[1:].tolist(),
            bucket_counts=counts.tolist(),
            global_step=step,
        )

    def text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class NullLogger(TensorBoardLogger):
    """Writes nothing: the logger of every rank but 0 in multi-process training."""

    def __init__(self) -> None:
        super().__init__(Path(os.devnull))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self.scalar_tags.update(values)

    def hparams(self, values: Mapping[str, object]) -> None:
        pass

    def image(self, tag: str, rgb: np.ndarray, step: int) -> None:
        pass

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        pass

    def text(self, tag: str, text: str, step: int) -> None:
        pass
