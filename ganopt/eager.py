"""torch's optimizers without the compiler stack. Their methods mark themselves as not to be
compiled, and to do so import torch._dynamo on first use: about a second and a half on a CPU,
more than ``import torch``, paid by every run that compiles nothing (docs/performance.md,
"Start-up"). While torch._dynamo is not loaded nothing can be compiling, and marking does
nothing, so here those methods run as they are until it is loaded, and as torch wrote them
from then on: the same calls, the same bits.

Applies to the torch this was written against (its wrappers are recognized by their code); on
another, the optimizers are left as they are."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from types import CodeType
from typing import Any

import torch
from torch.optim import optimizer as torch_optimizer


def _wrapper_code(decorate: Callable[..., Any] | None) -> CodeType | None:
    """The code of the function ``decorate`` wraps another in (None: no such decorator)."""
    return None if decorate is None else decorate(lambda *_: None).__code__


#: torch._disable_dynamo's wrapper, torch.optim's step wrapper and its step hook, by their code
_DISABLED = _wrapper_code(getattr(torch, "_disable_dynamo", None))
_USE_GRAD = _wrapper_code(getattr(torch_optimizer, "_use_grad_for_differentiable", None))
_HOOKED = _wrapper_code(getattr(torch.optim.Optimizer, "profile_hook_step", None))
#: the attribute torch._disable_dynamo's wrapper caches torch._dynamo.disable's result in
_CACHE = "__dynamo_disable"


def _made_by(function: object, code: CodeType | None) -> bool:
    return code is not None and getattr(function, "__code__", None) is code


def is_step_wrapper(function: object) -> bool:
    """Whether ``function`` is torch.optim's wrapper of a step (its profiler range and step
    hooks), recognized by its code: a decorator that copied the wrapper's attributes is not."""
    return _made_by(function, _HOOKED)


def _compiler_loaded() -> bool:
    return "torch._dynamo" in sys.modules


class _UntilCompiling:
    """Stands in torch._disable_dynamo's cache: calls the method itself while torch._dynamo is
    not loaded, then gives the cache back to torch and calls torch's wrapper."""

    def __init__(self, wrapper: Callable[..., Any]) -> None:
        self.wrapper = wrapper
        self.method = wrapper.__wrapped__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not _compiler_loaded():
            return self.method(*args, **kwargs)
        if getattr(self.method, _CACHE, None) is self:
            delattr(self.method, _CACHE)
        return self.wrapper(*args, **kwargs)


def _eager_step(use_grad: Callable[..., Any]) -> Callable[..., Any]:
    """torch's ``_use_grad`` step wrapper without its graph breaks while nothing compiles: the
    step with autograd set as the optimizer's ``differentiable`` says, as torch's does."""
    step = use_grad.__wrapped__

    @functools.wraps(step)
    def eager(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        if _compiler_loaded():
            return use_grad(self, *args, **kwargs)
        previous = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return step(self, *args, **kwargs)
        finally:
            torch.set_grad_enabled(previous)

    return eager


def _unmark_methods() -> None:
    """torch.optim.Optimizer's own marked methods (add_param_group, zero_grad, state_dict,
    load_state_dict): each runs as it is until torch._dynamo is loaded."""
    for method in vars(torch.optim.Optimizer).values():
        if _made_by(method, _DISABLED) and not hasattr(method.__wrapped__, _CACHE):
            setattr(method.__wrapped__, _CACHE, _UntilCompiling(method))


def _unmark_step(cls: type) -> None:
    """``cls``'s own step, if torch wrapped it to break compiled graphs (and hooked it)."""
    step = vars(cls).get("step")
    hooked = _made_by(step, _HOOKED)
    inner = step.__wrapped__ if hooked else step
    if not _made_by(inner, _USE_GRAD):
        return
    replaced = _eager_step(inner)
    if hooked:
        replaced = torch.optim.Optimizer.profile_hook_step(replaced)
        replaced.hooked = True  # type: ignore[attr-defined]
    cls.step = replaced  # type: ignore[attr-defined]


def without_compiler(optimizer: type) -> None:
    """Let ``optimizer`` (a torch.optim.Optimizer class) and the classes it derives from be
    built, stepped and saved without importing torch._dynamo (same results; idempotent)."""
    if _compiler_loaded() or not issubclass(optimizer, torch.optim.Optimizer):
        return
    _unmark_methods()
    for cls in optimizer.__mro__:
        _unmark_step(cls)
