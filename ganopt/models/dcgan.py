"""DCGAN generator and discriminator (Radford et al. 2016) for square images of side 8–64.

The resolution comes from the data: G starts at 4×4 and doubles until it reaches it; D halves
back down to 4×4. Blocks are named (``up1.conv``, ``down2.norm``, ...) so per-parameter
TensorBoard tags say which layer they are.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from ganopt.models.spectral import apply_spectral_norm

RESOLUTIONS = (8, 16, 32, 64)
NORMS = ("batch", "layer", "none")


def _stages(data_shape: Sequence[int]) -> int:
    """Number of ×2 stages between 4×4 and the data's resolution."""
    if len(data_shape) != 3 or data_shape[1] != data_shape[2] or data_shape[1] not in RESOLUTIONS:
        raise ValueError(
            f"DCGAN needs square images of side {', '.join(map(str, RESOLUTIONS))}; "
            f"the data has shape {tuple(data_shape)}"
        )
    return int(math.log2(data_shape[1] // 4))


def check_width(width: object) -> int:
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    return width


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # normalizes each sample over (C, H, W): safe under gradient penalties
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


def _block(conv: nn.Module, norm: nn.Module, act: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(conv=conv, norm=norm, act=act))


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN's initialization: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Sequential):
    """z (N, z_dim) → images (N, C, R, R) in [-1, 1]: transposed convolutions, BatchNorm, ReLU,
    tanh output. ``width`` is the channel count of the last hidden block."""

    def __init__(self, z_dim: int, data_shape: Sequence[int], width: int = 64) -> None:
        width = check_width(width)
        stages = _stages(data_shape)
        channels = [width * 2 ** (stages - 1 - i) for i in range(stages)]  # e.g. 256, 128, 64
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["project"] = _block(
            nn.ConvTranspose2d(z_dim, channels[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(),
        )
        for i in range(1, stages):
            layers[f"up{i}"] = _block(
                nn.ConvTranspose2d(channels[i - 1], channels[i], 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels[i]),
                nn.ReLU(),
            )
        layers["out"] = nn.Sequential(
            OrderedDict(
                conv=nn.ConvTranspose2d(channels[-1], data_shape[0], 4, 2, 1), act=nn.Tanh()
            )
        )
        super().__init__(layers)
        self.z_dim = int(z_dim)
        self.data_shape = tuple(data_shape)
        dcgan_init_(self)

    def forward(self, z: Tensor) -> Tensor:
        return super().forward(z.view(z.shape[0], self.z_dim, 1, 1))


class DCGANDiscriminator(nn.Sequential):
    """images (N, C, R, R) → logits (N,): strided convolutions, LeakyReLU 0.2, a selectable
    normalization (``batch``, ``layer`` or ``none``; gradient penalties need no BatchNorm), and
    optionally spectral normalization of every convolution."""

    def __init__(
        self,
        data_shape: Sequence[int],
        width: int = 64,
        norm: str = "batch",
        spectral_norm: bool = False,
    ) -> None:
        width, spectral_norm = check_width(width), check_flag("spectral_norm", spectral_norm)
        if norm not in NORMS:  # checked even where no layer would use it (8x8 data)
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        stages = _stages(data_shape)
        channels = [width * 2**i for i in range(stages)]  # e.g. 64, 128, 256
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["down1"] = _block(  # DCGAN: no normalization on the first layer
            nn.Conv2d(data_shape[0], channels[0], 4, 2, 1), nn.Identity(), nn.LeakyReLU(0.2)
        )
        for i in range(1, stages):
            layers[f"down{i + 1}"] = _block(
                nn.Conv2d(channels[i - 1], channels[i], 4, 2, 1, bias=norm == "none"),
                _norm(norm, channels[i]),
                nn.LeakyReLU(0.2),
            )
        layers["out"] = nn.Conv2d(channels[-1], 1, 4, 1, 0)
        super().__init__(layers)
        dcgan_init_(self)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).flatten()
