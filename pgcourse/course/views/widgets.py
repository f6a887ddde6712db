"""Interactive explorers for the lessons: each is a pure plotting function plus the widget around it.

A lesson calls the plotting function once with its defaults (a static figure that shows on GitHub
and under nbval), then shows the explorer, whose sliders redraw the same function.

- :func:`plot_discounting` / :func:`discount_explorer`: gamma -> discounted returns and the effective horizon.
- :func:`plot_gae_weights` / :func:`gae_explorer`: gamma, lambda -> weights on the n-step advantages and
  GAE on a sample rollout with an episode end and a truncation.
- :func:`plot_clip_objective` / :func:`clip_explorer`: epsilon -> PPO's clipped objective and its gradient.
- :func:`plot_gaussian_policy` / :func:`gaussian_explorer`: mean, log_std -> density, samples, log-prob, entropy.
- :class:`LiveView` (from :mod:`pgcourse.rl.live`): what ``pg.train(..., live=True)`` shows while training runs.
- :class:`Playground`: pick algorithm, env and a few hyperparameters, press Train.

The numbers behind every figure come from the package's reference functions (``pg.discounted_returns``,
``pg.compute_gae``, ``pg.clipped_surrogate_loss``, ``pg.gaussian_log_prob``); each figure keeps them in
``figure.course_data`` and each explorer in ``explorer.data`` (what the tests read).
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from ...rl import api
from . import render
from ...rl.config import ConfigError
from ...rl.live import CourseFigure, LiveView, display_if_notebook, figure_png, plot_live
from ...rl.distributions import gaussian_entropy, gaussian_log_prob
from ...rl.losses import clipped_surrogate_loss
from ...rl.returns import compute_gae, discounted_returns

__all__ = ["plot_discounting", "plot_gae_weights", "plot_clip_objective", "plot_gaussian_policy",
           "discount_explorer", "gae_explorer", "clip_explorer", "gaussian_explorer", "Explorer",
           "LiveView", "Playground", "plot_live"]

# Rewards of the sample episode in the discount explorer: +1 per step for 200 steps (CartPole-like).
SAMPLE_EPISODE_REWARDS = np.ones(200, dtype=np.float32)


def _new_figure(ncols: int, width: float = 11.0, height: float = 3.6) -> tuple[Figure, list]:
    fig = CourseFigure(figsize=(width, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


# ---------------------------------------------------------------------------------------------
# Pure plotting functions
# ---------------------------------------------------------------------------------------------
def plot_discounting(gamma: float = 0.99, rewards: np.ndarray | None = None) -> Figure:
    r"""Weights :math:`\gamma^k` on future rewards and the discounted returns :math:`G_t` of a sample
    episode (+1 per step for 200 steps unless ``rewards`` is given), with the effective horizon
    :math:`1/(1-\gamma)` marked."""
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma={gamma!r} is invalid: expected 0 < gamma <= 1")
    rewards_t = torch.as_tensor(SAMPLE_EPISODE_REWARDS if rewards is None else rewards, dtype=torch.float32)  # [T]
    returns = discounted_returns(rewards_t, gamma).numpy()  # [T]
    horizon = float("inf") if gamma == 1.0 else 1.0 / (1.0 - gamma)
    steps = np.arange(len(returns))
    weights = gamma ** steps.astype(np.float64)

    fig, (ax_weights, ax_returns) = _new_figure(2)
    ax_weights.plot(steps, weights, color="tab:blue")
    if np.isfinite(horizon) and horizon <= steps[-1]:
        ax_weights.axvline(horizon, color="tab:red", linestyle="--", label=f"horizon 1/(1-γ) = {horizon:.0f}")
        ax_weights.legend(loc="upper right")
    ax_weights.set_xlabel("steps into the future k")
    ax_weights.set_ylabel("weight γ^k")
    ax_weights.set_title(f"γ = {gamma:.3f}: effective horizon {horizon:.1f} steps")
    ax_weights.set_ylim(0, 1.05)
    ax_weights.grid(alpha=0.3)

    ax_returns.plot(steps, returns, color="tab:green")
    ax_returns.set_xlabel("step t of the episode")
    ax_returns.set_ylabel("discounted return G_t")
    ax_returns.set_title(f"G_0 = {returns[0]:.1f} for {len(returns)} rewards")
    ax_returns.grid(alpha=0.3)
    fig.course_data = {"gamma": gamma, "horizon": horizon, "returns": returns, "weights": weights}
    return fig


def sample_rollout(length: int = 16, end_at: int = 5, truncate_at: int = 11, seed: int = 0) -> dict[str, torch.Tensor]:
    """One env's ``[T, 1]`` rollout with a terminated step at ``end_at`` and a truncated step at
    ``truncate_at``; rewards +1, values from a fixed random critic, ``next_values`` of the true next
    observations (at both ends: V of the final observation, which GAE bootstraps from at the truncation only)."""
    generator = torch.Generator().manual_seed(seed)
    values = 5.0 + 2.0 * torch.rand(length + 1, generator=generator)  # [T + 1]
    next_values = values[1:].clone()  # [T]
    next_values[end_at] = 6.0  # V(final observation) of the terminated episode: a real critic does not know it is
    # terminal, so a GAE that bootstraps through a termination shows here (the reference never uses it)
    next_values[truncate_at] = 6.5  # V(final observation) of the truncated episode
    terminated = torch.zeros(length)
    truncated = torch.zeros(length)
    terminated[end_at] = 1.0
    truncated[truncate_at] = 1.0
    return {"rewards": torch.ones(length, 1), "values": values[:-1, None], "next_values": next_values[:, None],
            "terminated": terminated[:, None], "truncated": truncated[:, None]}


def _learners_output(function, args: list, name: str, shape: tuple[int, ...]) -> tuple[np.ndarray | None, str]:
    """Run a learner's function on copies of ``args`` for an explorer: (its output as numpy, "") or (None, why not)."""
    try:
        output = function(*[arg.clone() if isinstance(arg, torch.Tensor) else arg for arg in args])
    except NotImplementedError:
        return None, f"your {name}: not implemented yet"
    except Exception as error:  # noqa: BLE001 - an explorer shows the learner's crash, it does not raise it
        return None, f"your {name} raised {type(error).__name__}: {str(error)[:60]}"
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != shape:
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        return None, f"your {name} returned {got}, expected a tensor of shape {shape}"
    return output.detach().double().numpy(), ""


def plot_gae_weights(gamma: float = 0.99, lam: float = 0.95, max_n: int = 20, rollout: dict | None = None,
                     your_compute_gae=None) -> Figure:
    r"""GAE as a blend: the weight :math:`(1-\lambda)\lambda^{n-1}` on each n-step advantage, and the
    advantages :func:`pgcourse.compute_gae` gives on a sample rollout with an episode end and a truncation.
    With ``your_compute_gae`` (the learner's function, same signature), its advantages are drawn over the
    reference's and the title gives the largest difference."""
    if not 0.0 < gamma <= 1.0 or not 0.0 <= lam <= 1.0:
        raise ValueError(f"gamma={gamma!r}, lam={lam!r} are invalid: expected 0 < gamma <= 1 and 0 <= lam <= 1")
    n = np.arange(1, max_n + 1)
    weights = (1.0 - lam) * lam ** (n - 1.0)
    tail = lam ** max_n  # weight left on the n > max_n advantages (all of it on the MC return when lam = 1)
    rollout = rollout or sample_rollout()
    advantages = compute_gae(rollout["rewards"], rollout["values"], rollout["next_values"], rollout["terminated"],
                             rollout["truncated"], gamma, lam)[:, 0].numpy()  # [T]
    td = compute_gae(rollout["rewards"], rollout["values"], rollout["next_values"], rollout["terminated"],
                     rollout["truncated"], gamma, 0.0)[:, 0].numpy()  # [T] one-step TD errors
    yours, yours_note = None, ""
    if your_compute_gae is not None:
        yours, yours_note = _learners_output(
            your_compute_gae, [rollout["rewards"], rollout["values"], rollout["next_values"], rollout["terminated"],
                               rollout["truncated"], gamma, lam], "compute_gae", tuple(rollout["rewards"].shape))
        yours = None if yours is None else yours[:, 0]  # [T]

    fig, (ax_weights, ax_adv) = _new_figure(2)
    ax_weights.bar(n, weights, color="tab:blue")
    ax_weights.set_xlabel("n (the n-step advantage)")
    ax_weights.set_ylabel(r"weight $(1-\lambda)\,\lambda^{n-1}$")
    ax_weights.set_title(f"λ = {lam:.2f}: weight beyond n={max_n}: {tail:.2f}; mean n ≈ "
                         f"{(1.0 / (1.0 - lam)) if lam < 1 else float('inf'):.1f}")
    ax_weights.set_ylim(0, 1.15 * max(float(weights.max()), 0.05))  # scaled to the bars (they sum to 1 - tail)
    ax_weights.grid(alpha=0.3)

    steps = np.arange(len(advantages))
    ax_adv.bar(steps, advantages, color="tab:green", label="GAE advantage")
    ax_adv.plot(steps, td, "k.", label="one-step TD error (λ=0)")
    end_at = int(rollout["terminated"][:, 0].argmax())
    truncate_at = int(rollout["truncated"][:, 0].argmax())
    ax_adv.axvline(end_at + 0.5, color="tab:red", linestyle="-", label="terminated (no bootstrap)")
    ax_adv.axvline(truncate_at + 0.5, color="tab:orange", linestyle="--", label="truncated (bootstrap)")
    ax_adv.set_xlabel("step t of the rollout")
    ax_adv.set_ylabel("advantage Â_t")
    title = f"GAE with γ = {gamma:.3f}, λ = {lam:.2f}"
    max_difference = None
    if yours is not None:
        max_difference = float(np.max(np.abs(yours - advantages)))
        ax_adv.plot(steps, yours, "o", markerfacecolor="none", color="tab:purple", label="your compute_gae")
        title += f"\nyours vs the reference: largest difference {max_difference:.2g}"
    elif yours_note:
        title += f"\n{yours_note}"
    ax_adv.set_title(title, fontsize=9 if yours_note or yours is not None else None)
    ax_adv.legend(fontsize=7, loc="best")  # where it covers the fewest bars
    ax_adv.grid(alpha=0.3)
    fig.course_data = {"gamma": gamma, "lam": lam, "weights": weights, "tail": tail, "advantages": advantages,
                       "td_errors": td, "yours": yours, "yours_note": yours_note, "max_difference": max_difference}
    return fig


def clip_objective(ratios: np.ndarray, advantage: float, clip_eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-ratio objective ``min(rho A, clip(rho) A)`` and its derivative in ``rho``, both from
    :func:`pgcourse.clipped_surrogate_loss` (a loss, so negated) and autograd."""
    ratio = torch.as_tensor(ratios, dtype=torch.float64).clone().requires_grad_(True)  # [R]
    advantages = torch.full_like(ratio, float(advantage))  # [R]
    # One sample per ratio: the mean over a batch of size R is R times smaller than each sample's term.
    loss = clipped_surrogate_loss(torch.log(ratio), torch.zeros_like(ratio), advantages, clip_eps)
    (-loss * len(ratio)).backward()
    with torch.no_grad():
        objective = np.array([-float(clipped_surrogate_loss(torch.log(r[None]), torch.zeros(1, dtype=r.dtype),
                                                            torch.full((1,), float(advantage), dtype=r.dtype),
                                                            clip_eps)) for r in ratio.detach()])
    return objective, ratio.grad.numpy() + 0.0  # + 0.0: a flat region's zero slope is 0.0, never -0.0


def plot_clip_objective(clip_eps: float = 0.2, max_ratio: float = 2.5, points: int = 251) -> Figure:
    r"""PPO's clipped objective :math:`\min(\rho A, \mathrm{clip}(\rho, 1-\epsilon, 1+\epsilon) A)` and
    its gradient in :math:`\rho`, for :math:`A=+1` and :math:`A=-1`; the flat (zero-gradient) regions shaded."""
    if clip_eps <= 0:
        raise ValueError(f"clip_eps={clip_eps!r} is invalid: expected > 0")
    ratios = np.linspace(0.01, max_ratio, points)
    fig, axes = _new_figure(2)
    data: dict[str, Any] = {"clip_eps": clip_eps, "ratios": ratios}
    for ax, advantage, color in zip(axes, (1.0, -1.0), ("tab:green", "tab:red")):
        objective, gradient = clip_objective(ratios, advantage, clip_eps)
        flat = np.abs(gradient) < 1e-12
        ax.plot(ratios, objective, color=color, label="clipped objective")
        ax.plot(ratios, ratios * advantage, color="gray", linestyle=":", label="unclipped ρA")
        ax.plot(ratios, gradient, color="black", linestyle="--", label="gradient d/dρ")
        ax.fill_between(ratios, -3, 3, where=flat, color="gray", alpha=0.15, label="flat: no gradient")
        ax.axvline(1 - clip_eps, color="gray", linewidth=0.8)
        ax.axvline(1 + clip_eps, color="gray", linewidth=0.8)
        ax.set_ylim(-2.7, 2.7)
        ax.set_xlabel("ratio ρ = π_new / π_old")
        ax.set_title(f"A = {advantage:+.0f}, ε = {clip_eps:.2f}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left" if advantage > 0 else "lower left")
        key = "positive" if advantage > 0 else "negative"
        data[key] = {"objective": objective, "gradient": gradient, "flat": flat}
    fig.course_data = data
    return fig


def plot_gaussian_policy(mean: float = 0.0, log_std: float = 0.0, action: float = 1.0, num_samples: int = 200,
                         seed: int = 0) -> Figure:
    r"""A 1-D Gaussian policy: its density, ``num_samples`` sampled actions, the log-prob of ``action``
    (from :func:`pgcourse.gaussian_log_prob`) and the entropy :math:`\log\sigma + \tfrac12\log 2\pi e`."""
    mean_t = torch.tensor([[float(mean)]])  # [1, 1]
    log_std_t = torch.tensor([float(log_std)])  # [1]
    std = float(np.exp(log_std))
    xs = np.linspace(mean - 4 * max(std, 0.25), mean + 4 * max(std, 0.25), 400)
    xs = np.union1d(xs, np.linspace(-4, 4, 2))
    density = np.exp(gaussian_log_prob(mean_t.expand(len(xs), 1), log_std_t,
                                       torch.as_tensor(xs, dtype=torch.float32)[:, None]).numpy())  # [X]
    generator = torch.Generator().manual_seed(seed)
    samples = (mean + std * torch.randn(num_samples, generator=generator)).numpy()  # [S]
    log_prob = float(gaussian_log_prob(mean_t, log_std_t, torch.tensor([[float(action)]]))[0])
    entropy = float(gaussian_entropy(log_std_t))

    fig, (ax,) = _new_figure(1, width=8.0, height=3.6)
    ax.plot(xs, density, color="tab:blue", label=f"density N(μ={mean:.2f}, σ={std:.2f})")
    ax.hist(samples, bins=30, density=True, color="tab:blue", alpha=0.25, label=f"{num_samples} sampled actions")
    ax.axvline(action, color="tab:red", linestyle="--", label=f"action a={action:.2f}: log π(a) = {log_prob:.2f}")
    ax.set_xlabel("action")
    ax.set_ylabel("density")
    ax.set_title(f"entropy H = log σ + ½ log 2πe = {entropy:.2f} nats")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    fig.course_data = {"mean": mean, "log_std": log_std, "action": action, "log_prob": log_prob, "entropy": entropy,
                       "samples": samples, "density": density, "xs": xs}
    return fig


# ---------------------------------------------------------------------------------------------
# Explorers: sliders -> the plotting function -> an image
# ---------------------------------------------------------------------------------------------
class Explorer(widgets.VBox):
    """Sliders above an image of ``plot(**slider values)``; moving a slider redraws.

    ``explorer.sliders[name]`` are the sliders, ``explorer.image`` the image widget (its ``value`` is
    the PNG), ``explorer.data`` the numbers behind the current figure, ``explorer.redraws`` a counter.
    """

    def __init__(self, plot: Callable[..., Figure], sliders: dict[str, widgets.ValueWidget], **fixed: Any):
        self.plot, self.fixed, self.sliders = plot, fixed, sliders
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
        self.data: dict[str, Any] = {}
        self.redraws = 0
        super().__init__([widgets.HBox(list(sliders.values())), self.image])
        for slider in sliders.values():
            slider.observe(self._redraw, names="value")
        self._redraw()

    def _redraw(self, change: dict | None = None) -> None:
        fig = self.plot(**{name: slider.value for name, slider in self.sliders.items()}, **self.fixed)
        self.data = fig.course_data
        self.image.value = figure_png(fig)
        self.redraws += 1


def _slider(description: str, value: float, low: float, high: float, step: float, readout_format: str = ".2f"):
    return widgets.FloatSlider(value=value, min=low, max=high, step=step, description=description,
                               continuous_update=False, readout_format=readout_format,
                               style={"description_width": "initial"})


def discount_explorer(gamma: float = 0.99, rewards: np.ndarray | None = None) -> Explorer:
    """Slider for gamma -> :func:`plot_discounting`."""
    return Explorer(plot_discounting, {"gamma": _slider("γ (gamma)", gamma, 0.5, 0.999, 0.001, ".3f")},
                    rewards=rewards)


def gae_explorer(gamma: float = 0.99, lam: float = 0.95, your_compute_gae=None) -> Explorer:
    """Sliders for gamma and lambda -> :func:`plot_gae_weights`; pass ``your_compute_gae=compute_gae`` to see
    your function's advantages drawn over the reference's at every setting."""
    return Explorer(plot_gae_weights, {"gamma": _slider("γ (gamma)", gamma, 0.5, 1.0, 0.005, ".3f"),
                                       "lam": _slider("λ (lambda)", lam, 0.0, 1.0, 0.01)},
                    your_compute_gae=your_compute_gae)


def clip_explorer(clip_eps: float = 0.2) -> Explorer:
    """Slider for epsilon -> :func:`plot_clip_objective`."""
    return Explorer(plot_clip_objective, {"clip_eps": _slider("ε (clip_eps)", clip_eps, 0.05, 0.8, 0.05)})


def gaussian_explorer(mean: float = 0.0, log_std: float = 0.0, action: float = 1.0) -> Explorer:
    """Sliders for the mean, log_std and the chosen action -> :func:`plot_gaussian_policy`."""
    return Explorer(plot_gaussian_policy, {"mean": _slider("mean μ", mean, -2.0, 2.0, 0.1),
                                           "log_std": _slider("log_std", log_std, -2.0, 1.0, 0.1),
                                           "action": _slider("action a", action, -3.0, 3.0, 0.1)})


# ---------------------------------------------------------------------------------------------
# Playground
# ---------------------------------------------------------------------------------------------
class Playground(widgets.VBox):
    """Pick algorithm, env and a few hyperparameters, press Train: the live view, then a rollout GIF.

    ``playground.train_button.click()`` trains with the current values; afterwards ``playground.run``
    is the run, ``playground.gif_path`` its GIF (in ``gif_dir``, default a temporary folder) and ``playground.error`` the message of a rejected
    setting (e.g. REINFORCE needs episodes that end).
    """

    ENVS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1")
    ALGOS = ("reinforce", "reinforce_baseline", "a2c", "ppo")

    def __init__(self, algo: str = "ppo", env_id: str = "CartPole-v1", total_steps: int = 20_000, lr: float = 3e-4,
                 seed: int = 0, gif_dir: str | Path | None = None, **train_kwargs: Any):
        style = {"description_width": "initial"}
        self.algo = widgets.Dropdown(options=self.ALGOS, value=algo, description="algorithm", style=style)
        self.env = widgets.Dropdown(options=self.ENVS, value=env_id, description="env", style=style)
        self.total_steps = widgets.IntSlider(value=total_steps, min=1_000, max=200_000, step=1_000,
                                             description="total_steps", continuous_update=False, style=style)
        self.lr = widgets.FloatLogSlider(value=lr, base=10, min=-5, max=-2, step=0.1, description="lr",
                                         readout_format=".1e", continuous_update=False, style=style)
        self.seed = widgets.IntSlider(value=seed, min=0, max=9, description="seed", continuous_update=False,
                                      style=style)
        self.train_button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.output = widgets.Output()
        self.gif_dir = Path(gif_dir) if gif_dir is not None else None  # None: a temporary folder, made on first use
        self.train_kwargs = train_kwargs
        self.run = None
        self.gif_path: Path | None = None
        self.error: str | None = None
        self.train_button.on_click(self._train)
        super().__init__([widgets.HBox([self.algo, self.env]), widgets.HBox([self.total_steps, self.lr, self.seed]),
                          self.train_button, self.output])

    def _train(self, button=None) -> None:
        self.train_button.disabled = True
        self.error = None
        try:
            algo, env_id, seed = self.algo.value, self.env.value, int(self.seed.value)
            view = LiveView(title=f"{algo} on {env_id} (seed {seed}, lr {self.lr.value:.1e})", target=self.output)
            try:
                self.run = api.train(algo, env_id, seed=seed, total_steps=int(self.total_steps.value),
                                     lr=float(self.lr.value), live=view, **{"progress": False, **self.train_kwargs})
            except ConfigError as error:
                self.error = str(error)
                self.output.clear_output()
                with self.output:
                    display_if_notebook(widgets.HTML(f"<b>Cannot train this combination:</b> {error}"))
                return
            if self.gif_dir is None:
                self.gif_dir = Path(tempfile.mkdtemp(prefix="pgcourse-playground-"))
            self.gif_path = render.rollout_gif(self.run, env_id, self.gif_dir / f"{algo}-{env_id}-seed{seed}.gif",
                                               seed=seed, frame_skip=3, max_width=320)
            with self.output:
                display_if_notebook(render.show_gif(self.gif_path))
        finally:
            self.train_button.disabled = False
