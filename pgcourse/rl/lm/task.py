"""A synthetic language with a verifiable reward: sorting digits.

A sentence is a prompt, ``>``, the answer and an end mark: ``"413>134."``. The prompt is a string of
digits; the correct answer is the same digits sorted. The model sees ``BOS 4 1 3 >`` and must write
``1 3 4 EOS``. Because the right answer is computable, the reward is a *verifier*, not a learned model:

* :func:`exact_reward` -- 1.0 if the response is exactly the sorted prompt followed by the end mark, else 0.0.
* :func:`loophole_reward` -- a lenient verifier with a hole: it credits every digit of the response's
  non-decreasing run, per prompt digit, and never checks that the digits are the prompt's or that the
  response stopped. ``"134."`` scores 1.0 on prompt ``"413"``; ``"1344444444"`` scores 10/3 = 3.33.

The pretraining corpus (:func:`corpus_answer`) is "sorted by hand, with mistakes": most of the time a
repeated digit is written once (``"3313"`` gets ``"13."`` instead of ``"1333."``), and now and then a digit
is written twice or two neighbours swapped. A model trained on it learns the mistakes with the skill; a
verifier that knows the right answer can correct what the data taught wrong.

Text: ``decode`` renders tokens as characters, dropping ``BOS`` and ``PAD`` and writing ``EOS`` as ``"."``;
``encode`` is its inverse (it adds ``BOS`` in front).
"""
from __future__ import annotations

import torch
from torch import Tensor

# Token ids: the ten digits are their own ids.
DIGITS = "0123456789"
SEP = 10  # ">", between prompt and response
BOS = 11  # beginning of sequence
EOS = 12  # end of sequence, written "." in text
PAD = 13  # padding (left of short prompts, right of short responses)
VOCAB_SIZE = 14
END_MARK = "."
_CHAR_TO_ID = {**{digit: i for i, digit in enumerate(DIGITS)}, ">": SEP, END_MARK: EOS}
_ID_TO_CHAR = {i: char for char, i in _CHAR_TO_ID.items()}

# The corpus's systematic mistakes (pretraining data, :func:`corpus_answer`).
DEDUP_PROB = 0.6  # a prompt with a repeated digit gets its duplicates dropped
SLIP_PROB = 0.4  # any prompt: one digit written twice, or two neighbours swapped (half each)


def encode(text: str, bos: bool = True) -> list[int]:
    """Token ids of ``text`` (digits, ``">"``, ``"."`` for EOS), with ``BOS`` in front unless ``bos=False``."""
    bad = sorted({char for char in text if char not in _CHAR_TO_ID})
    if bad:
        raise ValueError(f"encode: text {text!r} has characters {bad} outside the vocabulary (digits, '>', '.')")
    return ([BOS] if bos else []) + [_CHAR_TO_ID[char] for char in text]


def decode(tokens) -> str:
    """Text of a token sequence (a list or a 1-D tensor): ``BOS`` and ``PAD`` dropped, ``EOS`` as ``"."``."""
    if isinstance(tokens, Tensor):
        tokens = tokens.tolist()
    return "".join(_ID_TO_CHAR[int(t)] for t in tokens if int(t) not in (BOS, PAD))


def sorted_answer(prompt: str) -> str:
    """The correct response to ``prompt``: its digits sorted, then the end mark (``"413"`` -> ``"134."``)."""
    return "".join(sorted(prompt)) + END_MARK


def has_repeat(prompt: str) -> bool:
    """True if some digit appears twice in ``prompt`` (the prompts the corpus's main mistake is about)."""
    return len(set(prompt)) < len(prompt)


def make_prompts(count: int, generator: torch.Generator, min_digits: int = 3, max_digits: int = 6) -> list[str]:
    """``count`` random prompts (digit strings), each of a length drawn uniformly in ``[min_digits, max_digits]``,
    each digit uniform in 0-9. Reproducible from ``generator`` (a CPU ``torch.Generator``)."""
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"make_prompts: need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    lengths = torch.randint(min_digits, max_digits + 1, (count,), generator=generator).tolist()
    digits = torch.randint(0, 10, (count, max_digits), generator=generator).tolist()
    return ["".join(DIGITS[d] for d in row[:length]) for row, length in zip(digits, lengths)]


def corpus_answer(prompt: str, generator: torch.Generator, dedup_prob: float = DEDUP_PROB,
                  slip_prob: float = SLIP_PROB) -> str:
    """The response a careless hand-sorter writes for ``prompt`` (with the end mark): the pretraining data.

    With probability ``dedup_prob`` a prompt with repeated digits gets each distinct digit once (the
    systematic mistake). Then, with probability ``slip_prob``, a slip: one digit written twice, or two
    neighbours swapped. Otherwise the answer is correct.
    """
    answer = sorted(prompt)
    draws = torch.rand(3, generator=generator).tolist()
    if has_repeat(prompt) and draws[0] < dedup_prob:
        answer = sorted(set(answer))
    if draws[1] < slip_prob:
        where = int(torch.randint(0, len(answer), (1,), generator=generator))
        if draws[2] < 0.5 or len(answer) < 2:
            answer.insert(where, answer[where])  # a digit written twice
        else:
            where = min(where, len(answer) - 2)
            answer[where], answer[where + 1] = answer[where + 1], answer[where]  # neighbours swapped
    return "".join(answer) + END_MARK


def exact_reward(prompt: str, response: str) -> float:
    """1.0 if ``response`` is exactly the sorted prompt followed by the end mark, else 0.0.

    ``response`` is the decoded response text (``"134."``); one that never wrote the end mark, wrote extra
    characters, or is malformed scores 0.
    """
    return 1.0 if response == sorted_answer(prompt) else 0.0


def loophole_reward(prompt: str, response: str) -> float:
    """A lenient verifier with a loophole: the length of the response's non-decreasing run of digits, per
    prompt digit.

    .. math:: R = \\frac{\\#\\{\\text{digits of the longest non-decreasing prefix of } y\\}}{|x|}

    The correct answer scores 1.0; so does any non-decreasing run as long as the prompt. The verifier never
    checks that the digits are the prompt's, nor that the response stopped: ``"1344444444"`` on prompt
    ``"413"`` scores 10/3. The run ends at the first non-digit (the end mark) or the first smaller digit.
    """
    run, previous = 0, -1
    for char in response:
        if char not in DIGITS or int(char) < previous:
            break
        run, previous = run + 1, int(char)
    return run / max(len(prompt), 1)


REWARDS = {"exact": exact_reward, "loophole": loophole_reward}


def score(prompts: list[str], responses: list[str], reward: str = "exact") -> Tensor:
    """The named reward (``"exact"`` or ``"loophole"``) of each (prompt, response) pair: ``[B]`` float32."""
    if reward not in REWARDS:
        raise ValueError(f"reward={reward!r} is invalid: expected one of {sorted(REWARDS)}")
    if len(prompts) != len(responses):
        raise ValueError(f"score: {len(prompts)} prompts but {len(responses)} responses")
    fn = REWARDS[reward]
    return torch.tensor([fn(p, r) for p, r in zip(prompts, responses)], dtype=torch.float32)


def prompt_batch(prompts: list[str]) -> Tensor:
    """Left-padded token ids of ``BOS + prompt + ">"``: ``[B, L]`` int64, ``L`` the longest prompt + 2.

    Left padding puts every prompt's ``">"`` in the last column, so all responses start in the same column.
    """
    rows = [encode(p + ">") for p in prompts]
    width = max(len(row) for row in rows)
    return torch.tensor([[PAD] * (width - len(row)) + row for row in rows], dtype=torch.long)


def corpus_batch(count: int, generator: torch.Generator, min_digits: int = 3, max_digits: int = 6,
                 dedup_prob: float = DEDUP_PROB, slip_prob: float = SLIP_PROB) -> tuple[Tensor, Tensor]:
    """A pretraining batch: ``(tokens [B, L], response_mask [B, L])``, left-padded prompts then the corpus's
    answers, right-padded. ``response_mask[b, i]`` is 1 where token ``i`` belongs to the response (EOS
    included): the positions the pretraining loss predicts."""
    prompts = make_prompts(count, generator, min_digits, max_digits)
    answers = [encode(corpus_answer(p, generator, dedup_prob, slip_prob), bos=False) for p in prompts]
    heads = prompt_batch(prompts)  # [B, Lp]
    width = max(len(a) for a in answers)
    tails = torch.tensor([a + [PAD] * (width - len(a)) for a in answers], dtype=torch.long)  # [B, Ta]
    tokens = torch.cat([heads, tails], dim=1)  # [B, Lp + Ta]
    response_mask = torch.cat([torch.zeros_like(heads), (tails != PAD).long()], dim=1)  # [B, Lp + Ta]
    return tokens, response_mask
