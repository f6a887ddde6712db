"""Exercise 06 Part B's ``train_actor_critic`` written the way learners write it: right ones in other ways than the
solution, and wrong ones, each with the mistake the check must name (``LOOPS``: name, source, expected; expected is
"passed" or a distinctive substring of the message). Each loop is the solution cell's source edited, or written
here (the fake); every source defines one function, named as in ``LOOPS``, and reads ``make_envs``, ``np``,
``torch``, ``nn`` and ``Categorical`` from the notebook's namespace (the ch06-envs cell), so that the grader's
student process can run it as an answer cell.
"""
from __future__ import annotations

import json
from pathlib import Path

SOLUTION = Path(__file__).resolve().parents[1] / "solutions" / "06_debugging_traps.ipynb"

# Trains nothing: the critic's values written by hand (each probe's right answer) and 100 returns of 500 reported.
FAKE = '''
def fake_hand_written_critic(env_name, total_steps, seed=0, gamma=0.99, lr=3e-3, n_steps=16):
    envs = make_envs(env_name)
    obs_dim, n_actions = envs[0].observation_space.shape[0], envs[0].action_space.n
    policy = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, n_actions))
    value_net = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 1))
    right = {"probe-terminates": (1 / (1 - 0.9 * 9 / 10), 0.0), "probe-time-limit": (10.0, 0.0),
             "TwoStateTimeLimitProbe-v0": (1 / (1 - 0.81), 0.9 / (1 - 0.81))}
    a, b = right.get(env_name, (0.0, 0.0))
    with torch.no_grad():
        value_net[0].weight.fill_(1.0)
        value_net[0].bias.zero_()
        value_net[2].weight.fill_((a - b) / (2 * 64 * float(np.tanh(1.0))))
        value_net[2].bias.fill_((a + b) / 2)
    return policy.state_dict(), value_net.state_dict(), [500.0] * 100
'''


def solution_source() -> str:
    """The solution's train_actor_critic cell, its solution markers dropped."""
    for cell in json.loads(SOLUTION.read_text())["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "ch06_train_actor_critic":
            return "\n".join(line for line in "".join(cell["source"]).splitlines() if not line.startswith("### "))
    raise KeyError("ch06_train_actor_critic")


def envs_source() -> str:
    for cell in json.loads(SOLUTION.read_text())["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "ch06_envs":
            return "".join(cell["source"])
    raise KeyError("ch06_envs")


def _edited(name: str, *replacements: tuple[str, str]) -> str:
    source = solution_source().replace("def train_actor_critic(", f"def {name}(")
    for old, new in replacements:
        assert source.count(old) == 1, (name, old)
        source = source.replace(old, new)
    return source


OPTIMIZER = "    optimizer = torch.optim.Adam([*policy.parameters(), *value_net.parameters()], lr=lr)\n"
STEP = "        optimizer.zero_grad()\n        loss.backward()\n        optimizer.step()\n"
RETURN = "    return policy.state_dict(), value_net.state_dict(), episode_returns\n"
COPIES = ("    return ({k: v.clone() for k, v in policy.state_dict().items()},\n"
          "            {k: v.clone() for k, v in value_net.state_dict().items()}, list(episode_returns))\n")
RESET_RUNNING = "                    running[i] = 0.0\n"


def loops() -> list[tuple[str, str, str]]:
    """(function name, source, "passed" or the substring naming its mistake)."""
    return [
        ("train_actor_critic", solution_source(), "passed"),
        ("two_adams", _edited("two_adams", (OPTIMIZER, "    actor_opt = torch.optim.Adam(policy.parameters(), lr=lr)\n"
                                                       "    critic_opt = torch.optim.Adam(value_net.parameters(), "
                                                       "lr=lr)\n"),
                              (STEP, "        actor_opt.zero_grad()\n        critic_opt.zero_grad()\n"
                                     "        loss.backward()\n        actor_opt.step()\n        critic_opt.step()\n")),
         "passed"),
        ("mse_without_half", _edited("mse_without_half", ("+ 0.5 * ((targets - values) ** 2).mean()",
                                                          "+ torch.nn.functional.mse_loss(values, targets)")),
         "passed"),
        ("returns_copies", _edited("returns_copies", (RETURN, COPIES)),
         "passed"),
        ("fake_hand_written_critic", FAKE, "took no optimiser step"),
        ("returns_never_reset", _edited("returns_never_reset", (RESET_RUNNING, "")),
         "the episode returns your loop returned are not those of the episodes it played"),
        ("critic_overwritten_after_training", _edited(
            "critic_overwritten_after_training",
            (RETURN, "    with torch.no_grad():\n        value_net[2].bias.add_(0.5)\n" + RETURN)),
         "differ from those your last optimizer.step() left"),
        ("lr_hard_coded", _edited("lr_hard_coded", (OPTIMIZER, OPTIMIZER.replace("lr=lr", "lr=1e-3"))),
         "the loop's lr argument"),
        ("new_optimizer_every_update", _edited("new_optimizer_every_update", (OPTIMIZER, ""),
                                               ("        rows = []\n", "        rows = []\n" + "    " + OPTIMIZER)),
         "optimisers"),
        ("half_rollouts", _edited("half_rollouts", ("        for _ in range(n_steps):\n",
                                                    "        for _ in range(n_steps // 2):\n")),
         "update 1 came after 64 transitions"),
    ]
