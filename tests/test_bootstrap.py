"""The bootstrap of both scripts, pinned exactly: the critic target and the Polyak step of the target critics.

    y = r + gamma * (1 - terminated) * min(Q1_targ, Q2_targ)(s', a'),  a' = clip(DDPM sample at s' + noise)
    targ <- (1 - tau) * targ + tau * online, after the critic step

The critics and the denoiser here are stubs whose outputs are known, so the expected target is computed by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import qsm_continuous_action as qsm_torch
import qsm_continuous_action_jax as qsm_jax

B, OBS_DIM, ACT_DIM, GAMMA = 4096, 3, 2, 0.9
# the two target critics are linear, Q_i(s, a) = s . w_i + a . u_i + b_i, crossing so that each is the min somewhere
W, U, BIAS = np.array([[0.5, -1.0, 0.3], [-0.2, 0.8, 0.1]]), np.array([[1.0, 2.0], [-1.5, 0.5]]), np.array([0.1, -0.2])


def chain_end(obs):
    """Where the stub denoiser's reverse chain lands (before the clip): 1.5 * tanh of the state's first components."""
    return 1.5 * np.tanh(obs[:, :ACT_DIM])


def target_q(obs, actions):
    return obs @ W.T + actions @ U.T + BIAS  # (B, 2): Q1_targ, Q2_targ


def random_batch(seed=0):
    rng = np.random.default_rng(seed)
    obs, next_obs = rng.normal(size=(2, B, OBS_DIM)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(B, ACT_DIM)).astype(np.float32)
    rewards = rng.normal(size=(B, 1)).astype(np.float32)
    terminations = (rng.random((B, 1)) < 0.5).astype(np.float32)
    return obs, actions, rewards, next_obs, terminations


def torch_critic_target(batch, exploration_noise):
    """y (per critic), the actions the target critics saw, and the DDPM samples `critic_loss` returns for the
    action-at-bounds metric, as the PyTorch script computes them; y is read back from the gradient of the MSE."""
    schedule = qsm_torch.ddpm_schedule(5)

    class ChainTo(torch.nn.Module):
        # eps such that x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t) = chain_end(s) exactly
        act_dim = ACT_DIM

        def forward(self, obs, x, t):
            alpha, alpha_bar, beta = (schedule[k][t].unsqueeze(-1) for k in ("alphas", "alpha_bars", "betas"))
            m = torch.as_tensor(chain_end(obs.numpy()), dtype=torch.float32)
            return (x - torch.sqrt(alpha) * m) * torch.sqrt(1 - alpha_bar) / beta

    class Free(torch.nn.Module):  # an online critic whose output is a free parameter per sample
        def __init__(self, seed):
            super().__init__()
            self.v = torch.nn.Parameter(torch.randn(B, 1, generator=torch.Generator().manual_seed(seed)))

        def forward(self, obs, actions):
            return self.v

    seen = []

    def target_critic(i):
        def q(obs, actions):
            seen.append(actions.numpy().copy())
            return torch.as_tensor(target_q(obs.numpy(), actions.numpy())[:, i : i + 1], dtype=torch.float32)

        return q

    args = qsm_torch.Args(gamma=GAMMA, temperature=0.0, exploration_noise=exploration_noise)
    critics = (Free(1), Free(2))
    losses, _, sampled = qsm_torch.critic_loss(
        critics, (target_critic(0), target_critic(1)), ChainTo(), schedule, tuple(map(torch.as_tensor, batch)), args
    )
    # d/dv mean((v - y)^2) = 2 (v - y) / B: each critic's loss gives y back
    ys = [(q.v - B / 2 * torch.autograd.grad(loss, q.v)[0]).detach().numpy() for q, loss in zip(critics, losses)]
    return ys, seen, sampled.numpy()


def jax_critic_target(batch, exploration_noise):
    """`torch_critic_target` for the JAX script's `critic_loss`."""
    schedule = qsm_jax.ddpm_schedule(5)

    class ChainTo:  # the same stub denoiser as above, traced into the jitted reverse chain
        act_dim = ACT_DIM

        def apply(self, params, obs, x, t):
            alpha, alpha_bar, beta = (schedule[k][t][:, None] for k in ("alphas", "alpha_bars", "betas"))
            return (x - jnp.sqrt(alpha) * 1.5 * jnp.tanh(obs[:, :ACT_DIM])) * jnp.sqrt(1 - alpha_bar) / beta

    seen = []

    class Critics:  # online: free values per sample; target: the linear pair
        def apply(self, params, obs, actions):
            if "v" in params:
                return params["v"]  # (2, B, 1)
            seen.append(np.asarray(actions))
            return jnp.asarray(target_q(np.asarray(obs), np.asarray(actions)).T[..., None], jnp.float32)

    args = qsm_jax.Args(gamma=GAMMA, temperature=0.0, exploration_noise=exploration_noise)
    online = {"v": jax.random.normal(jax.random.key(1), (2, B, 1))}
    loss = lambda p: qsm_jax.critic_loss(p, {}, None, batch, jax.random.key(0), ChainTo(), Critics(), schedule, args)  # noqa
    grads, (_, _, sampled, _) = jax.grad(loss, has_aux=True)(online)
    ys = np.asarray(online["v"] - B / 2 * grads["v"])
    return list(ys), seen, np.asarray(sampled)


CRITIC_TARGET = {"torch": torch_critic_target, "jax": jax_critic_target}


@pytest.mark.parametrize("framework", CRITIC_TARGET)
def test_critic_target_is_the_masked_min_of_the_target_critics_at_the_chains_next_action(framework):
    obs, actions, rewards, next_obs, terminations = batch = random_batch()
    ys, seen, sampled = CRITIC_TARGET[framework](batch, exploration_noise=0.0)
    # without exploration noise a' is the chain's end at s', clipped; the target critics see it and only it
    next_actions = np.clip(chain_end(next_obs), -1, 1)
    assert len(seen) >= 1 and all(np.allclose(a, next_actions, atol=1e-5) for a in seen)
    np.testing.assert_allclose(sampled, next_actions, atol=1e-5)
    q_next = target_q(next_obs, next_actions)
    assert 0.2 < np.mean(q_next[:, 0] < q_next[:, 1]) < 0.8  # the min picks each critic somewhere
    expected = rewards + GAMMA * (1 - terminations) * q_next.min(-1, keepdims=True)
    for y in ys:  # both critics regress onto the same target
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("framework", CRITIC_TARGET)
def test_critic_target_next_action_gets_the_exploration_noise_then_the_clip(framework):
    obs, actions, rewards, next_obs, terminations = batch = random_batch(seed=1)
    ys, seen, sampled = CRITIC_TARGET[framework](batch, exploration_noise=0.1)
    next_actions = seen[-1]
    chain = np.clip(chain_end(next_obs), -1, 1)
    np.testing.assert_allclose(sampled, chain, atol=1e-5)  # qsm/action_at_bounds_frac reads the samples before the noise
    assert np.abs(next_actions).max() <= 1.0 and np.mean(np.abs(next_actions) == 1.0) > 0.1  # clipped, after the noise
    inside = np.abs(chain) < 0.6  # far enough from the bounds that the clip never bites
    assert np.std((next_actions - chain)[inside]) == pytest.approx(0.1, rel=0.1)
    expected = rewards + GAMMA * (1 - terminations) * target_q(next_obs, next_actions).min(-1, keepdims=True)
    for y in ys:
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_polyak_step_torch():
    torch.manual_seed(0)
    args = qsm_torch.Args(tau=0.25, batch_size=64)
    eps_theta = qsm_torch.Denoiser(OBS_DIM, ACT_DIM, 16)
    critics = tuple(qsm_torch.QNetwork(OBS_DIM, ACT_DIM, 16) for _ in range(2))
    targets = tuple(qsm_torch.QNetwork(OBS_DIM, ACT_DIM, 16) for _ in range(2))  # different from the critics
    q_optimizer = torch.optim.Adam([p for q in critics for p in q.parameters()], lr=1e-2)
    actor_optimizer = torch.optim.Adam(eps_theta.parameters(), lr=1e-2)
    before = [[p.detach().clone() for p in q.parameters()] for q in critics + targets]
    batch = tuple(torch.as_tensor(x[:64]) for x in random_batch())
    qsm_torch.qsm_update(batch, eps_theta, critics, targets, (q_optimizer, actor_optimizer), qsm_torch.ddpm_schedule(5), args)
    for i in range(2):
        for online, online_before, target, target_before in zip(
            critics[i].parameters(), before[i], targets[i].parameters(), before[2 + i]
        ):
            assert not torch.equal(online, online_before)  # the critic step moved the online critic
            torch.testing.assert_close(target, (1 - args.tau) * target_before + args.tau * online, rtol=1e-6, atol=1e-7)


def test_polyak_step_jax():
    args = qsm_jax.Args(tau=0.25, batch_size=64)
    eps_theta, critic = qsm_jax.Denoiser(ACT_DIM, 16), qsm_jax.TwinQNetwork(16)
    actor_tx, critic_tx = optax.adam(1e-2), optax.adam(1e-2)
    state = qsm_jax.init_qsm_state(jax.random.key(0), eps_theta, critic, actor_tx, critic_tx, OBS_DIM, ACT_DIM)
    other = jax.jit(critic.init)(jax.random.key(1), jnp.zeros((1, OBS_DIM)), jnp.zeros((1, ACT_DIM)))
    state = state._replace(critic_target_params=other)  # targets that differ from the critics
    update = qsm_jax.make_qsm_update(eps_theta, critic, actor_tx, critic_tx, qsm_jax.ddpm_schedule(5), args)
    new_state, _ = update(state, tuple(x[:64] for x in random_batch()))
    leaves = lambda tree: jax.tree.leaves(tree)  # noqa: E731
    for online, online_before, target, target_before in zip(
        leaves(new_state.critic_params), leaves(state.critic_params), leaves(new_state.critic_target_params), leaves(other)
    ):
        assert not np.array_equal(online, online_before)
        np.testing.assert_allclose(target, (1 - args.tau) * target_before + args.tau * online, rtol=1e-6, atol=1e-7)
