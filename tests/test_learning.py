"""QSM learns on one-step continuous bandits; with the actor target's sign flipped it must not.

Each test runs twice: with the PyTorch script's update (`bandit.py`) and with the JAX script's (`bandit_jax.py`)."""

from bandit import near
import numpy as np
import pytest


def test_one_maximum_samples_concentrate_near_argmax(toy):
    samples = toy.train_bandit(toy.one_peak, m_q=1.0)
    # a uniform policy puts 20% of its mass within 0.2 of the argmax; QSM puts most of it there
    assert near(samples, 0.4) > 0.5, np.histogram(samples, bins=10, range=(-1, 1))
    assert abs(samples.mean() - 0.4) < 0.15
    assert np.mean(np.abs(samples) > 0.99) < 0.05  # not a bang-bang policy


def test_two_maxima_policy_keeps_mass_near_both(toy):
    samples = toy.train_bandit(toy.two_peaks, m_q=1.0)
    hist = np.histogram(samples, bins=10, range=(-1, 1))
    assert near(samples, -0.5) > 0.2 and near(samples, 0.5) > 0.2, hist  # real mass at each mode
    assert near(samples, -0.5) + near(samples, 0.5) > 0.6, hist
    assert near(samples, 0.0, radius=0.1) < 0.1, hist  # and little at the dip between them


@pytest.mark.parametrize("reward, modes", [("one_peak", [0.4]), ("two_peaks", [-0.5, 0.5])])
def test_flipped_actor_target_sign_does_not_learn(toy, reward, modes):
    # m_q < 0 turns the target -M_q * grad_a Q into +|M_q| * grad_a Q: the denoiser then pushes samples downhill
    samples = toy.train_bandit(getattr(toy, reward), m_q=-1.0)
    assert all(near(samples, m) < 0.1 for m in modes)
