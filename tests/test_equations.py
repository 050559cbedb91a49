"""Each equation of the QSM update against the line that implements it, in both scripts: the actor loss's forward
noising, and the reverse sampler's step (its mean and its noise). The critic target is pinned in test_bootstrap.py, the
target -M_q * grad_a Q in test_ddpm.py and test_jax_ddpm.py, its scale in test_variants.py and test_jax_variants.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import qsm_continuous_action as qsm_torch
import qsm_continuous_action_jax as qsm_jax

A0 = np.array([0.6, -0.3], dtype=np.float32)  # every replay action of the batch
N = 100_000


def noised_torch():
    """(t, a_t) that the PyTorch actor loss hands the denoiser, for a batch of N copies of A0."""
    seen = {}

    class Recorder(torch.nn.Module):
        def forward(self, obs, a, t):
            seen["a"], seen["t"] = a.detach().numpy(), t.numpy()
            return torch.zeros_like(a)

    torch.manual_seed(0)
    actions = torch.as_tensor(np.tile(A0, (N, 1)))
    qsm_torch.actor_loss(Recorder(), [lambda s, a: a.sum(-1, keepdim=True)], qsm_torch.ddpm_schedule(5), torch.zeros(N, 3),
                         actions, m_q=1.0)  # fmt: skip
    return seen["t"], seen["a"]


def noised_jax():
    seen = {}

    class Recorder:
        act_dim = 2

        def apply(self, params, obs, a, t):
            seen["a"], seen["t"] = np.asarray(a), np.asarray(t)
            return jnp.zeros_like(a)

    class Critics:
        def apply(self, params, obs, a):
            return jnp.stack([a.sum(-1, keepdims=True)] * 2)

    actions = jnp.asarray(np.tile(A0, (N, 1)))
    qsm_jax.actor_loss(None, None, jnp.zeros((N, 3)), actions, jax.random.key(0), Recorder(), Critics(),
                       qsm_jax.ddpm_schedule(5), 1.0)  # fmt: skip
    return seen["t"], seen["a"]


@pytest.mark.parametrize("noised", [noised_torch, noised_jax], ids=["torch", "jax"])
def test_actor_loss_noises_the_replay_actions_as_the_forward_process(noised):
    # a_t = sqrt(alpha_bar_t) a_0 + sqrt(1 - alpha_bar_t) z, with the step index t uniform over 0..T-1: per t, the
    # noisy actions' mean is sqrt(alpha_bar_t) a_0 and their variance 1 - alpha_bar_t (N / 5 samples per t: the
    # variance within 5%, five standard errors; the mean within 0.03)
    t, noisy = noised()
    alpha_bars = np.cumprod(np.exp(-0.1 / 5 - 0.5 * 9.9 * (2 * np.arange(1, 6) - 1) / 25))
    assert sorted(set(t.tolist())) == [0, 1, 2, 3, 4]
    for i, ab in enumerate(alpha_bars):
        at_i = noisy[t == i]
        assert abs(len(at_i) / N - 0.2) < 0.02, i  # uniform over the steps
        np.testing.assert_allclose(at_i.mean(0), np.sqrt(ab) * A0, atol=0.03, err_msg=f"mean at t index {i}")
        np.testing.assert_allclose(at_i.var(0), [1 - ab] * 2, rtol=0.05, err_msg=f"variance at t index {i}")


E = np.array([0.3, -0.7], dtype=np.float32)  # the constant noise prediction of the mean test


def expected_chain(x, schedule, eps):
    """x_{t-1} = clip((x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t)), t = T..1, without noise."""
    betas, alphas, alpha_bars = (np.asarray(schedule[k], dtype=np.float64) for k in ("betas", "alphas", "alpha_bars"))
    for i in reversed(range(len(betas))):
        x = np.clip((x - betas[i] / np.sqrt(1 - alpha_bars[i]) * eps) / np.sqrt(alphas[i]), -1, 1)
    return x


def test_sampler_mean_step_torch():
    seen = []

    class Constant(torch.nn.Module):
        act_dim = 2

        def forward(self, obs, a, t):
            seen.append(a.clone())
            return torch.as_tensor(E).expand(a.shape[0], 2)

    schedule = qsm_torch.ddpm_schedule(5)
    torch.manual_seed(0)
    out = qsm_torch.ddpm_sample(Constant(), torch.zeros(512, 3), schedule, temperature=0.0)
    np.testing.assert_allclose(out.numpy(), expected_chain(seen[0].numpy().astype(np.float64), schedule, E), atol=1e-5)


def test_sampler_mean_step_jax():
    class Constant:
        act_dim = 2

        def apply(self, params, obs, a, t):
            return jnp.broadcast_to(E, a.shape)

    schedule, key = qsm_jax.ddpm_schedule(5), jax.random.key(0)
    out = qsm_jax.ddpm_sample(Constant(), None, jnp.zeros((512, 3)), schedule, key, temperature=0.0)
    x_T = np.asarray(jax.random.normal(jax.random.split(key)[1], (512, 2)), dtype=np.float64)  # as the sampler draws it
    np.testing.assert_allclose(np.asarray(out), expected_chain(x_T, schedule, E), atol=1e-5)


def cancelling_eps(x, t, schedule):
    """At step index 1, the eps that cancels the mean step (x - beta / sqrt(1 - alpha_bar) * eps = 0); else 0."""
    coef = float(np.sqrt(1 - schedule["alpha_bars"][1]) / schedule["betas"][1])
    return (t == 1)[:, None] * x * coef


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_sampler_noise_is_sqrt_beta_times_temperature_and_none_at_the_last_step(framework):
    # T = 5: at step index 1 the denoiser cancels the mean, so x_1 = sqrt(beta_2) * temperature * z whatever came
    # before; at index 0 it predicts 0 and adds no noise, so the sample is x_1 / sqrt(alpha_1) (the clips do not act
    # below |x| = 0.5). The share of samples within 0.5 of 0 is then erf(0.5 sqrt(alpha_1) / (sqrt(beta_2) temperature
    # sqrt(2))): 0.81; 0.95 with beta_2 in place of its square root, 0.59 with noise at the last step too.
    temperature, n = 0.5, 40_000
    if framework == "torch":
        schedule = qsm_torch.ddpm_schedule(5)

        class Cancel(torch.nn.Module):
            act_dim = 1

            def forward(self, obs, a, t):
                return cancelling_eps(a, t, {k: v.numpy() for k, v in schedule.items()})

        torch.manual_seed(0)
        out = qsm_torch.ddpm_sample(Cancel(), torch.zeros(n, 3), schedule, temperature=temperature).numpy()
    else:
        schedule = qsm_jax.ddpm_schedule(5)

        class Cancel:
            act_dim = 1

            def apply(self, params, obs, a, t):
                return cancelling_eps(a, t, {k: np.asarray(v) for k, v in schedule.items()})

        out = np.asarray(qsm_jax.ddpm_sample(Cancel(), None, jnp.zeros((n, 3)), schedule, jax.random.key(0), temperature))
    alphas, betas = np.asarray(schedule["alphas"]), np.asarray(schedule["betas"])
    expected = math.erf(0.5 * np.sqrt(alphas[0]) / (np.sqrt(betas[1]) * temperature * np.sqrt(2)))
    assert np.mean(np.abs(out) < 0.5) == pytest.approx(expected, abs=0.01)
