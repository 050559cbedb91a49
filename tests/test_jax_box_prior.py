"""--box-prior in the JAX script: the same eps as the PyTorch script's (test_box_prior.py), the same diagnosis with the
JAX reverse chain, and the flat-reward bandit trained with the JAX update."""

import bandit_jax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from conftest import seeds

import qsm_continuous_action as qsm_torch
import qsm_continuous_action_jax as qsm

# inside the box, at its edges, and far outside it, where only the log-space computation stays finite
GRID = np.concatenate([np.linspace(-3, 3, 61), [-60.0, -20.0, -5.0, 5.0, 20.0, 60.0]])
ALPHA_BARS = [float(ab) for ab in qsm.ddpm_schedule(5)["alpha_bars"]]  # the T = 5 vp schedule


@pytest.mark.parametrize("alpha_bar", ALPHA_BARS, ids=lambda ab: f"alpha_bar={ab:.4f}")
def test_box_prior_eps_equals_the_pytorch_one(alpha_bar):
    expected = qsm_torch.box_prior_eps(torch.tensor(GRID), torch.tensor(alpha_bar, dtype=torch.float64)).numpy()
    assert np.isfinite(expected).all()
    with jax.enable_x64(True):  # the same formula: equal to ~1e-9 in float64 (log_ndtr tails differ in the last digits)
        ours = qsm.box_prior_eps(jnp.asarray(GRID), jnp.asarray(alpha_bar))
        assert ours.dtype == jnp.float64
        np.testing.assert_allclose(ours, expected, rtol=1e-7, atol=1e-12)
    # in float32 under jit, as the update computes it: finite everywhere, ~1e-4 off (|x| = 60 costs digits in exp)
    ours = jax.jit(qsm.box_prior_eps)(jnp.asarray(GRID, jnp.float32), jnp.float32(alpha_bar))
    assert ours.dtype == jnp.float32 and np.isfinite(ours).all()
    np.testing.assert_allclose(ours, expected, rtol=5e-4, atol=1e-5)


class Field:
    """A denoiser eps(a, t) that ignores the state and has no parameters."""

    act_dim = 1

    def __init__(self, fn):
        self.fn = fn

    def apply(self, params, obs, a, t):
        return self.fn(a, t)


def test_without_q_signal_the_chain_piles_at_the_bounds_unless_the_box_prior_holds_it():
    # as in test_box_prior.py: with eps = 0 the reverse chain's division by sqrt(alpha_t) throws samples out of the box
    schedule, obs = qsm.ddpm_schedule(5), jnp.zeros((20000, 3))

    def sample(fn):
        return np.asarray(qsm.ddpm_sample(Field(fn), None, obs, schedule, jax.random.key(0), 1.0))[:, 0]

    zero = sample(lambda a, t: jnp.zeros_like(a))
    assert np.mean(np.abs(zero) >= 0.999) > 0.5
    boxed = sample(lambda a, t: qsm.box_prior_eps(a, schedule["alpha_bars"][t][:, None]))
    assert np.mean(np.abs(boxed) >= 0.999) < 0.01
    hist = np.histogram(boxed, bins=8, range=(-0.8, 0.8))[0] / len(boxed)  # even over the box's inner 80%
    assert hist.min() > 0.09 and hist.max() < 0.16, hist


class ZeroCritics:
    def apply(self, params, obs, a):
        return jnp.zeros((2, a.shape[0], 1))


def test_actor_target_gets_the_box_prior_only_with_the_flag():
    # with grad_a Q = 0 the target is the box prior's eps at a_t: a denoiser that outputs exactly that has zero loss
    schedule = qsm.ddpm_schedule(5)
    prior = Field(lambda a, t: qsm.box_prior_eps(a, schedule["alpha_bars"][t][:, None]))
    obs, actions = jnp.zeros((256, 3)), jnp.linspace(-1, 1, 512).reshape(256, 2)

    def loss(box_prior):
        key = jax.random.key(0)
        return float(qsm.actor_loss(None, None, obs, actions, key, prior, ZeroCritics(), schedule, 1.0, None, box_prior)[0])

    assert loss(True) == pytest.approx(0.0, abs=1e-10)
    assert loss(False) > 0.1  # without the flag the target is 0, and the prior's eps is not


def test_update_with_the_box_prior_compiles_once():
    args = qsm.Args(batch_size=16, hidden_dim=16, box_prior=True)
    eps_theta, critic = qsm.Denoiser(2, 16), qsm.TwinQNetwork(16)
    actor_tx, critic_tx = optax.adam(1e-3), optax.adam(1e-3)
    state = qsm.init_qsm_state(jax.random.key(0), eps_theta, critic, actor_tx, critic_tx, obs_dim=3, act_dim=2)
    update = qsm.make_qsm_update(eps_theta, critic, actor_tx, critic_tx, qsm.ddpm_schedule(5), args)
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, actions, rewards = (rng.uniform(-1, 1, (16, dim)).astype(np.float32) for dim in (3, 2, 1))
        state, metrics = update(state, (obs, actions, rewards, obs, np.zeros((16, 1), np.float32)))
        assert np.isfinite(float(metrics["losses/actor_loss"]))
    assert update._cache_size() == 1


@pytest.mark.learning
@pytest.mark.parametrize("seed", seeds(0))
@pytest.mark.parametrize("box_prior", [False, True])
def test_flat_reward_bandit_saturates_only_without_the_box_prior(box_prior, check, seed):
    flat = lambda a: np.zeros((a.shape[0], 1), np.float32)  # noqa: E731
    samples = bandit_jax.train_bandit(flat, m_q=1.0, box_prior=box_prior, seed=seed)
    hist = np.histogram(samples, bins=10, range=(-1, 1))[0]
    at_bounds = np.mean(np.abs(samples) >= 0.999)
    # seeds 0-7 x the float paths of tests/numerics_matrix.sh (2026-12-02): 0.645-0.686 without the box prior, 0 with it;
    # with the box prior's term left out of the target (a broken flag), 0.68 with the flag on
    check("at bounds", at_bounds, below=0.05, context=hist) if box_prior else check("at bounds", at_bounds, above=0.3)
