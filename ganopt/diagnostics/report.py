"""A diagnostic reported from anywhere, as stylegan2-ada's training_stats does: during a log
step any module may call ``report(tag, tensor)``; the value is kept on the device with the
step's other measurements and reaches TensorBoard through the recorder's one host transfer.
Between log steps nothing is collecting and the call does nothing, so it costs nothing there.

Adding a diagnostic is one line where the value exists, plus its description in ganopt/tags.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import Tensor

from ganopt.diagnostics.stats import Probe

_collecting: list[Probe] = []


def report(tag: str, value: Tensor) -> None:
    """Log ``value`` (a 0-d tensor, or its mean) under ``tag`` at this log step; nothing
    between log steps. Never syncs the device."""
    if _collecting:
        value = value.detach()
        _collecting[-1].scalars[tag] = value if value.dim() == 0 else value.float().mean()


def reporting_due() -> bool:
    """Whether a report now would be recorded: for a value that costs something to compute."""
    return bool(_collecting)


@contextlib.contextmanager
def collecting(probe: Probe | None) -> Iterator[None]:
    """Reports made within go into ``probe`` (a log step's); with None they are dropped."""
    if probe is None:
        yield
        return
    _collecting.append(probe)
    try:
        yield
    finally:
        _collecting.pop()
