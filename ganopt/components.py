"""The built parts of a run, by name: what ganopt/setup/ makes from a config and the Trainer
receives, so that the wiring is written once, here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ganopt.clipping import WeightClipper
from ganopt.config import TrainerConfig
from ganopt.diagnostics import Diagnostics, GradientAlarm
from ganopt.diagnostics.game import GameProbe
from ganopt.distributed import SINGLE_PROCESS, World
from ganopt.ema import EMA
from ganopt.evaluation import Evaluator
from ganopt.flat import FlatOptimizerState, FlatParameters
from ganopt.lookahead import LookaheadMinmax
from ganopt.losses import GANLoss
from ganopt.objective import Objective
from ganopt.regularizers import Regularizer
from ganopt.schedule import LinearDecay
from ganopt.state import GlobalRNG


@dataclass
class Components:
    """Everything a Trainer needs, built and on the device."""

    G: nn.Module
    D: nn.Module
    objective: Objective
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    #: by network, the parameters an optimizer steps as one buffer (trainer.flat_params)
    flat: dict[str, FlatParameters]
    data: object
    clipper: WeightClipper | None
    diagnostics: Diagnostics
    alarm: GradientAlarm
    evaluator: Evaluator | None
    settings: TrainerConfig
    device: torch.device
    schedule: LinearDecay | None = None
    ema: EMA | None = None
    lookahead: LookaheadMinmax | None = None
    world: World = SINGLE_PROCESS
    game: GameProbe | None = None
    #: the registered name chosen at each component slot ("loss": "wgan", "reg": "r1", ...)
    names: dict[str, str] = dataclasses.field(default_factory=dict)
    #: the CPU threads the run computes with, and why (``threads 1 (auto: small MLP; ...)``)
    threads: str = ""
    #: whether work beside training (log-step measurements, evaluation, figures) runs on threads
    #: of its own: a CPU run whose threads leave a core free (ganopt/setup/device.py, spare_core)
    beside: bool = False

    @property
    def loss(self) -> GANLoss:
        return self.objective.loss

    @property
    def regularizers(self) -> list[Regularizer]:
        return self.objective.regularizers

    @property
    def sampler(self) -> nn.Module:
        """The generator that samples and evaluation use: the EMA weights when kept."""
        return self.ema.module if self.ema is not None else self.G

    def identity(self) -> dict[str, object]:
        """What a checkpoint must match to be resumed by this run: the registered name at every
        component slot and every parameter's shape in G and D."""
        return {"components": self.names, "G": _shapes(self.G), "D": _shapes(self.D)}

    def stateful(self) -> dict[str, object]:
        """The parts that hold a run's state, by checkpoint key: each has state_dict and
        load_state_dict, and the checkpoint is their collection (as in torchtitan)."""
        parts: dict[str, object] = {"G": self.G, "D": self.D}
        if self.ema is not None:
            parts["G_ema"] = self.ema.module
        if self.lookahead is not None:
            parts["lookahead"] = self.lookahead
        for name, optimizer in (("G", self.opt_G), ("D", self.opt_D)):
            flat = self.flat.get(name)
            parts[f"opt_{name}"] = (
                optimizer if flat is None else FlatOptimizerState(optimizer, flat)
            )
        parts["rng"] = GlobalRNG()
        parts["alarm"] = self.alarm
        if hasattr(self.data, "state_dict"):
            parts["data"] = self.data
        return parts


def _shapes(network: nn.Module) -> dict[str, list[int]]:
    return {name: list(p.shape) for name, p in network.named_parameters()}
