import numpy as np
import pytest
import torch

import qsm_continuous_action as qsm


def test_vp_schedule_matches_reference_values():
    s = qsm.ddpm_schedule(5)
    np.testing.assert_allclose(s["betas"].numpy(), [0.1959, 0.4588, 0.6358, 0.7549, 0.8350], atol=1e-4)
    np.testing.assert_allclose(s["alpha_bars"].numpy(), [0.8041, 0.4352, 0.1585, 0.0389, 0.0064], atol=1e-4)
    np.testing.assert_allclose(s["alphas"].numpy(), 1 - s["betas"].numpy(), atol=1e-7)


@pytest.mark.parametrize("T", [1, 5, 20])
def test_schedule_is_a_valid_noising_process(T):
    s = qsm.ddpm_schedule(T)
    betas, alpha_bars = s["betas"].numpy(), s["alpha_bars"].numpy()
    assert betas.shape == alpha_bars.shape == (T,)
    assert np.all((betas > 0) & (betas < 1))
    assert np.all(np.diff(alpha_bars) < 0) and 0 < alpha_bars[-1] <= alpha_bars[0] < 1
    np.testing.assert_allclose(alpha_bars, np.cumprod(1 - betas), rtol=1e-4)


@pytest.mark.parametrize("T", [1, 5])
def test_sampler_shape_and_bounds(T):
    torch.manual_seed(0)
    eps_theta = qsm.Denoiser(obs_dim=7, act_dim=3, hidden_dim=32)
    # scale the last layer up so that unclipped samples would leave [-1, 1]
    with torch.no_grad():
        eps_theta.net[-1].weight.mul_(100.0)
    actions = qsm.ddpm_sample(eps_theta, torch.randn(64, 7), qsm.ddpm_schedule(T))
    assert actions.shape == (64, 3)
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    assert (actions.abs() == 1.0).any()  # the clip did bite
    assert actions.std() > 0  # not a constant


def test_denoiser_sees_the_step_index_and_the_state():
    torch.manual_seed(0)
    eps_theta = qsm.Denoiser(obs_dim=4, act_dim=2, hidden_dim=32)
    obs, a = torch.randn(8, 4), torch.randn(8, 2)
    t0, t3 = torch.zeros(8, dtype=torch.long), torch.full((8,), 3)
    assert eps_theta(obs, a, t0).shape == (8, 2)
    assert not torch.allclose(eps_theta(obs, a, t0), eps_theta(obs, a, t3))
    assert not torch.allclose(eps_theta(obs, a, t0), eps_theta(obs + 1, a, t0))


def test_actor_loss_target_is_minus_m_q_times_q_gradient():
    # Q(s, a) = c . a has gradient c everywhere; a denoiser that outputs -M_q * c exactly has zero loss
    c = torch.tensor([0.5, -2.0])

    class Constant(torch.nn.Module):
        def forward(self, obs, a, t):
            return (-3.0 * c).expand(a.shape[0], 2)

    schedule = qsm.ddpm_schedule(5)
    obs, actions = torch.randn(16, 4), torch.rand(16, 2) * 2 - 1
    loss, q_grad, eps = qsm.actor_loss(Constant(), [lambda s, a: a @ c[:, None]], schedule, obs, actions, m_q=3.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-10)
    torch.testing.assert_close(q_grad, c.expand(16, 2))
    loss_flipped, _, _ = qsm.actor_loss(Constant(), [lambda s, a: a @ c[:, None]], schedule, obs, actions, m_q=-3.0)
    assert loss_flipped.item() > 1.0
