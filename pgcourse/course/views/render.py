"""Rollout GIFs, rendered headless (``SDL_VIDEODRIVER=dummy``, ``render_mode="rgb_array"``) with imageio."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (from pygame-ce) must never open a window
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import contextlib  # noqa: E402

import gymnasium as gym  # noqa: E402
import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ...rl.envs import describe_env, make_env  # noqa: E402
from ...rl.evaluation import check_playable, resolve_env, resolve_mode, seeded_sampling  # noqa: E402
from ...rl.run import Run, as_run  # noqa: E402

# A Run, a saved run's folder (str or Path), a function obs -> action, or None for a random agent.
Agent = Run | str | os.PathLike | Callable[[np.ndarray], np.ndarray] | None


def _as_agent(agent: Agent) -> Run | Callable[[np.ndarray], np.ndarray] | None:
    """A run folder given as a path becomes the loaded :class:`Run`; anything else is kept."""
    return as_run(agent) if isinstance(agent, (str, os.PathLike)) else agent


def _act(agent: Agent, env: gym.Env, obs: np.ndarray, deterministic: bool) -> np.ndarray:
    if agent is None:
        return env.action_space.sample()
    if isinstance(agent, Run):
        return agent.act(obs[None], deterministic=deterministic)[0]
    return agent(obs)


def rollout_frames(agent: Agent, env_id: str | None = None, seed: int = 0, deterministic: bool | None = None,
                   frame_skip: int = 2, max_width: int = 320, max_steps: int | None = None, *,
                   env_kwargs: Mapping[str, Any] | None = None) -> tuple[list[np.ndarray], float]:
    """Play one episode and return ``(frames, episode_return)``.

    ``agent`` is a :class:`Run` (or the folder of a saved one), a function ``obs [obs_dim] -> action``,
    or None for a uniformly random agent. Every ``frame_skip``-th frame is kept (and the last one),
    resized to at most ``max_width`` pixels wide.

    A run plays the environment it was trained on with its ``env_kwargs`` unless ``env_id`` or
    ``env_kwargs`` say otherwise (as :func:`pgcourse.evaluate`), and acts greedily (True) or by sampling
    (False, seeded with ``seed``) as ``deterministic`` says; None: as its ``config.eval_mode`` says.

    Raises:
        ValueError: ``env_id``'s observation or action space is not the one the run was trained on.
    """
    if frame_skip < 1:
        raise ValueError(f"frame_skip={frame_skip!r} is invalid: expected an integer >= 1")
    agent = _as_agent(agent)
    if isinstance(agent, Run):
        env_id, env_kwargs = resolve_env(agent, env_id, env_kwargs)
        greedy = resolve_mode(agent, None, deterministic) == "greedy"
    elif env_id is None:
        raise ValueError("env_id is required unless agent is a Run or a saved run's folder")
    else:
        greedy = deterministic is not False
    env = make_env(env_id, env_kwargs, render_mode="rgb_array")
    try:
        if isinstance(agent, Run):
            check_playable(agent, env_id, env_kwargs or {}, env.observation_space, env.action_space)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
        if frames[0] is None:
            raise ValueError(f"{describe_env(env_id, env_kwargs)} rendered no frame with render_mode='rgb_array': "
                             "its render() must return an RGB array (height x width x 3) for a GIF")
        episode_return, step = 0.0, 0
        limit = max_steps or (env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 1000)
        device = agent.device if isinstance(agent, Run) else torch.device("cpu")
        with seeded_sampling(device, seed) if not greedy else _nothing():
            while step < limit:
                obs, reward, terminated, truncated, _ = env.step(_act(agent, env, obs, greedy))
                episode_return += float(reward)
                step += 1
                if step % frame_skip == 0 or terminated or truncated:
                    frames.append(env.render())
                if terminated or truncated:
                    break
    finally:
        env.close()
    return [_resize(frame, max_width) for frame in frames], episode_return


@contextlib.contextmanager
def _nothing():
    yield


def _resize(frame: np.ndarray, max_width: int) -> np.ndarray:
    height, width = frame.shape[:2]
    if width <= max_width:
        return frame
    image = Image.fromarray(frame).resize((max_width, round(height * max_width / width)), Image.Resampling.BILINEAR)
    return np.asarray(image)


def write_gif(frames: list[np.ndarray], path: str | os.PathLike, fps: float = 25.0) -> Path:
    """Write ``frames`` as a GIF that loops forever; returns the path."""
    if not frames:
        raise ValueError("no frames to write")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(target, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
    return target


def default_caption(agent: Agent, env_id: str, episode_return: float) -> str:
    """``"ppo on CartPole-v1: return 500"``: who played, where, and how well. A function agent is named by its
    name (``lean_controller``: "lean controller"), a lambda as "policy"."""
    name = getattr(agent, "__name__", "<lambda>").strip("_").replace("_", " ")
    who = (agent.config.algo if isinstance(agent, Run) else "random agent" if agent is None
           else "policy" if name.startswith("<") or not name else name)
    return f"{who} on {env_id}: return {episode_return:.0f}"


def rollout_gif(agent: Agent, env_id: str | None = None, path: str | os.PathLike = "rollout.gif", seed: int = 0,
                deterministic: bool | None = None, fps: float = 25.0, frame_skip: int = 2, max_width: int = 320,
                caption: bool | str = True, *, env_kwargs: Mapping[str, Any] | None = None) -> Path:
    """Record one episode of ``agent`` on ``env_id`` to a looping GIF at ``path`` and return the path.

    ``agent`` is a :class:`Run` or the folder of a saved run (``"runs/ppo-cartpole"``; ``env_id``
    defaults to the one it was trained on, with its ``env_kwargs``, and another env must have the same
    spaces), a function ``obs -> action``, or None for a random agent. ``deterministic``: True plays the
    greedy action, False samples (seeded with ``seed``), None as the run's ``config.eval_mode`` says.
    ``caption``: True writes the algorithm, the env and the episode's return under the frames
    (:func:`default_caption`), a string writes that text, False none. GIFs are generated output: an
    existing file at ``path`` is replaced.
    """
    agent = _as_agent(agent)
    if env_id is None and not isinstance(agent, Run):
        raise ValueError("env_id is required unless agent is a Run or a saved run's folder")
    if isinstance(agent, Run):
        env_id, env_kwargs = resolve_env(agent, env_id, env_kwargs)
    frames, episode_return = rollout_frames(agent, env_id, seed=seed, deterministic=deterministic,
                                            frame_skip=frame_skip, max_width=max_width, env_kwargs=env_kwargs)
    if caption:
        text = caption if isinstance(caption, str) else default_caption(agent, env_id, episode_return)
        frames = [_caption(frame, text) for frame in frames]
    return write_gif(frames, path, fps=fps)


def show_gif(path: str | os.PathLike, width: int | None = None):
    """Display a GIF inline in Jupyter (embedded, so it survives saving the notebook)."""
    from IPython.display import Image as IPythonImage

    return IPythonImage(data=Path(path).read_bytes(), format="gif", width=width)


def _caption(frame: np.ndarray, text: str, height: int = 22) -> np.ndarray:
    """``frame`` with a white strip below it holding ``text`` (PIL's default font, 12 px).

    Words are placed one by one with a gap of a third of the font size: the default font's own space is
    2-3 px wide, which ran "ppo on" together into "ppoon" in every GIF's caption.
    """
    from PIL import ImageDraw, ImageFont

    image = Image.new("RGB", (frame.shape[1], frame.shape[0] + height), "white")
    image.paste(Image.fromarray(frame[..., :3]), (0, 0))
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=12)
    except (TypeError, ImportError, OSError):  # a Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    x, gap = 6.0, 4.0
    for word in text.split(" "):
        draw.text((x, frame.shape[0] + 4), word, fill=(0, 0, 0), font=font)
        x += draw.textlength(word, font=font) + gap
    return np.asarray(image)


def side_by_side_gif(agents: list[Agent], env_id: str, path: str | os.PathLike = "side_by_side.gif",
                     labels: list[str] | None = None, seed: int = 0, deterministic: bool | None = None,
                     fps: float = 25.0, frame_skip: int = 3, max_width: int = 240, max_bytes: int = 2_000_000, *,
                     env_kwargs: Mapping[str, Any] | None = None) -> Path:
    """Play one episode per agent (same ``seed``) and write them side by side as one looping GIF, each
    with a caption ``"<label>: return <R>"``; the shorter episode holds its last frame.

    ``agents`` are what :func:`rollout_frames` accepts (a Run, a function, or None for random);
    ``deterministic`` and ``env_kwargs`` are passed to it (None: each run's own).
    The GIF is kept under ``max_bytes`` (2 MB): if it is larger, every other frame is dropped and
    it is written again.
    """
    labels = labels or [f"agent {i}" for i in range(len(agents))]
    if len(labels) != len(agents) or not agents:
        raise ValueError(f"need one label per agent; got {len(agents)} agents and {len(labels)} labels")
    episodes = [rollout_frames(agent, env_id, seed=seed, deterministic=deterministic, frame_skip=frame_skip,
                               max_width=max_width, env_kwargs=env_kwargs) for agent in agents]
    length = max(len(frames) for frames, _ in episodes)
    columns = []
    for (frames, episode_return), label in zip(episodes, labels):
        captioned = [_caption(frame, f"{label}: return {episode_return:.0f}") for frame in frames]
        columns.append(captioned + [captioned[-1]] * (length - len(captioned)))
    height = max(column[0].shape[0] for column in columns)
    separator = np.full((height, 4, 3), 255, dtype=np.uint8)

    def pad(frame: np.ndarray) -> np.ndarray:
        return np.pad(frame, ((0, height - frame.shape[0]), (0, 0), (0, 0)), constant_values=255)

    frames = [np.concatenate([part for column in columns for part in (pad(column[t]), separator)][:-1], axis=1)
              for t in range(length)]
    target = write_gif(frames, path, fps=fps)
    while target.stat().st_size > max_bytes and len(frames) > 2:
        frames, fps = frames[::2], fps / 2  # every other frame, at half the rate: the same playing time
        target = write_gif(frames, path, fps=fps)
    return target
