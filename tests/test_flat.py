"""trainer.flat_params (ganopt/flat.py): one buffer per network, stepped to the same bits."""

import copy

import pytest
import torch
from torch import nn

from ganopt.flat import ELEMENTWISE, FlatOptimizerState, FlatParameters, MissingGradient
from ganopt.optimizers import ExtraAdam, OptimisticSGD

#: the elementwise operations of the flattened optimizers' updates (and of weight clipping)
OPERATIONS = {
    "lerp below 0.5": lambda x, y, z: x.clone().lerp_(y, 0.1),
    "lerp above 0.5": lambda x, y, z: x.clone().lerp_(y, 0.7),
    "mul by a number": lambda x, y, z: x.clone().mul_(0.9),
    "mul": lambda x, y, z: x * y,
    "add a number": lambda x, y, z: x.abs().add_(1e-8),
    "add, scaled": lambda x, y, z: x.clone().add_(y, alpha=-1e-3),
    "addcmul": lambda x, y, z: x.abs().mul_(0.9).addcmul_(y, y, value=0.1),
    "addcdiv": lambda x, y, z: z.clone().addcdiv_(x, y.abs().add_(1e-30), value=-1e-3),
    "sqrt": lambda x, y, z: x.abs().sqrt(),
    "div by a number": lambda x, y, z: x.div(0.3162),
    "maximum": lambda x, y, z: torch.maximum(x, y),
    "clamp": lambda x, y, z: x.clone().clamp_(-0.01, 0.01),
    "neg": lambda x, y, z: x.neg(),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_each_update_operation_gives_the_same_bits_wherever_an_element_sits(name):
    """A CPU kernel computes a long tensor in vector registers and the last elements of any
    tensor one by one: one buffer moves elements between the two paths, so both must round
    alike. Tensors of 31 elements are too short for the vector path."""
    generator = torch.Generator().manual_seed(0)
    n = 31 * 4000

    def wide_range() -> torch.Tensor:
        exponents = torch.randint(-60, 10, (n,), generator=generator).float()
        return torch.randn(n, generator=generator) * torch.exp2(exponents)

    x, y, z = wide_range(), wide_range(), wide_range()
    operation = OPERATIONS[name]
    whole = operation(x, y, z)
    short = zip(x.split(31), y.split(31), z.split(31), strict=True)
    pieces = torch.cat([operation(*t) for t in short])
    assert torch.equal(whole.view(torch.int32), pieces.view(torch.int32))


def network() -> nn.Module:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)  # a strided layout kept
    return nn.Sequential(conv, nn.Flatten(), nn.LazyLinear(5), nn.ReLU(), nn.Linear(5, 1))


def warmed(module: nn.Module) -> nn.Module:
    module(torch.randn(2, 3, 6, 6))  # materializes the lazy layer
    return module


@pytest.mark.parametrize(
    ("optimizer", "settings"),
    [
        (torch.optim.Adam, {"lr": 1e-2, "betas": (0.5, 0.9)}),
        (torch.optim.Adam, {"lr": 1e-2, "amsgrad": True, "weight_decay": 1e-2}),
        (torch.optim.AdamW, {"lr": 1e-2}),
        (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
        (torch.optim.RMSprop, {"lr": 1e-3, "centered": True, "momentum": 0.5}),
        (ExtraAdam, {"lr": 1e-2}),
        (OptimisticSGD, {"lr": 1e-2}),
    ],
)
def test_one_buffer_steps_to_the_bits_and_the_checkpoint_of_separate_tensors(optimizer, settings):
    assert issubclass(optimizer, ELEMENTWISE)
    separate = warmed(network())
    flattened = copy.deepcopy(separate)
    flat = FlatParameters(list(flattened.parameters()))
    assert flattened[0].weight.is_contiguous(memory_format=torch.channels_last)
    by_tensor = optimizer(separate.parameters(), foreach=False, **settings)
    by_buffer = optimizer([flat.flat], foreach=False, **settings)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = torch.randn(8, 3, 6, 6, generator=generator)
        for module, opt in ((separate, by_tensor), (flattened, by_buffer)):
            for p in module.parameters():
                p.grad = None
            module(x).square().mean().backward()
            if module is flattened:
                flat.gather_grads()
            opt.extrapolate() if isinstance(opt, ExtraAdam) else opt.step()
            opt.step()
    pairs = zip(separate.parameters(), flattened.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    saved = FlatOptimizerState(by_buffer, flat).state_dict()
    expected = copy.deepcopy(by_tensor.state_dict())  # its tensors step on below
    assert saved["param_groups"] == expected["param_groups"]
    assert saved["state"].keys() == expected["state"].keys()
    for i, state in expected["state"].items():
        assert saved["state"][i].keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(saved["state"][i][key], value), (i, key)

    twin = copy.deepcopy(separate)  # a per-tensor run resumed from that checkpoint
    resumed = optimizer(twin.parameters(), foreach=False, **settings)
    resumed.load_state_dict(copy.deepcopy(saved))  # shared tensors stay shared, as in a file
    x = torch.randn(8, 3, 6, 6, generator=generator)
    for module, opt in ((separate, by_tensor), (twin, resumed)):
        for p in module.parameters():
            p.grad = None
        module(x).square().mean().backward()
        opt.step()
    assert all(
        torch.equal(a, b) for a, b in zip(separate.parameters(), twin.parameters(), strict=True)
    )

    again = optimizer([flat.flat], foreach=False, **settings)  # and back from that checkpoint
    FlatOptimizerState(again, flat).load_state_dict(expected)
    for key, value in by_buffer.state[flat.flat].items():
        assert torch.equal(again.state[flat.flat][key], value), key


def test_a_parameter_without_a_gradient_is_refused_not_stepped_as_zero():
    flat = FlatParameters(list(warmed(network()).parameters()))
    with pytest.raises(MissingGradient, match=r"trainer\.flat_params=false"):
        flat.gather_grads()


def test_a_state_whose_parameters_skipped_different_steps_cannot_be_one_buffers():
    module = warmed(network())
    by_tensor = torch.optim.Adam(module.parameters())
    module(torch.randn(2, 3, 6, 6)).sum().backward()
    by_tensor.step()
    module[-1].bias.grad = None  # skipped once, as a lazy R1 step skips D's last bias
    by_tensor.step()
    flat = FlatParameters(list(copy.deepcopy(module).parameters()))
    with pytest.raises(ValueError, match=r"step differ .* trainer\.flat_params=false"):
        FlatOptimizerState(torch.optim.Adam([flat.flat]), flat).load_state_dict(
            by_tensor.state_dict()
        )


def test_only_dense_parameters_of_one_kind_share_a_buffer():
    assert FlatParameters.fits(list(warmed(network()).parameters()))
    assert not FlatParameters.fits([])
    assert not FlatParameters.fits(
        [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2).double())]
    )
    assert not FlatParameters.fits([nn.Parameter(torch.zeros(4, 4)[:, ::2])])  # a gap
    assert not FlatParameters.fits([nn.Parameter(torch.zeros(()))])  # 0-d: like a step count
    assert not FlatParameters.fits([nn.Parameter(torch.zeros(2), requires_grad=False)])
