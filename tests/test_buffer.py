import numpy as np

import qsm_continuous_action as qsm


def fill(rb, values):
    for v in values:
        o = np.full((1, 2), v, dtype=np.float32)
        rb.add(o, o + 0.5, np.full((1, 1), v, np.float32), np.array([v], np.float32), np.array([v % 2 == 0]))


def test_samples_only_filled_slots():
    rb = qsm.ReplayBuffer(100, obs_dim=2, act_dim=1, seed=0)
    fill(rb, [1, 2, 3])
    assert len(rb) == 3
    obs, actions, rewards, next_obs, terminations = (x.numpy() for x in rb.sample(500))
    assert set(np.unique(obs[:, 0])) == {1.0, 2.0, 3.0}  # never an empty (zero) slot
    np.testing.assert_array_equal(next_obs, obs + 0.5)  # rows stay aligned across fields
    np.testing.assert_array_equal(actions[:, 0], rewards[:, 0])
    np.testing.assert_array_equal(terminations[:, 0], (rewards[:, 0] % 2 == 0).astype(np.float32))
    assert obs.dtype == np.float32 and terminations.shape == (500, 1)


def test_wraps_around_and_overwrites_the_oldest():
    rb = qsm.ReplayBuffer(4, obs_dim=2, act_dim=1, seed=0)
    fill(rb, range(1, 7))  # 1..6 into 4 slots: 1 and 2 are overwritten
    assert len(rb) == 4 and rb.full
    assert sorted(rb.obs[:, 0]) == [3.0, 4.0, 5.0, 6.0]
    sampled = np.unique(rb.sample(1000)[0].numpy()[:, 0])
    assert set(sampled) == {3.0, 4.0, 5.0, 6.0}


def test_same_seed_same_batches():
    a, b = qsm.ReplayBuffer(10, 2, 1, seed=3), qsm.ReplayBuffer(10, 2, 1, seed=3)
    fill(a, range(10))
    fill(b, range(10))
    np.testing.assert_array_equal(a.sample(32)[0].numpy(), b.sample(32)[0].numpy())
