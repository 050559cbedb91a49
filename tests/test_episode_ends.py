"""What each script's own training loop stores at episode ends, read from its replay buffer after a real run.

The scripts run in-process (`runpy`, as `python script.py` does) on a counter env whose observation is
(step in episode, episode index): every stored transition says where it comes from. Odd episodes terminate after
3 steps; even ones run into the 5-step time limit and are truncated."""

import runpy
import sys

import gymnasium as gym
import numpy as np
import pytest

import qsm_continuous_action as qsm

TERMINATES_AT, TIME_LIMIT, STEPS = 3, 5, 60


class CounterEnv(gym.Env):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def __init__(self, render_mode=None):
        self.episode, self.t = -1, 0

    def obs(self):
        return np.array([self.t, self.episode], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return self.obs(), {}

    def step(self, action):
        self.t += 1
        terminated = self.episode % 2 == 1 and self.t == TERMINATES_AT
        return self.obs(), float(self.t), terminated, False, {}


gym.register("QSMCounter-v0", entry_point=CounterEnv, max_episode_steps=TIME_LIMIT)


@pytest.fixture(params=["qsm_continuous_action.py", "qsm_continuous_action_jax.py"], ids=["torch", "jax"])
def replay_buffer(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags = ["--env-id", "QSMCounter-v0", "--total-timesteps", str(STEPS), "--learning-starts", "30", "--batch-size", "8",
             "--hidden-dim", "8", "--eval-frequency", "0", "--eval-episodes", "1", "--no-progress"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", [request.param, *flags])
    run = runpy.run_path(f"{qsm.__file__[: -len('qsm_continuous_action.py')]}{request.param}", run_name="__main__")
    rb = run["rb"]
    assert len(rb) == STEPS
    return rb.obs[:STEPS], rb.next_obs[:STEPS], rb.rewards[:STEPS, 0], rb.terminations[:STEPS, 0]


def test_no_stored_transition_spans_a_reset(replay_buffer):
    obs, next_obs, rewards, _ = replay_buffer
    np.testing.assert_array_equal(next_obs[:, 1], obs[:, 1])  # s' is in the same episode as s
    np.testing.assert_array_equal(next_obs[:, 0], obs[:, 0] + 1)  # one step further: at an end, the true final obs
    np.testing.assert_array_equal(rewards, next_obs[:, 0])
    # and the loop carries on from the reset observation, not from the final one
    ends = np.flatnonzero(next_obs[:-1, 1] != obs[1:, 1])
    assert len(ends) >= 10
    np.testing.assert_array_equal(obs[ends + 1], np.stack([np.zeros(len(ends)), obs[ends, 1] + 1], -1))


def test_termination_is_stored_as_terminated_and_truncation_is_not(replay_buffer):
    obs, next_obs, _, terminations = replay_buffer
    terminal = (obs[:, 1] % 2 == 1) & (next_obs[:, 0] == TERMINATES_AT)
    truncated = (obs[:, 1] % 2 == 0) & (next_obs[:, 0] == TIME_LIMIT)
    assert terminal.sum() >= 5 and truncated.sum() >= 5
    np.testing.assert_array_equal(terminations, terminal.astype(np.float32))  # truncations stored as not terminated


class NeverEnds(CounterEnv):
    """No termination and no time limit; raises after 1000 steps so that an evaluation without a cap fails, not hangs."""

    def step(self, action):
        assert self.t < 1000, "evaluation did not stop on an env without a time limit"
        return super().step(action)[:2] + (False, False, {})


gym.register("QSMNeverEnds-v0", entry_point=NeverEnds)


def test_evaluation_on_an_env_without_time_limit_is_cut_with_a_warning(capsys):
    import jax

    import qsm_continuous_action_jax as qsm_jax

    torch_args, jax_args = (script.Args(env_id="QSMNeverEnds-v0", eval_episodes=2, hidden_dim=8) for script in (qsm, qsm_jax))
    eps_theta = qsm.Denoiser(2, 1, hidden_dim=8)
    returns_torch = qsm.evaluate(eps_theta, qsm.ddpm_schedule(5), torch_args, seed=0, device="cpu", max_steps=50)
    jax_denoiser, schedule = qsm_jax.Denoiser(1, hidden_dim=8), qsm_jax.ddpm_schedule(5)
    params = jax_denoiser.init(jax.random.key(0), np.zeros((1, 2)), np.zeros((1, 1)), np.zeros((1,), np.int32))
    policy = qsm_jax.make_policy(jax_denoiser, schedule)
    returns_jax = qsm_jax.evaluate(policy, params, jax_args, 0, jax.random.key(1), max_steps=50)
    for returns in (returns_torch, returns_jax):
        np.testing.assert_array_equal(returns, [sum(range(1, 51))] * 2)  # the reward is the step count: 1 + ... + 50
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: evaluation cut")]
    assert len(warnings) == 2 and all("2 of 2 episodes unfinished" in w and "--max-episode-steps" in w for w in warnings)


class Image(CounterEnv):
    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)


class Unbounded(CounterEnv):
    action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)


gym.register("QSMImage-v0", entry_point=Image)
gym.register("QSMUnbounded-v0", entry_point=Unbounded)


@pytest.mark.parametrize("env_id, message", [("QSMImage-v0", "needs a flat Box"), ("QSMUnbounded-v0", "unbounded components")])
def test_check_args_names_an_env_the_scripts_cannot_train_on(env_id, message):
    import qsm_continuous_action_jax as qsm_jax

    for script in (qsm, qsm_jax):
        problem = script.check_args(script.Args(env_id=env_id))
        assert problem is not None and message in problem, problem
    assert qsm.check_args(qsm.Args(env_id="QSMCounter-v0")) is None
