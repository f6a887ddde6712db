"""Policy gradients for language models (chapter 08): a tiny causal transformer, a synthetic language with
a verifiable reward, and REINFORCE, PPO with a KL leash and GRPO on it, all on a laptop CPU.

Where things live: ``losses`` (the math), ``task`` (the sorting language and its verifiers), ``model`` (the
transformer and sampling), ``pretrain`` (next-token pretraining and the cached weights), ``finetune`` (the
one fine-tuning loop). ``import pgcourse.rl.lm as lm`` (or ``pg.lm``) gives all of the names below.

The language (``task``). ``"413>134."``: a prompt of digits, ``">"``, the digits sorted, the end mark ``"."``
(the EOS token). Token ids: ``"0"``-``"9"`` are 0-9, ``SEP`` (">") 10, ``BOS`` 11, ``EOS`` 12, ``PAD`` 13,
``VOCAB_SIZE`` 14, ``END_MARK`` ``"."``.

    encode(text: str, bos: bool = True) -> list[int]          # "413>134." -> [BOS, 4, 1, 3, SEP, 1, 3, 4, EOS]
    decode(tokens: list[int] | Tensor) -> str                 # drops BOS and PAD, EOS -> "."
    sorted_answer(prompt: str) -> str                         # "413" -> "134."
    has_repeat(prompt: str) -> bool                           # a digit appears twice
    make_prompts(count, generator, min_digits=3, max_digits=6) -> list[str]
    corpus_answer(prompt, generator, dedup_prob=DEDUP_PROB, slip_prob=SLIP_PROB) -> str   # the pretraining data
    exact_reward(prompt: str, response: str) -> float         # 1.0 iff response == sorted_answer(prompt)
    loophole_reward(prompt: str, response: str) -> float      # non-decreasing digit run / len(prompt): "1344444444" on "413" -> 3.33
    score(prompts: list[str], responses: list[str], reward="exact"|"loophole") -> Tensor[B]
    prompt_batch(prompts: list[str]) -> Tensor[B, L]          # left-padded BOS + prompt + ">"
    corpus_batch(count, generator, min_digits=3, max_digits=6) -> (tokens [B, L], response_mask [B, L])

The model (``model``).

    ModelConfig(vocab_size=14, d_model=64, n_heads=4, n_layers=2, d_mlp=256, max_len=32)
    TinyLM(config: ModelConfig | None = None, value_head: bool = False)   # nn.Module
        model(tokens [B, L]) -> logits [B, L, V]; model(tokens, with_values=True) -> (logits, values [B, L])
        model.add_value_head() -> model
    count_parameters(model) -> int
    response_logits(model, prompt_tokens [B, Lp], response_tokens [B, T], temperature=1.0, with_values=False)
        -> logits [B, T, V] aligned with the response tokens (and values [B, T])
    generate(model, prompt_tokens [B, Lp], max_new_tokens=12, temperature=1.0, generator=None, greedy=False)
        -> Generation(tokens [B, T], mask [B, T] (1 through EOS inclusive), log_probs [B, T], texts: list[str],
                      finished [B] bool); .lengths -> [B]

Pretraining (``pretrain``): next-token cross-entropy on the response tokens of the hand-sorted corpus.

    pretrain(steps=3000, seed=0, batch_size=128, lr=3e-3, warmup=100, min_digits=3, max_digits=6,
             model_config=None, max_seconds=None, device="cpu") -> PretrainResult(model, config, losses, wall_seconds)
    load_pretrained(path=WEIGHTS, value_head=False, device="cpu") -> TinyLM      # the cached weights (eval mode)
    pretrained_info(path=WEIGHTS) -> dict     # {"config", "losses", "wall_seconds", "evaluation", "command"}
    held_out_prompts(count=256, min_digits=3, max_digits=6) -> list[str]        # fixed (seed EVAL_SEED)
    evaluate_sorting(model, prompts=None, max_new_tokens=12, seed=0, temperature=1.0) -> dict with
        sampled_exact, greedy_exact, sampled_loophole, sampled_length, sampled_exact_repeat,
        sampled_exact_distinct, greedy_exact_repeat, greedy_exact_distinct, prompts, prompts_with_repeat

Fine-tuning (``finetune``).

    FinetuneConfig(method="grpo"|"reinforce"|"ppo", reward="exact"|"loophole", kl_coef=None, kl_estimator=None,
                   group_size=8, prompts_per_update=8, updates=100, lr=None, clip_eps=0.2, update_epochs=None,
                   gae_lambda=0.95, vf_coef=0.5, max_grad_norm=1.0, temperature=1.0, max_new_tokens=12,
                   min_digits=3, max_digits=6, eval_prompts=256, sample_every=20, seed=0, device="auto")
        # None fields take METHOD_DEFAULTS[method]; a bad value raises pgcourse.ConfigError naming the field
    finetune(config=None, model=None, reference=None, verbose=False, **config_fields) -> FinetuneResult
    FinetuneResult(config: dict, history: dict[str, list], samples: list[dict], eval_start: dict, eval_end: dict,
                   status: "finished"|"interrupted", wall_seconds, model)
        history keys: update, reward, exact_reward, loophole_reward, kl, entropy, distinct, length, finished
        samples: [{"update": u, "texts": ["413>134.", ...], "rewards": [...]}]
        .save(path), FinetuneResult.load(path), .to_dict(), FinetuneResult.from_dict(d)
    exact_kl(logits, ref_logits) -> [B, T];  entropy(logits) -> [B, T];  distinct_fraction(texts, group_size) -> float
    gae_over_tokens(rewards [B, T], values [B, T], mask [B, T], lam) -> advantages [B, T]

Cached experiments (``figures/08_lm/``, written by ``python tools/regenerate_08.py all``):

    load_cached(path=None) -> dict     # {"command", "arms": {name: FinetuneConfig fields}, "seeds": 10,
                                       #  "rows": [FinetuneResult.to_dict() (floats rounded) + "arm", "seed"]}
    ARMS: dict[str, dict]   # "reinforce", "ppo", "grpo" (exact reward, method defaults), "grpo_kl0" (kl_coef 0),
                            # "loophole_kl0", "loophole_kl_0.5", "loophole_kl_2" (GRPO on the loophole reward,
                            # kl_coef 0, 0.5, 2)
    SEEDS = 10;  run_arm(arm, seed) -> row;  rerun_row(row) -> row (the same numbers, bit for bit, on the CPU)

A learned reward (``reward_model``, lesson 08 section 8): preference_pairs(count, seed) -> PreferencePairs;
fit_reward_model(pairs, steps=400, ...) -> RewardModelFit(model, train_accuracy, held_out_accuracy, ...);
reward_model_scores(model, prompts, responses) -> [B]; finetune(..., reward="learned", reward_fn=fit.reward_fn()).

The math (``losses``): masked_mean, token_log_probs, sequence_log_probs, kl_k1, kl_k3,
group_relative_advantages, masked_clipped_loss, kl_penalized_rewards.
"""
from . import losses
from .cached import ARMS, CACHED, SEEDS, load_cached, rerun_row, run_arm
from .finetune import (METHOD_DEFAULTS, FinetuneConfig, FinetuneResult, distinct_fraction, entropy, exact_kl,
                       finetune, gae_over_tokens)
from .losses import (group_relative_advantages, kl_k1, kl_k3, kl_penalized_rewards, masked_clipped_loss, masked_mean,
                     sequence_log_probs, token_log_probs)
from .model import Generation, ModelConfig, TinyLM, count_parameters, generate, response_logits
from .pretrain import (WEIGHTS, PretrainResult, evaluate_sorting, held_out_prompts, load_pretrained, pretrain,
                       pretrained_info)
from .task import (BOS, DEDUP_PROB, EOS, END_MARK, PAD, SEP, SLIP_PROB, VOCAB_SIZE, corpus_answer, corpus_batch,
                   decode, encode, exact_reward, has_repeat, loophole_reward, make_prompts, prompt_batch, score,
                   sorted_answer)

__all__ = ["losses", "ARMS", "CACHED", "SEEDS", "load_cached", "rerun_row", "run_arm", "METHOD_DEFAULTS", "FinetuneConfig", "FinetuneResult", "distinct_fraction",
           "entropy", "exact_kl", "finetune", "gae_over_tokens", "group_relative_advantages", "kl_k1", "kl_k3",
           "kl_penalized_rewards", "masked_clipped_loss", "masked_mean", "sequence_log_probs", "token_log_probs",
           "Generation", "ModelConfig", "TinyLM", "count_parameters", "generate", "response_logits", "WEIGHTS",
           "PretrainResult", "evaluate_sorting", "held_out_prompts", "load_pretrained", "pretrain", "pretrained_info",
           "BOS", "DEDUP_PROB", "EOS", "END_MARK", "PAD", "SEP", "SLIP_PROB", "VOCAB_SIZE", "corpus_answer",
           "corpus_batch", "decode", "encode", "exact_reward", "has_repeat", "loophole_reward", "make_prompts",
           "prompt_batch", "score", "sorted_answer"]
