"""A tiny causal transformer in plain torch, and sampling from it.

:class:`TinyLM` is a decoder-only transformer (GPT's shape): token and learned position embeddings,
pre-LayerNorm blocks of causal self-attention and an MLP, a final LayerNorm and a linear head over the
14-token vocabulary of :mod:`pgcourse.rl.lm.task`. An optional scalar **value head** reads the same hidden
states (PPO's critic, sharing the trunk with the policy).

Padding: prompts are left-padded (every response starts in the same column), so the model takes the
``PAD`` tokens out of attention (a position never attends to a ``PAD`` key, except itself, which keeps a
padding row finite) and counts positions from the first real token.

:func:`generate` samples responses token by token (no KV cache: sequences are ~20 tokens and a full forward
pass per step costs well under a millisecond per sequence on a CPU) and returns a :class:`Generation`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .losses import token_log_probs
from .task import EOS, PAD, VOCAB_SIZE, decode


@dataclass
class ModelConfig:
    """The transformer's shape. ``max_len`` bounds prompt + response (positions it has embeddings for)."""

    vocab_size: int = VOCAB_SIZE
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_mlp: int = 256
    max_len: int = 32

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.d_model % config.n_heads:
            raise ValueError(f"d_model={config.d_model} must be divisible by n_heads={config.n_heads}")
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: Tensor, allowed: Tensor) -> Tensor:
        """``x [B, L, D]``; ``allowed [B, 1, L, L]`` bool, True where query ``i`` may attend to key ``j``."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)  # each [B, L, D]
        q, k, v = (t.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))  # [B, H, L, Dh]
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // self.n_heads)  # [B, H, L, L]
        scores = scores.masked_fill(~allowed, float("-inf"))
        mixed = torch.softmax(scores, dim=-1) @ v  # [B, H, L, Dh]
        return self.out(mixed.transpose(1, 2).reshape(B, L, D))  # [B, L, D]


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.d_mlp), nn.GELU(),
                                 nn.Linear(config.d_mlp, config.d_model))

    def forward(self, x: Tensor, allowed: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x), allowed)
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    """A decoder-only transformer over the sorting language, with an optional value head.

    ``model(tokens)`` returns logits ``[B, L, V]``: ``logits[:, i]`` is the distribution of token ``i + 1``.
    ``model(tokens, with_values=True)`` returns ``(logits, values)`` with ``values [B, L]`` (needs the value
    head: ``TinyLM(config, value_head=True)`` or :meth:`add_value_head`).
    """

    def __init__(self, config: ModelConfig | None = None, value_head: bool = False):
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.position_embedding = nn.Embedding(c.max_len, c.d_model)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.ln_final = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size)
        self.value_head: nn.Linear | None = None
        self.apply(self._init)
        if value_head:
            self.add_value_head()

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def add_value_head(self) -> TinyLM:
        """Attach a fresh scalar value head (zero-initialised: every value starts at 0); returns the model."""
        self.value_head = nn.Linear(self.config.d_model, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        return self

    def forward(self, tokens: Tensor, with_values: bool = False):
        B, L = tokens.shape
        if L > self.config.max_len:
            raise ValueError(f"sequence of {L} tokens is longer than the model's max_len={self.config.max_len}")
        real = tokens != PAD  # [B, L]
        positions = (real.long().cumsum(-1) - 1).clamp(min=0)  # [B, L], 0 at the first real token
        causal = torch.ones(L, L, dtype=torch.bool, device=tokens.device).tril()  # [L, L]
        allowed = causal & (real[:, None, :] | torch.eye(L, dtype=torch.bool, device=tokens.device))  # [B, L, L]
        x = self.token_embedding(tokens) + self.position_embedding(positions)  # [B, L, D]
        for block in self.blocks:
            x = block(x, allowed[:, None])
        hidden = self.ln_final(x)  # [B, L, D]
        logits = self.head(hidden)  # [B, L, V]
        if not with_values:
            return logits
        if self.value_head is None:
            raise ValueError("with_values=True needs a value head: TinyLM(config, value_head=True) or add_value_head()")
        return logits, self.value_head(hidden).squeeze(-1)  # [B, L, V], [B, L]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def response_logits(model: TinyLM, prompt_tokens: Tensor, response_tokens: Tensor, temperature: float = 1.0,
                    with_values: bool = False):
    """The model's logits (divided by ``temperature``) for each response position, aligned with the tokens.

    Args:
        prompt_tokens: ``[B, Lp]`` left-padded prompts (:func:`pgcourse.rl.lm.task.prompt_batch`).
        response_tokens: ``[B, T]`` responses, right-padded with ``PAD``.

    Returns:
        ``logits [B, T, V]`` with ``logits[:, t]`` the distribution that ``response_tokens[:, t]`` was drawn
        from; with ``with_values=True`` also ``values [B, T]``, :math:`V` of the state before token ``t``.
    """
    tokens = torch.cat([prompt_tokens, response_tokens], dim=1)  # [B, Lp + T]
    start, T = prompt_tokens.shape[1] - 1, response_tokens.shape[1]
    if with_values:
        logits, values = model(tokens, with_values=True)
        return logits[:, start:start + T] / temperature, values[:, start:start + T]  # [B, T, V], [B, T]
    return model(tokens)[:, start:start + T] / temperature  # [B, T, V]


@dataclass
class Generation:
    """Sampled responses.

    Attributes:
        tokens: ``[B, T]`` response token ids, ``PAD`` after the end.
        mask: ``[B, T]`` float, 1 from the first token through ``EOS`` inclusive; a response that never wrote
            ``EOS`` within ``max_new_tokens`` is cut there, its mask covering what it wrote.
        log_probs: ``[B, T]`` log-probabilities of the sampled tokens under the (tempered) sampling
            distribution, 0 on padding.
        texts: the decoded responses (``"134."``; a cut response has no ``"."``).
        finished: ``[B]`` bool, the response wrote ``EOS``.
    """

    tokens: Tensor
    mask: Tensor
    log_probs: Tensor
    texts: list[str]
    finished: Tensor

    @property
    def lengths(self) -> Tensor:
        """``[B]`` number of real tokens of each response (EOS included)."""
        return self.mask.sum(-1)


@torch.no_grad()
def generate(model: TinyLM, prompt_tokens: Tensor, max_new_tokens: int = 12, temperature: float = 1.0,
             generator: torch.Generator | None = None, greedy: bool = False) -> Generation:
    """Sample a response for every prompt, token by token, until ``EOS`` or ``max_new_tokens``.

    Args:
        model: the policy.
        prompt_tokens: ``[B, Lp]`` left-padded prompts ending with ``">"`` (:func:`~pgcourse.rl.lm.task.prompt_batch`).
        max_new_tokens: the most response tokens (EOS included).
        temperature: logits are divided by it before sampling (1 samples the model's own distribution).
        generator: the ``torch.Generator`` the samples are drawn from (on the model's device): same generator
            state, same samples.
        greedy: take the most likely token at every step instead of sampling.

    Returns:
        A :class:`Generation`.
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature!r} is invalid: expected a number > 0 (use greedy=True for argmax)")
    was_training = model.training
    model.eval()
    B = prompt_tokens.shape[0]
    device = prompt_tokens.device
    tokens = prompt_tokens
    done = torch.zeros(B, dtype=torch.bool, device=device)  # [B], EOS already written
    new_tokens, log_probs, masks = [], [], []
    for _ in range(max_new_tokens):
        logits = model(tokens)[:, -1] / temperature  # [B, V]
        if greedy:
            next_token = logits.argmax(-1)  # [B]
        else:
            probs = torch.softmax(logits, dim=-1)  # [B, V]
            next_token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # [B]
        step_log_probs = token_log_probs(logits[:, None], next_token[:, None]).squeeze(-1)  # [B]
        alive = ~done  # [B]
        next_token = torch.where(alive, next_token, torch.full_like(next_token, PAD))
        new_tokens.append(next_token)
        log_probs.append(step_log_probs * alive)
        masks.append(alive.float())
        done = done | (next_token == EOS)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
        if bool(done.all()):
            break
    model.train(was_training)
    response = torch.stack(new_tokens, dim=1)  # [B, T]
    return Generation(tokens=response, mask=torch.stack(masks, dim=1), log_probs=torch.stack(log_probs, dim=1),
                      texts=[decode(row) for row in response.cpu()], finished=done)
