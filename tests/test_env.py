"""Episode ends in the Gymnasium 1.x vector API: truncations forced within a few steps."""

import numpy as np

import qsm_continuous_action as qsm


def test_truncation_stores_the_true_final_observation_not_the_reset_one():
    envs = qsm.make_vector_env("Hopper-v4", seed=0, num_envs=1, max_episode_steps=5)
    obs, _ = envs.reset(seed=0)
    rb = qsm.ReplayBuffer(100, obs_dim=11, act_dim=3)
    truncated_rows = []
    for step in range(12):
        actions = np.zeros((1, 3), dtype=np.float32)  # standing still: Hopper does not fall within 5 steps
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        real_next_obs = qsm.final_observations(next_obs, infos)
        rb.add(obs, real_next_obs, actions, rewards, terminations)
        if truncations[0]:
            truncated_rows.append(step)
            assert not terminations[0]
            np.testing.assert_array_equal(real_next_obs[0], infos["final_obs"][0])
            # the vector env has already reset: next_obs is a new episode's start, far from the final state
            assert not np.allclose(real_next_obs[0], next_obs[0])
        else:
            np.testing.assert_array_equal(real_next_obs, next_obs)
        obs = next_obs
    assert truncated_rows == [4, 9]
    # no stored transition spans a reset: each s' continues its own s (the next row starts from a reset state)
    for row in range(11):
        if row not in truncated_rows:
            np.testing.assert_array_equal(rb.next_obs[row], rb.obs[row + 1])
    assert not np.allclose(rb.next_obs[4], rb.obs[5])
    assert rb.terminations[:12].sum() == 0  # truncation is never stored as termination
    envs.close()


def test_actions_are_rescaled_to_the_env_bounds():
    # MountainCarContinuous has bounds [-1, 1]; Pendulum has [-2, 2]: the policy's +1 must become the env's +2
    env = qsm.make_env("Pendulum-v1", seed=0, idx=1, capture_video=False, run_name="")()
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    env.reset(seed=0)
    env.step(np.array([1.0], dtype=np.float32))
    assert np.isclose(env.unwrapped.last_u, 2.0)
