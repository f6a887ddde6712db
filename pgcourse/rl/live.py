"""What ``pg.train(..., live=True)`` shows while training runs, and the small display helpers every
notebook widget uses (a figure that is not registered with pyplot, PNG bytes, display only in a kernel).

The live view is a callback: ``pg.train`` passes ``view.update`` to the training loop as ``on_update``.
"""
from __future__ import annotations

import io
import time
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from .history import moving_average

__all__ = ["LiveView", "plot_live", "CourseFigure", "figure_png"]


def in_notebook() -> bool:
    """True inside an IPython kernel/shell (display() would otherwise just print reprs)."""
    try:
        from IPython.core.interactiveshell import InteractiveShell
    except ImportError:  # pragma: no cover - IPython ships with ipywidgets
        return False
    return InteractiveShell.initialized()


def display_if_notebook(*objects: Any, **kwargs: Any):
    if not in_notebook():
        return None
    from IPython.display import display
    return display(*objects, **kwargs)


class CourseFigure(Figure):
    """A matplotlib Figure not registered with pyplot (explorers redraw without leaking open figures)
    that Jupyter still shows as a PNG when it is a cell's result or passed to ``display``."""

    def _repr_png_(self) -> bytes:
        return figure_png(self, dpi=100)


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """PNG bytes of a figure (what an explorer's image widget shows)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Live training view
# ---------------------------------------------------------------------------------------------
LIVE_PANELS = (("return", "episode return"), ("entropy", "entropy"), ("update_kl", "KL per update"),
               ("clip_fraction", "clip fraction"), ("explained_variance", "explained variance"))


def plot_live(history, title: str = "", window: int = 20) -> Figure:
    """Five panels of a (possibly unfinished) run's history: episode return (moving average), entropy,
    KL per update (PPO's update KL, with approx KL dashed beside it), clip fraction and explained variance
    against environment steps. ``history`` may be a list of histories (``pg.train_many``'s agents): one line per
    agent, in the same colour, thinner (the return's moving average only)."""
    histories = history if isinstance(history, (list, tuple)) else [history]
    many = len(histories) > 1
    fig = CourseFigure(figsize=(13, 2.8), layout="constrained")
    axes = [fig.add_subplot(1, len(LIVE_PANELS), i + 1) for i in range(len(LIVE_PANELS))]
    for ax, (name, label) in zip(axes, LIVE_PANELS):
        drawn = False
        for history in histories:
            if name == "return":
                xs, ys = history.episodes["env_step"], history.episodes["return"]
                if len(ys):
                    if not many:
                        ax.plot(xs, ys, color="tab:blue", alpha=0.25, linewidth=0.8)
                    ys = moving_average(ys, window)
            else:
                xs, ys = history.updates["env_step"], history.updates[name]
            if len(ys) and np.isfinite(ys).any():
                drawn = True
                ax.plot(xs, ys, color="tab:blue", linewidth=0.8 if many else 1.5, alpha=0.6 if many else 1.0,
                        label="KL(pi_old || pi_new)" if name == "update_kl" and history is histories[0] else None)
                if name == "update_kl":  # the lagging minibatch estimate target_kl reads, for comparison
                    ax.plot(xs, history.updates["approx_kl"], color="tab:orange", linestyle="--",
                            linewidth=0.8 if many else 1.5, label="approx KL" if history is histories[0] else None)
                    ax.legend(fontsize=6)
        if not drawn:
            ax.text(0.5, 0.5, "not measured\nby this algorithm" if any(len(h.updates) for h in histories)
                    else "waiting…", ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("env steps", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


class LiveView:
    """What ``pg.train(..., live=True)`` shows: a progress bar and :func:`plot_live`, redrawn every
    ``every`` updates (at most once per ``min_seconds``) while training runs; when training ends the
    live widgets are replaced by a final static figure (which is what a saved notebook keeps).

    Outside a notebook nothing is displayed; the view still records what it would show
    (``updates_seen``, ``redraws``, ``png``), which is what the tests check. ``target``: an
    ``ipywidgets.Output`` to draw into (the playground's) instead of the cell's output.

    ``pg.train_many`` passes every agent's trainer to :meth:`update`: the view draws one line per agent and counts a
    batched update once, when the first agent to reach it reports it (whose progress the bar shows).
    """

    last: LiveView | None = None  # the most recent view (tests and curious learners read it)

    def __init__(self, title: str = "", every: int = 5, min_seconds: float = 1.0,
                 target: widgets.Output | None = None):
        self.title, self.every, self.min_seconds, self.target = title, every, min_seconds, target
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="training",
                                            layout=widgets.Layout(width="60%"))
        self.label = widgets.Label("")
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="1100px"))
        self.widget = widgets.VBox([widgets.HBox([self.progress, self.label]), self.image])
        self.updates_seen = 0
        self.redraws = 0
        self.png: bytes | None = None
        self.final_figure: Figure | None = None
        self._handle = None
        self._last_draw = -float("inf")
        self.histories: dict[int, Any] = {}  # id(trainer) -> its history, in the order the agents first came
        self._latest_update = 0  # the highest update number reported (a batch's agents report the same update)
        LiveView.last = self

    def show(self) -> None:
        if self.target is not None:
            self.target.clear_output()
            with self.target:
                display_if_notebook(self.widget)
        else:
            self._handle = display_if_notebook(self.widget, display_id=True)

    def update(self, trainer) -> None:
        """The per-update hook (``Trainer.on_update``; each agent's, for ``pg.train_many``)."""
        self.histories.setdefault(id(trainer), trainer.history)
        if trainer.num_updates <= self._latest_update:
            return  # another agent of the batch reporting an update already counted (and drawn)
        self._latest_update = trainer.num_updates
        self.updates_seen += 1
        total = int(trainer.config.total_steps)
        self.progress.max = total
        self.progress.value = min(int(trainer.env_step), total)
        returns = trainer.history.episodes["return"][-20:]
        recent = f", last 20 episodes: {returns.mean():.1f}" if len(returns) else ""
        agents = f" ({len(self.histories)} agents; numbers of agent {list(self.histories).index(id(trainer))})" \
            if len(self.histories) > 1 else ""
        self.label.value = f"{trainer.env_step:,} / {total:,} steps, update {trainer.num_updates}{recent}{agents}"
        self.history = list(self.histories.values()) if len(self.histories) > 1 else trainer.history
        now = time.perf_counter()
        if self.updates_seen % self.every == 0 and now - self._last_draw >= self.min_seconds:
            self._last_draw = now
            self.png = figure_png(plot_live(self.history, self.title), dpi=70)
            self.image.value = self.png
            self.redraws += 1

    def close(self) -> Figure | None:
        """Replace the live widgets by the final static figure (returned)."""
        history = getattr(self, "history", None)
        if history is None:
            self.widget.close()
            return None
        self.final_figure = plot_live(history, self.title)
        if self.target is not None:
            self.target.clear_output()
            with self.target:
                display_if_notebook(self.final_figure)
        elif self._handle is not None:
            self._handle.update(self.final_figure)
        else:
            display_if_notebook(self.final_figure)
        self.widget.close()
        return self.final_figure
