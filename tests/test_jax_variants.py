"""The beyond-the-paper flags of the JAX script: each changes what it claims, as in the PyTorch script
(test_variants.py, whose bandit tests also run with the JAX update), and the update still compiles once."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import qsm_continuous_action as qsm_torch
import qsm_continuous_action_jax as qsm


def empty_rms():
    return qsm.RunningRMS(jnp.zeros(()), jnp.zeros(()))


def test_running_rms_tracks_the_rms_of_its_stream():
    first_key, key = jax.random.split(jax.random.key(0))
    first = jax.random.normal(first_key, (256, 3)) * 5.0
    rms = empty_rms().update(first)
    # bias-corrected: after one batch the estimate is that batch's RMS, not 1% of it
    assert float(rms.value()) == pytest.approx(float(jnp.sqrt(jnp.mean(first**2))), rel=1e-5)
    small_batch = lambda i, rms: rms.update(jax.random.normal(jax.random.fold_in(key, i), (256, 3)) * 0.1)  # noqa: E731
    rms = jax.jit(lambda rms: jax.lax.fori_loop(0, 2000, small_batch, rms))(rms)
    assert float(rms.value()) == pytest.approx(0.1, rel=0.05)
    assert float(empty_rms().value()) == pytest.approx(1e-8)  # no division by zero before the first batch


class ScaledLinearCritics:
    """Q1 = Q2 = s * c . a, as the twin critic's (2, B, 1) output: grad_a Q = s * c."""

    def __init__(self, c, s):
        self.c, self.s = c, s

    def apply(self, params, obs, a):
        return jnp.stack([self.s * a @ self.c[:, None]] * 2)


@pytest.mark.parametrize("q_scale", [0.01, 1.0, 100.0])
def test_normalized_target_does_not_depend_on_the_q_scale(q_scale):
    # the paper's target -M_q * s * c scales with s; the normalised one is -M_q * c / rms(c) whatever s is, so a
    # denoiser outputting that has zero loss at every scale
    c = jnp.array([0.5, -2.0])
    target = -3.0 * c / jnp.sqrt(jnp.mean(c**2))

    class Constant:
        act_dim = 2

        def apply(self, params, obs, a, t):
            return jnp.broadcast_to(target, a.shape)

    schedule, critics = qsm.ddpm_schedule(5), ScaledLinearCritics(c, q_scale)
    obs, actions = jnp.ones((16, 4)), jnp.linspace(-1, 1, 32).reshape(16, 2)
    key = jax.random.key(0)
    loss, (q_grad, _, rms) = qsm.actor_loss(None, None, obs, actions, key, Constant(), critics, schedule, 3.0, empty_rms())
    assert float(loss) == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(q_grad, jnp.broadcast_to(q_scale * c, (16, 2)), rtol=1e-5)
    assert float(rms.weight) == pytest.approx(0.01)  # the updated running RMS comes back, this batch included
    plain_loss, (_, _, no_rms) = qsm.actor_loss(None, None, obs, actions, key, Constant(), critics, schedule, 3.0)
    assert float(plain_loss) > 0.1  # without the flag the target moves with the scale
    assert no_rms is None


class Outward:
    """Pushes every sample away from 0 and records, through a callback that also fires under jit, what it is fed."""

    act_dim = 2

    def __init__(self):
        self.inputs = []  # (step index i, noisy actions)

    def apply(self, params, obs, a, t):
        jax.debug.callback(lambda a, t: self.inputs.append((int(t[0]), np.asarray(a))), a, t)
        return -5.0 * jnp.sign(a)


def sample_directly(eps_theta, clip_final_only):
    return qsm.ddpm_sample(eps_theta, None, jnp.zeros((512, 3)), qsm.ddpm_schedule(5), jax.random.key(0), 1.0, clip_final_only)


def sample_with_the_policy(eps_theta, clip_final_only):  # the jitted acting function, with exploration noise
    policy = qsm.make_policy(eps_theta, qsm.ddpm_schedule(5), 1.0, 0.1, clip_final_only)
    return policy(None, jnp.zeros((512, 3)), jax.random.key(0))[0]


class ZeroCritics:
    def apply(self, params, obs, a):
        return jnp.zeros((2, a.shape[0], 1))


def sample_in_the_critic_target(eps_theta, clip_final_only):  # the next action of the TD target
    batch = (jnp.zeros((512, 3)), jnp.zeros((512, 2)), jnp.zeros((512, 1)), jnp.zeros((512, 3)), jnp.zeros((512, 1)))
    args, schedule = qsm.Args(clip_final_only=clip_final_only), qsm.ddpm_schedule(5)
    _, (_, _, sampled_actions) = jax.jit(
        lambda key: qsm.critic_loss(None, None, None, batch, key, eps_theta, ZeroCritics(), schedule, args)
    )(jax.random.key(0))
    return sampled_actions


@pytest.mark.parametrize("sample", [sample_directly, sample_with_the_policy, sample_in_the_critic_target])
def test_clip_final_only_leaves_the_intermediate_steps_unclipped(sample):
    for clip_final_only in [False, True]:
        eps_theta = Outward()
        actions = jax.block_until_ready(sample(eps_theta, clip_final_only))
        jax.effects_barrier()  # every callback has run
        assert jnp.abs(actions).max() <= 1.0  # the action sent to the env is always in bounds
        steps = sorted(i for i, _ in eps_theta.inputs)
        assert steps == [0, 1, 2, 3, 4], steps
        seen = max(np.abs(a).max() for i, a in eps_theta.inputs if i < 4)  # inputs after the first step (i = T - 1)
        if clip_final_only:
            assert seen > 2.0
        else:
            assert seen <= 1.0


def test_critic_layer_norm_bounds_the_hidden_features():
    plain, normed = qsm.TwinQNetwork(32, 2), qsm.TwinQNetwork(32, 2, layer_norm=True)
    obs, a = jax.random.normal(jax.random.key(0), (64, 3)), jax.random.uniform(jax.random.key(1), (64, 2), minval=-1)
    plain_params, normed_params = (jax.jit(q.init)(jax.random.key(2), obs, a) for q in (plain, normed))
    normed_layers = normed_params["params"]["VmapQNetwork_0"]
    assert sorted(k for k in normed_layers if k.startswith("LayerNorm")) == ["LayerNorm_0", "LayerNorm_1"]
    assert not any(k.startswith("LayerNorm") for k in plain_params["params"]["VmapQNetwork_0"])
    assert normed_layers["LayerNorm_0"]["scale"].shape == (2, 32)  # one layer norm per critic, not shared

    # scaling the input by 1000 scales a ReLU net's output by about 1000; layer norm keeps its hidden features at unit
    # scale, so the output stays bounded by the last layer's weights
    def growth(q, params):
        small, big = jnp.split(
            jax.jit(q.apply)(params, jnp.concatenate([obs, 1000 * obs]), jnp.concatenate([a, a])), 2, axis=1
        )
        return float(jnp.abs(big).max() / jnp.abs(small).max())

    assert growth(plain, plain_params) > 100
    assert growth(normed, normed_params) < 10


def test_critic_layer_norm_matches_the_pytorch_critics():
    # same place (after each hidden Linear, before the ReLU), same epsilon; random affine parameters so that a
    # swapped scale and bias would show
    torch.manual_seed(0)
    q_torch = [qsm_torch.QNetwork(obs_dim=5, act_dim=3, hidden_dim=32, layer_norm=True) for _ in range(2)]
    with torch.no_grad():
        for q in q_torch:
            for m in q.modules():
                if isinstance(m, torch.nn.LayerNorm):
                    m.weight.normal_()
                    m.bias.normal_()
    critic = qsm.TwinQNetwork(hidden_dim=32, layer_norm=True)
    ours = jax.eval_shape(critic.init, jax.random.key(0), jnp.zeros((1, 5)), jnp.zeros((1, 3)))

    def stacked(kind, names):
        layers = [[m for m in q.net if isinstance(m, kind)] for q in q_torch]
        return [{name: np.stack([get(ls[i]) for ls in layers]) for name, get in names.items()} for i in range(len(layers[0]))]

    linears = stacked(
        torch.nn.Linear, {"kernel": lambda m: m.weight.detach().numpy().T, "bias": lambda m: m.bias.detach().numpy()}
    )
    norms = stacked(
        torch.nn.LayerNorm, {"scale": lambda m: m.weight.detach().numpy(), "bias": lambda m: m.bias.detach().numpy()}
    )
    params = {f"Dense_{i}": p for i, p in enumerate(linears)} | {f"LayerNorm_{i}": p for i, p in enumerate(norms)}
    params = {"params": {"VmapQNetwork_0": params}}
    assert jax.tree.map(np.shape, ours) == jax.tree.map(np.shape, params)
    obs, a = np.random.randn(16, 5).astype(np.float32), np.random.randn(16, 3).astype(np.float32)
    q_values = jax.jit(critic.apply)(params, obs, a)
    for i in range(2):
        expected = q_torch[i](torch.as_tensor(obs), torch.as_tensor(a)).detach().numpy()
        np.testing.assert_allclose(q_values[i], expected, rtol=1e-4, atol=1e-5)


def test_update_carries_the_running_rms_in_its_state_and_compiles_once():
    args = qsm.Args(batch_size=16, hidden_dim=16, normalize_q_grad=True, clip_final_only=True, critic_layer_norm=True)
    eps_theta, critic = qsm.Denoiser(2, 16), qsm.TwinQNetwork(16, layer_norm=True)
    actor_tx, critic_tx = optax.adam(1e-3), optax.adam(1e-3)
    state = qsm.init_qsm_state(jax.random.key(0), eps_theta, critic, actor_tx, critic_tx, obs_dim=3, act_dim=2)
    update = qsm.make_qsm_update(eps_theta, critic, actor_tx, critic_tx, qsm.ddpm_schedule(5), args)
    rng = np.random.default_rng(0)
    for step in range(1, 4):
        obs, actions, rewards = (rng.uniform(-1, 1, (16, dim)).astype(np.float32) for dim in (3, 2, 1))
        batch = (obs, actions, rewards, obs, np.zeros((16, 1), np.float32))
        state, metrics = update(state, batch)
        assert float(state.q_grad_rms.weight) == pytest.approx(1 - 0.99**step, rel=1e-5)
        assert float(metrics["qsm/q_grad_rms"]) == pytest.approx(float(state.q_grad_rms.value()))
        assert float(metrics["qsm/q_grad_rms"]) > 1e-6
        assert np.isfinite(float(metrics["losses/actor_loss"]))
    assert update._cache_size() == 1  # the running RMS is part of the jitted state: no retrace from step to step
