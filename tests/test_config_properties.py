"""Bad configs fail clearly, good ones never crash (issue 25, item 7): property tests over the config's own ranges.

- **Good configs train.** For every algorithm and every kind of environment (Discrete: CartPole-v1, Acrobot-v1;
  Box: Pendulum-v1; the probes of :mod:`pgcourse.probes`), hypothesis draws configs that validate, every setting
  from its range in the config class's own table (:meth:`~pgcourse.config.BaseConfig.value_ranges`), and trains
  them for one or two updates: no exception, no NaN stop.
- **Bad values fail clearly.** A value out of a setting's range (or of the wrong type) raises
  :class:`~pgcourse.config.ConfigError` from ``pg.train``, naming the setting, the value and the range.

The ranges are read from ``pgcourse/config.py``, so a range that changes there changes what is drawn here; a new
setting without a range fails :func:`test_every_setting_is_drawn` until it gets one (or a strategy below). A few
settings cost time in proportion to their value (4096 envs, 1000 epochs are valid): their upper end is capped
(:data:`COST_CAPS`). The examples are derandomised (the same every run, as CI needs); set
``PGCOURSE_PROPERTY_EXAMPLES=200`` to explore with more, freshly random, examples.
"""
from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pgcourse as pg
from pgcourse.rl.config import (ALGORITHMS, CONFIG_CLASSES, DISCRETE_ONLY, ENV_BACKENDS, EVAL_MODES,
                                TENSOR_BACKEND_ALGOS, TENSOR_ENV_IDS, BaseConfig, Choice, ConfigError, Flag,
                                FloatRange, IntRange, make_config, valid_setting_names)
from pgcourse.course.debugging.probes import PROBES

ENV_FAMILIES = {
    "discrete": ("CartPole-v1", "Acrobot-v1"),
    "box": ("Pendulum-v1",),
    "probe": tuple(probe.full_id for probe in PROBES.values()),
}
ACTION_KIND = {"discrete": "discrete", "box": "continuous", "probe": "discrete"}
CASES = [(algo, family) for algo in ALGORITHMS for family in ENV_FAMILIES
         if not (family == "box" and algo in DISCRETE_ONLY)]
ROLLOUT_ALGOS = ("a2c", "ppo", "trpo")  # num_envs * n_steps transitions per update

# settings whose cost grows with their value: the highest value drawn (the config allows more)
COST_CAPS = {"num_envs": 3, "n_steps": 6, "update_epochs": 3, "critic_epochs": 3, "cg_iters": 12,
             "line_search_steps": 12, "eval_episodes": 2, "max_episodes": 3,
             "torch_threads": 1}  # a process-wide torch setting: the test session runs on one thread
HIDDEN_WIDTH_CAP, HIDDEN_LAYERS_CAP = 16, 3
# settings drawn below from the others (bounds that depend on other settings), not from their range alone
DEPENDENT = ("total_steps", "minibatch_size", "num_minibatches", "eval_every", "stop_when_solved", "log_std_min", "critic_epochs",
             "env_backend")
# settings without a range in value_ranges(), drawn by strategies of this file
OWN_STRATEGIES = ("device", "env_kwargs", "eval_mode", "hidden_sizes", "traps")
ENV_KWARGS = {"CartPole-v1": st.just({}) | st.fixed_dictionaries({"sutton_barto_reward": st.booleans()}),
              "Pendulum-v1": st.just({}) | st.fixed_dictionaries({"g": st.floats(1.0, 20.0)})}

EXAMPLES = int(os.environ.get("PGCOURSE_PROPERTY_EXAMPLES", "0"))
PROPERTY = settings(max_examples=EXAMPLES or 8, deadline=None, derandomize=not EXAMPLES, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
INVALID = settings(max_examples=EXAMPLES or 60, deadline=None, derandomize=not EXAMPLES, database=None)


def values_in(allowed, cap: int | None = None) -> st.SearchStrategy:
    """Every value ``allowed`` (a range of the config) accepts, up to ``cap`` for an integer."""
    if isinstance(allowed, Flag):
        values = st.booleans()
    elif isinstance(allowed, Choice):
        values = st.sampled_from(allowed.values)
    elif isinstance(allowed, IntRange):
        high = allowed.high if cap is None else min(cap, allowed.high if allowed.high is not None else cap)
        assert high is not None, "an integer setting without an upper bound needs a COST_CAPS entry"
        values = st.integers(allowed.low, high)
    elif isinstance(allowed, FloatRange):
        values = st.floats(allowed.low, allowed.high, exclude_min=allowed.low_open, exclude_max=allowed.high_open)
    else:
        raise AssertionError(f"no strategy for {allowed!r}")
    return st.none() | values if getattr(allowed, "allow_none", False) else values


@st.composite
def valid_settings(draw, algo: str, family: str) -> tuple[str, dict]:
    """``(env_id, settings)``: a config of ``algo`` that validates, every setting drawn (one or two updates)."""
    env_id = draw(st.sampled_from(ENV_FAMILIES[family]))
    ranges = CONFIG_CLASSES[algo].value_ranges()
    values = {name: draw(values_in(allowed, COST_CAPS.get(name)), label=name)
              for name, allowed in ranges.items() if name not in DEPENDENT}
    width = BaseConfig.HIDDEN_WIDTH
    values["hidden_sizes"] = tuple(draw(st.lists(st.integers(width.low, min(width.high, HIDDEN_WIDTH_CAP)),
                                                 min_size=1, max_size=HIDDEN_LAYERS_CAP), label="hidden_sizes"))
    values["device"] = "cpu"
    values["eval_mode"] = draw(st.sampled_from(EVAL_MODES), label="eval_mode")
    values["env_kwargs"] = draw(ENV_KWARGS.get(env_id, st.just({})), label="env_kwargs")
    torch_env = algo in TENSOR_BACKEND_ALGOS and env_id in TENSOR_ENV_IDS and not values["env_kwargs"]
    values["env_backend"] = draw(st.sampled_from(ENV_BACKENDS if torch_env else ("numpy",)), label="env_backend")
    values["traps"] = ()  # planted bugs (lesson 06) are checked by pg.train, not by the config: tests/test_traps.py
    log_std = ranges["log_std_min"]
    values["log_std_min"] = draw(values_in(FloatRange(log_std.low, min(log_std.high, values["log_std_init"]),
                                                      allow_none=log_std.allow_none)), label="log_std_min")
    if "critic_epochs" in ranges:
        values["critic_epochs"] = 1 if algo == "reinforce" else draw(
            values_in(ranges["critic_epochs"], COST_CAPS["critic_epochs"]), label="critic_epochs")
    if algo in ROLLOUT_ALGOS:
        batch = values["num_envs"] * values["n_steps"]
        if "num_minibatches" in ranges and draw(st.booleans(), label="a minibatch count"):
            values["num_minibatches"] = draw(st.integers(1, batch), label="num_minibatches")  # a count, or a size
        elif "minibatch_size" in ranges:
            values["minibatch_size"] = draw(st.integers(ranges["minibatch_size"].low, batch), label="minibatch_size")
        values["total_steps"] = draw(st.integers(1, 2 * batch), label="total_steps")  # one or two updates
    else:  # an update plays one episode in each env: any budget up to a short episode is one or two updates
        values["total_steps"] = draw(st.integers(1, 30), label="total_steps")
    values["eval_every"] = draw(st.just(0) | st.integers(1, values["total_steps"]), label="eval_every")
    values["stop_when_solved"] = values["eval_every"] > 0 and draw(st.booleans(), label="stop_when_solved")
    return env_id, values


def train_quietly(algo: str, env_id: str, values: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # std() of a one-transition batch and the like: noise here
        return pg.train(algo, env_id, **values)


def check_trains(algo: str, family: str) -> None:
    """Train every drawn config (TRPO on a zero gradient, equal advantages on a probe or one transition,
    raised "s^T F s = 0" before trust_region.quadratic_form_is_zero: it must now take no step instead)."""

    @PROPERTY
    @given(drawn=valid_settings(algo, family))
    def trains(drawn):
        env_id, values = drawn
        make_config(algo, env_id, ACTION_KIND[family], **values)  # the draw is a valid config
        history = train_quietly(algo, env_id, values).history
        assert len(history.updates) >= 1, f"no update: {history.status}"
        assert not history.status.startswith("stopped"), history.status  # no NaN/inf stop either
        assert history.status in ("completed", "solved"), history.status

    trains()


@pytest.mark.parametrize("algo, family", CASES)
def test_valid_configs_train_without_error(algo, family):
    check_trains(algo, family)


def test_every_setting_is_drawn():
    """A setting added to a config gets a range in its class's RANGES (or a strategy here), so it is drawn."""
    for algo in ALGORITHMS:
        undrawn = set(valid_setting_names(algo)) - set(CONFIG_CLASSES[algo].value_ranges()) - set(OWN_STRATEGIES)
        assert not undrawn, f"{algo}: settings with no range in value_ranges() and no strategy here: {undrawn}"


# -- invalid values ----------------------------------------------------------------------------------------------
NOT_NUMBERS = st.sampled_from(["0.5", "1", b"1", [1], (1,), {"a": 1}, object.__name__])


def invalid_values(allowed) -> st.SearchStrategy:
    """Values ``allowed`` rejects: beyond each end (the end itself where it is open), non-finite numbers,
    bools and strings where numbers belong, None where it is not allowed, ..."""
    options = [] if getattr(allowed, "allow_none", False) else [st.none()]
    if isinstance(allowed, Flag):
        options += [st.integers(-2, 2), st.floats(allow_nan=True), st.sampled_from(["yes", "True", "no", ""])]
    elif isinstance(allowed, Choice):
        options += [st.text(max_size=12).filter(lambda text: text not in allowed.values), st.integers(),
                    st.booleans(), st.sampled_from([value.upper() for value in allowed.values])]
    elif isinstance(allowed, IntRange):
        options += [st.integers(max_value=allowed.low - 1), st.booleans(), NOT_NUMBERS,
                    st.floats(allowed.low, allowed.high if allowed.high is not None else 1e9).filter(
                        lambda x: not x.is_integer()),  # 8.5 steps is not a number of steps (8.0 is 8: below)
                    st.sampled_from([math.nan, math.inf, -math.inf])]
        if allowed.high is not None:
            options.append(st.integers(min_value=allowed.high + 1))
    elif isinstance(allowed, FloatRange):
        options += [st.floats(max_value=allowed.low, exclude_max=not allowed.low_open, allow_infinity=False),
                    st.floats(min_value=allowed.high, exclude_min=not allowed.high_open, allow_infinity=False),
                    st.sampled_from([math.nan, math.inf, -math.inf]), st.booleans(), NOT_NUMBERS]
    return st.one_of(options)


def range_words(allowed) -> list[str]:
    """What an error message must show of ``allowed``."""
    if isinstance(allowed, Flag):
        words = ["True or False"]
    elif isinstance(allowed, Choice):
        words = [repr(value) for value in allowed.values]
    elif isinstance(allowed, IntRange):
        words = [f"[{allowed.low}, {allowed.high if allowed.high is not None else 'inf'}]"]
    else:
        words = [allowed.interval]
    return words + (["None"] if getattr(allowed, "allow_none", False) else [])


@st.composite
def bad_setting(draw, algo: str):
    name = draw(st.sampled_from(sorted(CONFIG_CLASSES[algo].value_ranges())), label="setting")
    allowed = CONFIG_CLASSES[algo].value_ranges()[name]
    return name, draw(invalid_values(allowed), label="value"), allowed


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_out_of_range_values_name_the_setting_and_its_range(algo):
    @INVALID
    @given(bad=bad_setting(algo))
    def fails_clearly(bad):
        name, value, allowed = bad
        assume(not (name in ("seed", "total_steps") and value is None))  # pg.train's "the default" for these
        with pytest.raises(ConfigError) as info:
            pg.train(algo, "CartPole-v1", **{"progress": False, "total_steps": 1, "device": "cpu", name: value})
        message = str(info.value)
        assert message.startswith(f"{name}={value!r} is invalid: expected "), message
        for words in range_words(allowed):
            assert words in message, f"{words!r} not in {message!r}"

    fails_clearly()


@PROPERTY
@given(widths=st.one_of(
    st.just(()), st.lists(st.integers(max_value=0), min_size=1, max_size=3),
    st.lists(st.integers(min_value=BaseConfig.HIDDEN_WIDTH.high + 1), min_size=1, max_size=2),
    st.lists(st.floats(1, 64), min_size=1, max_size=2), st.integers(1, 64), st.just("64,64")))
def test_bad_hidden_sizes_name_the_widths_range(widths):
    with pytest.raises(ConfigError) as info:
        make_config("ppo", "CartPole-v1", "discrete", hidden_sizes=widths)
    message = str(info.value)
    assert message.startswith("hidden_sizes="), message
    width = BaseConfig.HIDDEN_WIDTH
    assert f"[{width.low}, {width.high}]" in message and "non-empty tuple" in message


@settings(max_examples=EXAMPLES or 20, deadline=None, derandomize=not EXAMPLES, database=None)
@given(algo=st.sampled_from(("ppo", "trpo")), num_envs=st.integers(1, 8), n_steps=st.integers(1, 8),
       extra=st.integers(1, 1000))
def test_minibatch_larger_than_the_batch_names_the_batch(algo, num_envs, n_steps, extra):
    batch = num_envs * n_steps
    with pytest.raises(ConfigError) as info:
        make_config(algo, "CartPole-v1", "discrete", num_envs=num_envs, n_steps=n_steps,
                    minibatch_size=batch + extra)
    message = str(info.value)
    assert message.startswith(f"minibatch_size={batch + extra} is invalid"), message
    assert f"num_envs * n_steps = {num_envs} * {n_steps} = {batch}" in message


@settings(max_examples=EXAMPLES or 20, deadline=None, derandomize=not EXAMPLES, database=None)
@given(data=st.data())
def test_log_std_min_above_log_std_init_names_the_bound(data):
    log_std = CONFIG_CLASSES["ppo"].value_ranges()["log_std_init"]
    init = data.draw(st.floats(log_std.low, log_std.high), label="log_std_init")
    bound = CONFIG_CLASSES["ppo"].value_ranges()["log_std_min"]
    assume(init < bound.high)
    low = data.draw(st.floats(init, bound.high, exclude_min=True), label="log_std_min")
    with pytest.raises(ConfigError) as info:
        make_config("ppo", "Pendulum-v1", "continuous", log_std_init=init, log_std_min=low)
    assert str(info.value).startswith(f"log_std_min={low!r} is invalid: expected at most log_std_init={init}")


# -- regressions: what the properties found ----------------------------------------------------------------------
ONE_STEP = dict(seed=0, device="cpu", progress=False, num_envs=1, n_steps=1)


@pytest.mark.parametrize("algo, extra", [("ppo", dict(minibatch_size=1)), ("a2c", {}),
                                         ("trpo", dict(minibatch_size=1, normalize_advantages=False))])
def test_rollout_of_autoreset_steps_only_is_collected_again(algo, extra):
    """n_steps=1 on a one-step episode: every second rollout held only the autoreset step, an empty batch.
    PPO raised "batch_size and minibatch_size must be >= 1, got 0 and 1", A2C stopped on NaN losses (or raised
    NonFiniteError with on_nonfinite="raise"), TRPO raised "s^T F s = 0 must be > 0" (on an empty batch)."""
    run = train_quietly(algo, "pgcourse.probes:ProbeConstant-v0",
                        dict(ONE_STEP, total_steps=3, on_nonfinite="raise", **extra))
    assert run.history.status == "completed"
    assert list(run.history.updates["env_step"]) == [1, 2, 3]


def test_ppo_one_step_rollouts_on_cartpole_run_past_the_first_episode():
    """The same on CartPole: with one env and n_steps=1, the rollout after the first episode's end was empty."""
    run = train_quietly("ppo", "CartPole-v1", dict(ONE_STEP, total_steps=60, minibatch_size=1))
    assert run.history.status == "completed" and len(run.history.episodes) >= 1
    assert run.history.updates["env_step"][-1] == 60


def test_numpy_scalars_are_valid_settings():
    """np.int64(4) from np.arange was rejected as "expected an integer in [1, 4096]" (and np.float32 as not a
    number); numpy scalars are now the Python numbers they hold, so the config also saves as JSON."""
    config = make_config("ppo", "CartPole-v1", "discrete", num_envs=np.int64(4), n_steps=np.arange(8, 9)[0],
                         lr=np.float32(1e-3), gamma=np.float64(0.9), anneal_lr=np.True_, minibatch_size=np.int32(8),
                         hidden_sizes=list(np.array([8, 8])))
    assert (config.num_envs, config.n_steps, config.minibatch_size, config.hidden_sizes) == (4, 8, 8, (8, 8))
    assert type(config.num_envs) is int and type(config.lr) is float and config.anneal_lr is True
    assert type(config.hidden_sizes[0]) is int
    json.dumps(config.to_dict())


def test_adam_eps_that_is_zero_in_float32_is_rejected():
    """adam_eps=5e-324 was in the old range (0, 1] but is 0 in float32, so a zero gradient (a2c on one transition:
    its normalised advantage is 0) made Adam's step 0/0: pg.train('a2c', 'pgcourse.probes:ProbeConstant-v0',
    num_envs=1, n_steps=1, total_steps=1, adam_eps=5e-324) stopped, "a parameter became non-finite at update 1"."""
    message = str(pytest.raises(ConfigError, make_config, "a2c", "CartPole-v1", "discrete", adam_eps=5e-324).value)
    assert message.startswith("adam_eps=5e-324 is invalid") and "[1e-30, 1.0]" in message
    run = train_quietly("a2c", "pgcourse.probes:ProbeConstant-v0",
                        dict(ONE_STEP, total_steps=1, adam_eps=1e-30, on_nonfinite="raise"))  # the range's low end
    assert run.history.status == "completed"


def test_hidden_sizes_message_names_the_widths_range():
    """The message said "a non-empty tuple of positive layer widths" for a width of 100000: not the upper bound."""
    message = str(pytest.raises(ConfigError, make_config, "ppo", "CartPole-v1", "discrete",
                                hidden_sizes=(100_000,)).value)
    assert "[1, 65536]" in message


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_an_integral_float_is_an_integer_setting_and_an_int_is_a_float_setting(algo):
    """``total_steps=1e5`` (how people write 100,000) and ``--steps 1e5`` train 100,000 steps; ``clip_eps=1`` is
    stored as 1.0, so a setting has one spelling (a sweep names its trials by it). Both were refused / kept."""
    ranges = CONFIG_CLASSES[algo].value_ranges()
    ints = [name for name, allowed in ranges.items() if isinstance(allowed, IntRange) and not allowed.allow_none]
    defaults = make_config(algo, "CartPole-v1", "discrete")
    config = make_config(algo, "CartPole-v1", "discrete", **{name: float(getattr(defaults, name)) for name in ints})
    for name in ints:
        assert getattr(config, name) == getattr(defaults, name) and type(getattr(config, name)) is int, name
    floats = {name: getattr(defaults, name) for name, allowed in ranges.items()
              if isinstance(allowed, FloatRange) and isinstance(getattr(defaults, name), float)
              and getattr(defaults, name).is_integer()}
    config = make_config(algo, "CartPole-v1", "discrete", **{name: int(value) for name, value in floats.items()})
    for name, value in floats.items():
        assert getattr(config, name) == value and type(getattr(config, name)) is float, name
