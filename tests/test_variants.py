"""The beyond-the-paper flags: each changes what it claims (unit tests of the PyTorch script here and in test_box_prior.py,
of the JAX script in test_jax_variants.py and test_jax_box_prior.py), and QSM still learns with it (the bandit tests run
with both scripts' updates)."""

import numpy as np
import pytest
import torch
from conftest import seeds

import qsm_continuous_action as qsm

VARIANTS = {"normalize_q_grad": dict(normalize_q_grad=True), "box_prior": dict(box_prior=True)}


def test_running_rms_follows_its_stream_and_floors_at_a_tenth_of_its_peak():
    rms = qsm.RunningRMS(decay=0.99)
    torch.manual_seed(0)
    first = torch.randn(256, 3)
    # bias-corrected: after one batch the estimate is that batch's RMS, not 1% of it
    assert rms.update(first).item() == pytest.approx(first.pow(2).mean().sqrt().item(), rel=1e-5)
    for _ in range(500):
        rms.update(torch.randn(256, 3))
    # the rewards x100 mid-run (grad_a Q x100): within 200 updates the scale is within 10% of the new RMS. A scale
    # frozen at its first value stays at 1.
    for _ in range(200):
        value = rms.update(torch.randn(256, 3) * 100.0)
    assert value.item() == pytest.approx(100.0, rel=0.1)
    # Q turns flat in a (a solved task): the RMS falls to 0.01, the scale stops at a tenth of its peak, so the target
    # shrinks 10 000-fold instead of staying at full size; without the floor the scale would be 0.01.
    for _ in range(2000):
        value = rms.update(torch.randn(256, 3) * 0.01)
    assert value.item() == pytest.approx(0.1 * rms.peak.item(), rel=1e-6)
    assert 90.0 < rms.peak.item() < 110.0
    # a critic exactly flat in a: a zero target, not 0 / 0
    assert torch.isfinite(qsm.RunningRMS().update(torch.zeros(256, 3))).all()


@pytest.mark.parametrize("q_shift", [0.0, 1000.0])
@pytest.mark.parametrize("q_scale", [0.01, 1.0, 100.0])
def test_normalized_target_scales_with_q_and_ignores_a_constant_added_to_it(q_scale, q_shift):
    # Rewards c * r + b give Q = c * Q_r + b / (1 - gamma). Here Q = s * c . a + b: grad_a Q = s * c, and the scale, its
    # RMS, is s * rms(c) whatever b is. The paper's target -M_q * s * c scales with s; the normalised one is
    # -M_q * c / rms(c) for every s and b, so a denoiser outputting that has zero loss on every such Q.
    c = torch.tensor([0.5, -2.0])
    target = -3.0 * c / c.pow(2).mean().sqrt()

    class Constant(torch.nn.Module):
        def forward(self, obs, a, t):
            return target.expand(a.shape[0], 2)

    schedule = qsm.ddpm_schedule(5)
    obs, actions = torch.randn(16, 4), torch.rand(16, 2) * 2 - 1
    critics = [lambda s, a: q_scale * (a @ c[:, None]) + q_shift]
    rms = qsm.RunningRMS()
    loss, q_grad, _ = qsm.actor_loss(Constant(), critics, schedule, obs, actions, 3.0, rms)
    assert loss.item() == pytest.approx(0.0, abs=1e-8)
    assert rms.value.item() == pytest.approx(q_scale * c.pow(2).mean().sqrt().item(), rel=1e-5)
    torch.testing.assert_close(q_grad, q_scale * c.expand(16, 2))
    plain_loss, _, _ = qsm.actor_loss(Constant(), critics, schedule, obs, actions, 3.0)
    assert plain_loss.item() > 0.1  # without the flag the target moves with the scale


@pytest.mark.learning
@pytest.mark.parametrize("seed", seeds(0))
@pytest.mark.parametrize("variant", VARIANTS)
def test_bandit_still_learns_with_each_flag(toy, variant, check, seed):
    samples = toy.train_bandit(toy.one_peak, m_q=1.0, seed=seed, **VARIANTS[variant])
    hist = np.histogram(samples, bins=10, range=(-1, 1))[0]
    # A uniform policy has 20% within 0.2 of the argmax 0.4 and mean 0. Over seeds 0-7 and the float paths of
    # tests/numerics_matrix.sh (2026-12-02), both scripts: near 0.4, 0.50-0.59 with --normalize-q-grad and 0.59-1.00
    # with --box-prior; mean 0.44-0.52 and 0.30-0.40. With the actor target's sign flipped: near 0.4, 0.006-0.024.
    check("near 0.4", np.mean(np.abs(samples - 0.4) < 0.2), above=0.4, context=hist)
    check("mean", samples.mean(), above=0.2, below=0.65, context=hist)


def test_crossq_critics_see_both_batches_as_one_and_keep_no_targets():
    # --crossq: one update moves the input batch norm's running mean 1% of the way (momentum 0.01 in PyTorch's terms)
    # to the mean of [s; s'] (the first 3 inputs): (s, a) and (s', a') went through the critics as one batch. The
    # targets stay as they were, and the critics are left in evaluation mode (the actor's grad_a Q), on running averages.
    torch.manual_seed(0)
    args = qsm.Args(batch_size=16, hidden_dim=16, crossq=True)
    eps_theta = qsm.Denoiser(3, 2, 16)
    critics = tuple(qsm.QNetwork(3, 2, 16, batch_norm=True) for _ in range(2))
    targets = tuple(qsm.QNetwork(3, 2, 16, batch_norm=True) for _ in critics)
    before = [p.clone() for q in targets for p in q.state_dict().values()]
    optimizers = torch.optim.Adam([p for q in critics for p in q.parameters()], 1e-3), torch.optim.Adam(eps_theta.parameters())
    obs, actions, rewards = (torch.rand(16, dim) * 2 - 1 for dim in (3, 2, 1))
    qsm.qsm_update((obs, actions, rewards, obs + 3.0, torch.zeros(16, 1)), eps_theta, critics, targets, optimizers,
                   qsm.ddpm_schedule(5), args)  # fmt: skip
    expected = 0.01 * torch.cat([obs, obs + 3.0]).mean(0)
    for q in critics:
        torch.testing.assert_close(q.net[0].running_mean[:3], expected)
        assert not q.training
    assert all(torch.equal(a, b) for a, b in zip(before, (p for q in targets for p in q.state_dict().values())))
