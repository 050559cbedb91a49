"""The JAX script's pieces against the PyTorch script's: schedule, networks, sampler, actor target, compilation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import qsm_continuous_action as qsm_torch
import qsm_continuous_action_jax as qsm


@pytest.mark.parametrize("T", [1, 5, 20])
def test_schedule_matches_the_pytorch_script(T):
    ours, theirs = qsm.ddpm_schedule(T), qsm_torch.ddpm_schedule(T)
    for name in ("betas", "alphas", "alpha_bars"):
        assert ours[name].dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(ours[name]), theirs[name].numpy(), rtol=1e-6, atol=1e-7)
    if T == 5:
        np.testing.assert_allclose(ours["alpha_bars"], [0.8041, 0.4352, 0.1585, 0.0389, 0.0064], atol=1e-4)


def torch_to_flax_denoiser(eps_torch):
    """The PyTorch denoiser's weights in the JAX denoiser's layout (Dense kernels are the transposed weights)."""
    dense = lambda layer: {"kernel": layer.weight.detach().numpy().T, "bias": layer.bias.detach().numpy()}  # noqa: E731
    linears = [eps_torch.time_embed[1], eps_torch.time_embed[3]] + [m for m in eps_torch.net if isinstance(m, torch.nn.Linear)]
    params = {f"Dense_{i}": dense(layer) for i, layer in enumerate(linears)}
    params["FourierFeatures_0"] = {"w": eps_torch.time_embed[0].w.detach().numpy()}
    return {"params": params}


def test_denoiser_computes_the_same_function_as_the_pytorch_one():
    torch.manual_seed(0)
    eps_torch = qsm_torch.Denoiser(obs_dim=5, act_dim=3, hidden_dim=32, num_layers=3)
    eps_theta = qsm.Denoiser(act_dim=3, hidden_dim=32, num_layers=3)
    ours = jax.eval_shape(eps_theta.init, jax.random.key(0), jnp.zeros((1, 5)), jnp.zeros((1, 3)), jnp.zeros((1,), jnp.int32))
    params = torch_to_flax_denoiser(eps_torch)
    assert jax.tree.map(np.shape, ours) == jax.tree.map(np.shape, params)  # same layers, same shapes
    obs, a, t = np.random.randn(16, 5).astype(np.float32), np.random.randn(16, 3).astype(np.float32), np.arange(16) % 5
    expected = eps_torch(torch.as_tensor(obs), torch.as_tensor(a), torch.as_tensor(t)).detach().numpy()
    np.testing.assert_allclose(jax.jit(eps_theta.apply)(params, obs, a, t), expected, rtol=1e-4, atol=1e-5)


def test_twin_critics_match_the_pytorch_qnetwork():
    torch.manual_seed(0)
    q_torch = [qsm_torch.QNetwork(obs_dim=5, act_dim=3, hidden_dim=32) for _ in range(2)]
    critic = qsm.TwinQNetwork(hidden_dim=32)
    ours = jax.eval_shape(critic.init, jax.random.key(0), jnp.zeros((1, 5)), jnp.zeros((1, 3)))
    linears = [[m for m in q.net if isinstance(m, torch.nn.Linear)] for q in q_torch]
    stacked = {
        f"Dense_{i}": {
            "kernel": np.stack([ls[i].weight.detach().numpy().T for ls in linears]),
            "bias": np.stack([ls[i].bias.detach().numpy() for ls in linears]),
        }
        for i in range(3)
    }
    params = {"params": {"VmapQNetwork_0": stacked}}
    assert jax.tree.map(np.shape, ours) == jax.tree.map(np.shape, params)
    obs, a = np.random.randn(16, 5).astype(np.float32), np.random.randn(16, 3).astype(np.float32)
    q_values = jax.jit(critic.apply)(params, obs, a)
    assert q_values.shape == (2, 16, 1)
    for i in range(2):
        expected = q_torch[i](torch.as_tensor(obs), torch.as_tensor(a)).detach().numpy()
        np.testing.assert_allclose(q_values[i], expected, rtol=1e-4, atol=1e-5)


def test_init_is_xavier_uniform_with_zero_biases_and_fourier_std_0_2():
    critic = qsm.TwinQNetwork(hidden_dim=256)
    eps_theta = qsm.Denoiser(act_dim=6, hidden_dim=256, time_dim=2048)  # many Fourier weights to measure their std
    critic_params = jax.jit(critic.init)(jax.random.key(0), jnp.zeros((1, 17)), jnp.zeros((1, 6)))["params"]
    t = jnp.zeros((1,), jnp.int32)
    eps_params = jax.jit(eps_theta.init)(jax.random.key(1), jnp.zeros((1, 17)), jnp.zeros((1, 6)), t)["params"]
    assert np.std(eps_params["FourierFeatures_0"]["w"]) == pytest.approx(0.2, rel=0.1)
    q1, q2 = (jax.tree.map(lambda p, i=i: p[i], critic_params["VmapQNetwork_0"]) for i in range(2))
    assert not np.allclose(q1["Dense_0"]["kernel"], q2["Dense_0"]["kernel"])  # two independent critics
    for layers in (q1, {k: v for k, v in eps_params.items() if k.startswith("Dense")}):
        for layer in layers.values():
            fan_in, fan_out = layer["kernel"].shape
            bound = np.sqrt(6 / (fan_in + fan_out))
            assert np.abs(layer["kernel"]).max() <= bound
            assert np.std(layer["kernel"]) == pytest.approx(bound / np.sqrt(3), rel=0.25)  # uniform(-b, b) has std b/sqrt(3)
            assert not np.any(layer["bias"])


@pytest.mark.parametrize("T", [1, 5])
def test_sampler_shape_and_bounds(T):
    eps_theta = qsm.Denoiser(act_dim=3, hidden_dim=32)
    params = jax.jit(eps_theta.init)(jax.random.key(0), jnp.zeros((1, 7)), jnp.zeros((1, 3)), jnp.zeros((1,), jnp.int32))
    # scale the last layer up so that unclipped samples would leave [-1, 1]
    params = jax.tree_util.tree_map_with_path(lambda path, p: p * 100.0 if "Dense_4" in str(path) else p, params)
    obs = np.random.default_rng(1).normal(size=(64, 7)).astype(np.float32)
    sample = qsm.make_policy(eps_theta, qsm.ddpm_schedule(T))  # the jitted ddpm_sample, no exploration noise
    actions, _ = sample(params, obs, jax.random.key(2))
    assert actions.shape == (64, 3)
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    assert (jnp.abs(actions) == 1.0).any()  # the clip did bite
    assert actions.std() > 0  # not a constant
    np.testing.assert_array_equal(actions, sample(params, obs, jax.random.key(2))[0])  # the key decides the sample
    assert not np.allclose(actions, sample(params, obs, jax.random.key(3))[0])


def test_sampler_follows_the_ddpm_update_of_the_pytorch_script():
    # temperature 0 leaves one random draw, x_T; with a zero denoiser each step only rescales x by 1/sqrt(alpha_t)
    # and clips, so both scripts must map the same x_T to the same action. Recover x_T from the key as the sampler does.
    class Zero:
        act_dim = 2

        def apply(self, params, obs, a, t):
            return jnp.zeros_like(a)

    schedule, key = qsm.ddpm_schedule(5), jax.random.key(0)
    actions = qsm.ddpm_sample(Zero(), None, jnp.zeros((256, 4)), schedule, key, temperature=0.0)
    x = np.asarray(jax.random.normal(jax.random.split(key)[1], (256, 2)))
    for alpha in np.asarray(schedule["alphas"])[::-1]:
        x = np.clip(x / np.sqrt(alpha), -1, 1)
    np.testing.assert_allclose(actions, x, rtol=1e-6)

    class ZeroTorch(torch.nn.Module):
        act_dim = 2

        def forward(self, obs, a, t):
            return torch.zeros_like(a)

    torch.manual_seed(0)
    torch_actions = qsm_torch.ddpm_sample(ZeroTorch(), torch.zeros(256, 4), qsm_torch.ddpm_schedule(5), temperature=0.0)
    # same law: both push most samples to the bounds (1/sqrt(prod alpha) = 12.5) and keep the sign of x_T
    assert abs(np.mean(np.abs(actions) == 1.0) - np.mean(torch_actions.abs().numpy() == 1.0)) < 0.1


class LinearCritics:
    """Two critics Q_i(s, a) = c_i . a: grad_a of their mean is (c_1 + c_2) / 2 everywhere."""

    def __init__(self, c1, c2):
        self.c = jnp.stack([c1, c2])

    def apply(self, params, obs, a):
        return (a @ self.c.T).T[..., None]  # (2, B, 1)


def test_actor_loss_target_is_minus_m_q_times_mean_q_gradient():
    c1, c2 = jnp.array([0.5, -2.0]), jnp.array([1.5, 0.0])
    g = (c1 + c2) / 2

    class Constant:
        act_dim = 2

        def apply(self, params, obs, a, t):
            return jnp.broadcast_to(-3.0 * g, a.shape)

    schedule, critics = qsm.ddpm_schedule(5), LinearCritics(c1, c2)
    obs, actions = jnp.ones((16, 4)), jnp.linspace(-1, 1, 32).reshape(16, 2)
    loss, (q_grad, eps, _) = qsm.actor_loss(None, None, obs, actions, jax.random.key(0), Constant(), critics, schedule, 3.0)
    assert float(loss) == pytest.approx(0.0, abs=1e-10)
    np.testing.assert_allclose(q_grad, jnp.broadcast_to(g, (16, 2)), rtol=1e-6)
    loss_flipped, _ = qsm.actor_loss(None, None, obs, actions, jax.random.key(0), Constant(), critics, schedule, -3.0)
    assert float(loss_flipped) > 1.0


@pytest.fixture(scope="module")
def tiny_setup(batch_size=16, hidden=16):
    args = qsm.Args(batch_size=batch_size, hidden_dim=hidden)
    eps_theta, critic = qsm.Denoiser(2, hidden), qsm.TwinQNetwork(hidden)
    actor_tx, critic_tx = optax.adam(optax.cosine_decay_schedule(1e-3, 100)), optax.adam(1e-3)
    schedule = qsm.ddpm_schedule(5)
    state = qsm.init_qsm_state(jax.random.key(0), eps_theta, critic, actor_tx, critic_tx, obs_dim=3, act_dim=2)
    update = qsm.make_qsm_update(eps_theta, critic, actor_tx, critic_tx, schedule, args)
    rb = qsm.ReplayBuffer(100, 3, 2, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        o = rng.normal(size=(1, 3)).astype(np.float32)
        a = rng.uniform(-1, 1, size=(1, 2)).astype(np.float32)
        rb.add(o, o + 0.1, a, rng.normal(size=1), rng.random(1) < 0.1)
    return args, eps_theta, schedule, state, update, rb


def test_update_changes_everything_it_should_and_compiles_once(tiny_setup):
    args, eps_theta, schedule, state, update, rb = tiny_setup
    policy = qsm.make_policy(eps_theta, schedule, 1.0, 0.1)
    new_state, metrics = update(state, rb.sample(args.batch_size))
    assert set(metrics) >= {"losses/qf1_loss", "losses/qf2_loss", "losses/actor_loss", "qsm/action_at_bounds_frac"}
    changed = lambda a, b: any(not np.allclose(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    assert changed(state.eps_params, new_state.eps_params) and changed(state.critic_params, new_state.critic_params)
    assert not np.array_equal(jax.random.key_data(state.key), jax.random.key_data(new_state.key))  # a fresh key each step
    # (the Polyak step of the targets: test_bootstrap.py)
    key = jax.random.key(1)
    state = new_state
    for _ in range(5):  # later steps, fresh batches and states: no retrace, no recompilation
        state, metrics = update(state, rb.sample(args.batch_size))
        actions, key = policy(state.eps_params, rb.sample(1)[0], key)
    assert update._cache_size() == 1
    assert policy._cache_size() == 1
    assert np.isfinite(float(metrics["losses/actor_loss"]))


def test_same_key_same_update(tiny_setup):
    args, _, _, state, update, rb = tiny_setup
    batch = rb.sample(args.batch_size)
    (a, ma), (b, mb) = update(state, batch), update(state, batch)
    for x, y in zip(jax.tree.leaves(a.eps_params), jax.tree.leaves(b.eps_params)):
        np.testing.assert_array_equal(x, y)
    assert float(ma["losses/actor_loss"]) == float(mb["losses/actor_loss"])
