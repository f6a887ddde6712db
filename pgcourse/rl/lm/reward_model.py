"""A learned reward model (Bradley-Terry), fitted on preference pairs, for lesson 08's over-optimisation experiment.

RLHF does not have a verifier: people compare two responses, a reward model is fitted to their choices, and the
policy is trained against the model. Bradley and Terry's model of a choice between responses ``a`` and ``b``:

.. math:: P(a \\succ b \\mid x) = \\sigma\\big(r_\\phi(x, a) - r_\\phi(x, b)\\big),
          \\qquad L(\\phi) = -\\frac1N \\sum_{(x, a \\succ b)} \\log \\sigma\\big(r_\\phi(x, a) - r_\\phi(x, b)\\big).

Here the "people" are the exact verifier: :func:`preference_pairs` samples two responses per prompt from the
pretrained model and keeps the pairs the verifier tells apart (one right, one wrong), the right one preferred. The
reward model is the pretrained transformer with a scalar head (as RLHF starts its reward model from the fine-tuned
language model), :math:`r_\\phi(x, y)` read at the response's last token.

    pairs = preference_pairs(count=3000, seed=1234)             # PreferencePairs(prompts, chosen, rejected)
    fit = fit_reward_model(pairs, steps=400, seed=0)             # RewardModelFit(model, train/held-out accuracy)
    rewards = reward_model_scores(fit.model, prompts, texts)     # [B], the learned reward of each response
    lm.finetune(method="grpo", reward="learned", reward_fn=fit.reward_fn(), ...)
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .model import TinyLM, generate
from .pretrain import load_pretrained
from .task import PAD, encode, make_prompts, prompt_batch, score


@dataclass
class PreferencePairs:
    """``chosen[i]`` was preferred to ``rejected[i]`` as a response to ``prompts[i]``; ``offered`` pairs were sampled."""
    prompts: list[str]
    chosen: list[str]
    rejected: list[str]
    offered: int

    def __len__(self) -> int:
        return len(self.prompts)

    def split(self, held_out_share: float) -> tuple[PreferencePairs, PreferencePairs]:
        """The first ``1 - held_out_share`` of the pairs for fitting, the rest held out."""
        if not 0.0 < held_out_share < 1.0:
            raise ValueError(f"held_out_share={held_out_share!r} is invalid: expected a number in (0, 1)")
        cut = round(len(self) * (1 - held_out_share))
        part = lambda s: PreferencePairs(self.prompts[s], self.chosen[s], self.rejected[s], self.offered)
        return part(slice(0, cut)), part(slice(cut, None))


def preference_pairs(count: int = 3000, seed: int = 1234, model: TinyLM | None = None,
                     max_new_tokens: int = 12) -> PreferencePairs:
    """Two sampled responses to each of ``count`` fresh prompts, from ``model`` (default: the pretrained one); the
    pairs where exactly one response is right, labelled by the exact verifier (the right one is ``chosen``)."""
    if count < 1:
        raise ValueError(f"count={count!r} is invalid: expected a positive number of prompts")
    model = (model if model is not None else load_pretrained()).eval()
    prompts = make_prompts(count, torch.Generator().manual_seed(seed))
    tokens = prompt_batch(prompts)                                                    # [N, Lp]
    first = generate(model, tokens, max_new_tokens, 1.0, torch.Generator().manual_seed(seed + 1))
    second = generate(model, tokens, max_new_tokens, 1.0, torch.Generator().manual_seed(seed + 2))
    right_first, right_second = score(prompts, first.texts), score(prompts, second.texts)  # [N] each, 0 or 1
    keep = (right_first != right_second).nonzero().squeeze(-1).tolist()
    chosen = [first.texts[i] if right_first[i] > right_second[i] else second.texts[i] for i in keep]
    rejected = [second.texts[i] if right_first[i] > right_second[i] else first.texts[i] for i in keep]
    return PreferencePairs([prompts[i] for i in keep], chosen, rejected, offered=count)


def _sequences(prompts: list[str], responses: list[str]) -> Tensor:
    """``BOS + prompt + ">" + response`` token ids, right-padded: ``[B, L]``."""
    rows = [encode(p + ">" + r) for p, r in zip(prompts, responses)]
    width = max(len(row) for row in rows)
    return torch.tensor([row + [PAD] * (width - len(row)) for row in rows], dtype=torch.long)


def reward_model_scores(model: TinyLM, prompts: list[str], responses: list[str]) -> Tensor:
    """:math:`r_\\phi(x, y)` of each pair: the scalar head at the response's last token, ``[B]`` (with its graph)."""
    if len(prompts) != len(responses):
        raise ValueError(f"reward_model_scores: {len(prompts)} prompts but {len(responses)} responses")
    tokens = _sequences(prompts, responses).to(next(model.parameters()).device)      # [B, L]
    _, values = model(tokens, with_values=True)                                       # [B, L]
    last = (tokens != PAD).long().sum(-1) - 1                                         # [B], the last real token
    return values[torch.arange(len(prompts), device=tokens.device), last]


def bradley_terry_loss(chosen_rewards: Tensor, rejected_rewards: Tensor) -> Tensor:
    """:math:`-\\frac1N\\sum \\log\\sigma(r_a - r_b)`: ``[N]`` twice -> scalar."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


@torch.no_grad()
def pair_accuracy(model: TinyLM, pairs: PreferencePairs) -> float:
    """Share of ``pairs`` whose chosen response the model scores higher."""
    model.eval()
    return float((reward_model_scores(model, pairs.prompts, pairs.chosen)
                  > reward_model_scores(model, pairs.prompts, pairs.rejected)).double().mean())


@dataclass
class RewardModelFit:
    model: TinyLM
    train_accuracy: float
    held_out_accuracy: float
    pairs_fitted: int
    pairs_held_out: int
    losses: list[float]

    def reward_fn(self) -> Callable[[list[str], list[str]], Tensor]:
        """``(prompts, responses) -> [B]`` float32 learned rewards, without a graph: what ``finetune`` calls."""
        model = self.model.eval()

        def learned_reward(prompts: list[str], responses: list[str]) -> Tensor:
            with torch.no_grad():
                return reward_model_scores(model, prompts, responses).float().cpu()
        return learned_reward


def fit_reward_model(pairs: PreferencePairs, steps: int = 400, batch_size: int = 64, lr: float = 3e-4,
                     held_out_share: float = 0.2, seed: int = 0, model: TinyLM | None = None) -> RewardModelFit:
    """Fit :math:`r_\\phi` (a copy of ``model``, default the pretrained one, with a fresh scalar head) to the
    Bradley-Terry loss by Adam on minibatches of pairs; report its pair accuracy on the fitted and held-out pairs."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps={steps!r} and batch_size={batch_size!r} must be positive")
    fitted, held_out = pairs.split(held_out_share)
    if len(fitted) < 2 or len(held_out) < 1:
        raise ValueError(f"{len(pairs)} preference pairs are too few to fit and hold out: sample more prompts")
    torch.manual_seed(seed)
    reward_model = copy.deepcopy(model if model is not None else load_pretrained()).add_value_head().train()
    optimizer = torch.optim.Adam(reward_model.parameters(), lr=lr)
    draws = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        batch = torch.randint(len(fitted), (batch_size,), generator=draws).tolist()
        prompts = [fitted.prompts[i] for i in batch]
        loss = bradley_terry_loss(reward_model_scores(reward_model, prompts, [fitted.chosen[i] for i in batch]),
                                  reward_model_scores(reward_model, prompts, [fitted.rejected[i] for i in batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    reward_model.eval()
    return RewardModelFit(reward_model, pair_accuracy(reward_model, fitted), pair_accuracy(reward_model, held_out),
                          len(fitted), len(held_out), losses)
