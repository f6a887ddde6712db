"""Pretraining the tiny transformer on the hand-sorted corpus, and the cached pretrained weights.

Pretraining is next-token prediction: minimise the cross-entropy of the corpus's responses given their
prompts. The loss covers the **response tokens only** (the answer and its ``EOS``): the prompt's digits are
random, so predicting them teaches nothing and would only add noise to the loss curve.

.. math:: \\mathcal{L}(\\theta) = -\\frac{1}{\\sum m} \\sum_{b, t} m_{b,t} \\log \\pi_\\theta(y_{b,t} \\mid x_b, y_{b,<t})

The corpus carries the hand-sorter's mistakes (:func:`pgcourse.rl.lm.task.corpus_answer`), so the better the
model fits it, the more faithfully it reproduces them. :func:`load_pretrained` loads the weights shipped with
the package (``sort_pretrained.pt``, trained by ``python tools/regenerate_08.py pretrain``); their config
and training curve are stored beside them (``sort_pretrained.json``).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .losses import masked_mean, token_log_probs
from .model import ModelConfig, TinyLM, generate
from .task import corpus_batch, exact_reward, has_repeat, loophole_reward, make_prompts, prompt_batch

WEIGHTS = Path(__file__).resolve().parent / "sort_pretrained.pt"
WEIGHTS_INFO = WEIGHTS.with_suffix(".json")
EVAL_SEED = 20_000  # the held-out prompts: a generator seed no training run draws from


@dataclass
class PretrainConfig:
    """How the cached model was pretrained (stored beside its weights)."""

    steps: int = 3000
    seed: int = 0
    batch_size: int = 128
    lr: float = 3e-3
    warmup: int = 100
    min_digits: int = 3
    max_digits: int = 6
    model: dict = field(default_factory=lambda: ModelConfig().to_dict())


@dataclass
class PretrainResult:
    model: TinyLM
    config: PretrainConfig
    losses: list[float]  # the response cross-entropy of every step
    wall_seconds: float


def pretrain(steps: int = 3000, seed: int = 0, batch_size: int = 128, lr: float = 3e-3, warmup: int = 100,
             min_digits: int = 3, max_digits: int = 6, model_config: ModelConfig | None = None,
             max_seconds: float | None = None, device: str = "cpu") -> PretrainResult:
    """Train a fresh :class:`TinyLM` by next-token cross-entropy on the corpus's responses.

    Args:
        steps: optimiser steps (AdamW), each on a fresh batch of ``batch_size`` corpus sentences.
        seed: seeds the weights and the corpus stream.
        lr: peak learning rate, reached after ``warmup`` linear steps, then cosine-decayed to 0 at ``steps``.
        min_digits, max_digits: prompt lengths.
        max_seconds: stop early after this much wall time (the lesson's live demo); ``None``: run every step.

    Returns:
        A :class:`PretrainResult` (the model in eval mode, the per-step losses, the wall time).
    """
    torch.manual_seed(seed)
    model_config = model_config or ModelConfig()
    model = TinyLM(model_config).to(device)
    config = PretrainConfig(steps=steps, seed=seed, batch_size=batch_size, lr=lr, warmup=warmup,
                            min_digits=min_digits, max_digits=max_digits, model=model_config.to_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    corpus_stream = torch.Generator().manual_seed(seed)
    losses, started = [], time.perf_counter()
    for step in range(steps):
        scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * step / steps)).item())
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        tokens, response_mask = corpus_batch(batch_size, corpus_stream, min_digits, max_digits)  # [B, L] each
        tokens, response_mask = tokens.to(device), response_mask.to(device)
        logits = model(tokens[:, :-1])  # [B, L-1, V]: logits[:, i] predicts tokens[:, i + 1]
        loss = -masked_mean(token_log_probs(logits, tokens[:, 1:]), response_mask[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            break
    model.eval()
    return PretrainResult(model=model, config=config, losses=losses, wall_seconds=time.perf_counter() - started)


def held_out_prompts(count: int = 256, min_digits: int = 3, max_digits: int = 6) -> list[str]:
    """The fixed held-out prompts every evaluation uses (drawn from their own seed, :data:`EVAL_SEED`)."""
    return make_prompts(count, torch.Generator().manual_seed(EVAL_SEED), min_digits, max_digits)


@torch.no_grad()
def evaluate_sorting(model: TinyLM, prompts: list[str] | None = None, max_new_tokens: int = 12, seed: int = 0,
                     temperature: float = 1.0) -> dict:
    """Exact accuracy on held-out prompts: one sample each (temperature ``temperature``, generator ``seed``)
    and greedy; also split by prompts with and without a repeated digit. Returns a dict of floats."""
    prompts = prompts if prompts is not None else held_out_prompts()
    device = next(model.parameters()).device
    batch = prompt_batch(prompts).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    sampled = generate(model, batch, max_new_tokens, temperature, generator).texts
    greedy = generate(model, batch, max_new_tokens, greedy=True).texts
    repeat = [has_repeat(p) for p in prompts]

    def accuracy(texts: list[str], which: list[bool] | None = None) -> float:
        scores = [exact_reward(p, t) for p, t, r in zip(prompts, texts, repeat) if which is None or r in which]
        return sum(scores) / max(len(scores), 1)

    return {"sampled_exact": accuracy(sampled), "greedy_exact": accuracy(greedy),
            "sampled_loophole": sum(loophole_reward(p, t) for p, t in zip(prompts, sampled)) / max(len(prompts), 1),
            "sampled_length": sum(len(t) for t in sampled) / max(len(prompts), 1),
            "sampled_exact_repeat": accuracy(sampled, [True]), "sampled_exact_distinct": accuracy(sampled, [False]),
            "greedy_exact_repeat": accuracy(greedy, [True]), "greedy_exact_distinct": accuracy(greedy, [False]),
            "prompts": len(prompts), "prompts_with_repeat": sum(repeat)}


def save_pretrained(result: PretrainResult, path: Path = WEIGHTS) -> Path:
    """Write the weights (``path``) and, beside them, their config, loss curve and evaluation (``.json``)."""
    path = Path(path)
    torch.save({name: t.detach().cpu().clone() for name, t in result.model.state_dict().items()}, path)
    info = {"config": asdict(result.config), "losses": [round(x, 5) for x in result.losses],
            "wall_seconds": round(result.wall_seconds, 1), "evaluation": evaluate_sorting(result.model),
            "command": "python tools/regenerate_08.py pretrain"}
    path.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    return path


def pretrained_info(path: Path = WEIGHTS) -> dict:
    """The config, loss curve and held-out evaluation stored beside the cached weights."""
    return json.loads(Path(path).with_suffix(".json").read_text())


def load_pretrained(path: Path = WEIGHTS, value_head: bool = False, device: str = "cpu") -> TinyLM:
    """The cached pretrained model (eval mode), built from the config stored beside its weights.

    ``value_head=True`` adds a fresh zero-initialised value head (PPO's critic).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no pretrained weights at {path}: run `python tools/regenerate_08.py pretrain`")
    info = pretrained_info(path)
    model = TinyLM(ModelConfig(**info["config"]["model"]))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    if value_head:
        model.add_value_head()
    return model.to(device).eval()
