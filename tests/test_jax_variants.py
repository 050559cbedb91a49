"""The beyond-the-paper flags of the JAX script: each changes what it claims, as in the PyTorch script
(test_variants.py, whose bandit tests also run with the JAX update), and the update still compiles once."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qsm_continuous_action_jax as qsm


def empty_rms():
    return qsm.RunningRMS(jnp.zeros(()), jnp.zeros(()), jnp.zeros(()))


def test_running_rms_follows_its_stream_and_floors_at_a_tenth_of_its_peak():
    first_key, key = jax.random.split(jax.random.key(0))
    first = jax.random.normal(first_key, (256, 3))
    rms = empty_rms().update(first)
    # bias-corrected: after one batch the estimate is that batch's RMS, not 1% of it
    assert float(rms.value()) == pytest.approx(float(jnp.sqrt(jnp.mean(first**2))), rel=1e-5)

    def run(rms, updates, size, offset):
        def batch(i, rms):
            return rms.update(jax.random.normal(jax.random.fold_in(key, offset + i), (256, 3)) * size)

        return jax.jit(lambda rms: jax.lax.fori_loop(0, updates, batch, rms))(rms)

    rms = run(rms, 500, 1.0, 0)
    # the rewards x100 mid-run (grad_a Q x100): within 200 updates the scale is within 10% of the new RMS. A scale
    # frozen at its first value stays at 1.
    rms = run(rms, 200, 100.0, 1000)
    assert float(rms.value()) == pytest.approx(100.0, rel=0.1)
    # Q turns flat in a (a solved task): the RMS falls to 0.01, the scale stops at a tenth of its peak, so the target
    # shrinks 10 000-fold instead of staying at full size; without the floor the scale would be 0.01.
    rms = run(rms, 2000, 0.01, 2000)
    assert float(rms.value()) == pytest.approx(0.1 * float(rms.peak), rel=1e-6)
    assert 90.0 < float(rms.peak) < 110.0
    # no division by zero before the first batch, nor for a critic exactly flat in a (a zero target, not 0 / 0)
    assert np.isfinite(float(empty_rms().value())) and float(empty_rms().value()) > 0
    assert np.isfinite(float(empty_rms().update(jnp.zeros((256, 3))).value()))


class ScaledLinearCritics:
    """Q1 = Q2 = s * c . a + b, as the twin critic's (2, B, 1) output: grad_a Q = s * c."""

    def __init__(self, c, s, b=0.0):
        self.c, self.s, self.b = c, s, b

    def apply(self, params, obs, a):
        return jnp.stack([self.s * a @ self.c[:, None] + self.b] * 2)


@pytest.mark.parametrize("q_shift", [0.0, 1000.0])
@pytest.mark.parametrize("q_scale", [0.01, 1.0, 100.0])
def test_normalized_target_scales_with_q_and_ignores_a_constant_added_to_it(q_scale, q_shift):
    # Rewards c * r + b give Q = c * Q_r + b / (1 - gamma). Here Q = s * c . a + b: grad_a Q = s * c, and the scale, its
    # RMS, is s * rms(c) whatever b is. The paper's target -M_q * s * c scales with s; the normalised one is
    # -M_q * c / rms(c) for every s and b, so a denoiser outputting that has zero loss on every such Q.
    c = jnp.array([0.5, -2.0])
    target = -3.0 * c / jnp.sqrt(jnp.mean(c**2))

    class Constant:
        act_dim = 2

        def apply(self, params, obs, a, t):
            return jnp.broadcast_to(target, a.shape)

    schedule, critics = qsm.ddpm_schedule(5), ScaledLinearCritics(c, q_scale, q_shift)
    obs, actions = jnp.ones((16, 4)), jnp.linspace(-1, 1, 32).reshape(16, 2)
    key = jax.random.key(0)
    loss, (q_grad, _, rms) = qsm.actor_loss(None, None, obs, actions, key, Constant(), critics, schedule, 3.0, empty_rms())
    assert float(loss) == pytest.approx(0.0, abs=1e-8)
    assert float(rms.value()) == pytest.approx(q_scale * float(jnp.sqrt(jnp.mean(c**2))), rel=1e-5)
    np.testing.assert_allclose(q_grad, jnp.broadcast_to(q_scale * c, (16, 2)), rtol=1e-5)
    assert float(rms.weight) == pytest.approx(0.01)  # the updated running RMS comes back, this batch included
    plain_loss, (_, _, no_rms) = qsm.actor_loss(None, None, obs, actions, key, Constant(), critics, schedule, 3.0)
    assert float(plain_loss) > 0.1  # without the flag the target moves with the scale
    assert no_rms is None


def test_update_carries_the_running_rms_in_its_state_and_compiles_once():
    args = qsm.Args(batch_size=16, hidden_dim=16, box_prior=True, normalize_q_grad=True)
    tag = "qsm/q_grad_rms"
    eps_theta, critic = qsm.Denoiser(2, 16), qsm.TwinQNetwork(16)
    actor_tx, critic_tx = optax.adam(1e-3), optax.adam(1e-3)
    state = qsm.init_qsm_state(jax.random.key(0), eps_theta, critic, actor_tx, critic_tx, obs_dim=3, act_dim=2)
    update = qsm.make_qsm_update(eps_theta, critic, actor_tx, critic_tx, qsm.ddpm_schedule(5), args)
    rng = np.random.default_rng(0)
    for step in range(1, 4):
        obs, actions, rewards = (rng.uniform(-1, 1, (16, dim)).astype(np.float32) for dim in (3, 2, 1))
        batch = (obs, actions, rewards, obs, np.zeros((16, 1), np.float32))
        state, metrics = update(state, batch)
        assert float(state.q_grad_rms.weight) == pytest.approx(1 - 0.99**step, rel=1e-5)
        assert float(metrics[tag]) == pytest.approx(float(state.q_grad_rms.value()))
        assert float(metrics[tag]) > 1e-6
        assert np.isfinite(float(metrics["losses/actor_loss"]))
    assert update._cache_size() == 1  # the running RMS is part of the jitted state: no retrace from step to step


def test_crossq_critics_see_both_batches_as_one_and_keep_no_targets():
    # --crossq: one update moves the input batch norm's running mean 1% of the way (momentum 0.99) to the mean of
    # [s; s'] (the first 3 inputs): (s, a) and (s', a') went through the critics as one batch. The targets stay as
    # they were, and the critics in evaluation mode (the actor's grad_a Q) take a batch of one.
    args = qsm.Args(batch_size=16, hidden_dim=16, crossq=True)
    eps_theta, critic = qsm.Denoiser(2, 16), qsm.TwinQNetwork(16, batch_norm=True)
    actor_tx, critic_tx = optax.adam(1e-3), optax.adam(1e-3, b1=0.5)
    state = qsm.init_qsm_state(jax.random.key(0), eps_theta, critic, actor_tx, critic_tx, obs_dim=3, act_dim=2)
    update = qsm.make_qsm_update(eps_theta, critic, actor_tx, critic_tx, qsm.ddpm_schedule(5), args)
    rng = np.random.default_rng(0)
    obs, actions, rewards = (rng.uniform(-1, 1, (16, dim)).astype(np.float32) for dim in (3, 2, 1))
    new, _ = update(state, (obs, actions, rewards, obs + 3.0, np.zeros((16, 1), np.float32)))
    running_mean = new.critic_params["batch_stats"]["VmapQNetwork_0"]["BatchNorm_0"]["mean"]  # (2 critics, 5 inputs)
    expected = 0.01 * np.concatenate([obs, obs + 3.0]).mean(0)
    np.testing.assert_allclose(running_mean[:, :3], np.stack([expected, expected]), rtol=1e-5)
    same = jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), new.critic_target_params, state.critic_target_params)
    assert all(jax.tree_util.tree_leaves(same))
    assert critic.apply(new.critic_params, obs[:1], actions[:1]).shape == (2, 1, 1)
