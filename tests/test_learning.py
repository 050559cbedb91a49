"""QSM learns on one-step continuous bandits and bootstraps through a two-state chain; with the actor target's sign
flipped it does not learn.

Each test runs twice: with the PyTorch script's update (`bandit.py`) and with the JAX script's (`bandit_jax.py`).
Every threshold clears with margin the values measured over seeds 0-7 and the float paths of `tests/numerics_matrix.sh`
(PyTorch's and MKL's kernels, XLA's instruction sets; 2026-12-02, AMD EPYC with AVX-512), and a broken update misses it:
`sign`, the actor target's sign flipped in both scripts; `mask`, the termination mask dropped from the critic target;
`frozen`, target critics that never move (tau = 0). In the comments, "torch a-b, jax c-d" is the range over that grid
and "sign: x" the value the broken update gave at the test's own seed."""

import numpy as np
import pytest
from bandit import near
from conftest import seeds

pytestmark = pytest.mark.learning


@pytest.mark.parametrize("seed", seeds(0))
def test_one_maximum_samples_concentrate_near_argmax(toy, check, seed):
    samples = toy.train_bandit(toy.one_peak, m_q=1.0, seed=seed)
    hist = np.histogram(samples, bins=10, range=(-1, 1))[0]
    # a uniform policy puts 20% of its mass within 0.2 of the argmax, its median at 0
    check("near 0.4", near(samples, 0.4), above=0.45, context=hist)  # torch 0.62-0.72, jax 0.68-0.98; sign: 0.00
    check("median", np.median(samples), above=0.3, below=0.6, context=hist)  # torch 0.43-0.53, jax 0.42-0.48
    check("at bounds", np.mean(np.abs(samples) > 0.99), below=0.05, context=hist)  # not a bang-bang policy


@pytest.mark.parametrize("seed", seeds(0, 1))
def test_two_maxima_policy_keeps_mass_near_both(toy, check, seed):
    samples = toy.train_bandit(toy.two_peaks, m_q=1.0, seed=seed)
    hist = np.histogram(samples, bins=10, range=(-1, 1))[0]
    # The learned modes sit a little outside +-0.5 on some float paths (at -0.6, say: within 0.2 of the two modes
    # together, 0.61-0.93 over the grid), so each mode's mass is counted within 0.3 of it. A uniform policy has 30%
    # there per mode and 10% within 0.1 of the dip at 0.
    check("within 0.3 of -0.5", near(samples, -0.5, 0.3), above=0.38, context=hist)  # torch 0.45-0.50, jax 0.45-0.52
    check("within 0.3 of +0.5", near(samples, 0.5, 0.3), above=0.38, context=hist)  # torch 0.46-0.50, jax 0.44-0.51
    either = near(samples, -0.5, 0.3) + near(samples, 0.5, 0.3)  # torch 0.95-0.96, jax 0.95-0.97; sign: 0.01 at -0.5
    check("within 0.3 of either", either, above=0.85, context=hist)
    check("dip", near(samples, 0.0, radius=0.1), below=0.06, context=hist)  # torch 0.015-0.027, jax 0.011-0.024
    check("at bounds", np.mean(np.abs(samples) > 0.99), below=0.05, context=hist)


@pytest.mark.parametrize("seed", seeds(0))
def test_chain_bootstraps_through_the_target_critics_and_stops_at_termination(toy, check, seed):
    # A -> B -> terminal, reward 1 - (a - 0.4)^2 in each: Q(B, 0.4) = 1 and Q(A, 0.4) = 1 + gamma * E[r(a')], where
    # E[r(a')] = 0.93-0.97 for the learned policy with its exploration noise, so Q(A, 0.4) = 1.47-1.48. Without the
    # termination mask Q(B) climbs towards 1 / (1 - gamma) = 2, and with frozen targets Q(A) stays near 1.
    gamma = 0.5
    samples, models = toy.train_bandit(toy.shifted_peak, m_q=1.0, chain=True, gamma=gamma, return_models=True, seed=seed)
    hist = np.histogram(samples, bins=10, range=(-1, 1))[0]
    check("near 0.4", near(samples, 0.4), above=0.5, context=hist)  # torch 0.64-0.70, jax 0.62-0.73; sign: 0.01
    check("Q(B, 0.4)", toy.q_value(models, 1.0, 0.4), above=0.92, below=1.08)  # torch 0.99-1.01, jax 0.98-1.01; mask: 1.85
    q_a = toy.q_value(models, 0.0, 0.4)  # torch 1.43-1.48, jax 1.45-1.47; frozen: 0.99-1.11
    check("Q(A, 0.4)", q_a, above=1.375, below=1.575)


@pytest.mark.parametrize("seed", seeds(0))
def test_flipped_actor_target_sign_does_not_learn(toy, check, seed):
    # m_q < 0 turns the target -M_q * grad_a Q into +|M_q| * grad_a Q: the denoiser then pushes samples downhill
    # (the unit tests in test_ddpm.py and test_jax_ddpm.py pin the sign itself; this is the one learning case)
    samples = toy.train_bandit(toy.one_peak, m_q=-1.0, seed=seed)
    check("near 0.4", near(samples, 0.4), below=0.1)  # torch 0.000-0.003, jax 0.001-0.004; sign: 0.70
