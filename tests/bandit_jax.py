"""The one-step continuous bandits of `bandit.py`, trained with the JAX script's own jitted QSM update."""

import jax
import numpy as np
import optax

import qsm_continuous_action_jax as qsm


def one_peak(a):
    """Concave, one maximum at a = 0.4."""
    return -((a - 0.4) ** 2).sum(-1, keepdims=True)


def two_peaks(a):
    """Two equal maxima, at a = -0.5 and a = +0.5: the one-peak parabola mirrored, smoothed at a = 0."""
    return -((np.sqrt(a**2 + 0.01) - 0.5) ** 2).sum(-1, keepdims=True)


def shifted_peak(a):
    """`one_peak` + 1: reward 1 at the maximum, so that a bootstrapped value differs from the reward."""
    return 1.0 + one_peak(a)


def train_bandit(
    reward_fn,
    m_q,
    steps=1000,
    warmup=1000,
    seed=0,
    hidden=64,
    n_samples=2000,
    chain=False,
    gamma=0.99,
    return_models=False,
    **variant,
):
    """`bandit.train_bandit` with the JAX script's update: the same bandit or two-state chain, the same returns."""
    args = qsm.Args(m_q=m_q, batch_size=128, gamma=gamma, tau=0.005, exploration_noise=0.1, temperature=1.0, **variant)
    obs_dim, act_dim = 1, 1
    eps_theta, critic = qsm.Denoiser(act_dim, hidden, 2), qsm.TwinQNetwork(hidden, 2, batch_norm=args.crossq)
    # the toy needs a fast actor: a 1-d action is one input of 130 to the first layer and bends it slowly
    actor_tx, critic_tx = optax.adam(1e-2), optax.adam(1e-3, b1=0.5 if args.crossq else 0.9)  # b1 as the script sets it
    schedule = qsm.ddpm_schedule(5)
    key, init_key, act_key, sample_key = jax.random.split(jax.random.key(seed), 4)
    state = qsm.init_qsm_state(init_key, eps_theta, critic, actor_tx, critic_tx, obs_dim, act_dim)
    qsm_update = qsm.make_qsm_update(eps_theta, critic, actor_tx, critic_tx, schedule, args)
    explore = qsm.make_policy(eps_theta, schedule, args.temperature, args.exploration_noise)
    rb = qsm.ReplayBuffer(warmup + steps, obs_dim, act_dim, seed=seed)
    obs = np.zeros((1, obs_dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for step in range(warmup + steps):
        terminated = not chain or obs[0, 0] == 1.0
        next_obs = obs if not chain else 1.0 - obs
        if step < warmup:
            a = rng.uniform(-1, 1, size=(1, act_dim)).astype(np.float32)
        else:
            a, act_key = explore(state.eps_params, obs, act_key)
            a = np.asarray(a)
        rb.add(obs, next_obs, a, reward_fn(a)[:, 0], np.array([terminated], dtype=np.float32))
        obs = np.zeros_like(obs) if terminated else next_obs
        if step >= warmup:
            state, _ = qsm_update(state, rb.sample(args.batch_size))
    sample_policy = qsm.make_policy(eps_theta, schedule)
    samples, _ = sample_policy(state.eps_params, np.zeros((n_samples, obs_dim), np.float32), sample_key)
    samples = np.asarray(samples)[:, 0]
    return (samples, (critic, state)) if return_models else samples


def q_value(models, obs, action):
    """The mean of the two online critics at one (obs, action)."""
    critic, state = models
    return float(critic.apply(state.critic_params, np.array([[obs]], np.float32), np.array([[action]], np.float32)).mean())
