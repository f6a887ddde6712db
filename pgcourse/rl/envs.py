"""Vector environments from gymnasium 1.x, seeded, with the autoreset mode made explicit.

We use ``AutoresetMode.NEXT_STEP`` (gymnasium's default, and the only mode its normalisation
wrappers accept). In that mode, a step that ends an episode returns the episode's *true final
observation*; the environment resets on the *next* call to ``step``, which ignores the action and
returns reward 0 and the first observation of the new episode. That "reset step" is not a
transition and must never be trained on. :class:`RolloutStepper` below turns the raw stream into
transitions and a ``valid`` mask so the algorithms never see a reset step.

Training and evaluation run CartPole on gymnasium's numpy-vectorised ``CartPoleVectorEnv`` (one array
step for all the sub-environments instead of a Python loop over them), given one random generator per
sub-environment so that it plays exactly the episodes a ``SyncVectorEnv`` of ``CartPoleEnv`` plays for the
same seed (:class:`SeededCartPoleVectorEnv`, ``vectorization="auto"``); every other environment, and every
vector env made with the default ``vectorization="sync"``, is a ``SyncVectorEnv``.
"""
from __future__ import annotations

import copy
import difflib
import inspect
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.utils import seeding
from gymnasium.wrappers.vector import NormalizeObservation, NormalizeReward, RecordEpisodeStatistics

from .config import check_env_kwargs

AUTORESET_MODE = gym.vector.AutoresetMode.NEXT_STEP


def action_space_kind(space: gym.Space) -> str:
    """``"discrete"`` for ``Discrete``, ``"continuous"`` for a 1-D ``Box``; anything else is an error."""
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return "continuous"
    raise ValueError(f"unsupported action space {space}: expected Discrete(n) or a 1-D Box (continuous actions)")


def check_observation_space(space: gym.Space, env_id: str) -> int:
    """Return the observation dimension, or raise if observations are not flat float vectors."""
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
        raise ValueError(unsupported_observation_message(space, env_id))
    return int(space.shape[0])


def unsupported_observation_message(space: gym.Space, env_id: str) -> str:
    """Why ``env_id``'s observations cannot feed the policy (an MLP on a flat vector), with the code that
    makes them fit: gymnasium's ``FlattenObservation`` (``Discrete(n)`` becomes a one-hot vector of ``n``)."""
    discrete = isinstance(space, gym.spaces.Discrete)
    namespace, name, version = gym.envs.registration.parse_env_id(env_id.split(":")[-1])
    wrapped_id = gym.envs.registration.get_env_id(namespace, name + ("OneHot" if discrete else "Flat"), version)
    what = (f"a state number, 0 to {space.n - 1}: give the policy the state one-hot encoded instead"
            if discrete else "not a flat vector: flatten it")
    return (f"{env_id}: unsupported observation space {space} ({what}); expected a 1-D Box (a flat vector). "
            f"gymnasium's FlattenObservation wrapper does it{' (Discrete(n) becomes a one-hot Box of n)' if discrete else ''}."
            f" Register the wrapped environment and train on it:\n\n"
            f"    import gymnasium as gym\n"
            f"    from gymnasium.wrappers import FlattenObservation\n"
            f"    gym.register({wrapped_id!r}, entry_point=lambda **kwargs: "
            f"FlattenObservation(gym.make({env_id!r}, **kwargs)))\n"
            f"    run = pg.train('ppo', {wrapped_id!r})\n\n"
            f"(For a saved run or pg.sweep's worker processes, put the register call in a module of yours, "
            f"say my_envs.py, and use the id 'my_envs:{wrapped_id}': gymnasium imports my_envs first.)")


def describe_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> str:
    """``"LunarLander-v3 with env_kwargs={'continuous': True}"``, or the id alone without keyword arguments."""
    return f"{env_id} with env_kwargs={dict(env_kwargs)!r}" if env_kwargs else env_id


def _unregistered_hint(env_id: str) -> str:
    name = env_id.split(":")[-1]
    return (f"if it is your own environment, run its gymnasium.register(id={name!r}, entry_point=...) first in this "
            f"process; for pg.sweep's worker processes (or another session), put the register call in a module of "
            f"yours, say my_envs.py, and use the id 'my_envs:{name}' (gymnasium imports my_envs first)")


def _constructor_parameters(env_id: str) -> list[str] | None:
    """The keyword arguments ``env_id``'s entry point accepts, or None when it takes any (``**kwargs``)."""
    try:
        entry_point = gym.spec(env_id).entry_point
        creator = gym.envs.registration.load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
        parameters = inspect.signature(creator).parameters.values()
    except Exception:  # an entry point we cannot inspect: no suggestion
        return None
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return [parameter.name for parameter in parameters if parameter.name not in ("self", "render_mode")
            and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]


def _bad_kwargs_hint(env_id: str, env_kwargs: Mapping[str, Any]) -> str:
    accepted = _constructor_parameters(env_id)
    if accepted is None:
        return ""
    allowed = accepted + ["max_episode_steps", "disable_env_checker"]  # gym.make's own
    unknown = [key for key in env_kwargs if key not in allowed]
    guesses = [f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)
               for key in unknown for close in [difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)]]
    return ((f"; unknown: {', '.join(guesses)}" if guesses else "")
            + f"; {env_id} accepts {', '.join(accepted) or 'no keyword arguments'} (and gym.make's max_episode_steps)")


@contextmanager
def making(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Turn the errors of making ``env_id`` into a ``ValueError`` that says which environment, with which
    keyword arguments, failed and what to do: an unknown id (registered in another process?), a keyword
    argument its constructor does not take (did you mean ...), a module that cannot be imported."""
    what = describe_env(env_id, env_kwargs)
    try:
        yield
    except (gym.error.NameNotFound, gym.error.NamespaceNotFound) as error:
        raise ValueError(f"cannot make gymnasium environment {what!r}: {error} ({_unregistered_hint(env_id)})") \
            from error
    except gym.error.Error as error:
        raise ValueError(f"cannot make gymnasium environment {what!r}: {error}") from error
    except ImportError as error:
        module = env_id.split(":")[0] if ":" in env_id else None
        hint = "" if module is None else (
            f" (the module {module!r} that registers the environment must be importable: a {module}.py in the "
            "folder a notebook or 'python -m' runs in, or on PYTHONPATH for the pgcourse command)")
        raise ValueError(f"cannot make gymnasium environment {what!r}: {error}{hint}") from error
    except TypeError as error:
        if not env_kwargs:
            raise
        raise ValueError(f"cannot make gymnasium environment {what}: {error}"
                         f"{_bad_kwargs_hint(env_id, env_kwargs)}") from error


def make_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None, render_mode: str | None = None) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)`` (with ``render_mode`` if given), its errors made readable
    (:func:`making`); ``env_kwargs`` are checked as the config checks them."""
    env_kwargs = check_env_kwargs(env_kwargs)
    with making(env_id, env_kwargs):
        return gym.make(env_id, **env_kwargs, **({} if render_mode is None else {"render_mode": render_mode}))


def env_spaces(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> tuple[gym.Space, gym.Space]:
    """(single observation space, single action space) of ``env_id`` made with ``env_kwargs``, without
    keeping the env."""
    env = make_env(env_id, env_kwargs)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


CARTPOLE_ENTRY_POINT = "gymnasium.envs.classic_control.cartpole:CartPoleEnv"


START_BLOCK = 32  # starting states drawn per sub-environment per generator call (see StartStates)


class StartStates:
    """The starting states of CartPole sub-environments, each from its own generator, as ``CartPoleEnv.reset``
    draws them: state ``~ U(low, high)^4`` from sub-environment ``i``'s generator, one draw per episode.

    Autoresets use the default bounds ``(-0.05, 0.05)``; their draws are made ``START_BLOCK`` episodes at a time,
    ``rng.uniform(-0.05, 0.05, size=(START_BLOCK, 4))``, which yields the same numbers, in the same order, as
    ``START_BLOCK`` calls of ``rng.uniform(-0.05, 0.05, size=(4,))`` (one C loop over the generator's doubles,
    ``low + (high - low) * u``): one Python call per 32 episodes of a sub-environment instead of one per episode.
    Before each block the generator's state is kept, so a reset with other bounds (or a reseed) first rewinds the
    generator to just after the draws used so far: the block's unused draws were never made.
    """

    DEFAULT_BOUNDS = (-0.05, 0.05)

    def __init__(self, num_envs: int):
        self.rngs: list[np.random.Generator | None] = [None] * num_envs
        self.block = np.zeros((num_envs, START_BLOCK, 4))  # [N, B, 4] drawn starting states
        self.used = np.full(num_envs, START_BLOCK)        # [N] states of the block used so far (all: empty)
        self.state_before: list[dict[str, Any] | None] = [None] * num_envs  # generator state before the block

    def seed(self, i: int, seed: int | None) -> None:
        """Reseed sub-environment ``i`` (a random seed when ``seed`` is None, as an unseeded ``CartPoleEnv``)."""
        self.rngs[i], _ = seeding.np_random(seed)
        self.used[i], self.state_before[i] = START_BLOCK, None

    def rewind(self, i: int) -> None:
        """Put sub-environment ``i``'s generator just after the draws used, and drop the rest of its block."""
        if self.state_before[i] is not None:
            rng = self.rngs[i]
            rng.bit_generator.state = self.state_before[i]
            rng.uniform(*self.DEFAULT_BOUNDS, size=(int(self.used[i]), 4))  # the draws used, made again
            self.used[i], self.state_before[i] = START_BLOCK, None

    def draw(self, i: int, low: float, high: float) -> np.ndarray:
        """The next starting state ``[4]`` of sub-environment ``i`` with bounds ``(low, high)`` (a reset's)."""
        if self.rngs[i] is None:
            self.seed(i, None)
        self.rewind(i)
        return self.rngs[i].uniform(low=low, high=high, size=(4,))

    def subset(self, rows: slice) -> StartStates:
        """Sub-environments ``rows`` on their own (copies of their generators, blocks and counts)."""
        block = StartStates(len(self.used[rows]))
        block.rngs, block.state_before = copy.deepcopy(self.rngs[rows]), copy.deepcopy(self.state_before[rows])
        block.block, block.used = self.block[rows].copy(), self.used[rows].copy()
        return block

    def next_autoreset(self, indices: np.ndarray) -> np.ndarray:
        """The next starting states ``[4, len(indices)]`` of the sub-environments ``indices`` (default bounds)."""
        used = self.used[indices]  # [K]
        for k in np.flatnonzero(used >= START_BLOCK):  # blocks used up: draw the next ones
            i = indices[k]
            rng = self.rngs[i]
            self.state_before[i] = rng.bit_generator.state
            self.block[i] = rng.uniform(*self.DEFAULT_BOUNDS, size=(START_BLOCK, 4))
            used[k] = 0
        self.used[indices] = used + 1
        return self.block[indices, used].T


class SeededCartPoleVectorEnv(CartPoleVectorEnv):
    """Gymnasium's numpy-vectorised CartPole (NEXT_STEP autoreset) playing exactly the episodes of a
    ``SyncVectorEnv`` of ``CartPoleEnv``: same observations, rewards, flags, bit for bit.

    ``CartPoleVectorEnv`` draws the starting states of all sub-environments from one generator; a
    ``SyncVectorEnv`` gives sub-environment ``i`` its own, seeded ``seed + i``, and each episode of
    ``i`` starts from the next draw of that generator. This class keeps those generators
    (:class:`StartStates`); the dynamics are ``CartPoleVectorEnv``'s equations, in its order of operations,
    with its time limit and autoreset, so switching the vectorisation changes no number.
    """

    def __init__(self, num_envs: int = 1, max_episode_steps: int = 500):
        super().__init__(num_envs=num_envs, max_episode_steps=max_episode_steps)
        if self.kinematics_integrator != "euler" or self._sutton_barto_reward:
            raise ValueError("SeededCartPoleVectorEnv plays CartPole-v1's defaults only (euler integrator, "
                             "reward 1 per step)")
        self.start_states = StartStates(num_envs)

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if options is not None and set(options) - {"low", "high"}:
            raise ValueError(f"{type(self).__name__}.reset supports the options 'low' and 'high' only, got {options}")
        seeds = list(seed) if isinstance(seed, (list, tuple)) else \
            [None if seed is None else seed + i for i in range(self.num_envs)]
        if len(seeds) != self.num_envs:
            raise ValueError(f"{len(seeds)} seeds for {self.num_envs} sub-environments")
        _, info = super().reset(seed=None if seed is None else seeds[0], options=options)
        for i, env_seed in enumerate(seeds):
            if env_seed is not None:
                self.start_states.seed(i, env_seed)
            # within options' bounds, as CartPoleEnv.reset(options=...)
            self.state[:, i] = self.start_states.draw(i, self.low, self.high)
        self.low, self.high = StartStates.DEFAULT_BOUNDS  # a sub-environment's later resets (autoresets) take no options
        return self.state.T.astype(np.float32), info

    def copy_block(self, rows: slice, into: SeededCartPoleVectorEnv) -> None:
        """Put sub-environments ``rows`` as they are now into ``into`` (an env of as many): states, episode clocks,
        end flags and start-state generators, copied. ``pg.train_many`` takes an agent's block of its batch's env out
        this way, for the agent's own run."""
        into.state, into.steps, into.prev_done = (x[..., rows].copy() for x in (self.state, self.steps, self.prev_done))
        into.low, into.high, into.start_states = self.low, self.high, self.start_states.subset(rows)

    def pushes_right(self, action: Any) -> np.ndarray:
        """``action == 1`` as a bool array ``[N]`` (0 pushes the cart left, 1 right), or a ValueError saying what
        was wrong with ``action``."""
        action = np.asarray(action)
        right = action == 1
        if action.shape != (self.num_envs,) or np.count_nonzero(right) + np.count_nonzero(action == 0) != self.num_envs:
            raise ValueError(f"CartPole actions must be {self.num_envs} values, each 0 (push left) or 1 (push right); "
                             f"got {action!r} (shape {action.shape})")
        return right

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every sub-environment; those that ended at the previous step restart instead (their action
        ignored, reward 0, flags False, the next starting state of their own generator)."""
        if self.state is None:
            raise RuntimeError("call reset before step")
        force = np.where(self.pushes_right(action), self.force_mag, -self.force_mag)  # [N]
        x, x_dot, theta, theta_dot = self.state  # each [N]
        costheta, sintheta = np.cos(theta), np.sin(theta)
        # The cart-pole equations of motion (frictionless, as gymnasium writes them), one Euler step of tau
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        self.state = np.empty_like(self.state)  # [4, N]: x, x_dot, theta, theta_dot one step later
        np.add(x, self.tau * x_dot, out=self.state[0])
        np.add(x_dot, self.tau * xacc, out=self.state[1])
        np.add(theta, self.tau * theta_dot, out=self.state[2])
        np.add(theta_dot, self.tau * thetaacc, out=self.state[3])
        restarting = self.prev_done  # [N] bool: these sub-environments ended last step; this step resets them
        running = ~restarting
        # |x| > threshold is (x < -threshold) | (x > threshold), exactly (NaN compares False either way)
        terminated = ((np.abs(self.state[0]) > self.x_threshold)
                      | (np.abs(self.state[2]) > self.theta_threshold_radians)) & running
        self.steps = np.where(restarting, 0, self.steps + 1)  # [N] steps into the episode
        truncated = (self.steps >= self.max_episode_steps) & running
        indices = restarting.nonzero()[0]  # [K]
        if indices.size:
            self.state[:, indices] = self.start_states.next_autoreset(indices)
        self.prev_done = terminated | truncated
        reward = running.astype(np.float64)  # 1 per step, 0 for a reset step; float64, as SyncVectorEnv
        return self.state.T.astype(np.float32), reward, terminated, truncated, {}


def fast_vectorization(env_id: str, render_mode: str | None = None,
                       env_kwargs: Mapping[str, Any] | None = None) -> bool:
    """True when ``env_id`` runs on :class:`SeededCartPoleVectorEnv`: gymnasium's ``CartPoleEnv`` with
    its default arguments (no ``env_kwargs``), a time limit, no extra wrapper, no rendering."""
    if env_kwargs:
        return False
    try:
        spec = gym.spec(env_id)
    except (gym.error.Error, ImportError):
        return False
    return (render_mode is None and spec.entry_point == CARTPOLE_ENTRY_POINT and not spec.kwargs
            and not spec.additional_wrappers and spec.max_episode_steps is not None)


def make_raw_vector_env(env_id: str, num_envs: int, *, render_mode: str | None = None,
                        vectorization: str = "sync", env_kwargs: Mapping[str, Any] | None = None
                        ) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id`` in NEXT_STEP autoreset mode, without wrappers.

    ``vectorization="sync"``: a ``SyncVectorEnv`` (a Python loop over gymnasium envs); ``"auto"``:
    :class:`SeededCartPoleVectorEnv` for CartPole (the same episodes, bit for bit, several times faster;
    what training and ``pg.evaluate`` use), a ``SyncVectorEnv`` for anything else.
    Seed it with ``envs.reset(seed=seed)`` (sub-environment ``i`` gets ``seed + i``). ``env_kwargs`` go to
    each sub-environment's constructor, ``gym.make(env_id, **env_kwargs)``.
    """
    if vectorization not in ("auto", "sync"):
        raise ValueError(f"vectorization={vectorization!r} is invalid: expected 'auto' or 'sync'")
    env_kwargs = check_env_kwargs(env_kwargs)
    if vectorization == "auto" and fast_vectorization(env_id, render_mode, env_kwargs):
        spec = gym.spec(env_id)
        envs = SeededCartPoleVectorEnv(num_envs, max_episode_steps=spec.max_episode_steps)
        envs.spec = spec
        return envs
    kwargs: dict[str, Any] = {} if render_mode is None else {"render_mode": render_mode}
    with making(env_id, env_kwargs):
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": AUTORESET_MODE}, **env_kwargs, **kwargs)


def make_vector_env(env_id: str, num_envs: int, *, normalize_obs: bool = False, normalize_reward: bool = False,
                    gamma: float = 0.99, render_mode: str | None = None, vectorization: str = "sync",
                    env_kwargs: Mapping[str, Any] | None = None) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id`` (made with ``env_kwargs``) in NEXT_STEP autoreset mode (see
    :func:`make_raw_vector_env`).

    Wrapper order (inside to outside): episode statistics on the *raw* rewards, then observation
    normalisation, then reward scaling, all from ``gymnasium.wrappers.vector``. Seed it with
    ``envs.reset(seed=seed)`` (sub-environment ``i`` gets ``seed + i``).
    """
    envs = make_raw_vector_env(env_id, num_envs, render_mode=render_mode, vectorization=vectorization,
                               env_kwargs=env_kwargs)
    return add_normalization(EpisodeStatistics(envs), normalize_obs=normalize_obs,
                             normalize_reward=normalize_reward, gamma=gamma)


class EpisodeStatistics(RecordEpisodeStatistics):
    """Gymnasium's ``RecordEpisodeStatistics`` for NEXT_STEP vector envs, with the same ``info["episode"]``
    (``r``, ``l``, ``t`` of the sub-environments whose episode ended, 0 elsewhere), ``info["_episode"]``, queues
    and counters, in fewer array operations per step (a step without an ending builds nothing).

    Per sub-environment ``i``: a reset step (``i`` ended at the previous step) starts a new episode with
    return 0 and length 0; any other step adds its raw reward to the return and 1 to the length.
    """

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._autoreset_mode != AUTORESET_MODE:
            return super().step(actions)
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        restarted = self.prev_dones  # [N] bool: this step was a reset step
        self.episode_returns = np.where(restarted, 0.0, self.episode_returns + rewards)  # [N]
        self.episode_lengths = np.where(restarted, 0, self.episode_lengths + 1)  # [N]
        if np.count_nonzero(restarted):
            self.episode_start_times[restarted] = time.perf_counter()
        self.prev_dones = dones = np.logical_or(terminations, truncations)  # [N]
        ended = dones.nonzero()[0]  # [E] the sub-environments whose episode ended
        if ended.size:
            if self._stats_key in infos or f"_{self._stats_key}" in infos:
                raise ValueError(f"Attempted to add episode stats with key '{self._stats_key}' but this key "
                                 f"already exists in info: {list(infos.keys())}")
            returns, lengths = self.episode_returns[ended], self.episode_lengths[ended]  # [E]
            seconds = np.round(time.perf_counter() - self.episode_start_times[ended], 6)  # [E]
            infos[self._stats_key] = {"r": np.where(dones, self.episode_returns, 0.0),
                                      "l": np.where(dones, self.episode_lengths, 0),
                                      "t": np.zeros(self.num_envs)}
            infos[self._stats_key]["t"][ended] = seconds
            infos[f"_{self._stats_key}"] = dones
            self.episode_count += len(ended)
            self.time_queue.extend(seconds.tolist())
            self.return_queue.extend(returns.tolist())
            self.length_queue.extend(lengths.tolist())
        return observations, rewards, terminations, truncations, infos


def max_episode_steps(envs: gym.vector.VectorEnv) -> int | None:
    """The time limit of the sub-environments of an unwrapped vector env from :func:`make_raw_vector_env`."""
    if isinstance(envs, CartPoleVectorEnv):
        return int(envs.max_episode_steps)
    spec = envs.envs[0].spec if hasattr(envs, "envs") else getattr(envs, "spec", None)
    return spec.max_episode_steps if spec is not None else None


def add_normalization(envs: gym.vector.VectorEnv, *, normalize_obs: bool, normalize_reward: bool,
                      gamma: float = 0.99) -> gym.vector.VectorEnv:
    """Wrap ``envs`` in gymnasium's observation normalisation, then reward scaling (each if asked)."""
    if normalize_obs:
        envs = NormalizeObservation(envs)
    if normalize_reward:
        envs = NormalizeReward(envs, gamma=gamma)
    return envs


def find_wrapper(envs: Any, wrapper_type: type) -> Any | None:
    """The first wrapper of ``wrapper_type`` in the chain ``envs, envs.env, …``, or None."""
    while envs is not None:
        if isinstance(envs, wrapper_type):
            return envs
        envs = getattr(envs, "env", None)
    return None


@dataclass
class ObsNormalizerState:
    """Frozen statistics of gymnasium's ``NormalizeObservation``: ``(obs - mean) / sqrt(var + epsilon)``."""

    mean: np.ndarray
    var: np.ndarray
    count: float
    epsilon: float = 1e-8

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return ((observations - self.mean) / np.sqrt(self.var + self.epsilon)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": float(self.count),
                "epsilon": float(self.epsilon)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObsNormalizerState:
        return cls(np.asarray(data["mean"], dtype=np.float64), np.asarray(data["var"], dtype=np.float64),
                   float(data["count"]), float(data["epsilon"]))


def normalizer_state(envs: Any) -> dict[str, Any]:
    """Snapshot of the running statistics of the normalisation wrappers (empty dict if none)."""
    state: dict[str, Any] = {}
    obs_wrapper = find_wrapper(envs, NormalizeObservation)
    if obs_wrapper is not None:
        rms = obs_wrapper.obs_rms
        state["obs"] = ObsNormalizerState(np.array(rms.mean, dtype=np.float64), np.array(rms.var, dtype=np.float64),
                                          float(rms.count), float(obs_wrapper.epsilon)).to_dict()
    reward_wrapper = find_wrapper(envs, NormalizeReward)
    if reward_wrapper is not None:
        rms = reward_wrapper.return_rms
        state["reward"] = {"var": float(np.asarray(rms.var)), "mean": float(np.asarray(rms.mean)),
                           "count": float(rms.count), "epsilon": float(reward_wrapper.epsilon)}
    return state


@dataclass
class StepResult:
    """One vector step seen as transitions.

    ``valid[i]`` is False when sub-env ``i`` was autoresetting: its action was ignored, its reward
    is 0 and ``next_obs[i]`` is the first observation of a new episode, so it is not a transition.
    For a valid step that ended an episode, ``next_obs[i]`` is the true final observation (NEXT_STEP
    mode returns it from the ending step), which is what a truncated step bootstraps from.
    """

    next_obs: np.ndarray       # [N, obs_dim]
    rewards: np.ndarray        # [N] (scaled if reward normalisation is on)
    terminated: np.ndarray     # [N] bool
    truncated: np.ndarray      # [N] bool
    valid: np.ndarray          # [N] bool
    episode_returns: list[float]   # raw returns of episodes that ended this step
    episode_lengths: list[int]


class RolloutStepper:
    """Steps a NEXT_STEP vector env and marks which steps are real transitions."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int | list[int]):
        """``seed``: sub-environment ``i`` starts from ``seed + i``; or one seed per sub-environment (a list; the
        action space takes the first)."""
        self.envs = envs
        self.obs, _ = envs.reset(seed=seed)  # [N, obs_dim]
        self.autoresetting = np.zeros(envs.num_envs, dtype=bool)  # [N]: this step will be a reset step
        self.envs.action_space.seed(seed if isinstance(seed, int) else seed[0])

    def step(self, actions: np.ndarray) -> StepResult:
        valid = ~self.autoresetting
        next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        episode_returns: list[float] = []
        episode_lengths: list[int] = []
        if "episode" in infos:
            ended = infos["_episode"]  # [N] bool: an episode ended in this sub-env at this step
            for i in np.flatnonzero(ended):
                episode_returns.append(float(infos["episode"]["r"][i]))
                episode_lengths.append(int(infos["episode"]["l"][i]))
        self.autoresetting = terminated | truncated
        self.obs = next_obs
        return StepResult(next_obs, np.asarray(rewards, dtype=np.float64), terminated, truncated, valid,
                          episode_returns, episode_lengths)


def transition_mask(terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    r"""Which steps of a NEXT_STEP rollout (started from a fresh reset) are real transitions.

    .. math:: \text{valid}_0 = \text{True}, \qquad
              \text{valid}_t = \lnot(\text{term}_{t-1} \lor \text{trunc}_{t-1})

    The step right after an episode end is the autoreset step: its action is ignored, its reward is
    0 and its observation starts a new episode, so it is not a transition.

    Args:
        terminated: ``[T, N]`` bool, as returned by ``envs.step`` at each step.
        truncated: ``[T, N]`` bool.

    Returns:
        ``[T, N]`` bool mask, True for real transitions.
    """
    done = torch.as_tensor(terminated).bool() | torch.as_tensor(truncated).bool()  # [T, N]
    valid = torch.ones_like(done)  # [T, N]; step 0 follows the reset, so it is real
    valid[1:] = ~done[:-1]
    return valid


def first_episode_lengths(terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    r"""The length of each env's first episode in a NEXT_STEP rollout started from a fresh reset.

    .. math:: T_i = 1 + \min\{t : \text{term}_{t,i} \lor \text{trunc}_{t,i}\}

    The step that ended the episode (terminated, truncated, or both) belongs to it, hence the ``1 +``;
    whatever env ``i`` did after ``T_i`` steps (the autoreset step, the next episode) is not counted.
    REINFORCE keeps rows ``0 .. T_i - 1`` of env ``i``'s column of a batch.

    Args:
        terminated: ``[T, N]`` bool, as returned by ``envs.step`` at each step.
        truncated: ``[T, N]`` bool.

    Returns:
        ``[N]`` int64 lengths, each between 1 and T.

    Raises:
        ValueError: when an env's episode did not end within the T steps (its first episode has no length yet).
    """
    done = torch.as_tensor(terminated).bool() | torch.as_tensor(truncated).bool()  # [T, N]
    if done.dim() != 2:
        raise ValueError(f"terminated and truncated are [T, N] step-by-env flags, got shape {tuple(done.shape)}")
    unfinished = (~done.any(0)).nonzero().flatten().tolist()  # envs with no end yet
    if unfinished:
        raise ValueError(f"env(s) {unfinished} did not end an episode within the {done.shape[0]} steps: "
                         "keep stepping until every env has ended one")
    first_end = done.int().argmax(0)  # [N] argmax returns the first maximal index: the first end
    return first_end.long() + 1


def completed_episode_returns(rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor) -> list[float]:
    """Undiscounted returns of the episodes that ended within a NEXT_STEP rollout started from reset.

    An episode ends at a step where ``terminated`` or ``truncated`` is True (both end it: a time
    limit ends the episode as surely as a terminal state). Episodes still running at the last step
    are left out. Reset steps are not transitions and add nothing.

    Args:
        rewards: ``[T, N]`` rewards as returned by ``envs.step``.
        terminated: ``[T, N]`` bool.
        truncated: ``[T, N]`` bool.

    Returns:
        One float per finished episode, ordered by (end step, env index).
    """
    rewards = torch.as_tensor(rewards).detach().double()  # [T, N]
    done = torch.as_tensor(terminated).bool() | torch.as_tensor(truncated).bool()  # [T, N]
    valid = transition_mask(terminated, truncated)  # [T, N]
    running_returns = torch.zeros(rewards.shape[1], dtype=torch.float64)  # [N]
    episode_returns: list[float] = []
    for t in range(rewards.shape[0]):
        running_returns += torch.where(valid[t], rewards[t], 0.0)
        for env_index in torch.nonzero(done[t]).flatten().tolist():
            episode_returns.append(float(running_returns[env_index]))
            running_returns[env_index] = 0.0
    return episode_returns


def play_episode(env: gym.Env, policy, seed: int) -> tuple[float, int, bool, bool]:
    """Play one episode of ``env`` from ``env.reset(seed=seed)`` with ``action = policy(obs)``.

    Returns ``(episode_return, length, terminated, truncated)``: the sum of all rewards (the last
    one included), the number of steps, and the flags of the last step. The loop stops at the
    first step that is ``terminated`` *or* ``truncated`` (a time limit ends the episode too).
    """
    obs, _ = env.reset(seed=seed)
    episode_return, length = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        episode_return += float(reward)
        length += 1
        if terminated or truncated:
            return episode_return, length, bool(terminated), bool(truncated)
