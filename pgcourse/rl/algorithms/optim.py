"""Adam for the training loops: ``torch.optim.Adam``'s arithmetic, number for number, in a few operations.

For networks this small (a few thousand weights) torch's Adam spends its time on bookkeeping and on about
ten tensor operations per parameter per step, not on arithmetic. :class:`LeanAdam` does the same arithmetic
(the single-tensor algorithm torch uses by default on the CPU; ``amsgrad``, ``maximize`` and weight decay
off) on one flat buffer per network for the moments, so each line of the update is one operation.
``tests/test_bench_fast_paths.py`` checks that it moves the parameters exactly as ``torch.optim.Adam``.
(torch's fused kernel is faster still, but rounds differently: it would change every CPU run. On a CUDA
device, where one launch matters more and no cached run is bit for bit, :class:`LeanAdam` uses it.)

Why the result is bit for bit the same: the element-wise kernels process a tensor in blocks of a few
SIMD vectors and its last few elements one by one, and the two paths may round differently (``lerp`` uses
a fused multiply-add in one of them). A tensor whose size is a multiple of :data:`FLAT_ALIGN` has no
one-by-one tail, so it gets exactly the same treatment inside the flat buffer as alone; at most one
parameter with a tail goes in, last. Buffers stay under :data:`FLAT_MAX` elements, which torch never
splits between threads. Any other parameter is updated on its own, with multi-tensor operations.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

FLAT_ALIGN = 64  # a multiple of every SIMD block (2 vectors of up to 1024 bits of float32)
FLAT_MAX = 32_768  # at::internal::GRAIN_SIZE: element-wise kernels below it run in one piece


def flat_members(params: list[Tensor]) -> list[Tensor]:
    """The parameters that share the flat moment buffers: those whose size is a multiple of
    :data:`FLAT_ALIGN`, in order, then the last of the others (same dtype and device, contiguous)."""
    if not params:
        return []
    first = params[0]
    usable = [p for p in params if p.dtype == first.dtype and p.device == first.device and p.is_contiguous()]
    aligned = [p for p in usable if p.numel() % FLAT_ALIGN == 0]
    tails = [p for p in usable if p.numel() % FLAT_ALIGN != 0]
    members = aligned + tails[-1:]
    if len(members) < 2 or sum(p.numel() for p in members) > FLAT_MAX:
        return []
    return members


class LeanAdam:
    """Adam with ``torch.optim.Adam``'s update, number for number (see the module docstring).

    Per parameter ``m <- lerp(m, g, 1 - beta1)``, ``v <- beta2 v + (1 - beta2) g^2``,
    ``p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``; as in torch, a parameter
    without a gradient takes no step and its step count ``t`` stays.

    Not a ``torch.optim.Optimizer``: constructing the first one in a process imports ``torch._dynamo``
    (about 2 s). It has what the loops and the planted bugs use: ``param_groups`` (their ``"lr"`` is
    annealed), ``state`` (per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``), ``zero_grad()``, ``step()``,
    and ``state_dict()`` / ``load_state_dict()`` for checkpoints (a resumed run continues bit for bit).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, eps: float = 1e-8,
                 betas: tuple[float, float] = (0.9, 0.999)):
        parameters = list(params)
        if not parameters:
            raise ValueError("LeanAdam got an empty parameter list")
        self.defaults = {"lr": lr, "eps": eps, "betas": betas}
        self.param_groups: list[dict[str, Any]] = [{"params": parameters, **self.defaults}]
        self.state: dict[Tensor, dict[str, Any]] = {}
        self._flat: dict[int, tuple[list[Tensor], Tensor, Tensor]] = {}  # group index -> members, m, v
        self._device_steps: dict[int, tuple[Tensor, int]] = {}  # CUDA: group index -> step counter on the device

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for parameter in group["params"]:
                if set_to_none:
                    parameter.grad = None
                elif parameter.grad is not None:
                    parameter.grad.detach_().zero_()

    def state_dict(self) -> dict[str, Any]:
        """Learning rates and moments, parameters named by their position (as ``torch.optim``'s)."""
        groups = [{key: value for key, value in group.items() if key != "params"} for group in self.param_groups]
        state = [[None if p not in self.state else
                  {"step": self.state[p]["step"], "exp_avg": self.state[p]["exp_avg"].detach().clone(),
                   "exp_avg_sq": self.state[p]["exp_avg_sq"].detach().clone()} for p in group["params"]]
                 for group in self.param_groups]
        return {"param_groups": groups, "state": state}

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s numbers into this optimiser (same parameters, same order)."""
        groups, states = state_dict["param_groups"], state_dict["state"]
        if len(groups) != len(self.param_groups) or any(
                len(saved) != len(group["params"]) for saved, group in zip(states, self.param_groups)):
            raise ValueError("the optimiser state is for other parameters (a different network size?)")
        for index, (group, saved_group, saved_states) in enumerate(zip(self.param_groups, groups, states)):
            group.update(saved_group)
            if all(saved is None for saved in saved_states):
                continue  # saved before the first step: nothing to restore
            self._init_state(index, group["params"])  # flat buffers first, then copy into their views
            for p, saved in zip(group["params"], saved_states):
                if saved is not None:
                    self.state[p]["step"] = saved["step"]
                    self.state[p]["exp_avg"].copy_(saved["exp_avg"])
                    self.state[p]["exp_avg_sq"].copy_(saved["exp_avg_sq"])

    def _init_state(self, index: int, params: list[Tensor]) -> None:
        """Moments at zero: one flat buffer pair for :func:`flat_members` (each member's state holds views
        of it), separate tensors for the others."""
        members = flat_members(params)
        size = sum(p.numel() for p in members)
        exp_avg = torch.zeros(size, dtype=params[0].dtype, device=params[0].device)
        exp_avg_sq = torch.zeros_like(exp_avg)
        offset = 0
        for p in members:
            self.state[p] = {"step": 0, "exp_avg": exp_avg[offset:offset + p.numel()].view_as(p),
                             "exp_avg_sq": exp_avg_sq[offset:offset + p.numel()].view_as(p)}
            offset += p.numel()
        for p in params:
            if p not in self.state:
                self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                 "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        self._flat[index] = (members, exp_avg, exp_avg_sq)

    @torch.no_grad()
    def step(self, grad_scale: Tensor | None = None) -> None:
        """One Adam step. ``grad_scale``: a 0-d tensor every gradient is divided by first (a gradient clip folded
        into the step: in the fused kernel on CUDA, a division of the gradients otherwise)."""
        for index, group in enumerate(self.param_groups):
            if index not in self._flat:
                self._init_state(index, group["params"])
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            fused = params[0].is_cuda and len({self.state[p]["step"] for p in params}) == 1
            if grad_scale is not None and not fused:
                torch._foreach_div_([p.grad for p in params], grad_scale)
            for p in params:
                self.state[p]["step"] += 1
            beta1, beta2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            if fused:
                self._fused_update(index, params, lr, eps, beta1, beta2, grad_scale)
                continue
            members, exp_avg, exp_avg_sq = self._flat[index]
            flat = bool(members) and all(p.grad is not None for p in members) and \
                len({self.state[p]["step"] for p in members}) == 1
            if flat:
                step = float(self.state[members[0]]["step"])
                grad = torch.cat([p.grad.reshape(-1) for p in members])
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denominator = (exp_avg_sq.sqrt() / (1 - beta2 ** step) ** 0.5).add_(eps)
                denominators = [part.view_as(p) for part, p in zip(denominator.split([p.numel() for p in members]),
                                                                    members)]
                torch._foreach_addcdiv_(members, [self.state[p]["exp_avg"] for p in members], denominators,
                                        -(lr / (1 - beta1 ** step)))
                in_flat = set(members)
                params = [p for p in params if p not in in_flat]
            if params:
                self._foreach_update(params, lr, eps, beta1, beta2)

    def _fused_update(self, index: int, params: list[Tensor], lr: float, eps: float, beta1: float,
                      beta2: float, grad_scale: Tensor | None = None) -> None:
        """On a CUDA device: the update in torch's fused Adam kernel, one launch for all of ``params`` (and one to
        count the step on the device). It rounds otherwise than the CPU path, which the cached runs rest on, and
        runs only there: a GPU run is never bit for bit a CPU run anyway."""
        step = self.state[params[0]]["step"]
        device_steps = self.__dict__.setdefault("_device_steps", {})  # (absent from an optimiser pickled before)
        counter, counted = device_steps.get(index, (None, None))
        if counter is None or counted != step - 1 or counter.device != params[0].device:
            counter = torch.tensor(float(step), dtype=torch.float32, device=params[0].device)  # made once
        else:
            counter.add_(1.0)  # [] on the device: the kernel reads the step from it
        device_steps[index] = (counter, step)
        states = [self.state[p] for p in params]
        torch._fused_adam_(params, [p.grad for p in params], [state["exp_avg"] for state in states],
                           [state["exp_avg_sq"] for state in states], [], [counter] * len(params), lr=lr,
                           beta1=beta1, beta2=beta2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False,
                           grad_scale=grad_scale)

    def _foreach_update(self, params: list[Tensor], lr: float, eps: float, beta1: float, beta2: float) -> None:
        """The same update, one multi-tensor operation per line over ``params`` (as ``foreach=True``)."""
        states = [self.state[p] for p in params]
        grads = [p.grad for p in params]
        exp_avgs = [state["exp_avg"] for state in states]
        exp_avg_sqs = [state["exp_avg_sq"] for state in states]
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        steps = [float(state["step"]) for state in states]
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denominators, [(1 - beta2 ** step) ** 0.5 for step in steps])
        torch._foreach_add_(denominators, eps)
        torch._foreach_addcdiv_(params, exp_avgs, denominators, [-(lr / (1 - beta1 ** step)) for step in steps])
