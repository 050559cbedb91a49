"""QSM learns on one-step continuous bandits and bootstraps through a two-state chain; with the actor target's sign
flipped it does not learn.

Each test runs twice: with the PyTorch script's update (`bandit.py`) and with the JAX script's (`bandit_jax.py`)."""

from bandit import near
import numpy as np
import pytest


def test_one_maximum_samples_concentrate_near_argmax(toy):
    samples = toy.train_bandit(toy.one_peak, m_q=1.0)
    hist = np.histogram(samples, bins=10, range=(-1, 1))
    # a uniform policy puts 20% of its mass within 0.2 of the argmax; QSM puts most of it there. Measured (seeds 0-2,
    # both scripts): 68-72% near 0.4, median 0.45-0.47 (the critic's fit of the parabola leans a little to the right)
    assert near(samples, 0.4) > 0.6, hist
    assert 0.42 < np.median(samples) < 0.5, hist
    assert np.mean(np.abs(samples) > 0.99) < 0.05  # not a bang-bang policy


@pytest.mark.parametrize("seed", [0, 1])
def test_two_maxima_policy_keeps_mass_near_both(toy, seed):
    samples = toy.train_bandit(toy.two_peaks, m_q=1.0, seed=seed)
    hist = np.histogram(samples, bins=10, range=(-1, 1))
    # measured (seeds 0-2, both scripts): 31-48% near each mode, 76-93% near the two together, 1-2% at the dip
    assert near(samples, -0.5) > 0.25 and near(samples, 0.5) > 0.25, hist  # real mass at each mode
    assert near(samples, -0.5) + near(samples, 0.5) > 0.7, hist
    assert near(samples, 0.0, radius=0.1) < 0.05, hist  # and little at the dip between them


def test_chain_bootstraps_through_the_target_critics_and_stops_at_termination(toy):
    # A -> B -> terminal, reward 1 - (a - 0.4)^2 in each: Q(B, 0.4) = 1 and Q(A, 0.4) = 1 + gamma * E[r(a')], where
    # E[r(a')] = 0.93-0.97 for the learned policy with its exploration noise (measured, seeds 0-1, both scripts), so
    # Q(A, 0.4) = 1.47-1.48; learned: 1.43-1.48. Without the termination mask Q(B) climbs towards 1 / (1 - gamma) = 2,
    # without gamma Q(A) towards 2, and with frozen targets Q(A) stays near 1 + gamma * Q_init(B) = 1.
    gamma = 0.5
    samples, models = toy.train_bandit(toy.shifted_peak, m_q=1.0, chain=True, gamma=gamma, return_models=True)
    assert near(samples, 0.4) > 0.6, np.histogram(samples, bins=10, range=(-1, 1))
    assert toy.q_value(models, 1.0, 0.4) == pytest.approx(1.0, abs=0.08)  # B
    assert toy.q_value(models, 0.0, 0.4) == pytest.approx(1 + gamma * 0.95, abs=0.1)  # A


def test_flipped_actor_target_sign_does_not_learn(toy):
    # m_q < 0 turns the target -M_q * grad_a Q into +|M_q| * grad_a Q: the denoiser then pushes samples downhill
    # (the unit tests in test_ddpm.py and test_jax_ddpm.py pin the sign itself; this is the one learning case)
    samples = toy.train_bandit(toy.one_peak, m_q=-1.0)
    assert near(samples, 0.4) < 0.1
