"""Checks for chapter 08 (policy gradients for language models): ``sequence_log_probs``, ``kl_k1``, ``kl_k3``,
``group_relative_advantages`` and ``masked_clipped_loss``.

All five are tensor functions checked by the harness against :mod:`pgcourse.rl.lm.losses`. What is new in this
chapter is bookkeeping: responses of different lengths padded to one ``T``, a mask that must keep the padding
out of every sum and mean, and groups of samples per prompt. So the cases pad at different lengths, put
arbitrary token ids and log-probabilities on the padding (a forgotten mask then changes the answer), include a
response of a single token, a group whose rewards are all equal, float64 inputs and inputs that require grad,
and the known wrong versions are named: the padding summed in, a mean where the contract says a sum (or the other
way round), the end mark left out, k1's sign flipped, k3's ratio upside down, k2 given for k3, the batch's mean
instead of the group's, a standard deviation without eps (NaN), with a constant instead of the eps argument, or
the population one, max instead of min, the mask ignored, a per-sequence mean where the contract says token-level,
a ratio through which gradient leaks into the old log-probabilities.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ...rl.lm import losses
from .harness import Case, Exercise, Mistake, _call_learner, _log_probs, _make_check, _randn, _t

_TOKENS_NOTE = "([B, T] tensors are printed one row per response, one column per position; mask 1 = a real token.)"


def _mask(lengths: list[int], width: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """[B, T] mask with ``lengths[i]`` leading ones in row ``i``."""
    positions = torch.arange(width).unsqueeze(0)  # [1, T]
    return (positions < torch.tensor(lengths).unsqueeze(1)).to(dtype)  # [B, T]


def _masked_sum(values: Tensor, mask: Tensor) -> Tensor:
    return (values * mask.to(values.dtype)).sum(-1)


# --------------------------------------------------------------------------------------------------
# sequence_log_probs
# --------------------------------------------------------------------------------------------------

def _logits_case(g: torch.Generator, description: str, lengths: list[int], width: int, vocab: int, *,
                 scale: float = 1.5, dtype: torch.dtype = torch.float32, bool_mask: bool = False) -> Case:
    batch = len(lengths)
    logits = _randn(g, batch, width, vocab, dtype=dtype, scale=scale, requires_grad=True)  # [B, T, V]
    tokens = torch.randint(0, vocab, (batch, width), generator=g)  # [B, T]; the padding holds arbitrary ids
    mask = _mask(lengths, width, torch.bool if bool_mask else dtype)
    return Case(description, dict(logits=logits, tokens=tokens, mask=mask))


def _cases_sequence_log_probs() -> list[Case]:
    g = torch.Generator().manual_seed(80)
    return [
        Case("one response of one token (B=1, T=1, V=3)",
             dict(logits=_t([[[2.0, 0.0, -1.0]]], requires_grad=True), tokens=torch.tensor([[0]]), mask=_t([[1.0]]))),
        Case("two responses, the second padded after 1 token (T=3, V=4)",
             dict(logits=_t([[[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]],
                             [[0.0, 0.0, 3.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 4.0]]], requires_grad=True),
                  tokens=torch.tensor([[0, 1, 2], [2, 3, 3]]), mask=_t([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]))),
        Case("a token the model finds nearly impossible: its logit is 200 below the best (B=1, T=2, V=3)",
             dict(logits=_t([[[100.0, 0.0, -100.0], [1.0, 2.0, 3.0]]], requires_grad=True),
                  tokens=torch.tensor([[2, 1]]), mask=_t([[1.0, 1.0]]))),
        _logits_case(g, "four responses padded at four different lengths (T=5, V=6)", [5, 1, 3, 2], 5, 6),
        _logits_case(g, "a bool mask (True = real token), lengths 4, 2, 6 (T=6, V=5)", [4, 2, 6], 6, 5,
                     bool_mask=True),
        _logits_case(g, "float64 logits and mask, lengths 3, 7 (T=7, V=8)", [3, 7], 7, 8, dtype=torch.float64),
        _logits_case(g, "long, unlikely responses: 40 tokens of log-prob about -6 each (T=40, V=16)",
                     [40, 33, 21], 40, 16, scale=6.0),
        _logits_case(g, "random, 8 responses of lengths 1 to 12 (T=12, V=10)", [12, 1, 5, 9, 12, 3, 7, 2], 12, 10),
    ]


def _without_end_mark(logits: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
    """The masked sum with each response's last real token (its end mark) left out."""
    mask = mask.to(logits.dtype)
    last = mask.sum(-1).long().clamp(min=1) - 1  # [B], the index of each row's last real token
    return _masked_sum(losses.token_log_probs(logits, tokens), mask.scatter(-1, last.unsqueeze(-1), 0.0))


def _log_of_softmax(logits: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
    per_token = torch.softmax(logits, -1).gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1).log()
    return _masked_sum(per_token, mask)


def _product_of_probabilities(logits: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
    probs = losses.token_log_probs(logits, tokens).exp()  # [B, T]
    mask = mask.to(probs.dtype)
    return (probs * mask + (1 - mask)).prod(-1).log()


SEQUENCE_LOG_PROBS = Exercise(
    name="sequence_log_probs",
    reference=losses.sequence_log_probs,
    make_cases=_cases_sequence_log_probs,
    concept=("for each response, the log-probability the model gives to the whole sequence of its tokens: the "
             "log-softmax of each position's logits picked at that position's token, added up over the real "
             "tokens only (the mask is 1 there, 0 on the padding); one number per response, [B]."),
    mistakes=[
        Mistake("the padding is not masked: the positions where the mask is 0 hold whatever token ids and logits "
                "the batch was padded with, and they are summed in. Multiply each position's log-prob by the mask "
                "before summing.",
                lambda logits, tokens, mask: losses.token_log_probs(logits, tokens).sum(-1)),
        Mistake("a mean over the tokens instead of a sum: the probability of a sequence is the PRODUCT of its "
                "tokens' probabilities (the chain rule), so its log is the SUM of their log-probs. A mean would "
                "make a long response look as likely as a short one.",
                lambda logits, tokens, mask:
                _masked_sum(losses.token_log_probs(logits, tokens), mask) / mask.to(logits.dtype).sum(-1)),
        Mistake("the masked log-probs are averaged over all T positions (padding included): the sequence's "
                "log-prob is their sum.",
                lambda logits, tokens, mask: (losses.token_log_probs(logits, tokens) * mask.to(logits.dtype))
                .mean(-1)),
        Mistake("one number per token, not per response: add the masked per-token log-probs up over T to get the "
                "[B] log-probabilities of the sequences.",
                lambda logits, tokens, mask: losses.token_log_probs(logits, tokens) * mask.to(logits.dtype)),
        # a student's try (issue 49)
        Mistake("you summed over every dim (a sum with no dim), to one number for the whole batch: keep one "
                "log-probability per response, [B], the sum over its tokens (the last dim) only.",
                lambda logits, tokens, mask: _masked_sum(losses.token_log_probs(logits, tokens), mask).sum()),
        Mistake("the logits are used as if they were log-probabilities: normalise each position over the "
                "vocabulary first (a log-softmax over the last dimension).",
                lambda logits, tokens, mask: _masked_sum(logits.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1),
                                                         mask)),
        Mistake("the end mark (the last real token) is left out: a response's log-probability includes every real "
                "token, the end-of-sequence one too (the policy chose to stop; its probability counts).",
                _without_end_mark),
        Mistake("the log-softmax is taken over the wrong dimension: normalise over the vocabulary (the last "
                "dimension, V), not over the positions.",
                lambda logits, tokens, mask: _masked_sum(
                    torch.log_softmax(logits, 1).gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1), mask)),
        Mistake("the probabilities of the tokens are multiplied, then the log taken: 40 tokens of probability "
                "e^-6 multiply to e^-240, which underflows to 0 in float32 (log 0 = -inf). Add log-probs instead.",
                _product_of_probabilities),
        Mistake("log(softmax(...)) underflows: a token whose probability rounds to 0 gets log 0 = -inf. Use "
                "torch.log_softmax, which computes the log-probabilities stably in one step.",
                _log_of_softmax),
        Mistake("the logits were shifted by one position again: they are already aligned with the tokens "
                "(logits[:, t] is the distribution of tokens[:, t]).",
                lambda logits, tokens, mask: _masked_sum(
                    losses.token_log_probs(logits[:, :-1], tokens[:, 1:]), mask[:, 1:])),
    ],
    grad_args=("logits",),
    no_grad_hints={"logits": "the log-probabilities must keep their gradient with respect to the logits (no "
                             ".detach(), .item() or torch.tensor on them): the policy gradient flows through them."},
    note=_TOKENS_NOTE,
)

check_sequence_log_probs = _make_check(SEQUENCE_LOG_PROBS)

# --------------------------------------------------------------------------------------------------
# kl_k1 and kl_k3
# --------------------------------------------------------------------------------------------------


def _cases_kl() -> list[Case]:
    g = torch.Generator().manual_seed(81)

    def random_case(description, batch, width, scale, dtype=torch.float32, grad=True):
        ref_log_probs = _log_probs(g, batch, width, dtype=dtype) - 0.2
        log_probs = (ref_log_probs + _randn(g, batch, width, dtype=dtype, scale=scale)).clamp(max=-1e-3)
        return Case(description, dict(log_probs=log_probs.detach().requires_grad_(grad), ref_log_probs=ref_log_probs))

    return [
        Case("one token", dict(log_probs=_t([[-0.5]], requires_grad=True), ref_log_probs=_t([[-1.5]]))),
        Case("the policy IS the reference (every estimate 0)",
             dict(log_probs=_t([[-1.0, -2.0, -0.3]], requires_grad=True), ref_log_probs=_t([[-1.0, -2.0, -0.3]]))),
        Case("both directions: tokens the policy made likelier and less likely than the reference (B=2, T=3)",
             dict(log_probs=_t([[-0.1, -3.0, -1.0], [-2.0, -0.5, -0.7]], requires_grad=True),
                  ref_log_probs=_t([[-1.0, -1.0, -1.0], [-0.2, -0.5, -4.0]]))),
        random_case("float64 (B=3, T=5)", 3, 5, 0.5, torch.float64),
        random_case("random, close policies (B=4, T=8)", 4, 8, 0.1),
        random_case("random, far-apart policies (B=6, T=10)", 6, 10, 1.5),
        random_case("no gradient needed (B=2, T=4)", 2, 4, 0.5, grad=False),
        Case("a rare token: log-probs near -120 (its float32 probabilities underflow to 0)",
             dict(log_probs=_t([[-120.0, -0.5]], requires_grad=True), ref_log_probs=_t([[-118.0, -0.7]]))),
    ]


def _k2(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    return 0.5 * (log_probs - ref_log_probs) ** 2


def _k3_upside_down(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    log_ratio = log_probs - ref_log_probs  # log(pi / pi_ref): upside down
    return torch.expm1(log_ratio) - log_ratio


KL_K1 = Exercise(
    name="kl_k1",
    reference=losses.kl_k1,
    make_cases=_cases_kl,
    concept=("per token, the log-ratio of the policy's probability of the sampled token over the reference "
             "model's: positive where the policy likes the token more than the reference does; the same shape as "
             "the inputs, [B, T]."),
    mistakes=[
        Mistake("k1's sign is flipped: it is log pi_theta(y_t) - log pi_ref(y_t), the policy's log-prob minus the "
                "reference's (the KL from the policy to the reference, over tokens the policy sampled).",
                lambda log_probs, ref_log_probs: ref_log_probs - log_probs),
        Mistake("one number for the whole batch: k1 is per token, [B, T]; the caller masks and averages.",
                lambda log_probs, ref_log_probs: (log_probs - ref_log_probs).mean()),
        Mistake("the absolute value of the log-ratio is not k1: k1 is negative on a token the policy likes less than "
                "the reference does, and that is fine (its mean over samples is the KL).",
                lambda log_probs, ref_log_probs: (log_probs - ref_log_probs).abs()),
        Mistake("a ratio of probabilities is not k1: k1 is the LOG of that ratio, a difference of log-probs.",
                lambda log_probs, ref_log_probs: (log_probs - ref_log_probs).exp()),
        Mistake("that is the k3 estimator: k1 is the plain log-ratio.", losses.kl_k3),
    ],
    grad_args=("log_probs",),
    no_grad_hints={"log_probs": "keep the gradient with respect to log_probs (no .detach()): a KL term in a loss "
                                "must be differentiable; the caller detaches when it wants a reward."},
    note=_TOKENS_NOTE,
)

KL_K3 = Exercise(
    name="kl_k3",
    reference=losses.kl_k3,
    make_cases=_cases_kl,
    concept=("per token, with r the reference's probability of the sampled token over the policy's: (r - 1) "
             "minus log r. Never negative, 0 where the two agree; the same shape as the inputs, [B, T]."),
    mistakes=[
        Mistake("the ratio is upside down: r = pi_ref(y_t) / pi_theta(y_t), the REFERENCE over the policy "
                "(tokens are sampled from pi_theta, and E[pi_ref / pi_theta] = 1 is what makes k3 unbiased).",
                _k3_upside_down),
        Mistake("that is k1 (the log-ratio): k3 is (r - 1) - log r with r = pi_ref / pi_theta.", losses.kl_k1),
        Mistake("that is the k2 estimator, half the squared log-ratio: k3 is (r - 1) - log r.", _k2),
        Mistake("the log term is added: k3 is (r - 1) MINUS log r (that is what keeps it at 0 or above).",
                lambda log_probs, ref_log_probs: torch.expm1(ref_log_probs - log_probs) + (ref_log_probs - log_probs)),
        Mistake("the -1 is missing: k3 is (r - 1) - log r, 0 where the two policies agree (r = 1); r - log r is 1 "
                "there.", lambda log_probs, ref_log_probs: (ref_log_probs - log_probs).exp() - (ref_log_probs - log_probs)),
        Mistake("k3's sign is flipped: (r - 1) - log r is never negative.",
                lambda log_probs, ref_log_probs: -losses.kl_k3(log_probs, ref_log_probs)),
        Mistake("one number for the whole batch: k3 is per token, [B, T]; the caller masks and averages.",
                lambda log_probs, ref_log_probs: losses.kl_k3(log_probs, ref_log_probs).mean()),
        Mistake("r as exp(ref_log_probs) / exp(log_probs) is 0 / 0 = NaN where both probabilities underflow (a rare "
                "token): take r = exp(ref_log_probs - log_probs), the exp of the difference.",
                lambda log_probs, ref_log_probs: (ref_log_probs.exp() / log_probs.exp() - 1)
                - (ref_log_probs.exp() / log_probs.exp()).log()),
        Mistake("the log-probabilities are used as if they were probabilities: r is the ratio of the "
                "probabilities, exp of the difference of the log-probs.",
                lambda log_probs, ref_log_probs: (ref_log_probs / log_probs - 1) - (ref_log_probs / log_probs).log()),
    ],
    grad_args=("log_probs",),
    no_grad_hints={"log_probs": "keep the gradient with respect to log_probs (no .detach()): GRPO adds beta * k3 to "
                                "its loss, and the leash only pulls if the gradient flows through it."},
    note=_TOKENS_NOTE,
)

check_kl_k1 = _make_check(KL_K1)
check_kl_k3 = _make_check(KL_K3)

# --------------------------------------------------------------------------------------------------
# group_relative_advantages
# --------------------------------------------------------------------------------------------------


def _cases_group_relative_advantages() -> list[Case]:
    g = torch.Generator().manual_seed(82)
    binary = (torch.rand(5, 6, generator=g) > 0.6).float()  # [P, G] exact rewards, 0 or 1
    binary[1] = 1.0  # a prompt every sample solved: all rewards equal
    binary[3] = 0.0  # and one none did
    return [
        Case("one prompt, two samples", dict(rewards=_t([[1.0, 0.0]]), eps=1e-6, scale=True)),
        Case("one prompt whose four samples all got the same reward (advantage 0, not NaN)",
             dict(rewards=_t([[1.0, 1.0, 1.0, 1.0]]), eps=1e-6, scale=True)),
        Case("two prompts, one easy, one hard (P=2, G=4)",
             dict(rewards=_t([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.2, 0.0]]), eps=1e-6, scale=True)),
        Case("three prompts whose rewards live on different scales (P=3, G=3)",
             dict(rewards=_t([[10.0, 12.0, 14.0], [0.1, 0.2, 0.6], [-5.0, 5.0, 0.0]]), eps=1e-6, scale=True)),
        Case("scale=False: centring only (P=3, G=3)",
             dict(rewards=_t([[10.0, 12.0, 14.0], [0.1, 0.2, 0.6], [-5.0, 5.0, 0.0]]), eps=1e-6, scale=False)),
        Case("0/1 rewards, two groups all equal (P=5, G=6)", dict(rewards=binary, eps=1e-6, scale=True)),
        Case("float64, a larger eps (P=4, G=5)",
             dict(rewards=_randn(g, 4, 5, dtype=torch.float64, scale=2.0), eps=0.1, scale=True)),
        Case("random (P=6, G=8)", dict(rewards=_randn(g, 6, 8, shift=1.0), eps=1e-6, scale=True)),
    ]


def _grouped(rewards: Tensor, eps: float, scale: bool, *, centre_dim: int | None = 1, std_dim: int | None = 1,
             unbiased: bool = True, use_eps: bool = True) -> Tensor:
    def reduce(fn, dim):
        return fn(rewards) if dim is None else fn(rewards, dim, keepdim=True)

    centred = rewards - reduce(torch.mean, centre_dim)
    if not scale:
        return centred
    std = rewards.std(unbiased=unbiased) if std_dim is None else rewards.std(std_dim, unbiased=unbiased, keepdim=True)
    return centred / (std + eps if use_eps else std)


GROUP_RELATIVE_ADVANTAGES = Exercise(
    name="group_relative_advantages",
    reference=losses.group_relative_advantages,
    make_cases=_cases_group_relative_advantages,
    concept=("each sample's reward minus the mean reward of the samples of the SAME prompt (its row), divided, "
             "when scale is True, by that row's sample standard deviation plus eps; [P, G] in and out, the dtype "
             "of the rewards."),
    mistakes=[
        Mistake("the eps argument is ignored (a constant of your own instead): use the eps you are given.",
                lambda rewards, eps, scale: _grouped(rewards, 1e-8, scale)),
        Mistake("the std is divided without eps: a group whose samples all got the same reward has std 0, and "
                "0 / 0 is NaN. Add eps to the std (the advantage is then 0: nothing to learn from that prompt).",
                lambda rewards, eps, scale: _grouped(rewards, eps, scale, use_eps=False)),
        Mistake("the batch's mean (and std) instead of the group's: GRPO compares each sample only with the other "
                "samples of its own prompt (its row), so an easy prompt does not make every answer to a hard one "
                "look bad.", lambda rewards, eps, scale: _grouped(rewards, eps, scale, centre_dim=None, std_dim=None)),
        # a student's try (issue 49): the standardisation grpo_update's check names, written here with eps
        Mistake("you standardise over the whole batch, all P x G rewards at once, and divide whatever scale is: "
                "GRPO compares each sample only with the other samples of its own prompt (the mean and std of its "
                "row), and with scale False it only centres.",
                lambda rewards, eps, scale: _grouped(rewards, eps, True, centre_dim=None, std_dim=None)),
        Mistake("the mean over the group, but the std over the whole batch: both statistics are the group's (the "
                "row's).", lambda rewards, eps, scale: _grouped(rewards, eps, scale, std_dim=None)),
        Mistake("the statistics are taken over the prompts (dim 0) instead of over a prompt's samples (dim 1): "
                "rewards is [P, G], one row per prompt.",
                lambda rewards, eps, scale: _grouped(rewards, eps, scale, centre_dim=0, std_dim=0)),
        Mistake("with scale True the advantages are divided by the group's std: you only centred the rewards.",
                lambda rewards, eps, scale: _grouped(rewards, eps, False)),
        Mistake("with scale False only the centring is kept (Dr. GRPO's variant): do not divide by the std then.",
                lambda rewards, eps, scale: _grouped(rewards, eps, True)),
        Mistake("the population std (dividing by G) instead of the sample std (dividing by G - 1, torch's default "
                "and this exercise's convention, as in common GRPO implementations).", lambda rewards, eps, scale: _grouped(rewards, eps, scale, unbiased=False)),
        # sqrt(var + eps) for std + eps (a student's try, issue 49): equal within the tolerance for eps = 1e-6,
        # 5% apart on the case with eps = 0.1
        Mistake("eps is added to the variance, under the square root: the exercise adds it to the standard deviation "
                "(the group's std, plus eps). The two agree for a tiny eps such as 1e-6, not for a larger one.",
                lambda rewards, eps, scale: (rewards - rewards.mean(1, keepdim=True))
                / torch.sqrt(rewards.var(1, keepdim=True) + eps) if scale else _grouped(rewards, eps, scale)),
        Mistake("the rewards are not centred: subtract the group's mean first (the mean is GRPO's baseline, "
                "in place of a critic).",
                lambda rewards, eps, scale: rewards / (rewards.std(1, keepdim=True) + eps) if scale else rewards),
    ],
)

check_group_relative_advantages = _make_check(GROUP_RELATIVE_ADVANTAGES)

# --------------------------------------------------------------------------------------------------
# masked_clipped_loss
# --------------------------------------------------------------------------------------------------


def _loss_case(g: torch.Generator, description: str, lengths: list[int], width: int, *, per_token: bool,
               scale: float = 0.3, clip_eps: float = 0.2, dtype: torch.dtype = torch.float32,
               bool_mask: bool = False, old_grad: bool = False) -> Case:
    batch = len(lengths)
    mask = _mask(lengths, width, dtype)
    old = _log_probs(g, batch, width, dtype=dtype) - 0.3  # [B, T]
    new = (old + _randn(g, batch, width, dtype=dtype, scale=scale)).clamp(max=-1e-3)
    # the padding holds garbage, as a real batch may: a log-prob of 0 and a ratio far from 1
    new = torch.where(mask.bool(), new, torch.zeros_like(new))
    old = torch.where(mask.bool(), old, torch.full_like(old, -3.0))
    advantages = _randn(g, *((batch, width) if per_token else (batch,)), dtype=dtype)
    return Case(description, dict(log_probs=new.requires_grad_(True), old_log_probs=old.requires_grad_(old_grad),
                                  advantages=advantages, mask=mask.bool() if bool_mask else mask, clip_eps=clip_eps))


def _token_surrogate(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, clip_eps: float, *,
                     reduce: Callable[[Tensor, Tensor], Tensor] = torch.min, clip: bool = True) -> Tensor:
    """The per-token surrogate [B, T] (before the sign and the mean); advantages [B] broadcast over T."""
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    ratio = torch.exp(log_probs - old_log_probs)
    if not clip:
        return ratio * advantages
    return reduce(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)


def _sequence_mean_loss(log_probs, old_log_probs, advantages, mask, clip_eps):
    per_token = _token_surrogate(log_probs, old_log_probs, advantages, clip_eps)
    mask = mask.to(per_token.dtype)
    return -((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()


def _cases_masked_clipped_loss() -> list[Case]:
    g = torch.Generator().manual_seed(83)
    old = _t([[-1.0, -1.0, -2.0, -0.5, -1.5]])
    return [
        Case("one response of one token, ratio inside the clip range",
             dict(log_probs=_t([[-1.0]], requires_grad=True), old_log_probs=_t([[-1.1]]), advantages=_t([1.0]),
                  mask=_t([[1.0]]), clip_eps=0.2)),
        Case("one response of 5 tokens: the four clipping regions plus a ratio inside (per-token advantages)",
             dict(log_probs=(old + _t([[0.5, -0.5, 0.5, -0.5, 0.05]])).requires_grad_(), old_log_probs=old,
                  advantages=_t([[1.0, 2.0, -1.0, -2.0, 0.5]]), mask=_t([[1.0] * 5]), clip_eps=0.2)),
        Case("two responses of lengths 3 and 1, one advantage per response, garbage on the padding",
             dict(log_probs=_t([[-0.5, -1.2, -0.1], [-2.0, 0.0, 0.0]], requires_grad=True),
                  old_log_probs=_t([[-0.7, -1.0, -0.4], [-1.0, -5.0, -5.0]]), advantages=_t([1.0, -0.5]),
                  mask=_t([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]), clip_eps=0.2)),
        _loss_case(g, "B = T = 4: per-response advantages [B] must broadcast over the tokens, not the responses",
                   [4, 2, 3, 1], 4, per_token=False),
        _loss_case(g, "per-response advantages, lengths 6, 1, 4 (T=6)", [6, 1, 4], 6, per_token=False, scale=0.5),
        _loss_case(g, "per-token advantages, a bool mask, lengths 5, 8, 2 (T=8)", [5, 8, 2], 8, per_token=True,
                   bool_mask=True),
        _loss_case(g, "float64, clip_eps=0.1, lengths 3, 7 (T=7)", [3, 7], 7, per_token=False, clip_eps=0.1,
                   dtype=torch.float64),
        _loss_case(g, "old_log_probs that still carry a graph (no gradient may reach them), lengths 5, 3 (T=5)",
                   [5, 3], 5, per_token=False, old_grad=True),
        _loss_case(g, "random, 8 responses of lengths 1 to 12 (T=12)", [12, 1, 5, 9, 12, 3, 7, 2], 12,
                   per_token=False),
        _loss_case(g, "no real token at all: padding only (the loss is 0, not nan)", [0, 0, 0, 0], 16,
                   per_token=False),
    ]


def _loss(per_token_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """A wrong version that differs from the reference only in its per-token surrogate (masked token mean)."""
    return lambda log_probs, old_log_probs, advantages, mask, clip_eps: -losses.masked_mean(
        per_token_fn(log_probs, old_log_probs, advantages, clip_eps), mask)


MASKED_CLIPPED_LOSS = Exercise(
    name="masked_clipped_loss",
    reference=losses.masked_clipped_loss,
    make_cases=_cases_masked_clipped_loss,
    concept=("PPO's clipped loss on tokens, one number: for each real token, the smaller of the ratio times its "
             "advantage and the ratio clipped to [1 - eps, 1 + eps] times its advantage (the ratio formed from the "
             "log-probabilities, a response's advantage shared by all its tokens), averaged over every real token "
             "of the batch (padding never counts), and negated into a loss."),
    mistakes=[
        Mistake("max instead of min: PPO keeps the pessimistic MIN of the unclipped and the clipped surrogate.",
                _loss(lambda lp, old, adv, eps: _token_surrogate(lp, old, adv, eps, reduce=torch.max))),
        Mistake("the mask is ignored: the padding's positions (garbage log-probs here) enter the mean. Average "
                "over the real tokens only: the masked sum divided by the number of real tokens.",
                lambda lp, old, adv, mask, eps: -_token_surrogate(lp, old, adv, eps).mean()),
        Mistake("the padding is zeroed but still counted: divide the masked sum by the number of REAL tokens "
                "(the sum of the mask), not by B * T.",
                lambda lp, old, adv, mask, eps: -(_token_surrogate(lp, old, adv, eps) * mask.to(lp.dtype)).mean()),
        Mistake("the paper's per-sequence mean (DeepSeekMath averages each response over its own tokens, then the "
                "responses); this contract is token-level (as DAPO; Dr. GRPO divides by a constant): the masked sum over every real "
                "token of the batch divided by their number, so a long response counts by its tokens.",
                _sequence_mean_loss),
        Mistake("an all-padding batch divides 0 by 0 (nan): divide the masked sum by the number of real tokens, "
                "but by at least 1.",
                lambda lp, old, adv, mask, eps: -(_token_surrogate(lp, old, adv, eps) * mask.to(lp.dtype)).sum()
                / mask.to(lp.dtype).sum()),
        Mistake("a sum over the tokens, not a mean: divide by the number of real tokens.",
                lambda lp, old, adv, mask, eps: -(_token_surrogate(lp, old, adv, eps) * mask.to(lp.dtype)).sum()),
        Mistake("the padding's terms are in the sum: the mask never multiplies the per-token terms, so the garbage "
                "on the padding adds to the loss, which is then divided by the number of real tokens. Zero the "
                "padding's terms (times the mask) before summing.",
                lambda lp, old, adv, mask, eps: -_token_surrogate(lp, old, adv, eps).sum()
                / mask.to(lp.dtype).sum().clamp(min=1)),
        Mistake("you clip the advantage: clip the ratio, not the advantage (the ratio is what must stay within "
                "[1 - eps, 1 + eps]; the advantage multiplies it unclipped).",
                _loss(lambda lp, old, adv, eps: (lambda ratio, a: torch.min(
                    ratio * a, ratio * a.clamp(1 - eps, 1 + eps)))(torch.exp(lp - old),
                                                                   adv.unsqueeze(-1) if adv.dim() == 1 else adv))),
        Mistake("only the clipped term is kept: PPO takes the MIN of the unclipped and the clipped surrogate, which "
                "keeps the full penalty where the ratio moved the wrong way.",
                _loss(lambda lp, old, adv, eps: _token_surrogate(lp, old, adv, eps,
                                                                 reduce=lambda unclipped, clipped: clipped))),
        Mistake("you never clip: the clipped surrogate (the ratio clipped to [1 - eps, 1 + eps], times the "
                "advantage) is missing.",
                _loss(lambda lp, old, adv, eps: _token_surrogate(lp, old, adv, eps, clip=False))),
        Mistake("only the upper side is clipped: the ratio is clipped to [1 - eps, 1 + eps], both bounds.",
                _loss(lambda lp, old, adv, eps: torch.min(
                    torch.exp(lp - old) * (adv.unsqueeze(-1) if adv.dim() == 1 else adv),
                    torch.exp(lp - old).clamp(max=1 + eps) * (adv.unsqueeze(-1) if adv.dim() == 1 else adv)))),
        Mistake("loss sign flipped: this is a LOSS to minimise, the negative of the clipped objective.",
                lambda lp, old, adv, mask, eps: -losses.masked_clipped_loss(lp, old, adv, mask, eps)),
        Mistake("the ratio is upside down: it is pi_theta over pi_old, exp(log_probs - old_log_probs).",
                lambda lp, old, adv, mask, eps: losses.masked_clipped_loss(old, lp, adv, mask, eps)),
        Mistake("you forgot the exp: log_probs - old_log_probs is the LOG of the ratio.",
                _loss(lambda lp, old, adv, eps: torch.min(
                    (lp - old) * (adv.unsqueeze(-1) if adv.dim() == 1 else adv),
                    (lp - old).clamp(1 - eps, 1 + eps) * (adv.unsqueeze(-1) if adv.dim() == 1 else adv)))),
    ],
    grad_args=("log_probs",),
    no_grad_hints={"log_probs": "the loss must stay connected to log_probs: no .detach() or .item() on them, and no "
                                "new constant in place of the loss (a batch without a real token included: the "
                                "masked sum divided by at least 1 is 0 and keeps the graph)."},
    leak_hints={"old_log_probs": "the ratio does not detach the old log-probabilities: they were recorded when the "
                                 "responses were sampled and are constants of the update (.detach() them), or the "
                                 "gradient also pushes on the policy that sampled."},
    note=_TOKENS_NOTE,
)

check_masked_clipped_loss = _make_check(MASKED_CLIPPED_LOSS)

# --------------------------------------------------------------------------------------------------
# The checks of this chapter
# --------------------------------------------------------------------------------------------------

EXERCISES: list[Exercise] = [SEQUENCE_LOG_PROBS, KL_K1, KL_K3, GROUP_RELATIVE_ADVANTAGES, MASKED_CLIPPED_LOSS]

CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "sequence_log_probs": check_sequence_log_probs,
    "kl_k1": check_kl_k1,
    "kl_k3": check_kl_k3,
    "group_relative_advantages": check_group_relative_advantages,
    "masked_clipped_loss": check_masked_clipped_loss,
}

__all__ = ["SEQUENCE_LOG_PROBS", "KL_K1", "KL_K3", "GROUP_RELATIVE_ADVANTAGES", "MASKED_CLIPPED_LOSS", "EXERCISES",
           "CHECKS", *(f"check_{name}" for name in CHECKS)]


# --------------------------------------------------------------------------------------------------
# grpo_update: the learner's GRPO loop, checked by what it does (a smoke test, then a short training run)
# --------------------------------------------------------------------------------------------------

# The training run of the check: from the cached pretrained model, RUN_UPDATES updates of RUN_PROMPTS prompts x
# RUN_GROUP samples, RUN_EPOCHS epochs each, Adam at RUN_LR. It passes when the exact accuracy on held-out prompts (one
# sample each, temperature 1) rose by at least MIN_GAIN. Calibrated on the reference loop from the cached pretrained
# model: seeds 0-3 gained 0.35 to 0.42 (16-23 s each on a busy 2-core CPU); a loop that does not learn gains ~0.
RUN_SEED = 0
RUN_UPDATES = 60
RUN_PROMPTS = 16
RUN_GROUP = 8
RUN_EPOCHS = 2
RUN_LR = 3e-4
RUN_CLIP_EPS = 0.2
RUN_KL_COEF = 0.02
EVAL_PROMPTS = 256
MIN_GAIN = 0.10


def reference_grpo_update(policy, reference, optimizer, prompts, generator, group_size, epochs, clip_eps, kl_coef):
    """The check's own GRPO update (the solved notebook's): sample ``group_size`` responses per prompt, score them
    with the exact verifier, group-relative advantages, ``epochs`` steps of the masked clipped loss plus
    ``kl_coef`` times the masked mean k3 to the frozen reference. Returns ``{"reward", "kl"}`` of the batch."""
    return _grpo_update(policy, reference, optimizer, prompts, generator, group_size, epochs, clip_eps, kl_coef)


def _grpo_update(policy, reference, optimizer, prompts, generator, group_size, epochs, clip_eps, kl_coef, *,
                 group_major=False, old_in_loop=False, zero_grad=True, kl_sign=1.0, whole_batch=False,
                 population_std=False, k3_over_padding=False, no_clip=False, no_grad_clip=False):
    """:func:`reference_grpo_update`, or (with a keyword changed) one of the known wrong versions the smoke call
    names: the rewards reshaped group-major, the old log-probs recomputed inside the epochs (no trust region), the
    gradients never zeroed, the KL term subtracted or left out (``kl_sign`` -1 or 0), the advantages standardised
    over the whole batch or with the population std, k3 averaged over the padding too, the ratio never clipped, the
    gradient norm never clipped."""
    from ...rl.lm import task
    from ...rl.lm.model import generate, response_logits

    repeated = [prompt for prompt in prompts for _ in range(group_size)]  # B = P * G, prompt-major
    prompt_tokens = task.prompt_batch(repeated)  # [B, Lp]
    rollout = generate(policy, prompt_tokens, generator=generator)
    tokens, mask = rollout.tokens, rollout.mask  # [B, T]
    rewards = task.score(repeated, rollout.texts, "exact")  # [B]
    grouped = rewards.view(group_size, len(prompts)) if group_major else rewards.view(len(prompts), group_size)
    if whole_batch:
        advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-6)  # [B]
    elif population_std:
        advantages = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True, unbiased=False)
                                                                   + 1e-6)).reshape(-1)  # [B]
    else:
        advantages = losses.group_relative_advantages(grouped).reshape(-1)  # [B]
    with torch.no_grad():
        logits = response_logits(policy, prompt_tokens, tokens)  # [B, T, V]
        ref_logits = response_logits(reference, prompt_tokens, tokens)
        old_log_probs = losses.token_log_probs(logits, tokens)  # [B, T]
        ref_log_probs = losses.token_log_probs(ref_logits, tokens)
        kl = (losses.sequence_log_probs(logits, tokens, mask) - losses.sequence_log_probs(ref_logits, tokens, mask))
    policy.train()
    for _ in range(epochs):
        log_probs = losses.token_log_probs(response_logits(policy, prompt_tokens, tokens), tokens)  # [B, T]
        old = log_probs.detach() if old_in_loop else old_log_probs
        k3 = losses.kl_k3(log_probs, ref_log_probs)  # [B, T]
        loss = (losses.masked_clipped_loss(log_probs, old, advantages, mask, math.inf if no_clip else clip_eps)
                + kl_sign * kl_coef * (k3.mean() if k3_over_padding else losses.masked_mean(k3, mask)))
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if not no_grad_clip:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
    policy.eval()
    return {"reward": rewards.mean().item(), "kl": kl.mean().item()}


# The smoke call's comparison with the reference loop: the policy is moved off the reference (Gaussian noise of
# SMOKE_NOISE on every parameter, so the KL term is not 0), plain SGD at SMOKE_LR (deterministic, no state), three
# epochs (so a missing trust region or a missing zero_grad shows in the second and third steps); the learner's
# returned numbers must match the reference loop's and its parameter change must be within SMOKE_RTOL of it
# (relative, in norm). Measured: the loop written in another valid order (reference first, the KL from per-token
# sums, zero_grad first) matches exactly; the known wrong versions differ by 0.46 (the old log-probs recomputed in
# the epochs, or zero_grad missing), 0.66 (both), 0.84 (group-major) and 1.95 (the KL term subtracted), 1.15 (no KL
# term), 1.31 (whole-batch standardisation), 0.11 (population std, and k3 averaged over the padding), 0.13 (no
# clipping); no two of them within 0.05 of each other (2026-11-26).
SMOKE_PROMPTS = ["413", "9071", "555", "20", "8812", "64"]
SMOKE_GROUP = 4
SMOKE_EPOCHS = 3
SMOKE_LR = 0.3
SMOKE_NOISE = 0.02
SMOKE_RTOL = 1e-2
_NO_GRAD_CLIP = ("the gradient norm is not clipped at 1: clip it after backward and before the step (step 4 of the "
                 "exercise); without it one large gradient throws the policy far off (here its parameters blew up).")
_GRPO_MISTAKES = [
    (dict(group_major=True), "the rewards are grouped group-major: rewards.view(group_size, P) puts samples of "
                             "different prompts in one group. The batch is prompt-major (the G samples of a prompt "
                             "are adjacent): rewards.view(P, G)."),
    (dict(old_in_loop=True), "the old log-probs are recomputed inside the epochs: then the ratio is 1 at every epoch "
                             "and nothing is clipped (no trust region). Compute them once, under torch.no_grad(), "
                             "before the epochs."),
    (dict(zero_grad=False), "optimizer.zero_grad() is missing: each epoch's gradient is added to the previous ones'."),
    (dict(old_in_loop=True, zero_grad=False), "the old log-probs are recomputed inside the epochs (compute them once, "
                                              "before the epochs, under torch.no_grad()) and optimizer.zero_grad() "
                                              "is missing (the gradients pile up across epochs)."),
    (dict(kl_sign=-1.0), "the KL term is subtracted: add kl_coef times the masked mean k3 to the loss (the leash "
                         "pulls towards the reference)."),
    (dict(kl_sign=0.0), "the KL term is missing: add kl_coef times the masked mean k3 to the loss (the leash that "
                        "keeps the policy near the reference)."),
    (dict(whole_batch=True), "the advantages are standardised over the whole batch: GRPO compares each response with "
                             "the other samples of its own prompt (mean and std per group of G, rewards.view(P, G))."),
    (dict(population_std=True), "the group std is the population std (divides by G): GRPO's, and the package's "
                                "group_relative_advantages, is the sample std (divides by G - 1), torch's default."),
    (dict(k3_over_padding=True), "k3 is averaged over the padding too: take its masked mean over the real tokens "
                                 "(losses.masked_mean(k3, mask)), as the clipped loss does."),
    (dict(no_clip=True), "the ratio is never clipped: the loss is PPO's clipped surrogate on tokens, "
                         "min(rho A, clip(rho, 1 - clip_eps, 1 + clip_eps) A)."),
    # without the gradient-norm clip the smoke call's SGD steps blow the parameters up; the replay agrees all the same
    # (to 4e-5 of the move, a loop written in another order included; the two below are 2% apart)
    (dict(no_grad_clip=True), _NO_GRAD_CLIP),
    (dict(no_grad_clip=True, no_clip=True), "neither the ratio nor the gradient norm is clipped: the loss is PPO's "
                                            "clipped surrogate on tokens, min(rho A, clip(rho, 1 - clip_eps, "
                                            "1 + clip_eps) A), and the gradient norm is clipped at 1 after backward "
                                            "and before the step (step 4 of the exercise); without that clip the "
                                            "policy's parameters blew up."),
]


def _smoke_models(start_model):
    import copy

    from ...rl.lm.pretrain import load_pretrained
    start = start_model if start_model is not None else load_pretrained()
    policy = copy.deepcopy(start).eval()
    with torch.no_grad():
        noise = torch.Generator().manual_seed(5)
        for parameter in policy.parameters():
            parameter.add_(SMOKE_NOISE * torch.randn(parameter.shape, generator=noise, dtype=parameter.dtype))
    reference = copy.deepcopy(start).eval().requires_grad_(False)
    return policy, reference


def _smoke_run(fn, policy, reference, name=None, arg_names=None):
    """One call of ``fn`` (the learner's through the harness when ``name`` is given) on copies of the smoke models,
    with SGD; returns (stats, the parameter change, the copies)."""
    import copy

    policy, reference = copy.deepcopy(policy), copy.deepcopy(reference)
    before = [p.detach().clone() for p in policy.parameters()]
    optimizer = torch.optim.SGD(policy.parameters(), lr=SMOKE_LR)
    args = [policy, reference, optimizer, list(SMOKE_PROMPTS), torch.Generator().manual_seed(1), SMOKE_GROUP,
            SMOKE_EPOCHS, RUN_CLIP_EPS, RUN_KL_COEF]
    stats = _call_learner(fn, name, args, arg_names) if name is not None else fn(*args)
    delta = torch.cat([(p.detach() - b).flatten() for p, b in zip(policy.parameters(), before)])
    return stats, delta, policy, reference


class GRPOReport:
    """What :func:`check_grpo_update` measured: the run's per-update ``history`` (``reward``, ``kl``), the exact
    accuracy on held-out prompts ``before`` and ``after``, the trained ``policy`` and its ``reference``."""

    def __init__(self, history, before, after, policy, reference, seconds):
        self.history, self.before, self.after = history, before, after
        self.policy, self.reference, self.seconds = policy, reference, seconds

    @property
    def gain(self) -> float:
        return self.after - self.before

    def __repr__(self) -> str:
        return (f"GRPOReport(updates={len(self.history['reward'])}, before={self.before:.3f}, after={self.after:.3f}, "
                f"seconds={self.seconds:.1f})")


def _fresh_models(start_model=None):
    import copy

    from ...rl.lm.pretrain import load_pretrained
    start = start_model if start_model is not None else load_pretrained()
    policy = copy.deepcopy(start).eval()
    reference = copy.deepcopy(start).eval().requires_grad_(False)
    return policy, reference


def _grpo_fail(problem: str, hint: str, certain: bool = True, label: str | None = None) -> AssertionError:
    """The check's failure: ``hint`` as the probable mistake (``certain``), else as what the reference loop does, or
    under ``label`` (a checklist is not a mistake the check recognised)."""
    if label is None:
        label = "Probable mistake: " if certain else \
            "No known mistake reproduces your update. What the reference loop does: "
    return AssertionError(f"grpo_update: {problem}\n{label}{hint}")


def _unclipped_gradient(delta: Tensor) -> str | None:
    """The smoke call's diagnosis of a loop that does not clip the gradient norm at 1 when no known mistake's replay
    agrees with it (another mistake beside it): with the clip, each SGD step moves the parameters by SMOKE_LR at most
    (lr times a gradient of norm 1 at most), so SMOKE_EPOCHS steps by SMOKE_EPOCHS * SMOKE_LR at most; a larger move
    is one the clipped loop cannot make. None within the bound."""
    bound = SMOKE_EPOCHS * SMOKE_LR
    moved = float(delta.norm())
    if moved == moved and moved <= bound * (1 + 1e-4):  # NaN is beyond any bound
        return None
    return (f"the gradient norm is not clipped at 1: your update moved the policy's parameters by {moved:.3g} in "
            f"norm, and {SMOKE_EPOCHS} SGD steps at lr {SMOKE_LR:g} on gradients clipped at norm 1 move them by "
            f"{bound:g} at most. Clip it after backward and before the step (step 4 of the exercise); until the clip "
            f"is there, the rest of your update cannot be compared.")


def _number(stats: Any, key: str) -> float | None:
    try:
        value = float(stats[key])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def check_grpo_update(fn: Callable[..., Any], start_model=None, seed: int = RUN_SEED, updates: int = RUN_UPDATES,
                      verbose: bool = True, compare: bool = True, require_gain: bool = True) -> GRPOReport:
    """Check ``grpo_update(policy, reference, optimizer, prompts, generator, group_size, epochs, clip_eps, kl_coef)``
    by what it does: one small call first, on a policy moved off the reference (it returns the batch's ``reward`` and
    ``kl``, changes the policy, leaves the reference alone; with ``compare``, the numbers and the parameter change
    must match :func:`reference_grpo_update`'s on the same samples, and a known wrong version is named); then a
    training run from the pretrained model, which passes when the exact accuracy on 256 held-out prompts rose by at
    least ``MIN_GAIN``. ``compare=False`` skips the comparison, to measure another algorithm with the same signature
    (the chapter's stretch task); ``require_gain=False`` returns the report whatever the gain, so a comparison over
    seeds keeps the seeds where a method did worst. Returns a :class:`GRPOReport`."""
    import time

    from ...rl.lm.pretrain import evaluate_sorting, held_out_prompts
    from ...rl.lm.task import make_prompts

    name = "grpo_update"
    arg_names = ["policy", "reference", "optimizer", "prompts", "generator", "group_size", "epochs", "clip_eps",
                 "kl_coef"]
    # 1. the smoke call: on a policy moved off the reference, compared with the reference loop
    smoke_policy, smoke_reference = _smoke_models(start_model)
    stats, delta, policy, reference = _smoke_run(fn, smoke_policy, smoke_reference, name, arg_names)
    if not isinstance(stats, dict):
        raise _grpo_fail(f"it returned a {type(stats).__name__}, expected a dict with the batch's 'reward' and 'kl'.",
                         "return {'reward': mean exact reward of the sampled responses, 'kl': mean over them of "
                         "the policy's minus the reference's sequence log-probability}, both Python floats.")
    for key in ("reward", "kl"):
        if _number(stats, key) is None:
            raise _grpo_fail(f"stats[{key!r}] is missing or not a finite number: {stats.get(key)!r}.",
                             "return both numbers as Python floats (.item()).")
    if not 0.0 <= _number(stats, "reward") <= 1.0:
        raise _grpo_fail(f"the batch's reward is {stats['reward']!r}, outside [0, 1].",
                         "'reward' is the mean of the exact rewards (0 or 1 each) of the sampled responses, before "
                         "any advantage is computed.")
    if any(not torch.equal(a, b.detach()) for a, b in zip(smoke_reference.parameters(), reference.parameters())):
        raise _grpo_fail("the reference model's parameters changed.",
                         "the reference is frozen: only the policy's parameters are in the optimizer; compute the "
                         "reference's log-probs under torch.no_grad() and never step it.")
    if not bool(delta.abs().max() > 0):
        raise _grpo_fail("the policy's parameters did not change.",
                         "after the loss is computed: optimizer.zero_grad(), loss.backward(), optimizer.step(), for "
                         "each of the `epochs` epochs.")
    if compare:
        expected, expected_delta, _, _ = _smoke_run(reference_grpo_update, smoke_policy, smoke_reference)
        setting = (f"one call on prompts {SMOKE_PROMPTS} x {SMOKE_GROUP} samples, {SMOKE_EPOCHS} epochs, SGD at lr "
                   f"{SMOKE_LR}, a policy moved off the reference")
        got_reward, got_kl = _number(stats, "reward"), _number(stats, "kl")
        if abs(got_reward - expected["reward"]) > 1e-5:
            raise _grpo_fail(f"{setting}: the returned reward is {got_reward:.6f}, expected {expected['reward']:.6f} "
                             f"(the mean exact reward of the {len(SMOKE_PROMPTS) * SMOKE_GROUP} samples).",
                             "'reward' is the mean of the raw exact rewards (score(..., 'exact')), not of the "
                             "advantages (those average to 0 in every group)." if abs(got_reward) < 1e-5 else
                             "sample with generate(policy, prompt_batch(repeated), generator=generator) from the "
                             "generator you are given, prompt-major, and score with the exact verifier.")
        kl_tol = 1e-4 * max(1.0, abs(expected["kl"]))
        if abs(got_kl - expected["kl"]) > kl_tol:
            negated = abs(got_kl + expected["kl"]) <= kl_tol
            raise _grpo_fail(f"{setting}: the returned kl is {got_kl:.6f}, expected {expected['kl']:.6f}.",
                             "the sign is flipped: the KL is the policy's sequence log-prob MINUS the reference's."
                             if negated else
                             "'kl' is the mean over the responses of sequence_log_probs under the policy (before "
                             "the update) minus under the reference, on the logits computed once before the epochs.")
        difference = ((delta - expected_delta).norm() / expected_delta.norm()).item()
        if difference > SMOKE_RTOL:
            named = None
            for keywords, message in _GRPO_MISTAKES:
                wrong_delta = _smoke_run(lambda *args, kw=keywords: _grpo_update(*args, **kw), smoke_policy,
                                         smoke_reference)[1]
                # relative to the larger move: a replay whose parameters blew up is compared at its own scale
                if ((delta - wrong_delta).norm() / max(expected_delta.norm(), wrong_delta.norm())).item() \
                        <= SMOKE_RTOL:
                    named = message
                    break
            named = named or _unclipped_gradient(delta)
            raise _grpo_fail(
                f"{setting}: the update moved the policy's parameters differently from the reference loop (relative "
                f"difference {difference:.3g}, at most {SMOKE_RTOL} allowed).",
                named or "prompt-major groups ([P, G]) standardised per group, old and reference log-probs once "
                         "under torch.no_grad() before the epochs, loss = masked clipped loss + kl_coef * masked mean "
                         "k3, then zero_grad, backward, clip the gradient norm at 1, step, each epoch.",
                certain=named is not None)
    # 2. the training run
    started = time.perf_counter()
    torch.manual_seed(seed)
    policy, reference = _fresh_models(start_model)
    optimizer = torch.optim.Adam(policy.parameters(), lr=RUN_LR)
    prompt_stream = torch.Generator().manual_seed(seed)
    sample_stream = torch.Generator().manual_seed(seed + 1)
    evaluation = held_out_prompts(EVAL_PROMPTS)
    before = evaluate_sorting(policy, evaluation, seed=seed)["sampled_exact"]
    history: dict[str, list[float]] = {"reward": [], "kl": []}
    for update in range(updates):
        prompts = make_prompts(RUN_PROMPTS, prompt_stream)
        stats = _call_learner(fn, name, [policy, reference, optimizer, prompts, sample_stream, RUN_GROUP, RUN_EPOCHS,
                                         RUN_CLIP_EPS, RUN_KL_COEF], arg_names)
        for key in history:
            history[key].append(_number(stats, key) if isinstance(stats, dict) else float("nan"))
        if verbose and (update % 10 == 0 or update == updates - 1):
            print(f"update {update:3d}: batch reward {history['reward'][-1]:.3f}, KL to the reference "
                  f"{history['kl'][-1]:.3f}")
    after = evaluate_sorting(policy, evaluation, seed=seed)["sampled_exact"]
    report = GRPOReport(history, before, after, policy, reference, time.perf_counter() - started)
    if not require_gain:
        print(f"{name}: the exact accuracy on {EVAL_PROMPTS} held-out prompts went from {before:.3f} to {after:.3f} "
              f"(one sampled answer per prompt) in {updates} updates (a gain of {report.gain:+.3f}; not checked: "
              f"require_gain=False)")
        return report
    if report.gain < MIN_GAIN:
        raise _grpo_fail(
            f"after {updates} updates the exact accuracy on {EVAL_PROMPTS} held-out prompts went from {before:.3f} to "
            f"{after:.3f} (one sampled answer per prompt; a gain of {report.gain:+.3f}); the reference loop gains at "
            f"least {MIN_GAIN:.2f} with the same settings.",
            "run the function checks above first. Then: are the advantages the group-relative ones of the EXACT "
            "rewards, [P, G] with the G samples of a prompt in one row (prompt-major)? Are the old and reference "
            "log-probs computed once, under torch.no_grad(), before the epochs? Is the KL term added to the loss "
            "(not subtracted)?",
            label=(("No known mistake reproduces this: your update matched the reference loop's on the small "
                    "call above. " if compare else "") + "What to look at: "))
    print(f"✓ {name}: the exact accuracy on {EVAL_PROMPTS} held-out prompts went from {before:.3f} to {after:.3f} "
          f"(one sampled answer per prompt) in {updates} updates of {RUN_PROMPTS} prompts x {RUN_GROUP} samples (a gain "
          f"of {report.gain:+.3f}; at least {MIN_GAIN:.2f} needed; {report.seconds:.0f} s)")
    return report


# A write-the-loop check (it trains for ~20 s): kept out of CHECKS, which every function check is in.
LOOP_CHECKS: dict[str, Callable[..., Any]] = {"grpo_update": check_grpo_update}
LOOP_REFERENCES: dict[str, Callable[..., Any]] = {"grpo_update": reference_grpo_update}
__all__ += ["check_grpo_update", "reference_grpo_update", "GRPOReport", "LOOP_CHECKS", "LOOP_REFERENCES"]
