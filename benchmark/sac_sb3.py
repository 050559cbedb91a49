"""Stable-Baselines3 SAC as the baseline next to QSM: same envs, seeds, budgets and TensorBoard tags.

SAC (Haarnoja et al., 2018) from Stable-Baselines3, with its own defaults (Adam 3e-4, automatic entropy tuning,
twin critics, Polyak targets) and the flags below set to match `qsm_continuous_action.py` where the two overlap.
A callback writes `charts/episodic_return`, `charts/episodic_length`, `charts/SPS` and `eval/episodic_return` into
`runs/{env_id}__{exp_name}__{seed}__{time}/`, so `benchmark/plot.py` reads SAC and QSM runs alike. `eval/episodic_return`
is SB3's usual evaluation, the deterministic mean action; `eval/stochastic_episodic_return` samples the policy, as
QSM's evaluation does (one DDPM sample per step).

Run:  python benchmark/sac_sb3.py --env-id Hopper-v4 --total-timesteps 100000 --learning-starts 5000 --hidden-dim 256
"""

import importlib
import random
import time
import warnings
from dataclasses import dataclass
from typing import Optional

import gymnasium as gym
import numpy as np
import torch
import tyro
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from torch.utils.tensorboard import SummaryWriter


@dataclass
class Args:
    exp_name: str = "sac_sb3"
    """the name of this experiment (the algorithm's name in plots)"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """if toggled, train on the GPU when there is one"""
    progress: bool = True
    """print a progress line every 10 seconds"""

    # Algorithm specific arguments
    env_id: str = "Hopper-v4"
    """the id of the environment"""
    max_episode_steps: Optional[int] = None
    """override the env's time limit"""
    total_timesteps: int = int(1e6)
    """total timesteps of the experiments"""
    buffer_size: int = int(1e6)
    """the replay memory buffer size"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 0.005
    """target smoothing coefficient"""
    batch_size: int = 256
    """the batch size of sample from the replay memory"""
    learning_starts: int = int(1e4)
    """timestep to start learning; before it, actions are uniform random"""
    learning_rate: float = 3e-4
    """the learning rate of actor, critics and entropy coefficient (SB3 uses one rate for all)"""
    hidden_dim: int = 256
    """width of the hidden layers of the actor and the critics"""
    num_layers: int = 2
    """number of hidden layers of the actor and the critics"""
    eval_frequency: int = int(1e4)
    """evaluate the deterministic policy every this many steps (0: only at the end)"""
    eval_episodes: int = 10
    """the number of episodes of each evaluation"""


class TensorboardCallback(BaseCallback):
    """Writes the tags QSM writes: episodic return and length, SPS after warm-up, periodic evaluation."""

    def __init__(self, writer, args):
        super().__init__()
        self.writer, self.args = writer, args
        self.eval_envs = None
        self.start_time = self.last_print = self.sps_time = time.time()
        self.sps_step = 0
        self.last_return, self.last_eval = float("nan"), float("nan")

    def _on_step(self):
        step = self.num_timesteps  # env steps taken so far
        for info in self.locals["infos"]:
            if "episode" in info:  # Monitor's statistics, present on the step that ends an episode
                self.last_return = float(info["episode"]["r"])
                self.writer.add_scalar("charts/episodic_return", self.last_return, step)
                self.writer.add_scalar("charts/episodic_length", info["episode"]["l"], step)
        if step > self.args.learning_starts and step % 100 == 0:
            now = time.time()
            if self.sps_step >= self.args.learning_starts:  # a full 100-step window of training steps
                self.writer.add_scalar("charts/SPS", (step - self.sps_step) / max(now - self.sps_time, 1e-9), step)
            self.sps_step, self.sps_time = step, now
        if (self.args.eval_frequency > 0 and step % self.args.eval_frequency == 0) or step == self.args.total_timesteps:
            eval_start = time.time()
            self.evaluate(step)
            self.sps_time += time.time() - eval_start  # evaluation time does not count against the training SPS
        if self.args.progress and time.time() - self.last_print >= 10.0:
            self.last_print = time.time()
            sps = int(step / (self.last_print - self.start_time))
            print(
                f"step {step}/{self.args.total_timesteps} | SPS {sps} | last return {self.last_return:.1f} "
                f"| last eval {self.last_eval:.1f}",
                flush=True,
            )
        return True

    def evaluate(self, step):
        modes = {"eval/episodic_return": True, "eval/stochastic_episodic_return": False}  # tag -> deterministic
        if self.eval_envs is None:  # one env per mode, seeded alike: the deterministic one sees what it saw without the other
            self.eval_envs = {tag: Monitor(make_env(self.args.env_id, self.args.max_episode_steps)) for tag in modes}
            for env in self.eval_envs.values():
                env.reset(seed=self.args.seed + 10_000)
        for tag, deterministic in modes.items():
            with torch.random.fork_rng(devices=[]):  # sampled actions must not move the training's random stream
                returns, _ = evaluate_policy(
                    self.model, self.eval_envs[tag], self.args.eval_episodes, deterministic, return_episode_rewards=True
                )
            self.writer.add_scalar(tag, float(np.mean(returns)), step)
            self.last_eval = float(np.mean(returns)) if deterministic else self.last_eval


def make_env(env_id, max_episode_steps=None):
    if env_id.startswith("dm_control/"):  # DeepMind Control Suite tasks, registered by Shimmy on first use (as in QSM)
        warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing")  # dm_control's GLFW probe
        gym.register_envs(importlib.import_module("shimmy"))
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = gym.make(env_id, **kwargs)
    if isinstance(env.observation_space, gym.spaces.Dict):  # dm_control: dict of arrays -> one flat vector, as in QSM
        env = gym.wrappers.FlattenObservation(env)
    return env


if __name__ == "__main__":
    args = tyro.cli(Args)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = "cuda" if args.cuda and torch.cuda.is_available() else "cpu"

    run_name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    writer = SummaryWriter(f"runs/{run_name}")
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % ("\n".join([f"|{key}|{value}|" for key, value in vars(args).items()])),
    )

    env = Monitor(make_env(args.env_id, args.max_episode_steps))  # SB3 rescales actions to the Box itself
    model = SAC(
        "MlpPolicy",
        env,
        learning_rate=args.learning_rate,
        buffer_size=args.buffer_size,
        learning_starts=args.learning_starts,
        batch_size=args.batch_size,
        tau=args.tau,
        gamma=args.gamma,
        train_freq=1,
        gradient_steps=1,  # one update per env step, as QSM
        policy_kwargs={"net_arch": [args.hidden_dim] * args.num_layers},
        seed=args.seed,
        device=device,
        verbose=0,
    )
    callback = TensorboardCallback(writer, args)
    model.learn(total_timesteps=args.total_timesteps, callback=callback)
    env.close()
    writer.close()
