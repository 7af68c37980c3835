"""The optimizer step as the Trainer takes it: torch's arithmetic without torch's profiler range,
unless something would see the range (a profiler, a step hook, an LR scheduler's wrapper)."""

import copy
import functools

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from ganopt.optimizers import OptimisticAdam
from ganopt.updates import optimizer_step

OPTIMIZERS = {
    "adam": lambda params: torch.optim.Adam(params, lr=0.1, betas=(0.5, 0.9)),
    "sgd": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
    "optimistic_adam": lambda params: OptimisticAdam(params, lr=0.1),
}
STEPS = 3


def _stepped(make, take_step, steps=STEPS):
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    optimizer = make(net.parameters())
    for _ in range(steps):
        net(torch.randn(8, 4)).square().mean().backward()
        take_step(optimizer)
        net.zero_grad()
    return net, optimizer


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_step_is_torchs_bit_for_bit_without_its_profiler_range(name, monkeypatch):
    """One range fewer per step: none for torch's optimizers; Optimistic Adam's base step
    (torch's Adam.step) keeps its own where torch has wrapped it, which depends on whether
    this process built a plain Adam before."""
    ranges = []
    real = torch.autograd.profiler.record_function
    monkeypatch.setattr(
        torch.autograd.profiler,
        "record_function",
        lambda *a, **k: ranges.append(a) or real(*a, **k),
    )
    torch_net, torch_opt = _stepped(OPTIMIZERS[name], lambda opt: opt.step())
    torchs, ranges[:] = len(ranges), []
    net, opt = _stepped(OPTIMIZERS[name], optimizer_step)
    assert len(ranges) == torchs - STEPS
    assert name == "optimistic_adam" or not ranges
    params = zip(net.parameters(), torch_net.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in params)
    state = [s for s in opt.state_dict()["state"].values()]
    torch_state = [s for s in torch_opt.state_dict()["state"].values()]
    for mine, theirs in zip(state, torch_state, strict=True):
        assert all(torch.equal(torch.as_tensor(mine[k]), torch.as_tensor(theirs[k])) for k in mine)


def test_step_hooks_of_the_optimizer_and_of_all_optimizers_still_run():
    net = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.ones(1, 2)).sum().backward()
    calls = []
    own = optimizer.register_step_pre_hook(lambda *a: calls.append("own pre"))
    optimizer_step(optimizer)
    own.remove()
    everyone = register_optimizer_step_post_hook(lambda *a: calls.append("global post"))
    try:
        optimizer_step(optimizer)
    finally:
        everyone.remove()
    optimizer_step(optimizer)
    assert calls == ["own pre", "global post"]


def test_a_profiler_sees_the_step_and_an_lr_schedulers_wrapper_still_counts_it():
    net = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.ones(1, 2)).sum().backward()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        optimizer_step(optimizer)
    assert "Optimizer.step#SGD.step" in {event.name for event in prof.events()}
    scheduler = torch.optim.lr_scheduler.StepLR(copy.copy(optimizer), step_size=1)
    optimizer_step(scheduler.optimizer)
    assert scheduler.optimizer._opt_called


def _counted(function, calls):
    @functools.wraps(function)  # copies torch's `hooked` mark along with the name
    def counting(*args, **kwargs):
        calls.append(function.__name__)
        return function(*args, **kwargs)

    return counting


def test_an_optimizer_that_decorates_or_extends_the_wrapped_step_is_stepped_as_it_is():
    torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)  # torch has wrapped SGD.step now
    calls = []

    class Decorated(torch.optim.SGD):
        step = _counted(torch.optim.SGD.step, calls)

    class Observed(torch.optim.SGD):
        def _optimizer_step_code(self):
            calls.append("_optimizer_step_code")

    for kind in (Decorated, Observed):
        net = nn.Linear(2, 1)
        optimizer = kind(net.parameters(), lr=0.1)
        net(torch.ones(1, 2)).sum().backward()
        optimizer_step(optimizer)
    assert calls == ["step", "_optimizer_step_code"]
