"""Concept questions: a few multiple-choice questions per chapter, checked with feedback on every choice.

Each exercise notebook of chapters 00-05 ends with a "Check your understanding" section: the questions
(:func:`questions_markdown`, written into the notebook), an answer cell where the learner fills in
``answers = {"q1": "b", ...}``, and a check cell, ``pg.concepts.check_concepts("03", answers)``. The check
prints one line per question: a right answer gets the reason it is right, a wrong one the reason *that
choice* is wrong (never which choice is right), a missing one what to write. It raises an ``AssertionError``
when any answer is wrong or missing, like the function checks.

The questions test understanding (why a baseline leaves the gradient unbiased, what GAE does at a
truncated step), not numbers to remember. :func:`count_correct` gives (right, total), what a grader
needs for per-question partial credit. This module imports nothing from the rest of the package.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Question", "QUESTIONS", "check_concepts", "count_correct", "blank_answers", "questions_markdown",
           "show", "POINTS_PER_QUESTION"]

POINTS_PER_QUESTION = 0.5  # the check cell's points are this times the number of questions


@dataclass(frozen=True)
class Question:
    """One multiple-choice question: ``choices`` maps a letter to its text; ``explanations`` maps every
    letter to why that choice is right (the answer) or wrong (every other letter)."""

    id: str
    text: str
    choices: dict[str, str]
    answer: str
    explanations: dict[str, str]

    def __post_init__(self) -> None:
        if self.answer not in self.choices:
            raise ValueError(f"{self.id}: the answer {self.answer!r} is not one of the choices {list(self.choices)}")
        if set(self.explanations) != set(self.choices):
            raise ValueError(f"{self.id}: every choice needs an explanation (choices {sorted(self.choices)}, "
                             f"explained {sorted(self.explanations)})")


def _q(qid: str, text: str, answer: str, *choices: tuple[str, str]) -> Question:
    """A question from (choice text, explanation) pairs, lettered a, b, c, …"""
    letters = "abcdefgh"[: len(choices)]
    return Question(qid, text, {k: c[0] for k, c in zip(letters, choices)}, answer,
                    {k: c[1] for k, c in zip(letters, choices)})


QUESTIONS: dict[str, list[Question]] = {
    "00": [
        _q("q1", "A CartPole episode ends with `terminated=False, truncated=True`. What does that say about the last "
                 "state?", "b",
           ("The pole fell or the cart left the track, so the episode ended in a failure.",
            "That is what `terminated=True` reports: the task itself ended. Here `terminated` is False."),
           ("The time limit cut the episode, and the last state had a future that was worth something.",
            "Right: truncation is a property of the clock, not of the state, so the state keeps its value."),
           ("The environment hit an internal error and stopped early, before the pole could fall.",
            "Errors raise exceptions; `truncated` is an ordinary flag, set here by the TimeLimit wrapper."),
           ("The agent reached the goal, so the future from the last state is worth 0.",
            "Reaching a terminal state is termination. Truncation says nothing about the state; treating it as "
            "'worth 0' is the truncation-as-termination mistake of lesson 03.")),
        _q("q2", "A vector env in next-step autoreset mode: env `i`'s episode ends at step `t`. What does env `i`'s "
                 "call to `step` at `t+1` do and return?", "c",
           ("A transition from the old final observation to the new first one, with the reward the action earned; "
            "it is trained on like any other row.",
            "The action of that step is ignored and its reward is 0: no action led from the old episode's last "
            "state to the new episode's first, so training on it teaches the policy noise."),
           ("It returns the old episode's final observation again, so that its value can be bootstrapped.",
            "Step t already returned the final observation; step t+1 returns the new episode's first one (the "
            "rollout keeps the final observation for the bootstrap, but the step does not return it again)."),
           ("A reset step: it ignores the action and returns reward 0, both flags False and the new episode's first "
            "observation; the row is masked.",
            "Right: the rollout's row t+1 (the old final observation, whose value is step t's bootstrap, the ignored "
            "action, reward 0) is what `transition_mask` marks as invalid."),
           ("Nothing new: env `i` pauses, repeating its last observation, until the other envs' episodes end too.",
            "A vector env steps all its envs on every call; none of them waits or repeats an observation.")),
        _q("q3", "Next-step autoreset: where is the true final observation of an episode that ended at step `t`?",
           "a",
           ("In the observation returned by step `t` itself.",
            "Right: in next-step mode the ending step returns the real last state; the reset happens one step "
            "later."),
           ("In `info[\"final_obs\"]` of step `t+1`.",
            "That key belongs to gymnasium's same-step autoreset mode, where the reset happens on the ending step. "
            "In next-step mode there is no such entry."),
           ("In the observation returned by step `t+1`.",
            "Step t+1 is the reset step: its observation is the first one of the next episode."),
           ("Nowhere: it is lost, so a truncated episode cannot be bootstrapped.",
            "It is not lost: it is the observation of step t, and lesson 03 bootstraps truncated steps from it.")),
        _q("q4", "A rollout stores `terminated` and `truncated` as float 0/1 tensors. Why combine them as "
                 "`terminated.bool() | truncated.bool()` and not as `terminated + truncated`?", "b",
           ("The sum is slower on large batches, because adding floats costs more than a logical or on bools.",
            "Each is one cheap elementwise operation (the `.bool()` conversions add two more); speed is not the "
            "point."),
           ("Both flags can be true on one step, so the float sum is then 2 and `1 - done` becomes -1.",
            "Right: CartPole whose pole falls on the time-limit step gives both flags, and the checks test that "
            "case. The `.bool()` is needed because torch has no `|` for float tensors; on bool tensors `+` would "
            "give True, not 2, but the rollout's flags are floats."),
           ("The float sum is promoted to float64, so `1 - done` no longer matches the float32 values.",
            "float32 + float32 stays float32 (checked); the problem is the value 2."),
           ("The sum would count every truncation as a termination, so time limits would cut the bootstrap.",
            "Neither form tells the two apart: both say 'the episode ended'. The problem of the sum is the value "
            "2.")),
    ],
    "01": [
        _q("q1", "Why does the REINFORCE loss multiply the *log*-probability of each action by its return, rather "
                 "than differentiate the return itself?", "a",
           ("The return depends on theta only through which actions get sampled, a discrete draw with no "
            "derivative; grad pi = pi grad log pi fixes that.",
            "Right: that is the score-function (likelihood-ratio) derivation of lesson 01, section 2."),
           ("The log makes the loss positive, and the optimiser needs a positive loss that it can push towards 0.",
            "Optimisers minimise any real number, positive or negative (with CartPole's raw returns as weights this "
            "loss is never negative, since log pi <= 0 and the returns are positive; with negative rewards or "
            "normalised weights it has either sign). Its value means nothing, only its "
            "gradient does."),
           ("Only for numerical stability: log(p1 p2 ... pT) = log p1 + ... + log pT avoids the underflow of long "
            "products; probabilities would work as well.",
            "The sum of logs does avoid underflow (which is why log_softmax computes the log), but the log itself "
            "comes from the derivation: with "
            "probabilities in its place the gradient would be a different, wrong quantity."),
           ("So that the loss equals minus the expected return, E[G], which the optimiser can then lower directly.",
            "The surrogate's value is not the expected return; only its gradient is what matters (the policy "
            "gradient's estimate, up to the gamma^t factor lesson 01 discusses).")),
        _q("q2", "Without normalisation, every reward is multiplied by 10. What happens to the REINFORCE gradient "
                 "estimate of a batch?", "c",
           ("Nothing changes: the log-probabilities and their gradients do not depend on the rewards at all.",
            "The estimate is a weighted sum of grad log pi with the returns as weights; the weights are 10 times "
            "larger."),
           ("Its direction changes: the episodes with large returns dominate the sum, so the agent learns a different "
            "policy.",
            "Every weight is multiplied by the same positive number, and a vector scaled by a positive number keeps "
            "its direction."),
           ("It points the same way and is 10 times longer: with plain SGD the steps are 10 times larger.",
            "Right: a positive factor on every weight scales the estimate. With plain SGD the step grows with it; "
            "Adam, which divides by a running average of the gradient's size, largely cancels a constant factor."),
           ("It becomes biased: the weights are now 10 times the returns that the derivation of the gradient assumes.",
            "Multiplying every weight by 10 multiplies the estimate and its expectation by 10: it is still an "
            "unbiased estimate of the gradient of the scaled objective, which points where the old one did.")),
        _q("q3", "Normalisation subtracts the batch mean from the returns. Why would subtracting a fixed constant `b` "
                 "(one not computed from the batch) from every weight leave the expected gradient unchanged (exactly, "
                 "for the per-episode sum of lesson 01, section 2)?", "b",
           ("Because the mean of the returns is small compared with the returns, so removing it barely changes the "
            "weights.",
            "CartPole returns are all positive and their mean is large; the argument does not depend on size."),
           ("Because E over a ~ pi of grad log pi(a|s) = grad of sum pi(a|s) = grad 1 = 0, so b times it averages to "
            "0.",
            "Right: the same identity makes any baseline that does not depend on the action unbiased (lesson 02). "
            "Exactly so for the per-episode sum of lesson 01, section 2; for the per-step mean of your loss, whose "
            "divisor B (the batch's steps) depends on the actions, b leaves a term -b grad E[1/B], small when "
            "episode lengths vary little. The batch mean is such a constant only approximately: it is computed from "
            "the batch's own episodes, so each step's weight shares a term with its own return and with the other "
            "returns of its episode. That "
            "leaves a bias, not measured in lesson 01, which shrinks as the batch holds more episodes (lesson 01, "
            "section 5)."),
           ("Because dividing by the standard deviation afterwards rescales the weights, which cancels the shift.",
            "Dividing rescales the weights; it cannot undo a shift. The shift drops out in expectation for a "
            "different reason."),
           ("Because b does not depend on theta, grad b = 0, so the b term drops out of each sample's gradient.",
            "b is not what gets differentiated: it multiplies grad log pi(a|s), so each sample keeps a term "
            "-b grad log pi(a|s), which is not zero. Only its expectation over a ~ pi is 0, and that is why the "
            "shift leaves the expected gradient unchanged, not each sample's.")),
        _q("q4", "Two seeds of the same REINFORCE configuration give very different learning curves on CPU. What is "
                 "the most likely reason?", "d",
           ("A bug in the training loop: correct code gives similar curves whatever the seed.",
            "A bug is possible, but seeds that differ do not point to one: this algorithm's seeds differ widely "
            "even when the code is right (lesson 01, section 9), and some bugs show on some seeds only."),
           ("Floating-point nondeterminism of the CPU, which sends each run along a slightly different path.",
            "On one machine (the same CPU, thread count and torch), a fixed seed reproduces a run bit for bit: the "
            "same seed run twice there gives the same curve. Across machines the last bits can differ (lesson 01, "
            "section 9), but that is not what makes two different seeds differ."),
           ("The learning rate is too small, so each run drifts slowly and the seeds spread apart.",
            "A small learning rate makes every seed slow, not the seeds different from each other."),
           ("The seed sets the initial weights and the sampled episodes, and the gradient estimate is very noisy.",
            "Right (lesson 01, section 9 cannot separate the initial weights from the sampling noise): which is why "
            "the course compares algorithms over many seeds, with intervals.")),
    ],
    "02": [
        _q("q1", "Why does subtracting a learned state value `V(s)` from the returns leave the policy gradient "
                 "unbiased?", "c",
           ("Because the critic is trained to predict the returns accurately, and only an accurate baseline adds no "
            "bias.",
            "Unbiasedness holds for any fixed function of the state (a critic fitted on earlier batches), even a "
            "badly trained one. Accuracy matters for the variance, not for the bias."),
           ("Because normalising the advantages afterwards removes any bias that the critic's errors may bring in.",
            "Normalising is a separate step; the argument holds without it."),
           ("Because for a fixed state V(s) is a constant, and E over a ~ pi of grad log pi(a|s) = grad 1 = 0.",
            "Right: the baseline may depend on the state, but not on the action or on anything after it, such as "
            "this batch's own returns (the critic that weights a batch was fitted on earlier ones; lesson 02, "
            "section 2.1)."),
           ("Because the critic's parameters are separate, grad_theta V(s) = 0, so V(s) grad log pi vanishes for each "
            "sample.",
            "grad_theta V(s) = 0 is true but beside the point: V(s) multiplies grad log pi(a|s), which is not zero for "
            "a single sample, so each sample keeps a term -V(s) grad log pi(a|s). Only its expectation over a ~ pi "
            "is 0.")),
        _q("q2", "Which of these baselines would bias the policy gradient?", "d",
           ("A constant, such as the average return of the previous batch, the same for every step.",
            "A constant does not depend on the action: unbiased."),
           ("The value of a critic that has barely been trained and is still far from the returns.",
            "A bad critic fitted on earlier batches is still a fixed function of the state: unbiased. It may remove "
            "little of the variance, or even add some (a critic far from the returns can make G - V spread more "
            "than G), but it does not bias the gradient."),
           ("No baseline at all (`b = 0`), as in plain REINFORCE.",
            "That is plain REINFORCE, the unbiased estimator we started from."),
           ("A baseline that depends on the action taken, `b(s, a)`.",
            "Right: the identity that makes the baseline term vanish sums over actions with b held fixed; a b that "
            "changes with the action does not drop out.")),
        _q("q3", "The advantage `G - V(s)` weights the policy's log-probabilities. Why must it be detached from the "
                 "critic's graph?", "a",
           ("Otherwise the policy loss also trains the critic, which learns to move the advantages instead of "
            "predicting returns.",
            "Right: the critic has its own loss; the advantage is a constant weight for the policy."),
           ("Detaching lowers the variance of the policy gradient, because the critic's noise no longer flows into "
            "it.",
            "Detaching changes no value and not the policy's gradient; it only stops gradient from reaching the "
            "critic."),
           ("Without it autograd raises an error: the critic's values cannot be differentiated inside the policy "
            "loss.",
            "It can: that is how the value loss trains the critic."),
           ("The advantage is an integer tensor, since CartPole's rewards are whole numbers, and has no gradient.",
            "Returns and values are floating-point tensors, and the critic's values do carry a gradient.")),
        _q("q4", "What is the entropy bonus (`beta > 0`) for?", "b",
           ("It makes the policy gradient unbiased, correcting for the actions that the policy samples more often.",
            "The estimator is already unbiased; the bonus adds a different term to the objective."),
           ("It rewards a random policy, so that it does not settle on one action before trying the others.",
            "Right: its gradient pushes the action probabilities towards uniform."),
           ("It lowers the variance of the gradient estimate, as the baseline does, by averaging over the actions.",
            "That is the baseline's job: the entropy term changes the objective, pushing the policy towards "
            "uniform; it is not there to reduce the gradient's noise (its own gradient, averaged over the sampled "
            "states, is noisy too)."),
           ("It raises the environment's own reward, so the return the environment reports grows directly.",
            "The environment's reward does not change; the bonus is added only to what the optimiser maximises, not "
            "to the return the environment reports.")),
    ],
    "03": [
        _q("q1", "A rollout step `t` is truncated by the time limit (not terminated). What does GAE do at that "
                 "step?", "a",
           ("It still bootstraps from V of the final observation, but the trace stops: the rows after it belong "
            "to another episode.",
            "Right: the bootstrap is cut on `terminated` only, the lambda-trace on any episode end."),
           ("It treats the step as terminal: no bootstrap from the next state, and the future counts as worth 0.",
            "That is the truncation-as-termination mistake: the state had a future, and a future worth 0 biases the "
            "critic's targets and the advantages (lesson 03, section 6, measures it with A2C)."),
           ("Nothing special: both the bootstrap and the trace go on into the following rows, as for any other step.",
            "The bootstrap does continue (truncation keeps it), but the trace must not: the following rows are the "
            "reset step and a new episode, and blending their TD errors mixes two episodes."),
           ("The step is dropped from the batch, since its return was cut short and would bias the advantages.",
            "It is a real transition and is trained on; only the reset step after it is masked.")),
        _q("q2", "Which lambda gives the lowest-variance advantages (for a fixed critic close to the true value "
                 "function)?", "a",
           ("`lambda = 0`: the advantage is the one-step TD error.",
            "Right: it uses one reward and one next-state value, so it has the least noise from the sampled future "
            "and the most bias from the critic's errors. (A very inaccurate critic can add noise of its own through "
            "V(s_{t+1}), which lambda = 1 cancels.)"),
           ("`lambda = 1`: the Monte Carlo return minus V, which averages over the most rewards.",
            "That sums the noise of every reward up to the episode's or the rollout's end: the highest variance. It "
            "has the least bias from the critic: only the bootstraps where the rollout or a time limit cuts the sum "
            "remain (V(s_t) itself acts as a baseline)."),
           ("`lambda = 0.95`, the usual default, which balances the noise of both ends.",
            "0.95 is a compromise between bias and variance, not the variance minimum."),
           ("The variance does not depend on lambda; only the bias does.",
            "Lambda sets how strongly the later, noisier rewards are weighted in each advantage, so it sets the "
            "variance.")),
        _q("q3", "With `lambda = 1` and no episode end inside the rollout, what is GAE's advantage of step `t`?",
           "c",
           ("The TD error of step t alone: the later TD errors do not enter the sum.",
            "That is `lambda = 0`."),
           ("The discounted return from step t to the end of the episode, with no value subtracted from it.",
            "Close, but two things differ: the sum stops at the rollout's last step, where V of the next observation "
            "stands in for the rest of the episode, and the critic's value V(s_t) is subtracted."),
           ("The discounted return from step t, bootstrapped after the rollout's end, minus V(s_t).",
            "Right: the TD errors telescope; a good self-check of a GAE implementation."),
           ("Zero: with lambda = 1 the TD errors of neighbouring steps cancel in pairs.",
            "They telescope, they do not cancel: the rewards and the bootstrap value remain.")),
        _q("q4", "The TD error of step `t` uses `next_values[t]`, not `values[t+1]`. Why?", "b",
           ("They are always equal; `next_values` is a convenience that saves indexing one row further.",
            "In pgcourse's rollouts they agree on every row but the last, which has no row t+1; and a GAE function "
            "must also be right where row t+1 holds a new episode's first observation (same-step autoreset)."),
           ("Row t+1 may be missing or hold a new episode; `next_values[t]` is V of where step t really led.",
            "Right: with pgcourse's next-step autoreset the reset row is computed on the final observation, so the "
            "two agree on every row but the last (lesson 03, section 2.5); `next_values` keeps the TD error right at "
            "the rollout's end and under any autoreset mode (with same-step autoreset, row t+1 would start the new "
            "episode)."),
           ("`next_values` carries a gradient that the critic needs in order to learn from its own bootstrap targets.",
            "Both are detached in the TD error: the advantages are constants."),
           ("`values[t+1]` is out of range for every step, so the TD error needs a tensor of its own.",
            "It exists for every step but the last; the last step needs the value after the rollout.")),
    ],
    "04": [
        _q("q1", "A sample has a negative advantage. What does PPO's clip do for it?", "c",
           ("It stops the gain once the ratio rises above `1 + eps`, as it does for a positive advantage.",
            "For a negative advantage, raising the ratio lowers the objective: the min keeps the unclipped term "
            "there, so the full penalty applies."),
           ("Nothing: the clip only acts on positive advantages, where the policy could be over-rewarded.",
            "It acts on both signs, at opposite ends of the interval."),
           ("Once the ratio is below `1 - eps`, pushing that action's probability lower gains nothing (zero gradient).",
            "Right: past 1 - eps this sample stops pushing the action's probability down; the probability can still "
            "fall further through the other samples' steps: the clip removes the incentive, it does not bound the "
            "move (lesson 04, section 3; lesson 04c, section 1)."),
           ("It flips the sign of the advantage once the ratio leaves the interval, so the push on the probability "
            "reverses.",
            "No sign changes: the clip bounds the ratio, it does not touch the advantage.")),
        _q("q2", "Why does L^CLIP take the minimum of the unclipped and the clipped term, instead of using the "
                 "clipped term alone?", "a",
           ("With the clipped term alone, a ratio pushed the wrong way past the interval gets zero gradient and "
            "cannot be pulled back.",
            "Right: the min makes the objective a pessimistic bound, clipping only the gains."),
           ("The minimum is cheaper to compute than the clipped term, which needs every ratio clamped first.",
            "Both terms are computed anyway; cost is not the reason."),
           ("The minimum makes the objective an unbiased estimate of the new policy's expected return, which the "
            "clipped term alone is not.",
            "Neither term estimates the return; the surrogate only has the right gradient near ratio 1."),
           ("The minimum makes advantage normalisation unnecessary, since it bounds each sample's term.",
            "Normalisation concerns the advantages' scale, which the min does not change.")),
        _q("q3", "During an update, approx-KL climbs far above its usual level and the clip fraction approaches 0.5. "
                 "What is the most likely cause?", "d",
           ("The critic fits the returns too closely, overfitting this batch, so its advantages become noise.",
            "The critic's fit enters neither the KL nor the clip fraction: both compare two policies."),
           ("The entropy coefficient is too high, so the bonus pushes the policy towards uniform at every step.",
            "Less likely: the entropy term sits outside the clip, so a very strong bonus can move the policy (toward "
            "uniform), but you would see the entropy rising. Look for what else moves the policy this far in one "
            "update."),
           ("Nothing is wrong: a clip fraction near 0.5 is what PPO aims for, with half of the samples clipped.",
            "Half of the samples outside the interval means the policy has moved far beyond the trust region."),
           ("The steps are too large for one batch: learning rate too high, or too many epochs or minibatches.",
            "Right: the usual remedies are a lower learning rate, fewer epochs, or a KL early stop, which brakes late "
            "(lesson 04c, section 1). The course met a KL this large only without the clip: in lesson 04c, section 3, "
            "30 epochs with no clip moved the policy far past the trust region and ended far below the same 30 epochs with "
            "the clip (intervals apart), while with the clip more epochs helped. No arm there logged a clip "
            "fraction near 0.5 (the unclipped arm's is measured against a clip range of 100).")),
        _q("q4", "The explained variance of the critic is -0.3. What does that mean?", "b",
           ("The critic explains 30% of the returns' variance; the sign says that it underestimates them.",
            "That would be +0.3: a positive number means the critic accounts for part of the variance. And EV's sign "
            "says nothing about over- or underestimation: a constant offset in V leaves Var[R - V], and so EV, "
            "unchanged."),
           ("The critic's errors vary more than the returns do: predicting the mean return would do better.",
            "Right: EV = 1 - Var[R - V] / Var[R] < 0 means Var[R - V] > Var[R]."),
           ("The returns are all equal, so there is no variance left for the critic to explain.",
            "Then Var[R] = 0 and the explained variance is undefined (nan), not negative."),
           ("Nothing about the critic: explained variance always lies in [0, 1], so the number must come from a bug.",
            "It is at most 1 but has no lower bound: a bad critic can be arbitrarily negative.")),
        _q("q5", "Why are the old log-probabilities stored when the rollout is collected, instead of recomputed at "
                 "the start of each epoch?", "a",
           ("The ratio must compare with the policy that collected the data, or the clip re-centres every epoch.",
            "Right: the samples and their advantages belong to pi_old, so the ratio pi_theta / pi_old is the "
            "importance weight and the clip's interval lies around pi_old. Recomputed per epoch, only the first "
            "minibatch of each epoch has ratio 1; the later ones measure the move since that epoch began (the clip "
            "acts on it), and the moves of the epochs add up unclipped."),
           ("To save compute: recomputing them would cost a full forward pass over the whole batch at the start of "
            "every epoch.",
            "A forward pass is cheap; the reason is what the ratio means."),
           ("Because the environment needs them: it is stepped with each action together with that action's "
            "log-probability.",
            "The environment only receives actions."),
           ("It makes no difference: the policy is the same network, so the log-probabilities come out the same.",
            "In the first epoch it makes none (the policy has not moved yet); from the second epoch on, every ratio, "
            "and with it what the clip does, is measured from another policy than the one that collected the data.")),
    ],
    "05": [
        _q("q1", "The environment receives a clipped action. Which action's log-probability goes into the PPO "
                 "ratio?", "b",
           ("The clipped one, since that is the action the environment actually executed and rewarded.",
            "The clipped action was not sampled from the Gaussian: every action beyond the bound maps to the same "
            "clipped value, and its density under the Gaussian is a different number, which distorts the ratio and "
            "the gradient."),
           ("The sampled, unclipped one: the ratio needs the probability of the policy's own draw.",
            "Right: the clip belongs to the environment, not to the policy (lesson 05, section 4)."),
           ("Either one: they give the same log-probability, because the clip changes only rare actions.",
            "They differ for every action outside the bounds: about 1 in 22 for a fresh policy (lesson 05, section "
            "4), and more once the mean nears a bound, as a swing-up that wants full torque makes it."),
           ("Neither: continuous actions have no log-probability, so the ratio is computed from the means.",
            "They have a log-density, which plays the same role in the policy gradient.")),
        _q("q2", "Pendulum-v1 episodes always end with `truncated=True` after 200 steps. What happens if the agent "
                 "treats that end as terminal?", "a",
           ("The last steps' targets assume a future worth 0: the clockless critic sees similar states with very "
            "different targets.",
            "Right: the critic cannot fit both kinds of target, so its values and the advantages become biased. "
            "Lesson 03, "
            "section 6 measured it with A2C under a 100-step time limit: over ten seeds the "
            "critic's loss stayed about three times as high as with correct bootstrapping, while the learning curves "
            "of the two arms could not be told apart, and in one seed's greedy episode the TD error at the cut was "
            "far off."),
           ("Nothing goes wrong: Pendulum's rewards are negative anyway, so a future worth 0 is close enough.",
            "A future worth 0 is better than Pendulum's true (negative) future, so the targets become biased, "
            "upward here; the sign of the rewards does not make the error vanish."),
           ("Learning gets more stable, because the episodes look shorter and their returns vary less.",
            "The episodes are the same length; only the targets of their last steps change, and they become "
            "wrong."),
           ("GAE ignores the flags and cuts only at the rollout's end, so treating the end as terminal has no effect.",
            "GAE reads them: `terminated` cuts the bootstrap, any end cuts the trace.")),
        _q("q3", "Why does the Gaussian policy learn `log sigma` rather than `sigma`?", "c",
           ("Only for speed: the log-probability formula needs `log sigma` anyway, so learning it saves computing one "
            "log.",
            "It does use log sigma, but the main reason is the constraint on sigma."),
           ("So that the entropy no longer depends on sigma and the bonus cannot inflate it.",
            "The entropy is log sigma plus a constant per dimension: it still depends on it."),
           ("sigma must stay positive, but log sigma can be any real number and a step changes sigma by a factor.",
            "Right: no clamp is needed to keep sigma positive (lesson 05's log_std_min is a floor on exploration, not "
            "a positivity fix), and small and large sigmas are updated alike in relative terms."),
           ("So that sigma shrinks automatically during training, as the policy becomes more certain.",
            "Nothing in the parametrisation makes sigma shrink; the gradient of the objective decides.")),
        _q("q4", "The agent trained with observation normalisation. Why must the running statistics be saved with "
                 "the network?", "d",
           ("They are needed to compute the rewards, which are normalised with the same running statistics.",
            "The environment computes the rewards. Reward normalisation (`NormalizeReward`) keeps statistics of its "
            "own, of a discounted sum of rewards, not the observations'; and scaled rewards serve only in training: "
            "acting needs none."),
           ("They are only used during training, to speed up learning, so they need not be saved.",
            "The network was trained on normalised inputs: evaluation has to feed it inputs normalised the same "
            "way."),
           ("They make the saved file smaller and the trained agent faster to load.",
            "They add a few numbers; neither size nor loading speed is the reason."),
           ("The network learned on inputs normalised with them, and without them its inputs look different.",
            "Right: the statistics are part of the agent (lesson 05, section 9).")),
    ],
    "06": [
        _q("q1", "`pg.diagnose` reports every signal healthy for your new training loop. What may you conclude?", "c",
           ("That the loop has no bug: the signals cover the ways a training loop can fail.",
            "Some bugs leave no mark on the signals it reads: in exercise 06, pg.diagnose calls some of the mystery "
            "trainers healthy, though each has a bug."),
           ("That the hyperparameters are well tuned, since a poor setting would show up as an unhealthy signal.",
            "It flags some bad settings (a low critic learning rate, a long rollout) when they leave a signature, "
            "but healthy signals do not mean well tuned: a healthy run can still learn slowly."),
           ("That none of the bugs it knows left its mark: other bugs need a probe or a correct twin.",
            "Right: the diagnosis is a lead, not a verdict (lesson 06, section 4)."),
           ("That the loop is correct at least on CartPole, the environment whose runs set pg.diagnose's thresholds.",
            "Where its thresholds were set changes nothing here: the signals cannot see a bug that changes nothing "
            "they measure, on CartPole as on any other environment (lesson 06, section 4).")),
        _q("q2", "You wrote a new actor-critic and suspect its value loss. Which test isolates the critic fastest?",
           "b",
           ("Train on CartPole for longer and watch the return: with a working critic it rises steadily.",
            "The return mixes the policy, the critic and the environment: a broken critic may only slow learning, "
            "and you cannot tell which part failed."),
           ("Train on a probe with one observation and one terminating step of reward +1, and check that V reaches 1.",
            "Right: with nothing to learn but the value, a critic that does not get close to the known answer is broken "
            "(lesson 06's probe environments)."),
           ("Raise the critic's learning rate until the explained variance is high, then see if the return improves.",
            "That tunes around a bug instead of finding it; a broken loss can still fit something."),
           ("Compare your return curve with Stable-Baselines3's PPO on the same environment and seed.",
            "Even with the same seed, the two libraries differ in defaults, initialisation and how they draw random "
            "numbers; the comparison cannot say which line is wrong.")),
        _q("q3", "On the time-limit probe (reward +1 every step, every episode cut by the time limit, discount "
                 "gamma) the true value is 1 / (1 - gamma), but your critic settles well below it and stays there "
                 "however long you train, at the same value on every seed. Which bug fits?", "a",
           ("The time limit is treated as termination, so the targets drop the future at every episode end.",
            "Right: the buggy targets drop the future at every episode end, so the critic settles below "
            "1 / (1 - gamma), where it settles depends on the targets: one-step TD targets (Part B's loop) settle at "
            "V = 1 + gamma (9/10) V for 10-step episodes, Monte Carlo or GAE targets near the average cut return "
            "that lesson 06 predicts and measures for PPO."),
           ("The advantage has the wrong sign, so the critic is pushed away from the returns it should predict.",
            "That breaks the policy, not the value targets: it fails the probes where the action matters."),
           ("The critic's learning rate is too low, so after the same number of updates it stops short of the true "
            "value.",
            "A slow critic is still moving towards the true value, 1 / (1 - gamma): after a fixed budget it can sit "
            "well below it (the lesson's probe table), but longer training moves it on; one wrong value that longer "
            "training does not change, the same on every seed, points at wrong targets."),
           ("At the time limit the TD error bootstraps from the reset observation, not the final one.",
            "On this probe every observation is the same, so V of the reset observation is V of the final one, and "
            "the critic would still reach 1 / (1 - gamma).")),
        _q("q4", "Why does the bug hunt train each mystery's correct twin with the same seed?", "d",
           ("To make training faster, since the twin can reuse the rollouts of the mystery it shadows.",
            "It doubles the training; the point is the comparison."),
           ("Because `pg.diagnose` needs two runs with the same seed, one of them correct, to compare before it can "
            "report a bug.",
            "It diagnoses one run on its own."),
           ("Because one twin with the same seed averages out the noise as well as ten seeds would.",
            "One run averages nothing; the twin is useful because its randomness is the same, not because it "
            "is another sample."),
           ("The runs match until the bug first acts, so where they part shows its effect, which seed-to-seed noise "
            "would hide.",
            "Right: on the machine that recorded the run the same seed makes the comparison exact on CPU; on another, "
            "rounding drift grows from update to update, so compare the first updates (lesson 06 and the bug "
            "hunt's hints)."))
    ],
    "07": [
        _q("q1", "Why does TRPO bound the KL divergence between the old and the new policy instead of the Euclidean "
                 "length of the parameter step?", "b",
           ("The Euclidean length is more expensive to compute for a network with many parameters.",
            "It is the cheapest quantity there is (one norm); TRPO pays for conjugate gradient and a line search to "
            "use the KL instead."),
           ("Equal steps in theta can move the policy a lot or barely; the KL measures its change whatever the "
            "parametrisation.",
            "Right: the natural gradient is the steepest ascent when distance is measured in KL, whose local "
            "metric is the Fisher matrix, and it asks for the same change of the policy in any parametrisation "
            "(exactly for a linear reparametrisation, to first order otherwise; lesson 07)."),
           ("The KL bound makes the surrogate an unbiased estimate of the new policy's expected return, not just a "
            "local one.",
            "The surrogate is a local approximation whatever the bound; the bound keeps the new policy close "
            "enough for that approximation to be trusted."),
           ("With a KL bound no gradient of the surrogate is needed, only the curvature of the KL around the old "
            "policy's parameters.",
            "TRPO still needs the surrogate's gradient g: the natural step is F^-1 g.")),
        _q("q2", "TRPO needs s = (F + damping I)^-1 g, with F the Fisher matrix of a policy with P parameters. Why does "
                 "it never form F?",
           "a",
           ("F has P x P entries, so conjugate gradient uses only products F v, each costing about two gradients.",
            "Right: the lesson prints how large F would be for the CartPole policy and measures what a product "
            "costs."),
           ("F is not symmetric, so it cannot be stored compactly or inverted the way conjugate gradient needs.",
            "F is symmetric (a Hessian, and an expected outer product of score vectors); size is the problem."),
           ("F is always the identity at theta_old, so the product F v is just v and nothing needs forming.",
            "F is the KL's Hessian at theta_old, not the identity; if it were, the natural gradient would be the "
            "ordinary gradient."),
           ("Forming F would change the policy's parameters, since its second derivatives need a backward pass.",
            "Computing second derivatives changes no parameter; it costs memory and time.")),
        _q("q3", "The step length beta = sqrt(2 max_kl / s^T (F + damping I) s), with the damped product conjugate "
                 "gradient used, puts the damped quadratic KL estimate exactly on max_kl (the undamped one, "
                 "1/2 beta^2 s^T F s, a little below). Yet the line search can reject the full step because the "
                 "real KL is larger (exercise 5's check builds such a case with low damping). Why?", "d",
           ("Conjugate gradient returned a step with the wrong sign, which moves the policy further than planned.",
            "A wrong sign would make the surrogate worse; it does not explain a KL above the bound."),
           ("CG stopped after a few iterations, so s^T (F + damping I) s misjudges the KL of the step it takes.",
            "beta uses the damped product of the s that CG returned, so the quadratic estimate is computed for the "
            "very s CG returned, whatever CG's accuracy (an inexact s only changes the step's direction); what it leaves out are the "
            "KL's higher-order terms."),
           ("max_kl is measured per state, while the quadratic estimate is an average over the batch's states.",
            "Both are the mean KL over the batch's states."),
           ("The quadratic is a second-order estimate of the KL, and a finite step meets the higher-order terms.",
            "Right: that is why TRPO checks the real KL and backtracks (lesson 07 counts how often it does).")),
        _q("q4", "By lesson 07's measurements, what favours PPO over TRPO?", "c",
           ("Progress on simple tasks such as CartPole, where TRPO's KL-bounded steps are too small to get anywhere "
            "in time.",
            "TRPO gets there: lesson 07's TRPO solves CartPole with its defaults, and PPO was not ahead of it on "
            "CartPole."),
           ("A monotonic-improvement guarantee that TRPO lacks, so that PPO's updates fail less often in "
            "practice.",
            "The other way round: TRPO is derived from such a bound (with approximations); PPO's clip is a "
            "heuristic."),
           ("Simpler first-order code that reuses each batch for several epochs, with final returns that ten seeds "
            "could not tell apart.",
            "Right: in lesson 07 ten seeds could not tell PPO's final returns from TRPO's (not proof that they are "
            "equal), and PPO was ahead early on Acrobot and Pendulum, not on CartPole, from first-order code with no "
            "conjugate gradient and no line search: several epochs of minibatch Adam steps on one batch. "
            "The lesson measures returns per env step and per second, counts what one update costs and the code each "
            "update needs; that PPO also fits stock optimisers and shared actor-critic networks is an argument it did "
            "not test."),
           ("Updates that left the trust region less often than TRPO's did in the lesson's runs, which made PPO's "
            "learning more stable overall.",
            "The other way round: in lesson 07 not one TRPO update ended outside max_kl (its line search checks the "
            "real KL), while PPO, with no hard bound, had a tail of larger update KLs.")),
    ],
    "08": [
        _q("q1", "A batch holds two responses, of 3 and of 9 tokens, padded to 9. Your `sequence_log_probs` forgets "
                 "the mask. What goes wrong?", "b",
           ("Nothing: the padding's log-probabilities are 0, so they add nothing to the sum.",
            "A padded position holds some token id (PAD or leftovers) and the model gives it a probability below "
            "1: its log-probability is negative, not 0."),
           ("The short response's sum takes in six padding positions: a wrong log-probability, and a push on "
            "unwritten tokens.",
            "Right: the padding enters the sum and its gradient; the mask keeps a response's log-probability the "
            "log of the probability of what was actually sampled (exercise 1)."),
           ("Only the longest response is affected, since it has no padding and so no mask to line up with its "
            "tokens.",
            "The longest response has no padding and is the one that comes out right; the short one is wrong."),
           ("The sum becomes a mean over all nine positions, so both responses' log-probabilities shrink by the same "
            "factor of nine.",
            "Leaving out the mask changes which positions are summed, not the reduction.")),
        _q("q2", "GRPO samples 8 responses to a prompt and all 8 are right (exact reward 1). What does this prompt "
                 "contribute to the update?", "c",
           ("A large push towards these 8 responses: they all earned the highest reward, so each gets a large "
            "advantage.",
            "The advantages are relative to the group: every response is exactly as good as its group's mean, "
            "so there is nothing to push towards."),
           ("NaN: the group's standard deviation is 0, and the advantages are divided by it.",
            "That is what eps prevents: 0 / (0 + eps) = 0, never NaN (exercise 4)."),
           ("Nothing from the clipped loss, since all advantages are 0, but the KL term acts on its tokens as usual.",
            "Right: a group whose rewards are all equal carries no signal about which response is better (though "
            "with the token-level mean its tokens still count in the denominator and dilute the other prompts' push; "
            "DAPO filters such groups out); "
            "GRPO learns from prompts the policy sometimes gets right and sometimes wrong."),
           ("A push away from these responses: a group with no spread gets negative advantages to prevent collapse.",
            "No such rule: with all rewards equal every advantage is 0 (exercise 4), so the clipped loss pushes "
            "nowhere. What remains is the KL term, which moves each sampled token's probability towards the "
            "reference's: down where the policy now likes it more than the reference, up where it likes it less. "
            "That is the leash acting whatever the rewards, not a push away from these responses.")),
        _q("q3", "Both k1 and k3 estimate KL(pi_theta || pi_ref) without bias from tokens sampled from pi_theta. "
                 "Why must a KL term in the loss be k3 rather than k1?", "a",
           ("On the policy's own samples k1's expected gradient is zero, so it would not pull, but k3's does.",
            "Right: the gradient of k1 on a sampled token is grad log pi_theta, whose mean under pi_theta is 0. "
            "k3's mean gradient is that of the KL with its arguments swapped, grad KL(pi_ref || pi_theta): not "
            "the KL its value estimates, but zero only at the reference, so it leashes (and k3 is never negative "
            "on a single token, where k1 can be). Exercise 3 measures "
            "k3's smaller spread when the policy shifts all its logits smoothly; once the policy makes rare a token "
            "the reference still likes (r large), k3 can be the noisier one even at a small KL (lesson 08, "
            "section 5)."),
           ("k1 is larger than k3 on every token, so as a penalty it would outweigh the clipped loss.",
            "With r = pi_ref / pi_theta, k1 = -log r and k3 = (r - 1) - log r, so k3 - k1 = r - 1, which has either "
            "sign: k1 is the larger only on tokens the policy likes more than the reference does (r < 1). And both "
            "have the KL as their mean."),
           ("k3 needs no reference model, so GRPO can drop the reference's forward pass.",
            "Both need the reference's log-probability of each sampled token: the ratio r is pi_ref over pi_theta."),
           ("k3 is exact: it equals the KL on every single token, while k1 only matches it on average over many.",
            "No single-token estimate is exact; k3 only matches the KL on average (its mean).")),
        _q("q4", "You fine-tune with a verifier that has a loophole and watch the training curve: the reward keeps "
                 "rising. How do you find out whether the model is learning the task or gaming the verifier?", "d",
           ("The rising reward is the answer: the verifier is the definition of the task, so whatever it pays for is "
            "the task.",
            "A verifier with a loophole rewards things that are not the task; the training reward is exactly the "
            "number the policy learned to push up, so it cannot tell the two apart."),
           ("Watch the loss: if it keeps falling while the reward rises, the model is learning the task rather than "
            "exploiting the loophole.",
            "The policy-gradient loss is a surrogate whose value does not measure how well the task is done "
            "(lesson 01): with group-relative advantages it starts every update near 0, whether the model is "
            "learning the task or gaming the verifier."),
           ("A small KL to the reference proves that the model did not game the verifier, since gaming it needs a "
            "large change.",
            "A small KL limits how far the policy moved, not where it moved; a small, targeted change can game "
            "a verifier (in lesson 08, under the strongest leash, the too-long answers the loophole pays for still "
            "grew)."),
           ("Read samples and score them with an independent exact check: a proxy rising while the exact score does "
            "not is reward hacking.",
            "Right: lesson 08 trains GRPO on the loophole verifier and shows its samples, the exact reward beside the "
            "proxy, and what the proxy pays (a mean above a right answer's 1.0 can only come from gaming).")),
    ],
}


def _chapter(chapter: Any) -> str:
    key = str(chapter).strip().lower().removeprefix("ch")
    if key.isdigit():
        key = f"{int(key):02d}"
    if key not in QUESTIONS:
        raise ValueError(f"no concept questions for chapter {chapter!r}; chapters with questions: "
                         f"{', '.join(sorted(QUESTIONS))}")
    return key


def blank_answers(chapter: Any) -> dict[str, None]:
    """``{"q1": None, ...}``: the answer dictionary as handed out."""
    return {question.id: None for question in QUESTIONS[_chapter(chapter)]}


def questions_markdown(chapter: Any) -> str:
    """The questions of ``chapter`` as markdown (the text of the notebook's questions cell)."""
    parts = []
    for number, question in enumerate(QUESTIONS[_chapter(chapter)], start=1):
        lines = [f"**{question.id}.** {question.text}", ""]
        lines += [f"- **({letter})** {text}" for letter, text in question.choices.items()]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


class _Markdown(str):
    def _repr_markdown_(self) -> str:
        return str(self)


def show(chapter: Any) -> _Markdown:
    """The questions of ``chapter``, shown as markdown in a notebook (as text in a terminal)."""
    return _Markdown(questions_markdown(chapter))


def _normalise(value: Any) -> str | None:
    if value is None:
        return None
    return value.strip().lower().strip("()") if isinstance(value, str) else repr(value)


def _feedback(chapter: str, answers: Any) -> tuple[list[str], int, int]:
    """(lines of feedback, right, total)."""
    questions = QUESTIONS[chapter]
    if not isinstance(answers, Mapping):
        lines = [f"`answers` must be a dict like {blank_answers(chapter)!r} with each None replaced by a letter; "
                 f"got a {type(answers).__name__}."]
        return lines, 0, len(questions)
    lines, right = [], 0
    known = {question.id for question in questions}
    for question in questions:
        given = _normalise(answers.get(question.id))
        letters = ", ".join(repr(letter) for letter in question.choices)
        if given is None:
            lines.append(f"- {question.id}: not answered yet (None). Choose one of {letters}.")
        elif given not in question.choices:
            lines.append(f"- {question.id}: {answers.get(question.id)!r} is not a choice. Choose one of {letters}.")
        elif given == question.answer:
            right += 1
            lines.append(f"✓ {question.id} ({given}): {question.explanations[given]}")
        else:
            lines.append(f"✗ {question.id} ({given}): {question.explanations[given]}")
    extra = sorted(str(key) for key in answers if key not in known)
    if extra:
        close = {key: difflib.get_close_matches(key, sorted(known), n=1) for key in extra}
        named = ", ".join(f"{key!r}" + (f" (did you mean {close[key][0]!r}?)" if close[key] else "")
                          for key in extra)
        lines.append(f"- unknown question(s) {named}: the questions are {', '.join(sorted(known))}.")
    return lines, right, len(questions)


def count_correct(chapter: Any, answers: Any) -> tuple[int, int]:
    """(questions answered right, questions) of ``chapter``: what per-question partial credit needs."""
    _, right, total = _feedback(_chapter(chapter), answers)
    return right, total


def check_concepts(chapter: Any, answers: Any) -> None:
    """Check the concept questions of ``chapter``: print the feedback on every answer when all are right,
    raise an ``AssertionError`` carrying the same feedback when any is wrong or missing."""
    key = _chapter(chapter)
    lines, right, total = _feedback(key, answers)
    if right == total:
        print("\n".join(lines))
        print(f"✓ concept questions of chapter {key}: {right} of {total} right")
        return
    raise AssertionError(f"concept questions of chapter {key}: {right} of {total} right. For each answer, why it "
                         "is right or why that choice is wrong (reread the lesson and try again):\n" + "\n".join(lines))
