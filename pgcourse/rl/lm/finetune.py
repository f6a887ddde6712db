"""Fine-tuning the pretrained sorter with policy gradients: REINFORCE, PPO with a KL leash (RLHF), GRPO.

One loop, read top to bottom. Every update:

1. **Sample.** ``P = prompts_per_update`` fresh prompts, ``G = group_size`` responses each (``B = P * G``
   responses, prompt-major), from the current policy.
2. **Score.** The verifier's reward of each response (``"exact"`` or the ``"loophole"`` one), and the
   log-probabilities of its tokens under the policy and under the frozen **reference** (the pretrained model).
3. **Update**, by ``method``:

   * ``"reinforce"``: sequence-level REINFORCE with a baseline. :math:`R_i = r_i - \\beta \\sum_t \\mathrm{KL}_{i,t}`
     (the KL leash folded into the reward, as RLHF does; :math:`\\beta` = ``kl_coef``), baseline :math:`b` = the
     batch's mean :math:`R`, loss :math:`-\\frac1B \\sum_i (R_i - b) \\log \\pi_\\theta(y_i \\mid x_i)`: one gradient
     step per batch (on-policy).
   * ``"ppo"``: RLHF's recipe. Per-token rewards :math:`-\\beta\\,\\mathrm{KL}_t`, plus the task reward on the last
     token (:func:`~pgcourse.rl.lm.losses.kl_penalized_rewards`); a value head on the policy's trunk; GAE over the
     response's tokens with :func:`pgcourse.rl.returns.compute_gae` (:math:`\\gamma = 1`, the episode ends at the last
     token); advantages whitened over the batch's tokens; ``update_epochs`` full-batch steps on
     :func:`~pgcourse.rl.lm.losses.masked_clipped_loss` plus ``vf_coef`` times the value loss.
   * ``"grpo"``: no critic. Each response's advantage is its reward against its own prompt's ``G`` samples
     (:func:`~pgcourse.rl.lm.losses.group_relative_advantages`), for every token; loss = the masked clipped loss
     plus :math:`\\beta` times the k3 estimate of the KL to the reference (DeepSeekMath's form), for
     ``update_epochs`` full-batch steps.

The per-token KL estimator is ``kl_estimator`` (``"k1"``: in the reward for REINFORCE and PPO; ``"k3"``: in
GRPO's loss; each method's default is its paper's). In a loss on the policy's own samples the two behave
differently from their values: k1's expected gradient is zero, so GRPO refuses it, and k3's expected gradient is
that of the KL with its arguments swapped, :math:`\\nabla_\\theta D_{KL}(\\pi_{ref} \\| \\pi_\\theta)` (the *forward*
KL in RLHF's naming), although its value estimates :math:`D_{KL}(\\pi_\\theta \\| \\pi_{ref})` (both KLs are zero
at the same place, so the leash still pulls towards the reference). The history's ``kl`` uses neither: at every
sampled response position it takes the exact KL between the two next-token distributions (over the 14-token
vocabulary), sums it over the response and averages over the batch,
:math:`\\frac1B\\sum_i\\sum_t m_{i,t}\\,\\mathrm{KL}(\\pi_\\theta(\\cdot|s_{i,t}) \\| \\pi_{ref}(\\cdot|s_{i,t}))`: an estimate
of the responses' KL (the states are still sampled) that is never negative and has less variance than k1's.
The logged ``reward`` is the task reward alone (no KL penalty), of the batch sampled before that update's step.
"""
from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Any

import torch

from ..algorithms.interrupts import InterruptGuard
from ..config import ConfigError
from ..devices import is_valid_device_name, resolve_device
from ..returns import compute_gae
from .losses import (group_relative_advantages, kl_k1, kl_k3, kl_penalized_rewards, masked_clipped_loss, masked_mean,
                     sequence_log_probs, token_log_probs)
from .model import TinyLM, generate, response_logits
from .pretrain import evaluate_sorting, held_out_prompts, load_pretrained
from .task import make_prompts, prompt_batch, score

METHODS = ("reinforce", "ppo", "grpo")
REWARD_NAMES = ("exact", "loophole", "learned")  # "learned": finetune(..., reward_fn=...), a fitted reward model
KL_ESTIMATORS = {"k1": kl_k1, "k3": kl_k3}
# Each method's defaults (fields left at None take these). Tuned by hand on seeds 0-3 (one CPU thread, 100 updates of
# 8 prompts x 8 samples): REINFORCE at lr 1e-3 ended at 0.45 sampled exact on seed 0 against 0.67 at 3e-4. PPO and
# GRPO take 2 epochs per batch: 4 cost about 40% more CPU for no clear gain on seed 0 (PPO 0.67 with 4 epochs, 0.76
# with 2; GRPO 0.72 with 4 at kl_coef 0.02, 0.68 with 2 at 0.1: single seeds, within their noise). With these defaults
# every one of the 10 cached seeds per method (figures/08_lm) raised the held-out sampled exact accuracy from
# 0.37-0.42 to 0.62-0.79, in 6-10 s of CPU per run. The leashes are not the same strength: k1 at 0.05 in the
# reward (REINFORCE, PPO) and k3 at 0.1 in the loss (GRPO) are different pulls; compare their KLs as measured.
# Seeds 0-3 are among the ten lesson 08 reports, so the same choices were tried again on seeds 100-103
# (tools/tune_08_disjoint.py, figures/08_lm/disjoint_tuning.json): each default still had the higher mean held-out
# sampled exact accuracy (REINFORCE lr 3e-4 0.688 vs 1e-3 0.479; PPO 2 epochs 0.708 vs 4: 0.684; GRPO 2 epochs at
# kl_coef 0.1 0.719 vs 4 at 0.02: 0.675).
METHOD_DEFAULTS = {
    "reinforce": {"lr": 3e-4, "kl_coef": 0.05, "kl_estimator": "k1", "update_epochs": 1},
    "ppo": {"lr": 3e-4, "kl_coef": 0.05, "kl_estimator": "k1", "update_epochs": 2},
    "grpo": {"lr": 3e-4, "kl_coef": 0.1, "kl_estimator": "k3", "update_epochs": 2},
}


def _fail(name: str, value: Any, expected: str) -> None:
    raise ConfigError(f"{name}={value!r} is invalid: expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class FinetuneConfig:
    """Every setting of a fine-tuning run, validated at construction (a bad value raises
    :class:`pgcourse.ConfigError` naming the field, the value and what is expected).

    Fields left at ``None`` take the method's default (:data:`METHOD_DEFAULTS`); the stored config holds the
    resolved values.
    """

    method: str = "grpo"  # "reinforce" | "ppo" | "grpo"
    reward: str = "exact"  # "exact" | "loophole" | "learned" (give finetune a reward_fn): what the policy is trained on
    # (the exact and loophole rewards are always logged)
    kl_coef: float | None = None  # beta, the KL leash to the reference; 0 switches it off
    kl_estimator: str | None = None  # "k1" | "k3"
    group_size: int = 8  # G responses per prompt (all methods sample this way; GRPO needs G >= 2)
    prompts_per_update: int = 8  # P prompts per update; B = P * G responses
    updates: int = 100
    lr: float | None = None  # Adam's learning rate
    clip_eps: float = 0.2  # PPO/GRPO ratio clip
    update_epochs: int | None = None  # gradient steps on each batch (REINFORCE: 1)
    gae_lambda: float = 0.95  # PPO's GAE lambda over tokens (gamma is 1)
    vf_coef: float = 0.5  # PPO's value-loss weight
    max_grad_norm: float = 1.0
    temperature: float = 1.0  # sampling temperature (the policy trained is the tempered one)
    max_new_tokens: int = 12  # a response is cut after this many tokens
    min_digits: int = 3
    max_digits: int = 6
    eval_prompts: int = 256  # held-out prompts for the start and end evaluations
    sample_every: int = 20  # record decoded samples every this many updates (and at the last)
    seed: int = 0
    device: str = "auto"  # "auto" (the CPU, or PGCOURSE_DEVICE: pgcourse.rl.devices) | "cpu" | "cuda" | "cuda:<index>"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            _fail("method", self.method, f"one of {METHODS}")
        for name, value in METHOD_DEFAULTS[self.method].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.validate()

    def validate(self) -> None:
        if self.reward not in REWARD_NAMES:
            _fail("reward", self.reward, f"one of {REWARD_NAMES}")
        if self.kl_estimator not in KL_ESTIMATORS:
            _fail("kl_estimator", self.kl_estimator, f"one of {tuple(KL_ESTIMATORS)}")
        if not is_valid_device_name(self.device) or self.device == "mps":
            _fail("device", self.device, "'auto', 'cpu', 'cuda' or 'cuda:<index>'")
        ints = {"group_size": (1, None), "prompts_per_update": (1, None), "updates": (1, None),
                "update_epochs": (1, None), "max_new_tokens": (1, 64), "min_digits": (1, 10), "max_digits": (1, 10),
                "eval_prompts": (1, None), "sample_every": (1, None), "seed": (0, None)}
        for name, (low, high) in ints.items():
            value = getattr(self, name)
            if not _is_int(value) or value < low or (high is not None and value > high):
                _fail(name, value, f"an integer in [{low}, {high if high is not None else 'inf'}]")
        floats = {"kl_coef": (0.0, False), "lr": (0.0, True), "clip_eps": (0.0, True), "max_grad_norm": (0.0, True),
                  "temperature": (0.0, True), "vf_coef": (0.0, False)}
        for name, (low, low_open) in floats.items():
            value = getattr(self, name)
            if not _is_number(value) or value < low or (low_open and value == low):
                _fail(name, value, f"a finite number {'>' if low_open else '>='} {low}")
        if not _is_number(self.gae_lambda) or not 0.0 <= self.gae_lambda <= 1.0:
            _fail("gae_lambda", self.gae_lambda, "a number in [0, 1]")
        if self.max_digits < self.min_digits:
            _fail("max_digits", self.max_digits, f"an integer >= min_digits={self.min_digits}")
        if self.method == "grpo" and self.group_size < 2:
            _fail("group_size", self.group_size, "an integer >= 2 for method='grpo' (advantages compare a prompt's samples)")
        if self.method == "grpo" and self.kl_estimator == "k1" and self.kl_coef > 0:
            _fail("kl_estimator", self.kl_estimator, "'k3' for method='grpo': GRPO puts the KL estimate in its loss, "
                  "and k1 = log pi - log pi_ref as a loss on the policy's own samples has zero expected gradient (the "
                  "leash would pull nothing); k1 belongs in the reward (method='ppo' or 'reinforce')")
        if self.method == "reinforce" and self.update_epochs != 1:
            _fail("update_epochs", self.update_epochs, "1 for method='reinforce' (one on-policy step per batch; "
                  "several epochs need PPO's or GRPO's clipped ratio)")

    @property
    def batch_size(self) -> int:
        return self.prompts_per_update * self.group_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown FinetuneConfig field(s) {unknown}; expected some of {sorted(known)}")
        return cls(**data)


@dataclass
class FinetuneResult:
    """A fine-tuning run: its config, per-update history, decoded samples and held-out evaluations.

    Attributes:
        config: the resolved config, as a dict.
        history: one list per quantity, one entry per update: ``update``, ``reward`` (the trained reward's batch
            mean), ``exact_reward``, ``loophole_reward``, ``kl`` (exact KL to the reference per response, batch
            mean), ``entropy`` (mean token entropy), ``distinct`` (distinct responses among a prompt's ``G``
            samples, divided by ``G``, mean over prompts), ``length`` (mean response tokens, EOS included),
            ``finished`` (fraction of responses that wrote EOS).
        samples: ``[{"update": u, "texts": ["413>134.", ...], "rewards": [...]}, ...]`` (sample 0 of each prompt).
        eval_start, eval_end: :func:`pgcourse.rl.lm.pretrain.evaluate_sorting` of the policy before and after.
        status: ``"finished"`` or ``"interrupted"`` (Ctrl-C: stopped after the update it was in).
        wall_seconds, cpu_seconds: wall-clock and CPU time of the run (evaluations included).
        model: the fine-tuned policy (not saved to JSON).
    """

    config: dict[str, Any]
    history: dict[str, list[float]]
    samples: list[dict[str, Any]]
    eval_start: dict[str, float]
    eval_end: dict[str, float]
    status: str = "finished"
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    model: TinyLM | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "history": self.history, "samples": self.samples, "eval_start": self.eval_start,
                "eval_end": self.eval_end, "status": self.status, "wall_seconds": self.wall_seconds,
                "cpu_seconds": self.cpu_seconds}

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON (atomically: a crash never leaves half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(self.to_dict(), out)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneResult:
        return cls(**{k: data[k] for k in ("config", "history", "samples", "eval_start", "eval_end", "status",
                                           "wall_seconds", "cpu_seconds") if k in data})

    @classmethod
    def load(cls, path: str | Path) -> FinetuneResult:
        return cls.from_dict(json.loads(Path(path).read_text()))


def exact_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """:math:`\\mathrm{KL}(\\pi \\| \\pi_{ref})` of the full next-token distributions: ``[B, T, V]`` twice -> ``[B, T]``."""
    log_p, log_q = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)  # [B, T, V]
    return (log_p.exp() * (log_p - log_q)).sum(-1)  # [B, T]


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each next-token distribution: ``[B, T, V]`` -> ``[B, T]`` (nats)."""
    log_p = torch.log_softmax(logits, -1)
    return -(log_p.exp() * log_p).sum(-1)


def distinct_fraction(texts: list[str], group_size: int) -> float:
    """Distinct responses among each prompt's ``group_size`` samples, divided by ``group_size``, mean over prompts
    (1: every sample differs; ``1/G``: the policy writes one answer)."""
    groups = [texts[i:i + group_size] for i in range(0, len(texts), group_size)]
    return sum(len(set(g)) / len(g) for g in groups) / len(groups)


def gae_over_tokens(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, lam: float) -> torch.Tensor:
    """GAE with :math:`\\gamma = 1` over each response's tokens: ``[B, T]`` in, ``[B, T]`` advantages out.

    The episode is the response: state :math:`s_t` = prompt + the first ``t`` tokens, action = token ``t``. It
    ends (terminates) at its last real token, whether EOS or the cut; padding after it is terminal too and
    its advantages are masked out by the caller.
    """
    mask = mask.to(rewards.dtype)
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1) * mask  # [B, T]
    next_mask = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)  # [B, T], 1 if a token follows
    terminated = next_mask == 0  # [B, T]: the last real token and the padding
    advantages = compute_gae(rewards.T, values.T, next_values.T, terminated.T, torch.zeros_like(terminated.T),
                             gamma=1.0, lam=lam)  # [T, B]
    return advantages.T * mask  # [B, T]


def finetune(config: FinetuneConfig | None = None, model: TinyLM | None = None, reference: TinyLM | None = None,
             verbose: bool = False, reward_fn: Callable[[list[str], list[str]], torch.Tensor] | None = None,
             **overrides: Any) -> FinetuneResult:
    """Fine-tune a pretrained sorter with ``config.method`` (see the module docstring for the math).

    Args:
        config: a :class:`FinetuneConfig`; or leave it out and pass its fields as keywords
            (``finetune(method="ppo", reward="loophole", kl_coef=0.0, seed=3)``).
        model: the starting policy (default: :func:`~pgcourse.rl.lm.pretrain.load_pretrained`); it is copied,
            never changed.
        reference: the frozen reference for the KL leash (default: a copy of the starting policy).
        verbose: print one line every ``sample_every`` updates.
        reward_fn: with ``reward="learned"`` (and only then), the reward the policy is trained on:
            ``reward_fn(prompts, responses) -> [B]`` float, e.g. a fitted reward model's
            (:meth:`pgcourse.rl.lm.reward_model.RewardModelFit.reward_fn`).

    Returns:
        A :class:`FinetuneResult`; ``result.model`` is the fine-tuned policy. Same seed on the CPU: the same
        history, bit for bit.
    """
    if config is None:
        config = FinetuneConfig(**overrides)
    elif overrides:
        config = FinetuneConfig(**{**config.to_dict(), **overrides})
    c = config
    if (c.reward == "learned") != (reward_fn is not None):
        _fail("reward", c.reward, "'learned' together with finetune(..., reward_fn=...), and reward_fn only with "
              "reward='learned'" if reward_fn is not None else "'exact' or 'loophole', or 'learned' with a reward_fn "
              "(a fitted reward model: pgcourse.rl.lm.reward_model)")
    device = resolve_device(c.device)
    started, cpu_started = time.perf_counter(), time.process_time()
    torch.manual_seed(c.seed)
    start_model = model if model is not None else load_pretrained()
    longest = c.max_digits + 2 + c.max_new_tokens  # BOS + the prompt's digits + ">" + the response
    if longest > start_model.config.max_len:
        _fail("max_new_tokens", c.max_new_tokens, f"an integer <= {start_model.config.max_len - c.max_digits - 2}: a "
              f"{c.max_digits}-digit prompt takes {c.max_digits + 2} positions and the model has max_len="
              f"{start_model.config.max_len}")
    policy = copy.deepcopy(start_model).to(device)
    if c.method == "ppo" and policy.value_head is None:
        policy.add_value_head().to(device)
    reference = copy.deepcopy(reference if reference is not None else start_model).to(device).eval()
    reference.requires_grad_(False)
    optimizer = torch.optim.Adam(policy.parameters(), lr=c.lr)
    prompt_stream = torch.Generator().manual_seed(c.seed)  # CPU: prompts are the same on every device
    sample_stream = torch.Generator(device=device).manual_seed(c.seed + 1)
    kl_estimator = KL_ESTIMATORS[c.kl_estimator]
    eval_prompts = held_out_prompts(c.eval_prompts, c.min_digits, c.max_digits)
    eval_start = evaluate_sorting(policy, eval_prompts, c.max_new_tokens, seed=c.seed, temperature=c.temperature)
    history: dict[str, list[float]] = {key: [] for key in ("update", "reward", "exact_reward", "loophole_reward", "kl",
                                                           "entropy", "distinct", "length", "finished")}
    samples: list[dict[str, Any]] = []
    status = "finished"
    with InterruptGuard() as interrupt:
        for update in range(c.updates):
            if interrupt.requested:
                status = "interrupted"
                break
            # 1. Sample P prompts x G responses (prompt-major) from the current policy.
            prompts = make_prompts(c.prompts_per_update, prompt_stream, c.min_digits, c.max_digits)
            prompts = [p for p in prompts for _ in range(c.group_size)]  # B prompts
            prompt_tokens = prompt_batch(prompts).to(device)  # [B, Lp]
            rollout = generate(policy, prompt_tokens, c.max_new_tokens, c.temperature, sample_stream)
            tokens, mask = rollout.tokens, rollout.mask  # [B, T] each

            # 2. Score: the verifier's rewards; old and reference log-probs of the sampled tokens.
            if reward_fn is not None:  # a learned reward model's scores
                task_rewards = torch.as_tensor(reward_fn(prompts, rollout.texts), dtype=torch.float32).to(device)  # [B]
            else:
                task_rewards = score(prompts, rollout.texts, c.reward).to(device)  # [B]
            exact = score(prompts, rollout.texts, "exact")  # [B]
            loophole = score(prompts, rollout.texts, "loophole")  # [B]
            with torch.no_grad():
                if c.method == "ppo":
                    logits, old_values = response_logits(policy, prompt_tokens, tokens, c.temperature, with_values=True)
                else:
                    logits = response_logits(policy, prompt_tokens, tokens, c.temperature)  # [B, T, V]
                ref_logits = response_logits(reference, prompt_tokens, tokens, c.temperature)  # [B, T, V]
                old_log_probs = token_log_probs(logits, tokens) * mask  # [B, T]
                ref_log_probs = token_log_probs(ref_logits, tokens) * mask  # [B, T]
                token_kl = kl_estimator(old_log_probs, ref_log_probs) * mask  # [B, T], the leash's estimate

            # 3. Update the policy.
            policy.train()
            if c.method == "reinforce":
                returns = task_rewards - c.kl_coef * token_kl.sum(-1)  # [B], R_i with the KL folded in
                advantages = returns - returns.mean()  # [B], baseline: the batch mean
                new_logits = response_logits(policy, prompt_tokens, tokens, c.temperature)
                loss = -(advantages * sequence_log_probs(new_logits, tokens, mask)).mean()
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), c.max_grad_norm)
                optimizer.step()
            elif c.method == "ppo":
                # the task reward on each response's last token, then -beta KL_t on every token (with k1 this is
                # kl_penalized_rewards(..., kl_coef); written apart so that kl_estimator="k3" works too)
                token_rewards = kl_penalized_rewards(task_rewards, old_log_probs, ref_log_probs, mask, 0.0)
                token_rewards = token_rewards - c.kl_coef * token_kl  # [B, T]
                advantages = gae_over_tokens(token_rewards, old_values, mask, c.gae_lambda)  # [B, T]
                value_targets = advantages + old_values  # [B, T]
                mean = masked_mean(advantages, mask)
                std = masked_mean((advantages - mean) ** 2, mask).sqrt()
                advantages = (advantages - mean) / (std + 1e-8)  # whitened over the batch's tokens
                for _ in range(c.update_epochs):
                    new_logits, values = response_logits(policy, prompt_tokens, tokens, c.temperature, with_values=True)
                    new_log_probs = token_log_probs(new_logits, tokens)  # [B, T]
                    policy_loss = masked_clipped_loss(new_log_probs, old_log_probs, advantages, mask, c.clip_eps)
                    value_loss = masked_mean((values - value_targets) ** 2, mask)
                    loss = policy_loss + c.vf_coef * value_loss
                    optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), c.max_grad_norm)
                    optimizer.step()
            else:  # grpo
                advantages = group_relative_advantages(task_rewards.view(c.prompts_per_update, c.group_size))
                advantages = advantages.reshape(-1)  # [B], one per response, for all its tokens
                for _ in range(c.update_epochs):
                    new_logits = response_logits(policy, prompt_tokens, tokens, c.temperature)
                    new_log_probs = token_log_probs(new_logits, tokens)  # [B, T]
                    policy_loss = masked_clipped_loss(new_log_probs, old_log_probs, advantages, mask, c.clip_eps)
                    # both log-probs masked: on padding, an unmasked log pi(PAD) (-60 at temperature 0.2) would send
                    # k3's exp(log pi_ref - log pi) to inf, and inf x 0 is NaN in the loss and its gradient
                    kl_loss = masked_mean(kl_estimator(new_log_probs * mask, ref_log_probs), mask)
                    loss = policy_loss + c.kl_coef * kl_loss
                    optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), c.max_grad_norm)
                    optimizer.step()
            policy.eval()

            # 4. Log what the batch was (before this update's step: the policy that sampled it).
            history["update"].append(update)
            history["reward"].append(task_rewards.mean().item())
            history["exact_reward"].append(exact.mean().item())
            history["loophole_reward"].append(loophole.mean().item())
            history["kl"].append((exact_kl(logits, ref_logits) * mask).sum(-1).mean().item())
            history["entropy"].append(masked_mean(entropy(logits), mask).item())
            history["distinct"].append(distinct_fraction(rollout.texts, c.group_size))
            history["length"].append(rollout.lengths.mean().item())
            history["finished"].append(rollout.finished.float().mean().item())
            if update % c.sample_every == 0 or update == c.updates - 1:
                firsts = range(0, len(prompts), c.group_size)
                samples.append({"update": update, "texts": [f"{prompts[i]}>{rollout.texts[i]}" for i in firsts],
                                "rewards": [round(task_rewards[i].item(), 4) for i in firsts]})
            if verbose and (update % c.sample_every == 0 or update == c.updates - 1):
                print(f"update {update:4d}  reward {history['reward'][-1]:.3f}  exact {history['exact_reward'][-1]:.3f}"
                      f"  kl {history['kl'][-1]:.3f}  length {history['length'][-1]:.2f}  e.g. {samples[-1]['texts'][0]}")
    eval_end = evaluate_sorting(policy, eval_prompts, c.max_new_tokens, seed=c.seed, temperature=c.temperature)
    return FinetuneResult(config=c.to_dict(), history=history, samples=samples, eval_start=eval_start,
                          eval_end=eval_end, status=status, wall_seconds=time.perf_counter() - started,
                          cpu_seconds=time.process_time() - cpu_started, model=policy)
