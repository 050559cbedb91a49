"""The env wrappers. (What the training loop stores at episode ends: test_episode_ends.py.)"""

import numpy as np

import qsm_continuous_action as qsm


def test_actions_are_rescaled_to_the_env_bounds():
    # MountainCarContinuous has bounds [-1, 1]; Pendulum has [-2, 2]: the policy's +1 must become the env's +2
    env = qsm.make_env("Pendulum-v1", seed=0, idx=1, capture_video=False, run_name="")()
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    env.reset(seed=0)
    env.step(np.array([1.0], dtype=np.float32))
    assert np.isclose(env.unwrapped.last_u, 2.0)
