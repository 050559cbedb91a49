"""--recipe: a preset of flags that explicit flags still override, the same in both scripts; QSM learns with it."""

from bandit import near
import numpy as np
import pytest

import qsm_continuous_action as qsm
import qsm_continuous_action_jax as qsm_jax


@pytest.mark.parametrize("script", [qsm, qsm_jax], ids=["torch", "jax"])
def test_recipe_sets_its_flags_and_explicit_flags_win(script):
    reference, improved = script.parse_args([]), script.parse_args(["--recipe", "improved"])
    assert reference == script.Args()  # the default is the paper's recipe
    assert script.RECIPES["improved"]  # the preset changes something
    for field, value in script.RECIPES["improved"].items():
        assert getattr(improved, field) == value != getattr(reference, field)
    assert improved.env_id == reference.env_id and improved.batch_size == reference.batch_size  # and nothing else
    mixed = script.parse_args(["--m-q", "7", "--recipe", "improved", "--no-box-prior", "--batch-size", "64"])
    assert (mixed.m_q, mixed.box_prior, mixed.normalize_q_grad, mixed.batch_size) == (7.0, False, True, 64)


def test_both_scripts_have_the_same_recipes():
    assert qsm.RECIPES == qsm_jax.RECIPES


def test_improved_recipe_learns_the_bandits(toy):
    flags = dict(qsm.RECIPES["improved"])
    m_q = flags.pop("m_q")
    one = toy.train_bandit(toy.one_peak, m_q, **flags)
    assert near(one, 0.4) > 0.5 and abs(one.mean() - 0.4) < 0.15, np.histogram(one, bins=10, range=(-1, 1))
    two = toy.train_bandit(toy.two_peaks, m_q, **flags)
    hist = np.histogram(two, bins=10, range=(-1, 1))
    # both maxima keep mass and none sits at the bounds; with M_q = 1 on this flat-topped reward (Q varies by 0.16)
    # the policy stays broad, so more of it sits near the dip than under the plain target (test_learning.py)
    assert np.mean(two < 0) > 0.3 and np.mean(two > 0) > 0.3, hist
    assert near(two, -0.5) > 0.1 and near(two, 0.5) > 0.1, hist
    assert np.mean(np.abs(two) >= 0.999) < 0.01, hist
