"""Q-Score Matching (QSM): a diffusion-model policy trained off-policy from rewards.

The policy pi(a|s) is a small DDPM over actions, conditioned on the state. QSM trains its denoiser eps_theta(s, a_t, t)
by regression onto the action-gradient of a learned Q-function at noisy actions,
    eps_theta(s, a_t, t) ~= -M_q * grad_a Q(s, a_t),
so that denoising moves actions uphill on Q. No gradient flows through the sampling chain, and the policy stays
stochastic (it can be multi-modal). Twin critics are trained as in TD3/SAC, with a DDPM sample as the next action.
The defaults are the paper's recipe, as the authors' code runs it.

Paper: Psenka, Escontrela, Abbeel, Ma, "Learning a Diffusion Model Policy from Rewards via Q-Score Matching",
ICML 2024, https://arxiv.org/abs/2312.11752

Train:     python qsm_continuous_action.py --env-id Hopper-v4 --cuda
Evaluate:  python benchmark/evaluate_model.py runs/<run_name>/qsm_continuous_action.qsm_model
"""

import copy
import importlib
import json
import math
import os
import random
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import tyro
from torch.utils.tensorboard import SummaryWriter


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """if toggled, train on the GPU (falls back to the CPU with a warning when there is none)"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases (needs `pip install wandb`)"""
    wandb_project_name: str = "qsm"
    """the wandb's project name"""
    wandb_entity: Optional[str] = None
    """the entity (team) of wandb's project"""
    capture_video: bool = False
    """whether to capture videos of the agent performances (check out `videos` folder)"""
    save_model: bool = False
    """whether to save the model (denoiser, critics, flags) into `runs/{run_name}`"""
    progress: bool = True
    """print a progress line (recent steps/s, time left, latest returns) every 10 seconds"""
    checkpoint_every: int = 0
    """write a checkpoint into the run folder at the first episode end after every this many steps (0: never)"""
    resume: Optional[str] = None
    """a checkpoint of `--checkpoint-every`: continue that run in its folder (the flags of the algorithm must match)"""

    # Algorithm specific arguments
    env_id: str = "Hopper-v4"
    """the id of the environment (any Gymnasium env with a bounded Box action space)"""
    total_timesteps: int = int(1e6)
    """total timesteps of the experiments"""
    buffer_size: int = int(1e6)
    """the replay memory buffer size"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 0.005
    """target smoothing coefficient (Polyak averaging of the target critics, every step)"""
    batch_size: int = 256
    """the batch size of sample from the replay memory"""
    learning_starts: int = int(1e4)
    """timestep to start learning; before it, actions are uniform random"""
    critic_lr: float = 3e-4
    """the learning rate of the critics' Adam optimizer"""
    actor_lr: float = 3e-4
    """the initial learning rate of the denoiser's Adam optimizer"""
    actor_lr_decay_steps: int = int(2e6)
    """the denoiser's learning rate follows a cosine decay to 0 over this many updates"""
    diffusion_steps: int = 5
    """T, the number of DDPM steps of the policy"""
    m_q: float = 50.0
    """M_q, the scale of the Q-score target: the denoiser regresses onto -M_q * grad_a Q"""
    temperature: float = 1.0
    """scale of the noise added inside the reverse DDPM chain"""
    exploration_noise: float = 0.1
    """std of the Gaussian noise added to the DDPM sample when acting and in the critic target"""
    hidden_dim: int = 512
    """width of the hidden layers of the denoiser and of the critics"""
    num_layers: int = 2
    """number of hidden layers of the denoiser and of the critics"""
    critic_hidden_dim: Optional[int] = None
    """width of the critics' hidden layers (default: --hidden-dim); harder tasks use wider critics"""
    max_episode_steps: Optional[int] = None
    """override the env's time limit (episodes then end by truncation after this many steps)"""
    eval_frequency: int = int(1e4)
    """evaluate the policy (DDPM sample, no exploration noise) every this many steps (0: only at the end)"""
    eval_episodes: int = 10
    """the number of episodes of each evaluation"""

    # Beyond the paper (off by default; README's recipe: --normalize-q-grad --box-prior --m-q 1 --crossq)
    normalize_q_grad: bool = False
    """beyond the paper: divide grad_a Q in the actor target by its running RMS, floored at 1/10 of its peak (M_q unitless)"""
    box_prior: bool = False
    """beyond the paper: add the eps of a uniform prior on the action box to the actor target"""
    crossq: bool = False
    """beyond the paper: CrossQ critics (Bhatt et al., 2024): batch norm, no target networks, Adam beta1 = 0.5"""


def make_env(env_id, seed, idx, capture_video, run_name, max_episode_steps=None):
    def thunk():
        if env_id.startswith("dm_control/"):  # DeepMind Control Suite tasks, registered by Shimmy on first use
            warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing")  # dm_control's GLFW probe
            gym.register_envs(importlib.import_module("shimmy"))
        video = capture_video and idx == 0
        env = gym.make(env_id, render_mode="rgb_array" if video else None, max_episode_steps=max_episode_steps)
        if video:
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}")
        if isinstance(env.observation_space, gym.spaces.Dict):  # dm_control: dict of arrays -> one flat vector
            env = gym.wrappers.FlattenObservation(env)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        # the policy acts in [-1, 1]^act_dim; the wrapper maps that onto the env's bounds
        unit = np.ones(env.action_space.shape, dtype=np.float32)
        env = gym.wrappers.RescaleAction(env, -unit, unit)
        env.action_space.seed(seed)
        return env

    return thunk


def mlp(in_dim, hidden_dim, num_layers, out_dim, activation, norm=None):
    """(Linear, activation) x num_layers, then Linear; `norm(width)`, if given, on the input and after each activation."""
    dims = [in_dim] + [hidden_dim] * num_layers
    layers = [norm(in_dim)] if norm else []
    for i, o in zip(dims, dims[1:]):
        layers += [nn.Linear(i, o), activation()] + ([norm(o)] if norm else [])
    return nn.Sequential(*layers, nn.Linear(dims[-1], out_dim))


def xavier_init(module):
    # the authors' code initialises every layer, critics included, with Xavier-uniform weights and zero biases
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class QNetwork(nn.Module):
    """Q(s, a): concat[s, a] -> hidden -> ... -> 1, ReLU. With `batch_norm` (--crossq), batch norm on the input and after
    each hidden layer: on the batch's statistics in training mode, on their running averages in evaluation mode."""

    def __init__(self, obs_dim, act_dim, hidden_dim=512, num_layers=2, batch_norm=False):
        super().__init__()
        # momentum and epsilon of CrossQ's batch renorm, which is plain batch norm for its first 100k updates
        norm = (lambda width: nn.BatchNorm1d(width, momentum=0.01, eps=1e-3)) if batch_norm else None
        self.net = mlp(obs_dim + act_dim, hidden_dim, num_layers, 1, nn.ReLU, norm)
        self.apply(xavier_init)

    def forward(self, obs, actions):
        return self.net(torch.cat([obs, actions], -1))  # (B, 1)


class FourierFeatures(nn.Module):
    """Learnable Fourier features of the step index t: [cos(2 pi t w), sin(2 pi t w)], w ~ N(0, 0.2^2)."""

    def __init__(self, out_dim=64, std=0.2):
        super().__init__()
        self.w = nn.Parameter(torch.randn(1, out_dim // 2) * std)

    def forward(self, t):  # t: (B, 1) float, the 0-based step index, not normalised
        f = 2 * math.pi * t * self.w
        return torch.cat([torch.cos(f), torch.sin(f)], -1)


class Denoiser(nn.Module):
    """eps_theta(s, a_t, t): predicts the noise in a_t; QSM trains it to point against grad_a Q."""

    def __init__(self, obs_dim, act_dim, hidden_dim=512, num_layers=2, time_dim=64, time_hidden=128):
        super().__init__()
        self.time_embed = nn.Sequential(
            FourierFeatures(time_dim),
            nn.Linear(time_dim, time_hidden),
            nn.Mish(),
            nn.Linear(time_hidden, time_hidden),  # no activation after the time MLP's last layer
        )
        self.net = mlp(act_dim + obs_dim + time_hidden, hidden_dim, num_layers, act_dim, nn.Mish)
        self.act_dim = act_dim
        self.apply(xavier_init)  # FourierFeatures.w keeps its N(0, 0.2^2) init

    def forward(self, obs, noisy_actions, t):  # t: (B,) integer step index in 0..T-1
        cond = self.time_embed(t.float().unsqueeze(-1))
        return self.net(torch.cat([noisy_actions, obs, cond], -1))


def ddpm_schedule(T, device="cpu"):
    """The authors' variance-preserving schedule: betas, alphas = 1 - betas, alpha_bars = cumprod(alphas), where entry i
    belongs to step t = i + 1 and alpha_t = exp(-b_min / T - (b_max - b_min) (2t - 1) / (2 T^2)), b_min = 0.1, b_max = 10."""
    t = np.arange(1, T + 1, dtype=np.float64)
    alphas = np.exp(-0.1 / T - 0.5 * (10.0 - 0.1) * (2 * t - 1) / T**2)
    as_tensor = lambda x: torch.tensor(x, dtype=torch.float32, device=device)  # noqa: E731
    return {"betas": as_tensor(1 - alphas), "alphas": as_tensor(alphas), "alpha_bars": as_tensor(np.cumprod(alphas))}


@torch.no_grad()
def ddpm_sample(eps_theta, obs, schedule, temperature=1.0, generator=None):
    """The reverse DDPM chain, batched over states: x_T ~ N(0, I), then T denoising steps, each clipped to [-1, 1]."""
    betas, alphas, alpha_bars = schedule["betas"], schedule["alphas"], schedule["alpha_bars"]
    noise = lambda: torch.randn(obs.shape[0], eps_theta.act_dim, device=obs.device, generator=generator)  # noqa: E731
    x = noise()
    for i in reversed(range(len(betas))):
        eps = eps_theta(obs, x, torch.full((obs.shape[0],), i, device=obs.device, dtype=torch.long))
        # x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t) + sqrt(beta_t) * temperature * z
        x = (x - betas[i] / torch.sqrt(1 - alpha_bars[i]) * eps) / torch.sqrt(alphas[i])
        if i > 0:
            x = x + torch.sqrt(betas[i]) * temperature * noise()
        x = x.clamp(-1.0, 1.0)
    return x


class ReplayBuffer:
    """A numpy ring buffer of (s, a, r, s', terminated); actions are stored in the policy's [-1, 1] space."""

    def __init__(self, size, obs_dim, act_dim, seed=0):
        self.size, self.pos, self.full = size, 0, False
        self.obs, self.next_obs = np.zeros((2, size, obs_dim), dtype=np.float32)
        self.actions = np.zeros((size, act_dim), dtype=np.float32)
        self.rewards, self.terminations = np.zeros((2, size, 1), dtype=np.float32)
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return self.size if self.full else self.pos

    def add(self, obs, next_obs, actions, rewards, terminations):  # one env's step, each with a leading axis of 1
        self.obs[self.pos], self.next_obs[self.pos], self.actions[self.pos] = obs, next_obs, actions
        self.rewards[self.pos], self.terminations[self.pos] = rewards, terminations
        self.pos, self.full = (self.pos + 1) % self.size, self.full or self.pos + 1 == self.size

    def sample(self, batch_size, device="cpu"):
        idx = self.rng.integers(0, len(self), size=batch_size)
        fields = (self.obs, self.actions, self.rewards, self.next_obs, self.terminations)
        return tuple(torch.as_tensor(f[idx], device=device) for f in fields)


def critic_loss(critics, critic_targets, eps_theta, schedule, batch, args):
    """TD loss of each critic; the next action is a fresh DDPM sample plus exploration noise."""
    obs, actions, rewards, next_obs, terminations = batch
    with torch.no_grad():
        sampled_actions = ddpm_sample(eps_theta, next_obs, schedule, args.temperature)
        next_actions = (sampled_actions + args.exploration_noise * torch.randn_like(sampled_actions)).clamp(-1.0, 1.0)
    if args.crossq:
        q_values, q_next = crossq_values(critics, obs, actions, next_obs, next_actions)
    else:
        with torch.no_grad():
            q_next = [q_targ(next_obs, next_actions) for q_targ in critic_targets]
        q_values = [q(obs, actions) for q in critics]
    # only a true termination stops the bootstrap: a time-limit truncation is not the end of the task
    q_target = (rewards + args.gamma * (1.0 - terminations) * torch.min(*q_next)).detach()
    return [F.mse_loss(v, q_target) for v in q_values], q_values, sampled_actions


def crossq_values(critics, obs, actions, next_obs, next_actions):
    """--crossq (beyond the paper): no target critics; (s, a) and (s', a') pass as one batch, so batch norm sees both."""
    both = torch.cat([obs, next_obs]), torch.cat([actions, next_actions])
    q_values, q_next = zip(*(q.train()(*both).chunk(2) for q in critics))
    for q in critics:
        q.eval()  # elsewhere (the actor's grad_a Q), batch norm uses its running averages
    return q_values, q_next


def actor_loss(eps_theta, critics, schedule, obs, actions, m_q, q_grad_rms=None, box_prior=False):
    """The QSM loss: at noisy replay actions a_t, regress eps_theta(s, a_t, t) onto -M_q * grad_a Q(s, a_t).
    Beyond the paper: `q_grad_rms` (--normalize-q-grad) divides grad_a Q by its running RMS; `box_prior` adds its eps."""
    alpha_bars = schedule["alpha_bars"]
    t = torch.randint(0, len(alpha_bars), (obs.shape[0],), device=obs.device)
    ab = alpha_bars[t].unsqueeze(-1)
    noisy_actions = (torch.sqrt(ab) * actions + torch.sqrt(1 - ab) * torch.randn_like(actions)).requires_grad_(True)
    q_mean = sum(q(obs, noisy_actions) for q in critics) / len(critics)
    # only the input gradient is needed: leave the critics' parameter gradients alone
    (q_grad,) = torch.autograd.grad(q_mean.sum(), noisy_actions)
    eps = eps_theta(obs, noisy_actions.detach(), t)
    # eps points against the score, so the target is -M_q * grad_a Q (the paper's text writes +; the code uses -)
    scale = m_q
    if q_grad_rms is not None:
        scale = m_q / q_grad_rms.update(q_grad)
    target = -scale * q_grad
    if box_prior:
        target = target + box_prior_eps(noisy_actions.detach(), ab)
    loss = ((eps - target) ** 2).mean()
    return loss, q_grad, eps.detach()


def qsm_update(batch, eps_theta, critics, critic_targets, optimizers, schedule, args, q_grad_rms=None):
    """One training step: critic step, then actor step with the updated critics, then Polyak-averaged targets."""
    q_optimizer, actor_optimizer = optimizers
    qf_losses, q_values, sampled_actions = critic_loss(critics, critic_targets, eps_theta, schedule, batch, args)
    q_optimizer.zero_grad()
    sum(qf_losses).backward()
    q_optimizer.step()

    a_loss, q_grad, eps = actor_loss(eps_theta, critics, schedule, *batch[:2], args.m_q, q_grad_rms, args.box_prior)
    actor_optimizer.zero_grad()
    a_loss.backward()
    actor_optimizer.step()

    if not args.crossq:  # --crossq has no target critics
        with torch.no_grad():
            for q, q_targ in zip(critics, critic_targets):
                for p, p_targ in zip(q.parameters(), q_targ.parameters()):
                    p_targ.lerp_(p, args.tau)
    metrics = {
        **{f"losses/qf{i}_loss": loss.detach() for i, loss in zip("12", qf_losses)},
        **{f"losses/qf{i}_values": v.detach().mean() for i, v in zip("12", q_values)},
        "losses/actor_loss": a_loss.detach(),
        "qsm/q_grad_norm": q_grad.norm(dim=-1).mean(),
        "qsm/eps_norm": eps.norm(dim=-1).mean(),
        "qsm/eps_q_grad_cosine": F.cosine_similarity(eps, -q_grad, dim=-1).mean(),
        # share of the DDPM samples' components (before exploration noise) at the bounds: near 1 means bang-bang
        "qsm/action_at_bounds_frac": (sampled_actions.abs() >= 0.999).float().mean(),
    }
    if q_grad_rms is not None:
        metrics["qsm/q_grad_rms"] = q_grad_rms.value
    return metrics


# Beyond the paper: the changes to the actor target that won in our measurements (docs/beyond_the_paper.md)
class RunningRMS:
    """--normalize-q-grad: the RMS of grad_a Q over batch and dimensions, as an EMA of its mean square bias-corrected like
    Adam's moments. One scalar for all dimensions: dividing by it changes the target's size, not its direction. Like
    grad_a Q, it scales with the rewards and ignores a constant added to them."""

    def __init__(self, decay=0.99):
        self.decay, self.mean_square, self.weight, self.peak, self.value = decay, 0.0, 0.0, 0.0, None

    def update(self, x):
        self.mean_square = self.decay * self.mean_square + (1 - self.decay) * x.detach().pow(2).mean()
        self.weight = self.decay * self.weight + (1 - self.decay)
        rms = torch.sqrt(self.mean_square / self.weight)
        self.peak = torch.maximum(torch.as_tensor(self.peak, device=rms.device), rms)
        # a relative floor: where a solved task leaves Q flat in a, the target shrinks instead of amplifying the critic's noise
        self.value = torch.maximum(rms, (0.1 * self.peak).clamp_min(torch.finfo(rms.dtype).tiny))
        return self.value


def box_prior_eps(noisy_actions, alpha_bar):
    """--box-prior: the eps of a uniform prior on the box, -sqrt(1 - alpha_bar) * grad log p_t(a_t), a_0 ~ U[-1, 1]^d.
    Per dimension p_t(x) ~ Phi(A) - Phi(B), A = (s - x) / sigma, B = (-s - x) / sigma, s = sqrt(alpha_bar), sigma =
    sqrt(1 - alpha_bar): eps = (phi(A) - phi(B)) / (Phi(A) - Phi(B)), taken at |x| in log space to stay finite."""
    s, sigma, x = torch.sqrt(alpha_bar), torch.sqrt(1 - alpha_bar), noisy_actions.abs()
    a, b = (s - x) / sigma, (-s - x) / sigma
    log_cdf_a, log_cdf_b = torch.special.log_ndtr(a), torch.special.log_ndtr(b)
    diff = log_cdf_b - log_cdf_a  # < 0; log(1 - e^diff), accurate for diff near 0 and far below it
    log_mass = log_cdf_a + torch.where(diff > -math.log(2), torch.log(-torch.expm1(diff)), torch.log1p(-torch.exp(diff)))
    log_pdf = lambda z: -0.5 * z**2 - 0.5 * math.log(2 * math.pi)  # noqa: E731
    return torch.sign(noisy_actions) * (torch.exp(log_pdf(a) - log_mass) - torch.exp(log_pdf(b) - log_mass))


def evaluate(eps_theta, schedule, args, seed, device, max_steps=100_000):
    """Returns of `args.eval_episodes` episodes side by side, acting with the DDPM sample (no exploration noise) drawn by
    its own generator, so that evaluating leaves the training run alone. Episodes still running after `max_steps` are cut."""
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, seed + i, 1, False, "", args.max_episode_steps) for i in range(args.eval_episodes)]
    )
    generator = torch.Generator(device).manual_seed(seed)
    obs, _ = envs.reset(seed=seed)
    returns, done = np.zeros(args.eval_episodes), np.zeros(args.eval_episodes, dtype=bool)
    for _ in range(max_steps):
        obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
        actions = ddpm_sample(eps_theta, obs, schedule, args.temperature, generator).cpu().numpy()
        obs, rewards, terminations, truncations, _ = envs.step(actions)
        returns += np.where(done, 0.0, rewards)
        done |= terminations | truncations
        if done.all():
            break
    else:
        print(f"warning: evaluation cut after {max_steps} steps, {np.sum(~done)} of {args.eval_episodes} episodes unfinished "
              f"({args.env_id} has no time limit? give --max-episode-steps)", file=sys.stderr)  # fmt: skip
    envs.close()
    return returns


# Input checking: what a user needs around the algorithm, not part of it
def check_args(args):
    """One readable line for the first flag out of range or an env this script cannot train on; None if all is well."""
    critic_width = 1 if args.critic_hidden_dim is None else args.critic_hidden_dim
    rules = [
        (args.diffusion_steps >= 1, "--diffusion-steps (T) must be >= 1"),
        (min(args.total_timesteps, args.buffer_size, args.batch_size) >= 1, "step counts and sizes must be >= 1"),
        (min(args.hidden_dim, args.num_layers, critic_width) >= 1, "network sizes must be >= 1"),
        (args.batch_size <= args.buffer_size, "--batch-size must not exceed --buffer-size"),
        (0 <= args.learning_starts < args.total_timesteps, "--learning-starts must be in [0, --total-timesteps)"),
        (0.0 <= args.gamma <= 1.0 and 0.0 < args.tau <= 1.0, "--gamma must be in [0, 1] and --tau in (0, 1]"),
        (min(args.critic_lr, args.actor_lr) > 0 and args.actor_lr_decay_steps >= 1, "learning rates must be > 0"),
        (args.m_q > 0, "--m-q must be > 0"),
        (min(args.temperature, args.exploration_noise) >= 0, "--temperature and --exploration-noise must be >= 0"),
        (args.eval_frequency >= 0 and args.eval_episodes >= 1, "--eval-frequency must be >= 0, --eval-episodes >= 1"),
        (args.max_episode_steps is None or args.max_episode_steps >= 1, "--max-episode-steps must be >= 1"),
        (args.checkpoint_every >= 0, "--checkpoint-every must be >= 0"),
    ]
    if problems := [message for ok, message in rules if not ok]:
        return problems[0]
    try:
        env = make_env(args.env_id, args.seed, 1, False, "")()  # idx 1: no video
        env.close()
    except (gym.error.Error, ImportError, TypeError, ValueError) as e:  # unknown id, no dm_control, not a bounded Box
        return f"cannot train on {args.env_id!r}: {e}"
    if len(env.observation_space.shape) != 1:  # a dict of Boxes (dm_control) is flattened by make_env
        return f"{args.env_id} has observation space {env.observation_space}; this script needs a flat Box or a dict of Boxes"
    if args.capture_video:
        try:
            probe = gym.make(args.env_id, render_mode="rgb_array")  # the raw env: the one RecordVideo wraps
            probe.reset(seed=args.seed)
            assert probe.render() is not None, "render() returned no frame"
            probe.close()
        except Exception as e:  # MuJoCo without a headless GL
            return f"--capture-video: cannot render {args.env_id} (MUJOCO_GL={os.getenv('MUJOCO_GL')}): {e}; try egl or osmesa"


def fail(message, code=2):
    print(f"{os.path.basename(__file__)}: error: {message}", file=sys.stderr)
    sys.exit(code)


# Checkpoints (--checkpoint-every, --resume): all that a continuation needs, taken at an episode end, with the env's RNGs
# as they were before the step that reset it: with checkpoints, resumed or not, a run repeats the plain run bit for bit.
RESUMABLE = {"total_timesteps", "checkpoint_every", "resume", "save_model", "progress", "track", "wandb_project_name",
             "wandb_entity", "capture_video", "cuda", "torch_deterministic"}  # flags that may change on --resume  # fmt: skip
BUFFER_FIELDS = ("obs", "next_obs", "actions", "rewards", "terminations")


def env_rngs(envs, states=None):
    """The states of each env's RNG (dm_control: the task's RandomState) and its action space's; or set them to `states`."""
    rngs = [rng for env in envs.envs for rng in (env.unwrapped.np_random, env.action_space.np_random)]
    if states is None:
        return [rng.get_state() if isinstance(rng, np.random.RandomState) else rng.bit_generator.state for rng in rngs]
    for rng, state in zip(rngs, states):
        if isinstance(rng, np.random.RandomState):
            rng.set_state(tuple(state))
        else:
            rng.bit_generator.state = state


def write_checkpoint(path, modules, q_grad_rms, rb, step, progress, args, env_states):
    """`modules`: name -> networks, optimizers, scheduler. Atomic: a kill mid-write leaves the previous checkpoint whole."""
    rngs = {"python": random.getstate(), "numpy": np.random.get_state(legacy=False), "buffer": rb.rng.bit_generator.state,
            "env": env_states}  # fmt: skip
    buffer = {"pos": rb.pos, "full": rb.full, **{f: torch.from_numpy(getattr(rb, f)[: len(rb)]) for f in BUFFER_FIELDS}}
    checkpoint = {"args": vars(args), "step": step, "progress": progress, "torch_rng": torch.get_rng_state(),
                  "rngs": json.dumps(rngs, default=np.ndarray.tolist), "q_grad_rms": q_grad_rms and vars(q_grad_rms),
                  "modules": {name: module.state_dict() for name, module in modules.items()}, "buffer": buffer}  # fmt: skip
    torch.save(checkpoint, path + ".tmp")
    os.replace(path + ".tmp", path)


def read_checkpoint(args, device):
    """The --resume checkpoint, once it is known to continue a run of these flags; else one line and exit 2."""
    try:  # weights_only: tensors and plain containers, never code from the file
        checkpoint = torch.load(args.resume, map_location=device, weights_only=True)
        saved = dict(checkpoint["args"])
    except Exception as e:
        fail(f"--resume: {args.resume!r} is not a checkpoint of --checkpoint-every ({type(e).__name__}); nothing was run")
    if changed := [name for name, value in vars(args).items() if name not in RESUMABLE and saved.get(name) != value]:
        fail(f"--resume: --{changed[0].replace('_', '-')} is {getattr(args, changed[0])!r}, the checkpoint's run has "
             f"{saved.get(changed[0])!r}")  # fmt: skip
    return checkpoint


def restore_checkpoint(checkpoint, modules, q_grad_rms, rb, envs):
    """Everything back in place; returns the step to go on from and the progress line's latest returns."""
    for name, module in modules.items():
        module.load_state_dict(checkpoint["modules"][name])
    if q_grad_rms is not None:
        vars(q_grad_rms).update(checkpoint["q_grad_rms"])
    for f in BUFFER_FIELDS:
        getattr(rb, f)[: len(checkpoint["buffer"][f])] = checkpoint["buffer"][f].numpy()
    rb.pos, rb.full = checkpoint["buffer"]["pos"], checkpoint["buffer"]["full"]
    rngs = json.loads(checkpoint["rngs"])
    random.setstate((rngs["python"][0], tuple(rngs["python"][1]), rngs["python"][2]))
    np.random.set_state(rngs["numpy"])
    rb.rng.bit_generator.state = rngs["buffer"]
    env_rngs(envs, rngs["env"])
    torch.set_rng_state(checkpoint["torch_rng"])
    return checkpoint["step"], checkpoint["progress"]


if __name__ == "__main__":
    args = tyro.cli(Args)
    if args.capture_video and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless: render MuJoCo through EGL unless told otherwise
    if problem := check_args(args):
        fail(problem)
    if args.cuda and not torch.cuda.is_available():
        print("warning: --cuda was given but no GPU is available; running on the CPU", file=sys.stderr)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    checkpoint = read_checkpoint(args, device) if args.resume else None

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic

    run_name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    if args.track:
        import wandb

        wandb_kwargs = dict(sync_tensorboard=True, config=vars(args), name=run_name, monitor_gym=True, save_code=True)
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, **wandb_kwargs)
    run_dir = os.path.dirname(args.resume) if checkpoint else f"runs/{run_name}"
    writer = SummaryWriter(run_dir, purge_step=checkpoint and checkpoint["step"])  # TensorBoard drops what came after it
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))

    # env setup. SAME_STEP autoreset: an ending step returns the reset observation, the true last one in infos["final_obs"]
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, args.seed, 0, args.capture_video, run_name, args.max_episode_steps)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs_dim, act_dim = envs.single_observation_space.shape[0], envs.single_action_space.shape[0]

    eps_theta = Denoiser(obs_dim, act_dim, args.hidden_dim, args.num_layers).to(device)
    critic_width = args.critic_hidden_dim or args.hidden_dim
    qf1, qf2 = (QNetwork(obs_dim, act_dim, critic_width, args.num_layers, args.crossq).to(device) for _ in "12")
    qf1_target, qf2_target = copy.deepcopy(qf1), copy.deepcopy(qf2)
    critics, critic_targets = (qf1, qf2), (qf1_target, qf2_target)
    q_betas = (0.5 if args.crossq else 0.9, 0.999)  # CrossQ's beta1
    q_optimizer = optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=args.critic_lr, betas=q_betas)
    actor_optimizer = optim.Adam(eps_theta.parameters(), lr=args.actor_lr)
    optimizers = (q_optimizer, actor_optimizer)
    cosine = lambda step, d=args.actor_lr_decay_steps: 0.5 * (1 + math.cos(math.pi * min(step, d) / d))  # noqa: E731
    actor_scheduler = optim.lr_scheduler.LambdaLR(actor_optimizer, cosine)
    schedule = ddpm_schedule(args.diffusion_steps, device)
    q_grad_rms = RunningRMS() if args.normalize_q_grad else None

    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, seed=args.seed)
    modules = dict(eps_theta=eps_theta, qf1=qf1, qf2=qf2, qf1_target=qf1_target, qf2_target=qf2_target,
                   q_optimizer=q_optimizer, actor_optimizer=actor_optimizer, actor_scheduler=actor_scheduler)  # fmt: skip
    start_step, last_return, last_eval = 0, float("nan"), float("nan")  # the progress line's latest returns
    if checkpoint:
        start_step, (last_return, last_eval) = restore_checkpoint(checkpoint, modules, q_grad_rms, rb, envs)
    ckpt_path, next_checkpoint = f"{run_dir}/{args.exp_name}.qsm_checkpoint", start_step + args.checkpoint_every
    stop = []  # SIGUSR2 (Slurm's notice before a time limit) or SIGTERM: checkpoint at the next episode end and exit 75
    for signum in (signal.SIGUSR2, signal.SIGTERM) if args.checkpoint_every else ():
        signal.signal(signum, lambda signum, frame: stop.append(signum))
    sps_time = last_print = time.time()
    sps_step = print_step = start_step

    # TRY NOT TO MODIFY: start the game
    obs, _ = envs.reset(seed=None if checkpoint else args.seed)  # a resumed run resets from the checkpoint's env RNGs
    for global_step in range(start_step, args.total_timesteps):
        # ALGO LOGIC: put action logic here
        if global_step < args.learning_starts:
            actions = np.random.uniform(-1.0, 1.0, size=(1, act_dim)).astype(np.float32)
        else:
            actions = ddpm_sample(eps_theta, torch.as_tensor(obs, device=device).float(), schedule, args.temperature)
            actions = (actions + args.exploration_noise * torch.randn_like(actions)).clamp(-1.0, 1.0).cpu().numpy()

        env_states = env_rngs(envs) if args.checkpoint_every and (global_step + 1 >= next_checkpoint or stop) else None

        # TRY NOT TO MODIFY: execute the game and log data.
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)

        if "final_info" in infos:
            for i in np.flatnonzero(infos["final_info"]["_episode"]):
                last_return = float(infos["final_info"]["episode"]["r"][i])
                writer.add_scalar("charts/episodic_return", last_return, global_step)
                writer.add_scalar("charts/episodic_length", infos["final_info"]["episode"]["l"][i], global_step)

        # TRY NOT TO MODIFY: save data to replay buffer; at an episode end, the true final observation, not the reset one
        real_next_obs = next_obs.copy()
        for i in np.flatnonzero(infos.get("_final_obs", [])):
            real_next_obs[i] = infos["final_obs"][i]
        rb.add(obs, real_next_obs, actions, rewards, terminations)
        obs = next_obs

        # ALGO LOGIC: training.
        if global_step >= args.learning_starts:
            batch = rb.sample(args.batch_size, device)
            metrics = qsm_update(batch, eps_theta, critics, critic_targets, optimizers, schedule, args, q_grad_rms)
            actor_scheduler.step()

            losses = torch.stack([metrics["losses/qf1_loss"], metrics["losses/qf2_loss"], metrics["losses/actor_loss"]])
            if not torch.isfinite(losses).all():
                writer.close()
                fail(f"non-finite loss at global step {global_step} (qf1, qf2, actor: {losses.tolist()}); "
                     "try lower learning rates or a smaller --m-q", code=1)  # fmt: skip

            if global_step % 100 == 0:
                for tag, value in metrics.items():
                    writer.add_scalar(tag, value.item(), global_step)
                writer.add_scalar("charts/learning_rate", actor_scheduler.get_last_lr()[0], global_step)
                writer.add_scalar("charts/SPS", (global_step - sps_step) / max(time.time() - sps_time, 1e-9), global_step)
                sps_step, sps_time = global_step, time.time()

        if global_step + 1 == args.total_timesteps or args.eval_frequency and (global_step + 1) % args.eval_frequency == 0:
            eval_start = time.time()
            last_eval = float(evaluate(eps_theta, schedule, args, args.seed + 10_000, device).mean())
            writer.add_scalar("eval/episodic_return", last_eval, global_step)
            sps_time += time.time() - eval_start  # evaluation time does not count against the training SPS

        if args.progress and time.time() - last_print >= 10.0:  # the rate of the last 10 s, evaluations included
            rate = (global_step + 1 - print_step) / (time.time() - last_print)
            print_step, last_print = global_step + 1, time.time()
            print(f"step {global_step + 1}/{args.total_timesteps} | {rate:.0f} steps/s | "
                  f"{(args.total_timesteps - global_step - 1) / rate / 60:.0f} min left | "
                  f"last return {last_return:.1f} | last eval {last_eval:.1f}", flush=True)  # fmt: skip

        if env_states and "final_obs" in infos:
            writer.flush()  # every curve up to here is on disk before the checkpoint says so
            write_checkpoint(ckpt_path, modules, q_grad_rms, rb, global_step + 1, [last_return, last_eval], args, env_states)
            next_checkpoint = global_step + 1 + args.checkpoint_every
            if stop:
                print(f"stopped by signal {stop[0]} at step {global_step + 1}; continue with --resume {ckpt_path}")
                sys.exit(75)

    if args.save_model:
        model_path = f"{run_dir}/{args.exp_name}.qsm_model"
        bounds = envs.envs[0].unwrapped.action_space  # the env's own action bounds, which [-1, 1] is mapped onto
        nets = {"eps_theta": eps_theta.state_dict(), "qf1": qf1.state_dict(), "qf2": qf2.state_dict()}
        dims = {"obs_dim": obs_dim, "act_dim": act_dim, "action_low": bounds.low.tolist(), "action_high": bounds.high.tolist()}
        torch.save({"args": vars(args), **dims, **nets}, model_path)
        print(f"model saved to {model_path}")

    envs.close()
    writer.close()
