"""Tests that catch silent corruption: issue 30, item 7 (and part of item 5).

A mutation audit found code changes that left the suite green. Each test below fails with its mutation
applied (alone) and passes on the correct code:

1. ``pgcourse/algorithms/ppo.py``: the clipped value loss clipped around the critic's *current* values
   (``old_v = new_values.detach()``, a no-op clip) instead of the values stored in the rollout.
2. ``pgcourse/algorithms/trpo.py``: ``old_params + full_step`` applied whatever fraction the line search
   accepted, also when it rejected every step.
3. ``pgcourse/grading/gradebook.py``: ``total`` written before ``late_penalty`` while the header lists them the
   other way. That test lives in tests/test_grading_term.py (it uses that file's course and fake grader):
   ``test_every_csv_the_grader_writes_puts_each_value_under_its_own_column``.
4. ``pgcourse/checks/ch04_ppo.py``: a fixed minibatch order rejected only when it repeats for another seed
   *and* for the next call (``or`` changed to ``and``).
5. ``pgcourse/render.py``: the side-by-side GIF padding the shorter episode with its *first* frame instead of
   holding its last.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.course import checks
from pgcourse.course.views import render
from pgcourse.rl.algorithms import ppo as ppo_module
from pgcourse.rl.algorithms import trpo as trpo_module
from pgcourse.rl.batching import minibatch_indices as reference_minibatch_indices
from pgcourse.rl.losses import value_loss as reference_value_loss


# -- 1. PPO's clipped value loss clips around the rollout's values ----------------------------------------------
def test_ppo_clipped_value_loss_clips_around_the_rollouts_values(monkeypatch):
    flat, real_agents_batch = {}, ppo_module.agents_batch

    def recording_agents_batch(rollout, *tensors):
        found, rows = real_agents_batch(rollout, *tensors)
        flat["old_values"] = found[3][0].detach().clone()  # obs, actions, log_probs, values (the rollout's), ...
        return found, rows

    monkeypatch.setattr(ppo_module, "agents_batch", recording_agents_batch)
    batches, calls = [], []

    def recording_minibatch_indices(batch_size, minibatch_size, generator):
        chunks = reference_minibatch_indices(batch_size, minibatch_size, generator)
        batches.extend(chunk.clone() for chunk in chunks)
        return chunks

    def recording_value_loss(values, returns, old_values=None, clip_eps=None):
        calls.append((values.detach().clone(), returns.detach().clone(),
                      None if old_values is None else old_values.detach().clone(), clip_eps))
        return reference_value_loss(values, returns, old_values, clip_eps)

    run = pg.train("ppo", "CartPole-v1", seed=0, total_steps=1, device="cpu", progress=False, num_envs=2,
                   n_steps=32, minibatch_size=16, update_epochs=3, clip_value_loss=True, clip_eps=0.2,
                   critic_lr=1e-2, value_loss=recording_value_loss, minibatch_indices=recording_minibatch_indices)
    assert len(run.history.updates) == 1 and len(calls) == len(batches) >= 9
    moved = 0
    for step, ((values, returns, old_values, clip_eps), batch) in enumerate(zip(calls, batches)):
        assert clip_eps == 0.2 and old_values is not None, f"gradient step {step}: the value loss was not clipped"
        stored = flat["old_values"][batch]
        assert torch.allclose(old_values, stored, rtol=0, atol=1e-6), (
            f"gradient step {step}: the clipped value loss clips around other values than those stored in the "
            f"rollout (largest difference {float((old_values - stored).abs().max()):.3g}; the critic's current "
            f"values differ from the stored ones by {float((values - stored).abs().max()):.3g})")
        moved += int(not torch.allclose(values, stored, atol=1e-6))
        # a hand computation: the worse of the plain and the clipped squared errors, around the rollout's values
        clipped = stored + (values - stored).clamp(-0.2, 0.2)
        hand = 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2).mean()
        assert float(reference_value_loss(values, returns, old_values, clip_eps)) == pytest.approx(float(hand))
    assert moved >= len(calls) // 2  # the critic moved: a clip around its current values would have been a no-op


# -- 2. TRPO applies the fraction of the full step that the line search accepted ---------------------------------
@pytest.mark.parametrize("refuse_above, accepted", [(1.0, 1.0), (0.3, 0.25), (0.0, 0.0)])
def test_trpo_moves_the_policy_by_the_accepted_fraction_of_the_full_step(monkeypatch, refuse_above, accepted):
    """The line search is given the real step, but every fraction above ``refuse_above`` is made to look
    worse (a surrogate that drops): the policy must end at old + accepted * full step (where it started
    when every fraction is refused)."""
    assigned, searches = [], []
    real_assign, real_search = trpo_module.assign_flat_, trpo_module.backtracking_line_search

    def recording_assign(parameters, flat):
        assigned.append((list(parameters), flat.detach().clone()))
        real_assign(parameters, flat)

    def search(evaluate, expected_improvement, max_kl, *args):
        evaluate(0.0)
        parameters, start = assigned[-1]
        evaluate(1.0)  # the parameters are left at the full step: only the final assignment may move them back
        full_step = assigned[-1][1] - start

        def refusing(fraction):
            return (-1.0, 0.0) if fraction > refuse_above else evaluate(fraction)

        result = real_search(refusing, expected_improvement, max_kl, *args)
        searches.append((parameters, start, full_step, result))
        return result

    monkeypatch.setattr(trpo_module, "assign_flat_", recording_assign)
    monkeypatch.setattr(trpo_module, "backtracking_line_search", search)
    run = pg.train("trpo", "CartPole-v1", seed=0, total_steps=1, device="cpu", progress=False, num_envs=2,
                   n_steps=64, critic_epochs=1, minibatch_size=64)
    [(parameters, start, full_step, result)] = searches
    assert result.fraction == accepted and run.history.updates["step_fraction"][0] == accepted
    assert float(full_step.norm()) > 1e-3  # a real step, so a wrong fraction shows
    after = torch.nn.utils.parameters_to_vector(parameters).detach()
    expected = start + accepted * full_step
    assert torch.allclose(after, expected, rtol=0, atol=1e-5), (
        f"the line search accepted {accepted} of the full step, but the policy moved by "
        f"{float((after - start) @ full_step / (full_step @ full_step)):.4f} of it")
    if accepted == 0.0:
        assert torch.equal(after, start), "every step was rejected, yet the policy moved"


# -- 4. the minibatch check rejects an order that repeats for another seed OR for the next call ---------------------
def _draws_since_seeding(generator: torch.Generator) -> int:
    """How many single draws a fresh generator with ``generator``'s seed needs to reach its state."""
    fresh, count = torch.Generator().manual_seed(generator.initial_seed()), 0
    while not torch.equal(fresh.get_state(), generator.get_state()):
        torch.rand(1, generator=fresh)
        count += 1
        assert count < 100
    return count


def same_for_every_seed(batch_size, minibatch_size, generator):
    """A new order on each call with a generator, but the same orders whatever its seed: the learner keeps
    their own epoch counter (here, the generator's draws) and seeds a fixed generator with it."""
    epoch = _draws_since_seeding(generator)
    torch.rand(1, generator=generator)  # this call is counted
    order = torch.randperm(batch_size, generator=torch.Generator().manual_seed(1234 + epoch))
    return list(order.split(minibatch_size))


def same_on_every_call(batch_size, minibatch_size, generator):
    """Re-seeds inside the function: reproducible, another seed gives another order, but every epoch
    visits the batch in the same order."""
    own = torch.Generator().manual_seed(generator.initial_seed())
    return list(torch.randperm(batch_size, generator=own).split(minibatch_size))


@pytest.mark.parametrize("fn, seed, repeats, where", [
    (same_for_every_seed, 7, "seed 7: {0}; seed 8: {0};", "for another seed (not for the next call)"),
    (same_on_every_call, 9, "two successive calls: {0} and {0}", "for the next call (not for another seed)")],
    ids=["repeats for another seed", "repeats on the next call"])
def test_minibatch_check_rejects_an_order_that_repeats_for_another_seed_or_the_next_call(fn, seed, repeats, where):
    generator = torch.Generator().manual_seed(seed)  # the check's generator for the case that repeats
    order = torch.cat(fn(16, 4, generator)).tolist()
    try:
        checks.check_minibatch_indices(fn)
    except AssertionError as error:
        message = str(error)
    else:
        pytest.fail(f"check_minibatch_indices accepted {fn.__name__}, whose order repeats {where}")
    assert "the minibatches come out in the same order for different generators or successive calls." in message
    assert "don't re-seed inside the function" in message
    assert repeats.format(order) in message, message


def test_the_two_repeating_minibatch_functions_repeat_only_where_they_are_meant_to():
    orders = {}
    for name, fn in (("seeds", same_for_every_seed), ("calls", same_on_every_call)):
        seven, eight = torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)
        orders[name] = [torch.cat(fn(16, 4, g)).tolist() for g in (seven, eight, seven)]
    seeds, calls = orders["seeds"], orders["calls"]
    assert seeds[0] == seeds[1] and seeds[0] != seeds[2]  # another seed: the same; the next call: new
    assert calls[0] != calls[1] and calls[0] == calls[2]  # another seed: new; the next call: the same


# -- 5. the side-by-side GIF holds the shorter episode's last frame ------------------------------------------------
def _solid(value: int, size: int = 16) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def test_side_by_side_gif_holds_the_shorter_episodes_last_frame(monkeypatch, tmp_path):
    # two agents whose "episodes" are solid frames of distinct greys: 3 frames for the short, 6 for the long
    episodes = {"short": ([_solid(v) for v in (40, 80, 120)], 3.0),
                "long": ([_solid(v) for v in (20, 60, 100, 140, 180, 220)], 6.0)}
    monkeypatch.setattr(render, "rollout_frames", lambda agent, env_id, **kwargs: episodes[agent])
    written = []
    real_write_gif = render.write_gif

    def recording_write_gif(frames, path, fps=25.0):
        written.append([frame.copy() for frame in frames])
        return real_write_gif(frames, path, fps=fps)

    monkeypatch.setattr(render, "write_gif", recording_write_gif)
    path = render.side_by_side_gif(["short", "long"], "CartPole-v1", tmp_path / "pair.gif", labels=["s", "l"])
    [frames] = written
    assert len(frames) == 6
    short_column = [int(frame[8, 8, 0]) for frame in frames]  # a pixel inside the short episode's frame
    long_column = [int(frame[8, 16 + 4 + 8, 0]) for frame in frames]
    assert long_column == [20, 60, 100, 140, 180, 220]
    assert short_column == [40, 80, 120, 120, 120, 120], (
        f"after the short episode ends (3 frames), its column should hold its last frame (120): {short_column}")
    # and so does the GIF file (solid greys survive its palette)
    import imageio.v3 as iio

    gif = iio.imread(path, index=None)
    assert gif.shape[0] == 6 and [int(frame[8, 8, 0]) for frame in gif] == short_column
