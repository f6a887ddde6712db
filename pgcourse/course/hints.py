"""Tiered hints for the exercises: ``pg.hint("collect_rollout")``, then ``level=2``, then ``level=3``.

Each exercise with hints has three, from the least to the most given away:

1. **the idea**: what the piece does and the trap in it, in words;
2. **the formula**: the rule or the math to apply, with the shapes;
3. **near-code**: the skeleton of a solution, its key expressions left as ``…`` for you to write.

A call shows its own level only, so nothing is shown before it is asked for, and nothing is recorded about
which hints were asked for (the grader never sees them). Any exercise can get hints: add its three texts to
:data:`HINTS` under the exercise's name. This module imports nothing from the rest of the package.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

LEVEL_NAMES = ("the idea", "the formula", "near-code")

# exercise name -> (the idea, the formula, near-code); markdown, shown as written
HINTS: dict[str, tuple[str, str, str]] = {
    # chapters 00-05: the function exercises
    "play_episode": (
        "One episode is a loop: reset once with the seed, then step until the environment says the episode is over. "
        "It is over when either flag is true: `terminated` (the task ended, e.g. the pole fell) or `truncated` (a "
        "time limit cut it). The flags you return are those of the last step.",
        "obs, info = env.reset(seed=seed); then repeat obs, reward, terminated, truncated, info = env.step(policy(obs)), "
        "adding the reward to a running float and counting the steps, until terminated or truncated.\n\n"
        "Return (float return, int length, bool(terminated), bool(truncated)): gymnasium may give numpy booleans "
        "and numpy floats.",
        "```python\nobs, info = env.reset(seed=seed)\nepisode_return, length = 0.0, 0\nwhile True:\n"
        "    obs, reward, terminated, truncated, info = …\n    …                      # accumulate, count\n"
        "    if …:\n        return …\n```"),
    "transition_mask": (
        "In NEXT_STEP autoreset, an env whose episode ended at step t spends step t+1 resetting: that row is not a "
        "transition. So whether row t is valid depends only on whether row t-1 ended an episode. Row 0 follows "
        "envs.reset(), so it is always valid.",
        "done = terminated OR truncated, elementwise ([T, N] bool; both flags can be true on the same step, so "
        "combine with a logical or).\n\nvalid[0] = True; valid[t] = not done[t-1] for t >= 1. No loop over time is "
        "needed: the valid tensor is the done tensor moved one row down, negated.",
        "```python\ndone = …                         # [T, N] bool, logical or\nvalid = torch.ones_like(done)     "
        "# row 0 stays True\nvalid[1:] = …                     # from done[:-1]\nreturn valid\n```"),
    "completed_episode_returns": (
        "Keep one running sum per env. Walk through the rollout step by step; a reset step adds nothing; when an "
        "episode ends at a step, its sum (that step's reward included) is finished: record it and start the env's "
        "sum again from zero. Episodes still running at the end are never recorded.",
        "running[i] += reward[t, i] if valid[t, i] (transition_mask from exercise 2), else 0.\n\nAt every step t, "
        "for the envs i with done[t, i] = terminated or truncated, in increasing i: append running[i], then set "
        "running[i] = 0. Accumulate in float64 and return Python floats.",
        "```python\ndone = …\nvalid = transition_mask(terminated, truncated)\nrunning = torch.zeros(rewards.shape[1], "
        "dtype=torch.float64)\nfinished = []\nfor t in range(rewards.shape[0]):\n    running += …        # zero on "
        "reset steps\n    for i in …:           # the envs whose episode ends at t, in order\n        "
        "finished.append(…)\n        …\nreturn finished\n```"),
    "action_log_probs": (
        "The policy is a softmax over the logits of each row. You need the log of the probability of the action "
        "that was actually taken in each row, computed in a way that stays finite when one logit is far larger than "
        "the others (a probability that underflows to 0 has log -inf).",
        "log pi(a | s) = z_a - log sum_b exp(z_b) for the row's logits z [A]; the log-sum-exp must be computed stably "
        "(torch.log_softmax does, and so does the log_prob of a torch.distributions.Categorical built from logits). "
        "Then pick, in each row i, the entry of column actions[i]: [B, A] -> [B].",
        "```python\nall_log_probs = …                       # [B, A], stable in one call\nreturn all_log_probs.gather(1, "
        "…).squeeze(1)   # the taken action of each row\n```"),
    "discounted_returns": (
        "The return from step t is the reward at t plus the discounted return from t+1. So the last step's return is "
        "its reward, and every earlier one is built from the one after it: walk the episode backwards. The returns "
        "are targets, so they carry no gradient.",
        "G_{T-1} = r_{T-1}; G_t = r_t + gamma * G_{t+1} for t = T-2, ..., 0. Output [T], the dtype of rewards, "
        "detached.",
        "```python\nrewards = rewards.detach()\nreturns = torch.zeros_like(rewards)\nrunning = 0.0\n"
        "for t in reversed(range(…)):\n    running = …\n    returns[t] = running\nreturn returns\n```"),
    "normalize": (
        "Standardising shifts a batch to mean 0 and scales it to standard deviation 1. Two details decide the edge "
        "cases: which standard deviation (a batch of one element must not give NaN) and the small eps (a constant "
        "batch must stay finite).",
        "(x - mean(x)) / (sigma + eps), with sigma the population standard deviation: sqrt(mean((x - mean(x))^2)), "
        "dividing by B, not B - 1.",
        "```python\nmean = x.mean()\nstd = …             # population: divide by B\nreturn (x - mean) / (…)\n```"),
    "reinforce_loss": (
        "The loss is a surrogate: its value means nothing by itself, only its gradient matters, and that gradient "
        "must be minus the policy-gradient estimate of lesson 01 (section 2) averaged over the batch's steps, "
        "because the optimiser minimises. The weights say how good each action was; they are numbers, not "
        "something to optimise.",
        "The batch average of grad log pi(a_i | s_i) * w_i is lesson 01's estimate divided by the mean episode "
        "length (an average over steps, not a sum over each episode's). A loss whose gradient is minus that "
        "(so that minimising it ascends the return) is the negative batch mean of log_probs times the weights, with "
        "the weights cut from the graph. Output: a scalar.",
        "```python\nw = …                 # the weights, without their graph\nreturn …(log_probs * w)…   # sign and "
        "average: see level 2\n```"),
    "baseline_advantages": (
        "The baseline turns a return into 'better or worse than this state usually goes'. The critic's value is the "
        "baseline. The advantage only weights the policy's log-probabilities: no gradient may reach the critic "
        "through it (the critic has its own loss).",
        "A_i = G_i - V(s_i) for each step of the batch, [B], with both inputs used as constants (cut from the "
        "graph).",
        "```python\nreturns, values = …, …     # both cut from the graph: constants for the policy loss\n"
        "return …                     # [B], one advantage per step\n```"),
    "value_loss": (
        "The critic learns by regression: its values should match the observed returns. The returns are targets, so "
        "the gradient flows into the values only. Mind the factor in front: it is part of the contract (the checks "
        "compare gradients).",
        "L_V = 1/2 * mean over the batch of (V(s_i) - G_i)^2, a scalar; the gradient with respect to V(s_i) is "
        "(V(s_i) - G_i) / B.",
        "```python\ntargets = …               # returns, cut from the graph\nreturn 0.5 * (…).mean()\n```"),
    "fit_critic": (
        "Fitting the critic is an ordinary regression with an optimiser: its values should move towards the observed "
        "returns, which stay fixed targets. Each step follows the same four moves in the same order, and the gradients "
        "of the previous step must not leak into the next one (PyTorch adds new gradients to those already in .grad).",
        "Train a copy of the weights (requires grad) with one torch.optim.Adam([w], lr=lr), made once before the "
        "loop. For each of the `steps` steps: V = observations @ w, [B]; L_V = 1/2 * mean (V - G)^2 with G the "
        "returns (not G - V); clear the gradients; backpropagate L_V; step. Record L_V before its step.",
        "```python\nw = …                                 # a copy that requires grad\noptimizer = torch.optim.Adam([w], "
        "lr=lr)  # one optimiser, made once, for all the steps\nlosses = []\nfor _ in range(steps):\n"
        "    loss = 0.5 * (…).mean()            # values against the returns\n"
        "    …                                 # zero_grad, backward, step: in this order\n    losses.append(…)\n"
        "return w.detach(), losses\n```"),
    "categorical_entropy": (
        "The entropy of a distribution is the expected surprise, minus the average log-probability under the "
        "distribution itself. For a softmax, compute the log-probabilities stably: a probability that underflows to "
        "exactly 0 must contribute 0, not 0 * (-inf) = nan.",
        "H = - sum_a pi(a) log pi(a) over the last dim, with log pi = log_softmax(logits) and pi = exp(log pi). "
        "[B, A] -> [B]; keep the gradient.",
        "```python\nlog_p = …                  # [B, A], stable\nreturn -(… * log_p).sum(dim=-1)\n```"),
    "gradient_variance": (
        "Each row of grads is one independent estimate of the same gradient vector. Measure how much the estimates "
        "scatter, coordinate by coordinate, and add the coordinates up into one number. With K samples, the unbiased "
        "variance divides by K - 1.",
        "Var_total = sum over p of (1/(K-1)) sum over k of (g[k, p] - mean_k g[k, p])^2: the variance over dim 0, "
        "unbiased, summed over the P coordinates; returned as a Python float.",
        "```python\nper_coordinate = grads.detach().var(dim=…, unbiased=…)   # [P]\nreturn float(…)\n```"),
    "td_errors": (
        "The TD error compares what the critic expected at s_t with the one-step target: the reward plus the "
        "discounted value of the next state. If the episode terminated at t there is no next state: the future is "
        "worth 0. A truncation is not a termination: the next state's value still counts. Everything here is a "
        "constant for the losses.",
        "delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t), elementwise over [T, N], with V(s'_t) = "
        "next_values[t]; all inputs detached; terminated is a 0/1 tensor of the rewards' dtype.",
        "```python\nrewards, values, next_values = …           # detached\nnot_terminal = …                           "
        "# 1 unless s'_t is terminal (a truncated step keeps its future)\nreturn rewards + … - values\n```"),
    "a2c_policy_loss": (
        "Two parts: the policy-gradient surrogate of lesson 01 with the advantage as the weight, and an entropy "
        "bonus that rewards keeping the policy random. Both are things to maximise, and the optimiser minimises. The "
        "advantage is a constant; the entropy keeps its gradient (it is a function of the policy).",
        "L = -(mean of log_probs * advantages, advantages cut from the graph) - ent_coef * mean(entropy), a scalar.",
        "```python\npolicy_term = -(…).mean()          # advantages detached\nentropy_term = …                   "
        "# a bonus, so it lowers the loss\nreturn policy_term + entropy_term\n```"),
    "clipped_surrogate_loss": (
        "The ratio rho = pi_new(a|s) / pi_old(a|s) measures how far the update moved each action's probability. "
        "PPO takes the more pessimistic of two objectives: the plain one and one whose ratio is clipped to "
        "[1 - eps, 1 + eps]. Pessimistic means the minimum, and it matters for both signs of the advantage. pi_old "
        "and the advantages are constants.",
        "rho = exp(new_log_probs - old_log_probs); L = -mean(min(rho * A, clip(rho, 1 - eps, 1 + eps) * A)), a "
        "scalar. For A > 0 the clip stops the gain above 1 + eps; for A < 0 it stops it below 1 - eps.",
        "```python\nratio = torch.exp(…)                       # old log-probs detached\nA = advantages.detach()\n"
        "unclipped = ratio * A\nclipped = torch.clamp(ratio, …, …) * A\nreturn -torch.…(unclipped, clipped).mean()\n```"),
    "approx_kl": (
        "A diagnostic: how far did the update move the policy, measured on the sampled actions. The k3 estimator of "
        "KL(pi_old || pi_new) uses only the log-ratio of each sample, is never negative per sample, and, while "
        "the two policies are close (as within one PPO update), varies far less than the plain average log-ratio "
        "(k1). It is a number to watch, not to differentiate.",
        "With log r = new - old (per sample): k3 = (r - 1) - log r, averaged over the batch, detached; a scalar "
        "tensor or float.",
        "```python\nlog_ratio = (…).detach()\nreturn ((torch.exp(log_ratio) - 1) - …).mean()\n```"),
    "clip_fraction": (
        "The share of samples whose ratio left the clipping interval, on either side (the clip in the surrogate "
        "acts only on those past it on the side their advantage favours, but all of them count here). Exactly on "
        "the boundary is not outside.",
        "mean over the batch of [ |rho - 1| > eps ] (strictly greater), as a float; no gradient.",
        "```python\noutside = (… - 1.0).abs() > …\nreturn outside.float().mean()\n```"),
    "explained_variance": (
        "How much of the returns' spread the critic accounts for: 1 means its errors do not vary (perfect, or off by "
        "one constant), 0 means no better than predicting the mean, negative means worse than that. When the returns do not vary at all, the ratio "
        "is undefined.",
        "EV = 1 - Var[returns - values] / Var[returns] over all elements (the same variance on top and bottom), computed in "
        "float64 and returned as a Python float; nan when Var[returns] = 0.",
        "```python\nv, r = …, …                      # detached, flattened, float64\nif …:                            "
        "# the returns do not vary\n    return float(\"nan\")\nreturn float(1.0 - … / …)\n```"),
    "minibatch_indices": (
        "One epoch visits every sample of the batch exactly once, in a random order, in chunks of at most "
        "minibatch_size, as nearly equal in size as possible. The order must come from the generator you are given, so a seed "
        "reproduces it.",
        "A permutation of range(batch_size) drawn with the generator, cut into ceil(batch_size / minibatch_size) "
        "consecutive pieces as nearly equal in size as torch's own splitting gives; a list of int64 tensors.",
        "```python\nnum_minibatches = …                     # ceil division\npermutation = torch.randperm(…, "
        "generator=generator)\nreturn list(torch.tensor_split(permutation, …))\n```"),
    "ppo_epochs": (
        "One PPO update reuses one batch for several epochs. Each epoch visits the whole batch once, in a new order, "
        "one Adam step per minibatch, and every ratio is taken against the log-probs stored at collection (pi_old "
        "stays the policy that collected the batch). The KL that decides the stop is the one each minibatch measures "
        "anyway, with the log-probs its loss was built from, i.e. before its step; the test comes once per epoch, "
        "after the epoch.",
        "Train a copy of the weights with Adam(lr). For each epoch: minibatches = minibatch_indices(B, "
        "minibatch_size, generator) (one call per epoch); for each index tensor idx: new_log_probs [b] = log "
        "softmax(obs[idx] @ W) at actions[idx]; loss = clipped_surrogate_loss(new, old[idx], adv[idx], clip_eps); "
        "zero_grad, backward, step; kl_i = approx_kl(old[idx], new_log_probs) (old first). After the epoch: "
        "epoch_kl = mean of its kl_i, appended to the list; stop if target_kl is not None and epoch_kl > target_kl.\n\n"
        "Return (trained weights [obs_dim, A], list of the epochs' KLs as floats).",
        "```python\nweights = weights.detach().clone().requires_grad_(True)\noptimizer = …\nepoch_kls = []\n"
        "for epoch in range(update_epochs):\n    kls = []\n    for idx in …:                  # a new shuffle each "
        "epoch\n        new_log_probs = …        # [b], from obs[idx] @ weights\n        loss = …\n        …"
        "                      # zero_grad, backward, step\n        kls.append(…)            # this pass's "
        "log-probs: before the step\n    epoch_kls.append(…)\n    if …:\n        break\nreturn …\n```"),
    "gaussian_policy_head": (
        "The policy's head turns an observation into a diagonal Gaussian: the mean comes from a linear layer of the "
        "observation, the spread from one learned log_std per action dim, the same for every state. PPO needs two "
        "numbers per row from it: the log-probability of the stored action vector and the entropy.",
        "mean [B, D] = obs [B, obs_dim] @ mean_weight.T [obs_dim, D] + mean_bias [D]. log_probs [B]: your "
        "gaussian_log_prob(mean, log_std, actions), which already sums over D. entropy [B]: your gaussian_entropy(log_std) "
        "(one number, since log_std is [D]) repeated for each of the B rows.",
        "```python\nmean = …                              # [B, D], a linear layer\nlog_probs = …"
        "                         # [B]\nentropy = ….expand(obs.shape[0])      # [B], the same in every row\n"
        "return log_probs, entropy\n```"),
    "squashed_log_prob": (
        "Squashing a Gaussian sample u through a = high * tanh(u) changes the density: where tanh flattens, many u "
        "land on nearly the same a, so the density of a is the density of u divided by how much the squash "
        "stretches there, |da/du| (the change of variables). Each action dim is squashed on its own, so the "
        "log-determinant is a sum over dims.",
        "log pi(a|s) = gaussian_log_prob(mean, log_std, u) - sum_d [log high_d + log(1 - tanh(u_d)^2)], [B].\n\n"
        "log(1 - tanh(u)^2) plainly, with a small eps inside the log (1e-6), or exactly and stably as "
        "2 (log 2 - u - softplus(-2u)) (torch.nn.functional.softplus).",
        "```python\nlog_slope = …                    # [B, D]: log high + log(1 - tanh(u)^2), either form\n"
        "return gaussian_log_prob(…) - …  # [B]\n```"),
    "gaussian_log_prob": (
        "A diagonal Gaussian is D independent 1-D Gaussians, so the log-density of an action vector is the sum of "
        "D one-dimensional log-densities. If you write the formula, use log_std directly for the log sigma term (no "
        "log of an exponential; torch.distributions.Normal is fine too), and let log_std "
        "broadcast: it is [D] (one per action dim) or [B, D].",
        "log N(a; mu, sigma) = -1/2 ((a - mu) / sigma)^2 - log sigma - 1/2 log(2 pi) per dimension, sigma = "
        "exp(log_std); sum over the last dim: [B, D] -> [B]; keep the gradient into mean and log_std.",
        "```python\nlog_std = log_std.expand_as(mean)\nz = (actions - mean) / …            # standardised\n"
        "return (-0.5 * … - … - 0.5 * math.log(2 * math.pi)).sum(dim=…)\n```"),
    "gaussian_entropy": (
        "The entropy of a Gaussian depends only on its spread, not its mean, and for a diagonal Gaussian the D "
        "dimensions add. It must be differentiable in log_std (the entropy bonus pushes on it).",
        "H[N(mu, sigma^2)] = 1/2 log(2 pi e sigma^2) = log sigma + 1/2 (1 + log 2 pi) per dimension; sum over "
        "the last dim: [D] -> scalar, [B, D] -> [B].",
        "```python\nper_dim = log_std + …              # a constant: 1/2 (1 + log(2 pi))\nreturn per_dim.sum(dim=…)\n```"),
    "env_action": (
        "The policy samples from an unbounded Gaussian; the environment accepts actions in [low, high]. The "
        "environment gets a clipped copy, while the rollout keeps the sampled action itself (its log-probability is "
        "what the update needs): so the input must not change.",
        "out[b, d] = min(max(actions[b, d], low[d]), high[d]), a new [B, D] tensor of the actions' dtype (low and "
        "high are [D] tensors; converting them to the actions' dtype first does no harm).",
        "```python\nlow = torch.as_tensor(low, dtype=actions.dtype)\nhigh = …\nreturn torch.clamp(…)     # not "
        "the in-place version\n```"),
    # chapter 03's GAE and the write-the-loop exercises (lesson 01, chapter 04b)
    "compute_gae": (
        "An advantage says how much better the step went than the critic expected. GAE blends the one-step TD "
        "errors of the following steps, each one weighted less (by gamma * lam per step), and the blend must "
        "stop where the episode stops. Two different questions: does this step have a next state to bootstrap "
        "from (not after a termination), and does the next row belong to the same episode (not after any end)?",
        "delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t), with V(s'_t) = next_values[t].\n\n"
        "A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}, where done_t is 1 if the episode ended at step t "
        "(terminated, truncated, or both: a logical or, never a sum), and A_T = 0 after the last step.\n\n"
        "Shapes: every tensor is [T, N]; the recursion runs over t, for all N envs at once.",
        "```python\ndeltas = td_errors(rewards, values, next_values, terminated, gamma)  # [T, N], Exercise 1\n"
        "advantages = torch.zeros_like(rewards)\nrunning = torch.zeros_like(rewards[0])  # [N]\n"
        "for t in reversed(range(T)):\n"
        "    running = deltas[t] + … * running   # cut where step t ended an episode\n    advantages[t] = running\n"
        "return advantages.detach()   # advantages are constants for the losses\n```"),
    "first_episode_lengths": (
        "A vector env keeps stepping every env, so each env's column of flags can hold several episode ends. The "
        "first episode of env i runs from step 0 to its first end, and the step that ended it belongs to it.",
        "done = terminated OR truncated, [T, N]. For each column i, find the smallest t with done[t, i] True; the "
        "length is t + 1. Output [N], int64 (the dtype of indices).",
        "```python\ndone = …                          # [T, N] bool: an episode ended at step t in env i\n"
        "first_end = …                     # [N] index of the first True in each column\nreturn first_end + 1\n```"),
    "collect_episodes": (
        "Play one complete episode in every env at once. Envs finish at different times, but a vector env steps "
        "all of them together, so the finished ones keep stepping until the last one finishes. Keep only each "
        "env's first episode: everything after an env's first episode end (the reset step, the next episode) is "
        "thrown away; Exercise 5a's first_episode_lengths says where each one ends.",
        "Per step: obs [N, 4] -> logits = policy(obs) [N, 2] -> one sampled action per env [N] -> "
        "envs.step(actions) gives rewards, terminated, truncated [N]. Keep stepping while some env has not ended an "
        "episode yet. Then stack the steps ([T, N, ...]), get each env's first-episode length from the stacked "
        "flags with first_episode_lengths, cut each env's column to its length and concatenate env 0's episode first.",
        "```python\nobs_np, _ = envs.reset()\nended = np.zeros(envs.num_envs, dtype=bool)\n"
        "rows = []\nwith torch.no_grad():\n    while not ended.all():\n        obs = torch.as_tensor(obs_np, "
        "dtype=torch.float32)\n        actions = …                      # sampled, one per env\n"
        "        obs_np, rewards, terminated, truncated, _ = envs.step(actions.numpy())\n        rows.append((obs, "
        "actions, rewards, terminated, truncated))\n        ended |= …\n"
        "lengths = first_episode_lengths(…, …)   # from the stacked flags [T, N]\n"
        "# take column i up to lengths[i] for each env i, concatenate\n```"),
    "reinforce_update": (
        "The policy-gradient step of lesson 01: make the actions that were followed by a high return more "
        "likely. The weight of a step is the return from that step on, inside its own episode, and it is a "
        "constant: only the log-probability carries gradient.",
        "For each episode: G_t = r_t + gamma * G_{t+1} (config.gamma). Concatenate the episodes' G in the order of "
        "the batch [B]; standardise them over the whole batch if config.normalize_weights. "
        "L = -mean(log pi(a_t | s_t) * weight_t); then zero the gradients, backpropagate, step.",
        "```python\nreturns = torch.cat([… for rewards in episode_rewards])   # [B]\n"
        "weights = … if config.normalize_weights else returns\nlog_probs = …                       # [B] of the "
        "taken actions\nloss = …\noptimizer.zero_grad()\nloss.backward()\noptimizer.step()\n```"),
    "train_reinforce": (
        "Glue the two pieces: seed, build the policy and its optimiser, then alternate 'play a batch' and 'one "
        "update' until enough episodes were played. Seed everything once, before the loop.",
        "torch.manual_seed(config.seed) and envs.reset(seed=config.seed) before anything random; the policy is "
        "pg.networks.CategoricalPolicy(obs_dim, n_actions, config.hidden_sizes); Adam with config.lr and "
        "config.adam_eps. Each batch gives envs.num_envs episodes; stop once config.max_episodes were played.",
        "```python\ntorch.manual_seed(config.seed)\nenvs.reset(seed=config.seed)\npolicy = …\noptimizer = …\n"
        "episodes = 0\nwhile episodes < config.max_episodes:\n"
        "    obs, actions, episode_rewards = collect_episodes(envs, policy)\n    episodes += …\n"
        "    reinforce_update(…)\nreturn policy\n```"),
    "collect_rollout": (
        "A rollout is n_steps steps of every env with the current policy, stored as [T, N] tensors. Two NEXT_STEP "
        "details decide everything: the step right after an episode end only resets that env (not a transition: "
        "valid False), and the observation an ending step returns is the episode's true final observation (the "
        "state a truncation bootstraps from). Where the last rollout stopped matters too: `start` says which envs "
        "reset on this rollout's first step.",
        "valid[t] = not (terminated[t-1] or truncated[t-1]), with start's resetting flags for t = 0.\n\n"
        "values[t] = V(obs[t]); next_values[t] = V(observation returned by step t) = values[t+1] for t < T-1, and "
        "V(the observation after the rollout) for t = T-1.\n\n"
        "Everything is stored without gradient: sample with Categorical(logits=policy(obs)).sample() for all N envs "
        "every step, log_probs of those sampled actions.",
        "```python\nobs_np, resetting = start\nwith torch.no_grad():\n    for t in range(n_steps):\n"
        "        obs = torch.as_tensor(obs_np, dtype=torch.float32)\n        …                          # logits, "
        "sampled actions, log-probs, value\n        valid[t] = …\n        obs_np, reward, term, trunc, _ = "
        "envs.step(actions.numpy())\n        …                          # store reward and the two flags\n"
        "        resetting = …\n    last_value = …\nnext_values = torch.cat([values[1:], …])\n"
        "return Rollout(…), (obs_np, resetting)\n```"),
    "advantages_and_returns": (
        "Lesson 03's GAE on a rollout: the advantage of a step blends the TD errors of the steps after it in the "
        "same episode. A truncated step still has a future (bootstrap from next_values, the true final "
        "observation's value); a terminated one does not. Reset steps get some number, which the update never "
        "reads.",
        "delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t\n\n"
        "A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}, done_t = terminated_t or truncated_t (both can be 1: "
        "combine with a logical or), A after the last step = 0.\n\nreturns = A + values, the critic's targets. "
        "Both are constants: detach the values you read.",
        "```python\nvalues, next_values = values.detach(), next_values.detach()\nadvantages = "
        "torch.zeros_like(rewards)\nrunning = torch.zeros_like(rewards[0])   # [N]\nfor t in "
        "reversed(range(T)):                 # rows are time steps\n    delta = …\n    running = …\n"
        "    advantages[t] = running\nreturn advantages, …\n```"),
    "ppo_update": (
        "Many small steps on one batch: each epoch visits the minibatches you are given, in order. In each, the "
        "clipped surrogate keeps the new policy near pi_old, the policy that collected the rollout (its log-probs "
        "are stored in the rollout and never change during the update), and the critic regresses on the "
        "returns. The diagnostics watch the same forward pass the step uses.",
        "Batch: the valid rows of the [T, N] tensors, flattened in [t, n] order (the minibatch indices count those "
        "rows). Advantages standardised once over the batch (config.normalize_advantages, and per minibatch "
        "instead if config.normalize_per_minibatch).\n\n"
        "ratio = exp(log pi(a|s) - log pi_old(a|s)); actor loss = -mean(min(ratio A, clip(ratio, 1-eps, 1+eps) A)) "
        "- ent_coef * mean entropy; critic loss = 0.5 mean((V(s) - R)^2). Each network: zero grad, backward, clip "
        "its gradient norm (config.max_grad_norm / critic_max_grad_norm, None = no clip), step.\n\n"
        "approx_kl = mean((ratio - 1) - log ratio), clip_fraction = share of |ratio - 1| > eps, both measured on "
        "the step's forward pass and averaged over all steps; explained_variance = 1 - Var[R - V] / Var[R] with "
        "the critic's values after the last step.",
        "```python\nmask = rollout.valid.reshape(-1)\nobs = rollout.obs.reshape(-1, obs_dim)[mask]       # same for "
        "actions, log_probs, advantages, returns\nif …: advantages = …                                 # once, "
        "before the epochs\nfor epoch in minibatches:\n    for idx in epoch:\n        logits = policy(obs[idx])\n"
        "        new_log_probs, entropy = …, …\n        ratio = …\n        actor_loss = …\n"
        "        critic_loss = …\n"
        "        …                                              # two optimiser steps, each clipped on its own\n"
        "        with torch.no_grad():\n            …                                          # kl and clip "
        "fraction of this step\nwith torch.no_grad():\n    explained_variance = …\nreturn {\"approx_kl\": …, "
        "\"clip_fraction\": …, \"explained_variance\": …}\n```"),
    "train_ppo": (
        "Glue the stages: seed once, build both networks and their optimisers, then repeat 'anneal the learning "
        "rates, collect, advantages, update' until the budget of transitions is spent. Carry `start` from one "
        "rollout to the next: the envs never reset between rollouts.",
        "Seed: torch.manual_seed(config.seed), envs.reset(seed=config.seed), a torch.Generator seeded with "
        "config.seed for the minibatches. Budget: count the valid transitions; stop at the first update that "
        "reaches config.total_steps. Annealing: lr = (1 - transitions so far / total_steps) * config.lr (the "
        "critic's likewise). Minibatches: config.update_epochs lists from pg.minibatch_indices(batch size, "
        "config.minibatch_size, generator), the batch size being this rollout's valid count.",
        "```python\ntorch.manual_seed(config.seed)\nobs, _ = envs.reset(seed=config.seed)\npolicy, value_net = …, "
        "…\nactor_optimizer, critic_optimizer = …, …\ngenerator = torch.Generator().manual_seed(config.seed)\n"
        "start, transitions, history = (obs, np.zeros(envs.num_envs, dtype=bool)), 0, []\nwhile transitions < "
        "config.total_steps:\n    …                                  # anneal both learning rates\n"
        "    rollout, start = collect_rollout(…)\n    transitions += …\n    advantages, returns = …\n"
        "    minibatches = […]\n    history.append(ppo_update(…))\nreturn policy, history\n```"),
    "train_actor_critic": (
        "Both probes are off, in opposite directions: on the time-limit probe the critic stops short of 10, on the "
        "termination probe it overshoots 5.26. So the loop decides wrongly, at both kinds of episode end, whether "
        "the next state's value belongs in the target. A TD target asks one question per step: does this step "
        "have a next state whose value counts?",
        "y_t = r_t + gamma * (1 - terminated_t) * V(s'_t). Only a termination removes the bootstrap; a truncation "
        "(time limit) keeps it, with s'_t the observation the step returned (before any reset). Follow the flag "
        "that reaches (1.0 - ended) back to the line that stores it.",
        "```python\nnext_obs, reward, terminated, truncated, _ = env.step(int(actions[i]))\n"
        "rows.append((obs[i], int(actions[i]), float(reward), next_obs, …))   # the flag that removes the "
        "bootstrap\n…\ntargets = r + gamma * (1.0 - ended) * value_net(o2).squeeze(-1)   # unchanged\n```"),
    # chapter 07: TRPO and the natural gradient
    "categorical_kl": (
        "The KL divergence from the old policy to the new one is an expectation over the actions the OLD policy "
        "takes of how much less likely the new policy makes them (in log space). With a handful of actions the "
        "expectation is an exact sum, no sampling; the logits are not yet log-probabilities.",
        "KL_s = sum_a p_old(a|s) (log p_old(a|s) - log p_new(a|s)), with log p = log_softmax(logits) over the "
        "last dimension; [B, n] in, [B] out (one KL per state; the caller averages).",
        "```python\nold_log_p = …(old_logits, dim=-1)   # [B, n]\nnew_log_p = …                       # [B, n]\n"
        "return (… * (old_log_p - new_log_p)).sum(dim=…)   # weights: the old probabilities\n```"),
    "fisher_vector_product": (
        "The Fisher matrix is the Hessian of the mean KL at theta_old, and a Hessian times a vector is the "
        "gradient of (gradient . vector): differentiate twice, never form the P x P matrix. kl_grad already holds "
        "the first derivative with its graph, so one more autograd call gives F v; conjugate gradient calls this "
        "about ten times on the same kl_grad, so its graph must survive each call.",
        "F v = grad_theta (kl_grad . v), with v held constant; then add damping * v (the damped matrix F + "
        "damping I). Flatten each parameter's gradient and concatenate them in the order of `parameters`: [P].",
        "```python\ndot = (kl_grad * …).sum()                     # a scalar; v is a constant\n"
        "grads = torch.autograd.grad(dot, parameters, retain_graph=…)\n"
        "fv = torch.cat([g.reshape(-1) for g in grads])  # [P]\nreturn fv + …\n```"),
    "conjugate_gradient": (
        "Conjugate gradient solves A x = b using only products A p. It walks from x = 0 along search directions "
        "that are A-conjugate to each other, so no direction undoes the progress of an earlier one (steepest "
        "descent zig-zags). One product per iteration; stop early when the residual is tiny or after `iterations`.",
        "x = 0, r = a copy of b, p = another copy (three separate tensors: r and p change, b must not). Each "
        "iteration, if r.r < residual_tol stop; else Ap = A p, alpha = r.r / p.Ap, x = x + alpha p, "
        "r = r - alpha Ap, beta = r_new.r_new / r_old.r_old, p = r + beta p.",
        "```python\nx, r, p = torch.zeros_like(b), b.clone(), b.clone()\nrr = r @ r\nfor _ in range(iterations):\n"
        "    if rr < residual_tol:\n        break\n    Ap = …\n    alpha = …\n    x, r = …, …\n    rr_new = r @ r\n"
        "    p = …\n    rr = rr_new\nreturn x\n```"),
    "line_search": (
        "The step was sized with a quadratic model of the KL and a linear model of the surrogate; the real "
        "functions may disagree. So try the full step, and if it breaks the trust region or does not improve "
        "the surrogate enough, halve it (or shrink it by `shrink`) and try again; give up after max_backtracks.",
        "Try fraction f = shrink^k for k = 0, 1, ..., max_backtracks - 1: (improvement, kl) = evaluate(f); accept the "
        "first f with kl <= max_kl and improvement > accept_ratio * expected_improvement * f. None accepted: 0.0. "
        "A NaN must not be accepted.",
        "```python\nfor k in range(max_backtracks):\n    fraction = …\n    improvement, kl = evaluate(fraction)\n"
        "    if … and …:          # test for acceptance (a NaN fails it)\n        return fraction\nreturn 0.0\n```"),
    "trpo_step": (
        "One TRPO update is the package's order with your pieces: the surrogate's gradient g at theta_old, the "
        "damped natural direction s = (F + damping I)^-1 g from conjugate gradient (F v from your Fisher-vector "
        "product), the step length that puts the damped quadratic KL estimate on max_kl, and a line search along "
        "that step with the real KL (your categorical_kl) and the real surrogate.",
        "g = grad of mean(exp(logp_new - logp_old) * A) at theta_old; kl_grad = grad of mean KL(pi_old || pi_theta) "
        "with create_graph=True; s = CG(F + damping I, g); beta = sqrt(2 max_kl / s.(F + damping I)s), with the same "
        "damped product CG used; full step = beta s; expected improvement = g . full step; evaluate(f) sets "
        "theta_old + f full step and returns (L(f) - L(0), KL(f)). Return f, the accepted fraction (a float).",
        "```python\ng = flat_grad(surrogate(), params)\nkl_grad = flat_grad(mean_kl(), params, create_graph=True)\n"
        "s = conjugate_gradient(lambda v: fisher_vector_product(…), g, cg_iters)\n"
        "full_step = … * s\ndef evaluate(fraction):\n    vector_to_parameters(old_params + fraction * full_step, params)\n"
        "    …\nfraction = line_search(evaluate, float(g @ full_step), max_kl, …)\n"
        "vector_to_parameters(…, params)\n```"),
    # chapter 08: policy gradients for language models
    "sequence_log_probs": (
        "The probability of a whole response is the product of the probabilities of its tokens, each given the "
        "tokens before it, so its log is a sum. Two traps: the logits are not log-probabilities yet (normalise "
        "over the vocabulary, stably: a token can be very unlikely), and the padding positions hold garbage that "
        "must not enter the sum.",
        "log pi(y_t | x, y_<t) = log_softmax(logits[:, t])[tokens[:, t]], a [B, T] tensor picked from [B, T, V]; "
        "then log pi(y | x) = sum over t of mask[:, t] * that, [B]. A bool mask works in the product (torch "
        "promotes it to the logits' dtype); mask.to(per_token.dtype) just makes that explicit.",
        "```python\nall_log_probs = …                                   # [B, T, V], stable, over the vocabulary\n"
        "per_token = all_log_probs.gather(-1, …).squeeze(-1)   # [B, T]: the sampled tokens\n"
        "return (per_token * …).sum(…)                       # [B]: padding zeroed, summed over T\n```"),
    "kl_k1": (
        "The KL from the policy to the reference is the expected log-ratio of the two models' probabilities, the "
        "expectation taken over tokens the POLICY samples. The sampled tokens are such samples, so the log-ratio "
        "on each one, in the right order, is already an unbiased estimate.",
        "k1_t = log pi_theta(y_t) - log pi_ref(y_t): the policy's log-prob first. [B, T] in, [B, T] out, no "
        "reduction and no mask (the caller does both), no detach.",
        "```python\nreturn …   # one subtraction; which of the two log-probs comes first?\n```"),
    "kl_k3": (
        "k3 is built from the ratio r of the REFERENCE's probability over the policy's on each sampled token. "
        "Its mean under the policy is 1, so r - 1 has mean 0 and subtracting log r (whose mean is minus the KL) "
        "leaves an estimate of the KL; r - 1 - log r is never negative because log r <= r - 1.",
        "log r_t = ref_log_probs - log_probs (a log-ratio: form r from it with exp, never by dividing "
        "probabilities); k3_t = (r_t - 1) - log r_t, elementwise, [B, T], differentiable.",
        "```python\nlog_ratio = …                  # log r = log pi_ref - log pi_theta, [B, T]\n"
        "return (… - 1.0) - …           # torch.expm1(x) computes exp(x) - 1 accurately near 0\n```"),
    "group_relative_advantages": (
        "Each row of rewards is one prompt's group of samples. A sample's advantage is how much better it did than "
        "its own group on average, in units of its group's spread; nothing crosses from one row to another. A "
        "group whose rewards are all equal has spread 0: eps keeps the division finite.",
        "mean and std over dim=1 with keepdim=True ([P, 1], so they broadcast over the row); std is torch's default "
        "sample std (divides by G - 1). A = (r - mean) / (std + eps) if scale, else r - mean.",
        "```python\ncentred = rewards - …          # the row's mean, [P, 1]\nif not scale:\n    return …\n"
        "return centred / (… + eps)      # the row's std, [P, 1]\n```"),
    "masked_clipped_loss": (
        "Lesson 04's clipped surrogate, one token at a time, then averaged over the real tokens only. Three pieces "
        "of bookkeeping: a per-response advantage [B] must reach every token of its own response; the old "
        "log-probs are constants; the mask decides both what is summed and what is counted.",
        "rho = exp(log_probs - old_log_probs.detach()); per token min(rho A, clip(rho, 1-eps, 1+eps) A), with A "
        "[B, 1] (advantages.unsqueeze(-1)) when it is [B]; loss = -(sum of mask * that) / (sum of mask, clamped at "
        "1 so that an all-padding mask gives 0, not NaN).",
        "```python\nif advantages.dim() == 1:\n    advantages = …                  # [B, 1]\n"
        "ratio = torch.exp(…)                # [B, T], old log-probs detached\nsurrogate = torch.min(…, …)         "
        "# [B, T]\nmask = mask.to(surrogate.dtype)\nreturn -… / …                        # token-level masked mean\n```"),
    "grpo_update": (
        "Lesson 04's PPO update with the rollout replaced by sampling text: sample a group of responses per "
        "prompt, score them with the verifier, compare each with its group, and take a few clipped steps, with the "
        "frozen reference's KL as a leash. Everything the update compares against (old and reference log-probs, "
        "advantages) is computed once, before the epochs, without gradient.",
        "repeated = each prompt G times in a row; rollout = generate(policy, prompt_batch(repeated), "
        "generator=generator); rewards = score(repeated, rollout.texts, \"exact\").view(P, G) -> your advantages, "
        "reshaped to [B]. Under no_grad: old and reference per-token log-probs via token_log_probs(response_logits"
        "(model, prompt_tokens, rollout.tokens), rollout.tokens). Each epoch: loss = your masked clipped loss + "
        "kl_coef * masked_mean(your kl_k3, mask).",
        "```python\nrepeated = [p for p in prompts for _ in range(group_size)]\nprompt_tokens = …\nrollout = …\n"
        "tokens, mask = rollout.tokens, rollout.mask\nadvantages = …                        # [B]\n"
        "with torch.no_grad():\n    logits, ref_logits = …, …\n    old_log_probs, ref_log_probs = …, …\n"
        "    kl = …                            # [B], your sequence_log_probs, policy minus reference\n"
        "policy.train()\nfor _ in range(epochs):\n    log_probs = …\n    loss = … + kl_coef * …\n"
        "    …                                 # zero_grad, backward, clip the grad norm at 1, step\npolicy.eval()\n"
        "return {\"reward\": …, \"kl\": …}\n```"),
}


@dataclass(frozen=True)
class Hint:
    """One level of one exercise's hints; shows itself as markdown in a notebook, as text in a terminal."""

    exercise: str
    level: int
    text: str

    @property
    def levels(self) -> int:
        return len(HINTS[self.exercise])

    def _parts(self) -> tuple[str, str]:
        head = f"Hint {self.level}/{self.levels} for {self.exercise} ({LEVEL_NAMES[self.level - 1]})"
        more = (f"More: pg.hint({self.exercise!r}, level={self.level + 1}) ({LEVEL_NAMES[self.level]})."
                if self.level < self.levels else "That was the last hint: the solved notebook is linked on the "
                                                 "start page.")
        return head, more

    def _repr_markdown_(self) -> str:
        head, more = self._parts()
        return f"**{head}**\n\n{self.text}\n\n*{more}*"

    def __str__(self) -> str:
        head, more = self._parts()
        return f"{head}\n\n{self.text}\n\n{more}"

    __repr__ = __str__


def hint(exercise: str, level: int = 1) -> Hint:
    """The hint of ``level`` (1 the idea, 2 the formula, 3 near-code) for ``exercise``, e.g.
    ``pg.hint("compute_gae")``; the next level is one call away. Nothing is recorded."""
    if exercise not in HINTS:
        close = difflib.get_close_matches(str(exercise), HINTS, n=1)
        did_you_mean = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"no hints for {exercise!r}{did_you_mean}; exercises with hints: {', '.join(sorted(HINTS))}")
    levels = len(HINTS[exercise])
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= levels:
        raise ValueError(f"level={level!r} is invalid: expected 1 ({LEVEL_NAMES[0]}), 2 ({LEVEL_NAMES[1]}) or "
                         f"3 ({LEVEL_NAMES[2]})")
    return Hint(exercise, level, HINTS[exercise][level - 1])
