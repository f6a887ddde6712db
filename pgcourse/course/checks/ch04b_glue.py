"""The glue of exercise 04b's ``train_ppo``, checked directly: what the learner's loop did with the envs and the
optimisers it made, recorded while it runs, and the exercise's rules for it.

One seed's return cannot tell a loop that glues the stages rightly from one that does not (a loop that never
anneals its learning rates learns CartPole as well, and a correct loop that rounds its log-probs another way
ends on another return). So the end-to-end check records, on its side of the loop:

- every ``reset`` of the envs (when, with which seed) and every ``step``, and whether the actions of a step were
  chosen on the observation the envs had just returned (a global forward pre-hook sees the inputs of every
  network call: the last call on a batch of ``[num_envs, obs_dim]`` observations before a step must be on that
  observation);
- every ``optimizer.step()`` (torch's global optimiser hooks): which optimiser (known by the shapes of its
  parameters: the policy's or the value net's), the env step it came after, its learning rate, whether the
  weights it starts from are those its previous step left (nothing else wrote them), and whether the policy the
  loop returns holds exactly the weights its optimiser's last step left.

:func:`glue_problems` reads that record with the exercise's rules: one seeded reset, the start carried from
rollout to rollout, one rollout of ``n_steps`` before each update, ``update_epochs * ceil(B / minibatch_size)``
steps of each optimiser per update (``B`` the rollout's valid transitions, counted by the envs), the learning
rates annealed by the transitions collected before each rollout, the budget reached by the last update and not
before it, one history entry per update, nothing but the optimisers writing the weights, and the returned policy
the product of the actor's steps.

And the loss: every step of the actor's optimiser must apply the gradient of PPO's clipped surrogate on a
minibatch of the rollout just played, at the weights the step starts from, with pi_old the policy that played it
and GAE advantages from the critic it was played with (``grading.loops.ppo_gradient_proof``: recomputed from the
record, not from anything the loop reports). A loop that keeps PPO's structure but trains its actor on another loss
(behaviour cloning of a hand-made controller learns CartPole well) is told so.

The recorder is the grader's own (``pgcourse/classroom/sandboxed/loops.py``, which imports only torch, numpy and gymnasium and
is copied into the sandbox), loaded from its file (:mod:`.sandbox_code`): one code for both sides.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from .sandbox_code import sandbox_loops

LR_TOLERANCE = (1e-6, 1e-12)  # (rtol, atol) of a learning rate against the exercise's schedule


# --------------------------------------------------------------------------------------------------
# Recording: the sandbox's recorder itself (pgcourse/classroom/sandboxed/loops.py, loaded from its file)
# --------------------------------------------------------------------------------------------------

def GlueRecorder(envs: gym.vector.VectorEnv) -> Any:  # noqa: N802 - builds the sandbox module's class
    """A recorder of ``envs`` and of every torch optimiser, to use as ``with recorder:`` around the loop, then
    ``recorder.finish(output, config)`` and ``recorder.data()``: the very class the grader's student process uses
    (``pgcourse.classroom.sandboxed.loops``), so the notebook and the grade read the same record."""
    return sandbox_loops()._glue_recorder_class()(envs)


def gradient_tolerance() -> float:
    """The PPO-gradient proof's tolerance (``grading/ppo_proof.py``: correct loops stay 400 times below it)."""
    return sandbox_loops()._ppo_proof().GRADIENT_TOLERANCE


# --------------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------------

def network_shapes(obs_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> list[list[int]]:
    """The parameter shapes of the course's MLP (``CategoricalPolicy``: ``out_dim`` actions; ``ValueNet``: 1)."""
    widths = [obs_dim, *hidden_sizes, out_dim]
    return [shape for i, o in zip(widths[:-1], widths[1:]) for shape in ([o, i], [o])]


def _transitions_before(transitions_at_step: Sequence[int], clock: int) -> int:
    """The valid transitions the envs counted in their first ``clock`` steps."""
    return int(transitions_at_step[clock - 1]) if clock > 0 else 0


def _count_behind(lr: float, initial: float, config: Any) -> int | None:
    """The transitions T a loop counted if ``lr`` is ``(1 - T / config.total_steps) * initial`` for a whole T
    (its annealing right, its count perhaps not the envs'); None when no whole count gives it."""
    if initial <= 0:
        return None
    count = (1.0 - lr / initial) * config.total_steps
    whole = round(count)
    return whole if 0 <= whole <= config.total_steps and abs(count - whole) < 1e-3 else None


def _lr_problem(name: str, setting: str, initial: float, lrs: list[list[float]], clocks: list[int],
                starts: list[int], transitions: Sequence[int], config: Any) -> str | None:
    """The learning rates of one optimiser's steps against the schedule: ``initial`` throughout, or with
    ``config.anneal_lr``, ``(1 - T / config.total_steps) * initial`` for the steps after the rollout that began
    when the envs had counted ``T`` transitions."""
    start_of = dict(zip(sorted(set(clocks)), starts))
    never_annealed = config.anneal_lr and len(set(clocks)) > 1 and all(
        math.isclose(lr, initial, rel_tol=LR_TOLERANCE[0]) for group in lrs for lr in group)
    for clock, group_lrs in zip(clocks, lrs):
        before = _transitions_before(transitions, start_of[clock])
        expected = (1.0 - before / config.total_steps) * initial if config.anneal_lr else initial
        bad = [lr for lr in group_lrs if not math.isclose(lr, expected, rel_tol=LR_TOLERANCE[0],
                                                          abs_tol=LR_TOLERANCE[1])]
        if not bad:
            continue
        update = sorted(set(clocks)).index(clock) + 1
        if never_annealed:  # (an lr left at its initial value reads as a count of 0: say what it is)
            return (f"the learning rates are never annealed: the {name}'s lr stayed {initial:g} in every update. With "
                    f"config.anneal_lr, set both before each rollout to (1 - transitions so far / config.total_steps) "
                    f"times their initial value (update {update}, after {before:,} transitions: {expected:.6g}).")
        counted = _count_behind(bad[0], initial, config) if config.anneal_lr else None
        if counted is not None and counted != before:
            after = _transitions_before(transitions, clock)
            if counted == after:
                return (f"the {name}'s learning rate of update {update} is (1 - {counted:,} / config.total_steps) * "
                        f"{setting} = {bad[0]:.6g}: annealed from the transitions counted AFTER its rollout "
                        f"({counted:,}), where the exercise anneals from those collected before it ({before:,}, "
                        f"expected {expected:.6g}). Set the lr of both optimisers before each rollout.")
            more = counted > before
            return (f"your loop's count of valid transitions is not the envs': update {update} stepped the {name} with "
                    f"lr {bad[0]:.6g} = (1 - {counted:,} / config.total_steps) * {setting}, annealed as the exercise "
                    f"says from your count of {counted:,} valid transitions, but the envs had played {before:,} real "
                    f"transitions before that rollout ({abs(counted - before):,} {'more' if more else 'fewer'} in "
                    f"your count). "
                    + ("A reset step was counted as a transition: rollout.valid must be False on the step after an "
                       "episode end, the first step of a rollout included (the start carried from the previous "
                       "rollout says which envs are resetting)." if more else
                       "Count the valid transitions of every rollout: the sum of rollout.valid."))
        how = (f"(1 - {before:,} / config.total_steps) * {setting} = {expected:.6g}" if config.anneal_lr else
               f"{setting} = {expected:g} (config.anneal_lr is False)")
        return (f"the {name}'s learning rate is not annealed as the exercise says: update {update} began its rollout "
                f"after {before:,} valid transitions and stepped with lr {bad[0]:.6g}; expected {how}. Set the lr of "
                f"both optimisers before each rollout, from the valid transitions collected so far.")
    return None


def _updates_problem(name: str, clocks: list[int], starts: list[int], transitions: Sequence[int],
                     config: Any) -> str | None:
    """One optimiser's steps per update: ``update_epochs * ceil(B / minibatch_size)``, ``B`` the valid
    transitions of the rollout before it."""
    ends = sorted(set(clocks))
    for k, (start, end) in enumerate(zip(starts, ends)):
        valid = _transitions_before(transitions, end) - _transitions_before(transitions, start)
        expected = config.update_epochs * -(-valid // config.minibatch_size) if valid else 0
        taken = clocks.count(end)
        if taken != expected:
            return (f"update {k + 1} took {taken} steps of the {name}'s optimiser; its rollout had B = {valid} valid "
                    f"transitions, so config.update_epochs = {config.update_epochs} lists of "
                    f"pg.minibatch_indices(B, config.minibatch_size, generator) give {expected} minibatches, one "
                    f"step each. B is the rollout's number of VALID transitions (rollout.valid.sum()).")
    return None


def glue_problems(record: dict[str, Any], transitions_at_step: Sequence[int], history_length: int, config: Any,
                  obs_dim: int = 4, n_actions: int = 2) -> list[str]:
    """What the recorded loop did against the exercise's rules (the module's docstring), as sentences for the
    learner; empty when the glue is right. ``transitions_at_step``: the valid transitions the envs counted
    after each step."""
    if record["steps"] == 0:
        return ["your loop never stepped the envs it was given: train_ppo must collect its rollouts from `envs` "
                "(collect_rollout(envs, ...)), config.total_steps valid transitions in all."]
    problems = []
    resets = record["resets"]
    if not resets or resets[0][0] != 0 or resets[0][1] != config.seed:
        problems.append(f"start with obs, _ = envs.reset(seed=config.seed) before the first step (your first reset: "
                        f"{'none' if not resets else f'seed {resets[0][1]}, after {resets[0][0]} steps'}).")
    if len(resets) > 1:
        at = ", ".join(str(reset[0]) for reset in resets[1:6]) + (", ..." if len(resets) > 6 else "")
        problems.append(f"your loop reset the envs {len(resets) - 1} more time(s) after the first (after env steps "
                        f"{at}): reset once, at the start, and carry `start` (the second thing collect_rollout "
                        f"returns) into the next rollout. A reset at every rollout cuts every episode at the rollout's "
                        f"end: no episode lasts more than config.n_steps = {config.n_steps} steps.")
    elif record["stale_count"]:
        problems.append(f"at {record['stale_count']} env step(s) (the first: step {record['stale'][0]}) your loop "
                        f"chose its actions on an observation other than the one the envs had just returned: carry "
                        f"start = the next_start collect_rollout returned into the next rollout.")
    actor_shapes = network_shapes(obs_dim, config.hidden_sizes, n_actions)
    critic_shapes = network_shapes(obs_dim, config.hidden_sizes, 1)
    optimizers = record["optimizers"]
    actor = next((i for i, o in enumerate(optimizers) if o["shapes"] == actor_shapes), None)
    critic = next((i for i, o in enumerate(optimizers) if o["shapes"] == critic_shapes), None)
    if actor is None or critic is None:
        missing = " and ".join(name for name, index in (("the policy", actor), ("the value net", critic))
                               if index is None)
        problems.append(f"no optimiser stepped exactly the parameters of {missing}: build one torch.optim.Adam on "
                        f"policy.parameters() and one on value_net.parameters(), and let ppo_update step them.")
        return problems
    for name, index in (("policy", actor), ("value net", critic)):
        outside = optimizers[index]
        if outside["outside_count"]:
            problems.append(f"the {name}'s weights changed between two of its optimiser's steps, not by a step "
                            f"({outside['outside_count']} time(s), the first before step {outside['outside'][0] + 1}): "
                            f"only optimizer.step() may change them (no noise added, no load_state_dict, no writes "
                            f"into the parameters).")
    if record["returned"] != actor:
        problems.append("the policy you return is not the one your actor's optimiser trained: its weights differ "
                        "from those the optimiser's last step left (a copy made before training, another network, "
                        "or weights changed after the last update). Return the policy your updates stepped.")
    elif not optimizers[actor]["moved"]:
        problems.append("your actor's optimiser steps never changed the policy's weights.")
    clocks = optimizers[actor]["clock"]
    ends = sorted(set(clocks))
    starts = [0, *ends[:-1]]
    transitions = list(transitions_at_step)
    for k, (start, end) in enumerate(zip(starts, ends)):
        if end - start != config.n_steps:
            problems.append(f"update {k + 1} came after {end - start} env steps: each update follows one rollout of "
                            f"config.n_steps = {config.n_steps} steps.")
            break
    if history_length != len(ends):
        problems.append(f"your history has {history_length} entries for {len(ends)} updates: append the dict each "
                        f"ppo_update returns, one per update.")
    for name, index, setting, initial in (("actor", actor, "config.lr", config.lr),
                                          ("critic", critic, "config.critic_lr", config.critic_lr)):
        o = optimizers[index]
        if sorted(set(o["clock"])) != ends:
            problems.append(f"the {name}'s optimiser stepped after other rollouts than the actor's: each update steps "
                            f"both, once per minibatch.")
            continue
        problem = _updates_problem(name, o["clock"], starts, transitions, config) or \
            _lr_problem(name, setting, initial, o["lr"], o["clock"], starts, transitions, config)
        if problem:
            problems.append(problem)
            break
    total = _transitions_before(transitions, record["steps"])
    last_start = _transitions_before(transitions, starts[-1])
    if total < config.total_steps:
        problems.append(f"your loop stopped after {total:,} valid transitions, short of config.total_steps = "
                        f"{config.total_steps:,}: keep collecting while fewer than config.total_steps VALID "
                        f"transitions were collected (the sum of rollout.valid, not num_envs * n_steps a rollout).")
    elif last_start >= config.total_steps:
        problems.append(f"it collected {total:,} transitions; the budget is total_steps = {config.total_steps:,}: "
                        f"stop at the first update that reaches it (your last rollout began after {last_start:,}).")
    if record["steps"] > ends[-1]:
        problems.append(f"your loop played {record['steps'] - ends[-1]} env steps after its last update: end the loop "
                        f"with an update.")
    if not problems:
        problems += gradient_problems(record.get("ppo_gradient"))
    return problems


def gradient_problems(proof: Any) -> list[str]:
    """The PPO-gradient proof's verdict (``grading.loops.ppo_gradient_proof``) as sentences for the learner."""
    tolerance = gradient_tolerance()
    if not isinstance(proof, dict):
        return ["the check could not compare your actor's steps with PPO's gradient (nothing was recorded)."]
    if "error" in proof:
        return [f"the check could not compare your actor's steps with PPO's gradient ({proof['error']})."]
    if proof["checked"] == 0:
        return ["none of your actor's optimiser steps came after a call of the policy on a minibatch of the rollout "
                "just played: each step must follow policy(obs[idx]) on the rollout's valid observations."]
    if proof["worst"] > tolerance and proof.get("ratio_always_one"):
        return ["your actor's steps follow PPO's loss but the ratio is always 1, so pi_old is the policy being updated: "
                "pi_old's log-probs must be the ones stored in the rollout (computed before the update), not "
                "recomputed from the policy at each step (new_log_probs.detach() is not pi_old)."]
    if proof["worst"] > tolerance and proof.get("truncation_as_termination"):
        return ["your actor's steps follow PPO's loss, but with the advantages of a loop that treats a truncated step "
                "as a terminated one: a step cut by the time limit still has a future, so its TD error bootstraps from "
                "next_values (the value of its true final observation); only `terminated` stops the bootstrap, while "
                "the lambda-trace stops at every episode end. Pass rollout.terminated and rollout.truncated to "
                "advantages_and_returns as they are."]
    if proof["worst"] > tolerance and proof.get("surrogate_sign_flipped"):
        update, step = proof["worst_at"]
        return [f"the actor's loss has the wrong sign: every step of your actor's optimiser follows the gradient of "
                f"PPO's clipped surrogate with its sign flipped (in update {update}, step {step}, the gradient it "
                f"applied differs from PPO's by {proof['worst']:.3g} of its size, the opposite direction). The loss "
                f"is the NEGATIVE of the clipped surrogate, -mean(min(ratio * A, clip(ratio, 1 - clip_eps, "
                f"1 + clip_eps) * A)), minus ent_coef * entropy: minimised as it is, your loss makes the actions "
                f"with a positive advantage less likely."]
    if proof["worst"] > tolerance:
        update, step = proof["worst_at"]
        return [f"your actor is not trained on PPO's loss: in update {update}, the gradient its optimiser applied at "
                f"step {step} differs from the gradient of the clipped surrogate on that minibatch by "
                f"{proof['worst']:.3g} of its size (a correct loop: under {tolerance:g}). The actor's loss is "
                f"-mean(min(ratio * A, clip(ratio, 1 - clip_eps, 1 + clip_eps) * A)) - ent_coef * entropy, with A "
                f"the rollout's GAE advantages (standardised) and ratio = pi(a|s) / pi_old(a|s), pi_old the policy "
                f"that played the rollout; no other loss (no imitation of a hand-made controller, no extra terms)."]
    if proof["unmatched"]:
        return [f"{proof['unmatched']} of your actor's optimiser steps came after no call of the policy on a "
                f"minibatch of the rollout just played: each step must follow policy(obs[idx]) on the rollout's "
                f"valid observations."]
    return []
