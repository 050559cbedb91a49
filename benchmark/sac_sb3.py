"""Stable-Baselines3 SAC (and sb3-contrib's CrossQ) as the baselines next to QSM: same envs, seeds, budgets and tags.

SAC (Haarnoja et al., 2018) from Stable-Baselines3, with its own defaults (Adam 3e-4, automatic entropy tuning,
twin critics, Polyak targets) and the flags below set to match `qsm_continuous_action.py` where the two overlap.
A callback writes `charts/episodic_return`, `charts/episodic_length`, `charts/SPS` and `eval/episodic_return` into
`runs/{env_id}__{exp_name}__{seed}__{time}/`, so `benchmark/plot.py` reads SAC and QSM runs alike. `eval/episodic_return`
is SB3's usual evaluation, the deterministic mean action; `eval/stochastic_episodic_return` samples the policy, as
QSM's evaluation does (one DDPM sample per step).

`--algo crossq` runs CrossQ (Bhatt et al., ICLR 2024) from sb3-contrib through the same wrappers, callback and
evaluation: the library's defaults (Adam 1e-3 with betas (0.5, 0.999), batch-renormalised critics without target
networks, policy_delay 3, automatic entropy) but for our networks' width (256x256 actor and critics; `--library-widths`
keeps the library's 1024-wide critics), the batch size, the warm-up and one update per env step. SAC's own flags are
refused with crossq rather than dropped. Every keyword the model's constructor gets is printed and logged with the run.

Run:  python benchmark/sac_sb3.py --env-id Hopper-v4 --total-timesteps 100000 --learning-starts 5000 --hidden-dim 256
      python benchmark/sac_sb3.py --algo crossq --env-id Hopper-v4 --total-timesteps 100000 --learning-starts 5000
"""

import importlib
import json
import random
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Literal, Optional

import gymnasium as gym
import numpy as np
import torch
import tyro
from sb3_contrib import CrossQ
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from torch.utils.tensorboard import SummaryWriter


@dataclass
class Args:
    exp_name: Optional[str] = None
    """the name of this experiment (the algorithm's name in plots; default `{algo}_sb3`)"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """if toggled, train on the GPU when there is one"""
    progress: bool = True
    """print a progress line every 10 seconds"""

    # Algorithm specific arguments
    algo: Literal["sac", "crossq"] = "sac"
    """SB3's SAC, or sb3-contrib's CrossQ (library defaults but for width, batch size, warm-up and updates per step)"""
    library_widths: bool = False
    """crossq only: keep the library's widths (actor 256x256, critics 1024x1024) instead of ours (256x256 all)"""
    env_id: str = "Hopper-v4"
    """the id of the environment"""
    max_episode_steps: Optional[int] = None
    """override the env's time limit"""
    total_timesteps: int = int(1e6)
    """total timesteps of the experiments"""
    buffer_size: int = int(1e6)
    """the replay memory buffer size (sac only; crossq keeps the library's, also 1e6)"""
    gamma: float = 0.99
    """the discount factor gamma (sac only; crossq keeps the library's, also 0.99)"""
    tau: float = 0.005
    """target smoothing coefficient (sac only)"""
    batch_size: int = 256
    """the batch size of sample from the replay memory"""
    learning_starts: int = int(1e4)
    """timestep to start learning; before it, actions are uniform random"""
    learning_rate: float = 3e-4
    """the learning rate of actor, critics and entropy coefficient (SB3 uses one rate for all; sac only)"""
    hidden_dim: int = 256
    """width of the hidden layers of the actor and the critics (sac only)"""
    num_layers: int = 2
    """number of hidden layers of the actor and the critics (sac only)"""
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


# SAC's flags that crossq leaves at the library's defaults: given with --algo crossq, they would be silently dropped
SAC_ONLY_FLAGS = ("learning_rate", "tau", "gamma", "buffer_size", "hidden_dim", "num_layers")


def refused_flags(args, argv):
    """The flags given that the chosen algorithm does not take: named on the command line, or off their defaults."""
    given = {arg[2:].split("=", 1)[0].replace("-", "_") for arg in argv if arg.startswith("--")}
    names = SAC_ONLY_FLAGS if args.algo == "crossq" else ("library_widths",)
    return [name for name in names if name in given or getattr(args, name) != getattr(Args, name)]


def model_kwargs(args, device):
    """Every keyword the model's constructor gets besides the policy and the env (all of them are logged)."""
    if args.algo == "sac":
        return dict(
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
    # CrossQ: only what differs from the library's defaults or what the comparison fixes; its learning rate, Adam betas,
    # policy_delay, entropy tuning and batch renorm stay the library's
    kwargs = dict(learning_starts=args.learning_starts, batch_size=args.batch_size, train_freq=1, gradient_steps=1)
    if not args.library_widths:  # our networks' width; the library's default critics are 1024 wide
        kwargs["policy_kwargs"] = {"net_arch": {"pi": [256, 256], "qf": [256, 256]}}
    return dict(kwargs, seed=args.seed, device=device)


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
    refused = refused_flags(args, sys.argv[1:])
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise SystemExit(f"sac_sb3.py: error: --algo {args.algo} does not take {flags}")
    args.exp_name = args.exp_name or f"{args.algo}_sb3"
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = "cuda" if args.cuda and torch.cuda.is_available() else "cpu"

    run_name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    writer = SummaryWriter(f"runs/{run_name}")
    unused = SAC_ONLY_FLAGS if args.algo == "crossq" else ()  # crossq's values of these are the library's, not these
    hyperparameters = {key: value for key, value in vars(args).items() if key not in unused}
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % ("\n".join([f"|{key}|{value}|" for key, value in hyperparameters.items()])),
    )

    env = Monitor(make_env(args.env_id, args.max_episode_steps))  # SB3 rescales actions to the Box itself
    algorithm = {"sac": SAC, "crossq": CrossQ}[args.algo]
    kwargs = model_kwargs(args, device)
    print(f'{algorithm.__name__}("MlpPolicy", env, **{kwargs})', flush=True)
    writer.add_text("model_kwargs", f"{algorithm.__module__}.{algorithm.__name__}: {json.dumps(kwargs)}")
    model = algorithm("MlpPolicy", env, **kwargs)
    callback = TensorboardCallback(writer, args)
    model.learn(total_timesteps=args.total_timesteps, callback=callback)
    env.close()
    writer.close()
