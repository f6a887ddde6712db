r"""The physics of gymnasium's CartPole-v1, Acrobot-v1 and Pendulum-v1 as pure functions of torch tensors.

Each environment is three functions of a batch of states ``[N, state_dim]``:

- ``<env>_step(state, action) -> (next_state, reward, terminated)``: one transition, no time limit;
- ``<env>_observe(state) -> obs``: what the agent sees (float32, as gymnasium's observation space);
- the start-state range (``*_START_LOW`` / ``*_START_HIGH``), drawn uniformly by the environment.

The arithmetic is gymnasium 1.x's (gymnasium/envs/classic_control/), operation for operation and in the
same order, so that in float64 every state is *bit for bit* the state gymnasium computes. Four details
make that so, and each is a place where "mathematically equal" code gives other bits:

- **the same evaluation order**: ``a * b * c`` is ``(a * b) * c``; constants such as
  ``(m1 * lc1 + m2 * l1) * g`` are folded in Python exactly as gymnasium's expression folds them;
- **the same trig**: torch's CPU ``sin``/``cos`` (SLEEF, 1 ulp) differ from numpy's (the C library's,
  which gymnasium calls) in the last bit for about 0.03-0.3 % of float64 arguments (measured here), and
  Acrobot's chaotic dynamics turn one bit into a different trajectory. :func:`sin` and :func:`cos` below
  use numpy's on a float64 CPU tensor (zero-copy, no device involved) and torch's everywhere else;
- **the same squares**: gymnasium's ``x**2`` on a numpy float64 scalar is the C library's ``pow``, which is
  not always the correctly rounded ``x * x`` (:func:`pow2`);
- **Pendulum's float32 action**: gymnasium's action space is float32, so ``u ** 2`` and ``3 * u`` are
  float32 products before they meet the float64 state; :func:`pendulum_step` rounds the same way. The one
  difference left: numpy's float32 ``u**2`` is the C library's ``powf``, here ``u * u``; they differ in the last
  bit for ~0.1 % of torques, so a Pendulum reward may differ from gymnasium's by one float32 ulp of
  :math:`0.001 u^2` (at most 4.7e-10). The states do not use it and are equal.

All functions are free of host synchronisation: no ``.item()``, no Python branch on a tensor's values,
only shape-preserving ``torch.where``/``clamp``, so a batch on a GPU is stepped without waiting for it.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def _libm_exact(x: Tensor) -> bool:
    """True where numpy (gymnasium's trig) can compute on ``x`` in place: a float64 tensor in CPU memory."""
    return x.device.type == "cpu" and x.dtype == torch.float64


def sin(x: Tensor) -> Tensor:
    """``sin(x)``, bit for bit numpy's (so gymnasium's) for float64 on CPU; ``torch.sin`` elsewhere."""
    return torch.from_numpy(np.sin(x.numpy())) if _libm_exact(x) else torch.sin(x)


def cos(x: Tensor) -> Tensor:
    """``cos(x)``, bit for bit numpy's (so gymnasium's) for float64 on CPU; ``torch.cos`` elsewhere."""
    return torch.from_numpy(np.cos(x.numpy())) if _libm_exact(x) else torch.cos(x)


_LIBM_POW = np.frompyfunc(math.pow, 2, 1)


def pow2(x: Tensor) -> Tensor:
    """``x ** 2`` as gymnasium's ``x**2`` on a numpy float64 scalar computes it: the C library's ``pow(x, 2)``
    for float64 on CPU, ``x * x`` elsewhere. They differ: ``x * x`` is correctly rounded, ``pow`` is not
    always (about 0.1 % of arguments, in the last bit). One element at a time (``math.pow``, as numpy's
    scalar power calls it), so it is the slow part of Acrobot on CPU: about 1 ms per 4,096 elements."""
    if _libm_exact(x):
        return torch.from_numpy(_LIBM_POW(x.numpy(), 2.0).astype(np.float64))
    return x * x


# ---------------------------------------------------------------------------------------------------------
# CartPole-v1: state (x, x_dot, theta, theta_dot), actions {0: push left, 1: push right}
# ---------------------------------------------------------------------------------------------------------
CARTPOLE_GRAVITY = 9.8
CARTPOLE_MASS_CART = 1.0
CARTPOLE_MASS_POLE = 0.1
CARTPOLE_TOTAL_MASS = CARTPOLE_MASS_POLE + CARTPOLE_MASS_CART
CARTPOLE_HALF_LENGTH = 0.5  # gymnasium's `length` is half the pole's length
CARTPOLE_POLEMASS_LENGTH = CARTPOLE_MASS_POLE * CARTPOLE_HALF_LENGTH
CARTPOLE_FORCE = 10.0
CARTPOLE_TAU = 0.02  # seconds per step
CARTPOLE_THETA_LIMIT = 12 * 2 * math.pi / 360  # 12 degrees, in radians
CARTPOLE_X_LIMIT = 2.4
CARTPOLE_START_LOW, CARTPOLE_START_HIGH = (-0.05,) * 4, (0.05,) * 4


def cartpole_accelerations(theta: Tensor, theta_dot: Tensor, force: Tensor) -> tuple[Tensor, Tensor]:
    r"""The cart's and the pole's accelerations (Florian, "Correct equations for the dynamics of the cart-pole").

    .. math:: \text{temp} = \frac{F + m_p l\,\dot\theta^2 \sin\theta}{m_c + m_p}, \quad
              \ddot\theta = \frac{g \sin\theta - \cos\theta\;\text{temp}}
                                 {l\,(4/3 - m_p \cos^2\theta / (m_c + m_p))}, \quad
              \ddot x = \text{temp} - \frac{m_p l\,\ddot\theta \cos\theta}{m_c + m_p}

    with :math:`l` half the pole's length. All tensors ``[N]``; returns ``(x_acc, theta_acc)``.
    """
    costheta, sintheta = cos(theta), sin(theta)  # [N]
    if not _libm_exact(theta):  # float32 on a device: the same equations in fused multiply-adds (10 kernels, not 18)
        temp = torch.addcmul(force, theta_dot.square(), sintheta, value=CARTPOLE_POLEMASS_LENGTH) / CARTPOLE_TOTAL_MASS
        theta_acc = torch.addcmul(CARTPOLE_GRAVITY * sintheta, costheta, temp, value=-1.0) / costheta.square().mul(
            -CARTPOLE_HALF_LENGTH * CARTPOLE_MASS_POLE / CARTPOLE_TOTAL_MASS).add(CARTPOLE_HALF_LENGTH * 4.0 / 3.0)
        return torch.addcmul(temp, theta_acc, costheta, value=-CARTPOLE_POLEMASS_LENGTH / CARTPOLE_TOTAL_MASS), theta_acc
    # float64 on the CPU: gymnasium's operations one by one, in its order (bit for bit; a fused kernel rounds once)
    temp = (force + CARTPOLE_POLEMASS_LENGTH * theta_dot.square() * sintheta) / CARTPOLE_TOTAL_MASS  # [N]
    theta_acc = (CARTPOLE_GRAVITY * sintheta - costheta * temp) / (
        CARTPOLE_HALF_LENGTH * (4.0 / 3.0 - CARTPOLE_MASS_POLE * costheta.square() / CARTPOLE_TOTAL_MASS))  # [N]
    x_acc = temp - CARTPOLE_POLEMASS_LENGTH * theta_acc * costheta / CARTPOLE_TOTAL_MASS  # [N]
    return x_acc, theta_acc


def cartpole_step(state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""One CartPole step: explicit Euler with :math:`\tau = 0.02` s, reward +1 every step (the last one too),
    terminated when :math:`|x| > 2.4` or :math:`|\theta| > 12°`.

    .. math:: x' = x + \tau \dot x, \quad \dot x' = \dot x + \tau \ddot x, \quad
              \theta' = \theta + \tau \dot\theta, \quad \dot\theta' = \dot\theta + \tau \ddot\theta

    Args:
        state: ``[N, 4]`` (x, x_dot, theta, theta_dot).
        action: ``[N]`` integers, 0 pushes left with 10 N, 1 pushes right.

    Returns:
        ``(next_state [N, 4], reward [N], terminated [N] bool)``, reward in ``state``'s dtype.
    """
    x_dot, theta, theta_dot = state[:, 1], state[:, 2], state[:, 3]  # [N] each (views)
    force = _table((-CARTPOLE_FORCE, CARTPOLE_FORCE), state)[action]  # [N]
    x_acc, theta_acc = cartpole_accelerations(theta, theta_dot, force)  # [N], [N]
    # the four Euler steps as one product and one sum (elementwise: the same numbers as four of each)
    next_state = state + CARTPOLE_TAU * torch.stack((x_dot, x_acc, theta_dot, theta_acc), dim=-1)  # [N, 4]
    # |x| > 2.4 or |theta| > 12 degrees: gymnasium's four comparisons, as two on the absolute values
    terminated = (next_state[:, 0::2].abs() > _table((CARTPOLE_X_LIMIT, CARTPOLE_THETA_LIMIT), state)).any(-1)  # [N]
    return next_state, _table((1.0,), state).expand(state.shape[0]), terminated  # reward 1: a view, no kernel


_TABLES: dict[tuple, Tensor] = {}


def _table(values: tuple[float, ...], like: Tensor) -> Tensor:
    """``values`` as a tensor in ``like``'s dtype and on its device, made once per (values, dtype, device): a
    constant of the physics that a step reads without making it again (one kernel less per step)."""
    key = (values, like.dtype, like.device, type(like))
    if key not in _TABLES:
        _TABLES[key] = torch.tensor(values, dtype=like.dtype, device=like.device)
    return _TABLES[key]


def cartpole_observe(state: Tensor) -> Tensor:
    """``[N, 4]`` float32: the state itself, as gymnasium returns it (a copy, also when the state is float32)."""
    return state.to(torch.float32, copy=True)


# ---------------------------------------------------------------------------------------------------------
# Acrobot-v1: state (theta1, theta2, dtheta1, dtheta2), actions {0, 1, 2}: torque -1, 0, +1 on the joint
# ---------------------------------------------------------------------------------------------------------
ACROBOT_DT = 0.2
ACROBOT_LINK_LENGTH_1 = 1.0
ACROBOT_LINK_MASS_1 = ACROBOT_LINK_MASS_2 = 1.0
ACROBOT_LINK_COM_1 = ACROBOT_LINK_COM_2 = 0.5  # position of each link's centre of mass
ACROBOT_LINK_MOI = 1.0  # moment of inertia of each link
ACROBOT_GRAVITY = 9.8
ACROBOT_MAX_VEL_1, ACROBOT_MAX_VEL_2 = 4 * math.pi, 9 * math.pi
ACROBOT_TORQUES = (-1.0, 0.0, 1.0)
ACROBOT_START_LOW, ACROBOT_START_HIGH = (-0.1,) * 4, (0.1,) * 4
ACROBOT_WRAP_ITERATIONS = 2  # see acrobot_wrap_angle


def acrobot_derivatives(s: Tensor, torque: Tensor) -> Tensor:
    r"""The time derivative of the Acrobot's state, the equations of Sutton & Barto's book (gymnasium's
    ``book_or_nips = "book"``).

    .. math:: d_1 = m_1 l_{c1}^2 + m_2 (l_1^2 + l_{c2}^2 + 2 l_1 l_{c2} \cos\theta_2) + I_1 + I_2, \qquad
              d_2 = m_2 (l_{c2}^2 + l_1 l_{c2} \cos\theta_2) + I_2

    .. math:: \phi_2 = m_2 l_{c2} g \cos(\theta_1 + \theta_2 - \pi/2), \qquad
              \phi_1 = -m_2 l_1 l_{c2} \dot\theta_2^2 \sin\theta_2
                       - 2 m_2 l_1 l_{c2} \dot\theta_2 \dot\theta_1 \sin\theta_2
                       + (m_1 l_{c1} + m_2 l_1) g \cos(\theta_1 - \pi/2) + \phi_2

    .. math:: \ddot\theta_2 = \frac{a + \frac{d_2}{d_1}\phi_1 - m_2 l_1 l_{c2} \dot\theta_1^2 \sin\theta_2 - \phi_2}
                                   {m_2 l_{c2}^2 + I_2 - d_2^2 / d_1}, \qquad
              \ddot\theta_1 = -\frac{d_2 \ddot\theta_2 + \phi_1}{d_1}

    Args:
        s: ``[N, 4]`` (theta1, theta2, dtheta1, dtheta2).
        torque: ``[N]`` the torque ``a`` on the joint between the links.

    Returns:
        ``[N, 4]`` (dtheta1, dtheta2, ddtheta1, ddtheta2).
    """
    m1, m2, l1 = ACROBOT_LINK_MASS_1, ACROBOT_LINK_MASS_2, ACROBOT_LINK_LENGTH_1
    lc1, lc2, i1, i2, g = ACROBOT_LINK_COM_1, ACROBOT_LINK_COM_2, ACROBOT_LINK_MOI, ACROBOT_LINK_MOI, ACROBOT_GRAVITY
    theta1, theta2, dtheta1, dtheta2 = s.unbind(-1)  # each [N]
    sin_theta2, cos_theta2 = sin(theta2), cos(theta2)  # [N], [N]
    # Each line keeps gymnasium's association: (a * b * c) * tensor folds a * b * c first, as Python does there.
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos_theta2) + i1 + i2  # [N]
    d2 = m2 * (lc2**2 + l1 * lc2 * cos_theta2) + i2  # [N]
    phi2 = m2 * lc2 * g * cos(theta1 + theta2 - math.pi / 2.0)  # [N]
    phi1 = (-m2 * l1 * lc2 * pow2(dtheta2) * sin_theta2
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin_theta2
            + (m1 * lc1 + m2 * l1) * g * cos(theta1 - math.pi / 2)
            + phi2)  # [N]
    ddtheta2 = ((torque + d2 / d1 * phi1 - m2 * l1 * lc2 * pow2(dtheta1) * sin_theta2 - phi2)
                / (m2 * lc2**2 + i2 - pow2(d2) / d1))  # [N]
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1  # [N]
    return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), dim=-1)


def rk4_step(derivatives, y: Tensor, dt: float) -> Tensor:
    r"""One classical Runge-Kutta step of :math:`\dot y = f(y)` (gymnasium's ``rk4`` over ``t = [0, dt]``).

    .. math:: k_1 = f(y),\ k_2 = f(y + \tfrac{dt}{2} k_1),\ k_3 = f(y + \tfrac{dt}{2} k_2),\ k_4 = f(y + dt\, k_3),
              \qquad y' = y + \tfrac{dt}{6} (k_1 + 2 k_2 + 2 k_3 + k_4)

    Args:
        derivatives: ``f``, from ``[N, D]`` to ``[N, D]``.
        y: ``[N, D]``.
        dt: the step; gymnasium computes it as ``t[1] - t[0]``, the same float for ``t[0] = 0``.
    """
    half = dt / 2.0
    k1 = derivatives(y)
    k2 = derivatives(y + half * k1)
    k3 = derivatives(y + half * k2)
    k4 = derivatives(y + dt * k3)
    return y + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)  # [N, D]


def acrobot_wrap_angle(x: Tensor) -> Tensor:
    r"""Wrap angles into :math:`[-\pi, \pi]` by whole turns, as gymnasium's ``wrap``: it subtracts (or adds)
    :math:`2\pi` *one turn at a time* while outside, and each subtraction rounds, so ``torch.remainder``
    would give other bits. A value above :math:`\pi` only ever goes down (one below :math:`-\pi` only up),
    so one loop does both directions.

    The loop has a fixed number of turns, ``ACROBOT_WRAP_ITERATIONS``, to keep shapes and read nothing on the
    host. Measured (torch float64, seed 0): in the states episodes visit (256 envs x 4,000 steps with random,
    swinging-up and damping policies) a step needed at most 2 turns; over the whole box of states, where RK4's
    stages overshoot near the velocity bounds 4π and 9π, up to 5. An angle still outside after the loop is
    wrapped with ``torch.remainder``; after one turn that gave gymnasium's bits too, in 400,000 angles of up
    to 5 turns (tests/test_tensor_envs.py checks 40,000), but only the loop is equal by construction.

    Args:
        x: angles, any shape (Acrobot's step wraps ``[N, 2]``).
    """
    turn = math.pi - -math.pi
    for _ in range(ACROBOT_WRAP_ITERATIONS):
        x = torch.where(x > math.pi, x - turn, torch.where(x < -math.pi, x + turn, x))
    outside = (x > math.pi) | (x < -math.pi)
    return torch.where(outside, torch.remainder(x + math.pi, turn) - math.pi, x)


def acrobot_step(state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""One Acrobot step: RK4 over :math:`dt = 0.2` s with the torque held, angles wrapped into
    :math:`[-\pi, \pi]`, velocities clipped to :math:`\pm 4\pi` and :math:`\pm 9\pi`; terminated when the
    free end is above the bar, :math:`-\cos\theta_1 - \cos(\theta_2 + \theta_1) > 1`; reward -1 on every
    step that does not terminate, 0 on the one that does.

    Args:
        state: ``[N, 4]`` (theta1, theta2, dtheta1, dtheta2).
        action: ``[N]`` integers in {0, 1, 2} (torque -1, 0, +1).

    Returns:
        ``(next_state [N, 4], reward [N], terminated [N] bool)``.
    """
    torque = (action - 1).to(state.dtype)  # [N]: ACROBOT_TORQUES[action], without a table to copy to the device
    s = rk4_step(lambda y: acrobot_derivatives(y, torque), state, ACROBOT_DT)  # [N, 4]
    next_state = torch.cat((acrobot_wrap_angle(s[:, :2]),
                            s[:, 2:3].clamp(-ACROBOT_MAX_VEL_1, ACROBOT_MAX_VEL_1),
                            s[:, 3:4].clamp(-ACROBOT_MAX_VEL_2, ACROBOT_MAX_VEL_2)), dim=-1)  # [N, 4]
    theta1, theta2 = next_state[:, 0], next_state[:, 1]  # [N]
    terminated = -cos(theta1) - cos(theta2 + theta1) > 1.0  # [N]
    reward = torch.where(terminated, 0.0, -1.0).to(state.dtype)  # [N]
    return next_state, reward, terminated


def acrobot_observe(state: Tensor) -> Tensor:
    """``[N, 6]`` float32: (cos theta1, sin theta1, cos theta2, sin theta2, dtheta1, dtheta2)."""
    theta1, theta2, dtheta1, dtheta2 = state.unbind(-1)  # each [N]
    return torch.stack((cos(theta1), sin(theta1), cos(theta2), sin(theta2), dtheta1, dtheta2), dim=-1).to(torch.float32)


# ---------------------------------------------------------------------------------------------------------
# Pendulum-v1: state (theta, theta_dot), a continuous torque in [-2, 2]
# ---------------------------------------------------------------------------------------------------------
PENDULUM_GRAVITY = 10.0
PENDULUM_MASS = 1.0
PENDULUM_LENGTH = 1.0
PENDULUM_DT = 0.05
PENDULUM_MAX_SPEED = 8.0
PENDULUM_MAX_TORQUE = 2.0
PENDULUM_START_LOW, PENDULUM_START_HIGH = (-math.pi, -1.0), (math.pi, 1.0)


def angle_normalize(x: Tensor) -> Tensor:
    r"""The angle in :math:`[-\pi, \pi)`: :math:`((x + \pi) \bmod 2\pi) - \pi` (floor modulo, as numpy's)."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def pendulum_step(state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""One Pendulum step (semi-implicit Euler, :math:`dt = 0.05` s) and its reward, never terminated.

    .. math:: u = \operatorname{clip}(a, -2, 2), \qquad
              r = -\bigl(\operatorname{norm}(\theta)^2 + 0.1\,\dot\theta^2 + 0.001\,u^2\bigr)

    .. math:: \dot\theta' = \operatorname{clip}\Bigl(\dot\theta + \bigl(\tfrac{3g}{2l}\sin\theta
              + \tfrac{3}{m l^2} u\bigr) dt,\ -8,\ 8\Bigr), \qquad \theta' = \theta + \dot\theta'\, dt

    The reward is the cost of the state the action was taken in. ``u`` is float32 (the action space's
    dtype), so :math:`0.001 u^2` and :math:`3u / (m l^2)` are float32 products, as in gymnasium (whose float32
    ``u**2`` is ``powf``: the reward may differ by one float32 ulp of :math:`0.001 u^2`, see the module).

    Args:
        state: ``[N, 2]`` (theta, theta_dot).
        action: ``[N, 1]`` torques (any float dtype; used as float32).

    Returns:
        ``(next_state [N, 2], reward [N], terminated [N] bool, all False)``.
    """
    g, m, l, dt = PENDULUM_GRAVITY, PENDULUM_MASS, PENDULUM_LENGTH, PENDULUM_DT
    theta, theta_dot = state.unbind(-1)  # each [N]
    u = action[:, 0].to(torch.float32).clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)  # [N] float32
    costs = pow2(angle_normalize(theta)) + 0.1 * pow2(theta_dot) + (0.001 * u.square()).to(state.dtype)  # [N]
    new_theta_dot = theta_dot + (3 * g / (2 * l) * sin(theta) + (3.0 / (m * l**2) * u).to(state.dtype)) * dt  # [N]
    new_theta_dot = new_theta_dot.clamp(-PENDULUM_MAX_SPEED, PENDULUM_MAX_SPEED)  # [N]
    next_state = torch.stack((theta + new_theta_dot * dt, new_theta_dot), dim=-1)  # [N, 2]
    return next_state, -costs, torch.zeros_like(theta, dtype=torch.bool)


def pendulum_observe(state: Tensor) -> Tensor:
    """``[N, 3]`` float32: (cos theta, sin theta, theta_dot)."""
    theta, theta_dot = state.unbind(-1)  # each [N]
    return torch.stack((cos(theta), sin(theta), theta_dot), dim=-1).to(torch.float32)
