"""Q-Score Matching (QSM): a diffusion-model policy trained off-policy from rewards.

The policy pi(a|s) is a small DDPM over actions, conditioned on the state. Its denoiser eps_theta(s, a_t, t) is
trained by regression onto the action-gradient of a learned Q-function at noisy actions,
    eps_theta(s, a_t, t) ~= -M_q * grad_a Q(s, a_t),
so that denoising moves actions uphill on Q. No gradient flows through the sampling chain, and the policy stays
stochastic (and can be multi-modal). The critics are trained as in TD3/SAC with the DDPM sample as the next action.
The defaults are the paper's recipe. Beyond the paper, off by default: --normalize-q-grad, --box-prior,
--clip-final-only and --critic-layer-norm, against the reference recipe's saturated (bang-bang) actions;
--recipe improved turns on the combination that did best in README's measurements.

Paper: Psenka, Escontrela, Abbeel, Ma, "Learning a Diffusion Model Policy from Rewards via Q-Score Matching",
ICML 2024, https://arxiv.org/abs/2312.11752

Train:     python qsm_continuous_action.py --env-id Hopper-v4 --cuda            (add --recipe improved: beyond the paper)
Evaluate:  python qsm_continuous_action.py --load-model runs/<run_name>/qsm_continuous_action.qsm_model --eval-episodes 10
"""

import copy
import math
import os
import random
import sys
import time
import warnings
from dataclasses import dataclass, replace
from typing import Literal, Optional

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
    """whether to save the model (denoiser, critics, schedule, spaces) into `runs/{run_name}`"""
    load_model: Optional[str] = None
    """path of a model saved by `--save-model`: skip training, run `--eval-episodes` evaluation episodes and exit"""
    progress: bool = True
    """print a progress line (steps, SPS, latest returns) every 10 seconds"""

    # Algorithm specific arguments
    recipe: Literal["reference", "improved"] = "reference"
    """reference: the paper's recipe (the defaults below); improved: beyond the paper, --normalize-q-grad --m-q 1 --box-prior (see README); flags given explicitly override the recipe's values"""
    env_id: str = "Hopper-v4"
    """the id of the environment (any Gymnasium env with a bounded Box action space)"""
    max_episode_steps: Optional[int] = None
    """override the env's time limit (episodes then end by truncation after this many steps)"""
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
    beta_schedule: Literal["vp", "cosine", "linear"] = "vp"
    """the DDPM noise schedule (vp: variance-preserving schedule of the reference code)"""
    m_q: float = 50.0
    """M_q, the scale of the Q-score target: the denoiser regresses onto -M_q * grad_a Q (with --normalize-q-grad, onto -M_q * grad_a Q / rms, and M_q is unitless)"""
    normalize_q_grad: bool = False
    """beyond the paper: divide grad_a Q in the actor target by a running estimate of its RMS, so that the target's size no longer grows with the reward scale (M_q is then unitless)"""
    clip_final_only: bool = False
    """beyond the paper: clip only the final action of the reverse chain to [-1, 1], not every intermediate step"""
    box_prior: bool = False
    """beyond the paper: add to the actor target the noise a uniform prior on the action box implies at a_t, so that without Q signal the reverse chain samples the box evenly instead of piling actions at the bounds"""
    critic_layer_norm: bool = False
    """beyond the paper: layer norm after every hidden layer of the critics"""
    temperature: float = 1.0
    """scale of the noise added inside the reverse DDPM chain"""
    exploration_noise: float = 0.1
    """std of the Gaussian noise added to the DDPM sample when acting and in the critic target"""
    hidden_dim: int = 512
    """width of the hidden layers of the denoiser (and of the critics unless --critic-hidden-dim is given)"""
    num_layers: int = 2
    """number of hidden layers of the denoiser (and of the critics unless --critic-num-layers is given)"""
    critic_hidden_dim: Optional[int] = None
    """width of the critics' hidden layers (default: --hidden-dim); harder tasks use wider critics"""
    critic_num_layers: Optional[int] = None
    """number of the critics' hidden layers (default: --num-layers)"""
    eval_frequency: int = int(1e4)
    """evaluate the policy (DDPM sample, no exploration noise) every this many steps (0: only at the end)"""
    eval_episodes: int = 10
    """the number of episodes of each evaluation"""


# the values each --recipe gives its flags (defaults that explicit flags still override)
RECIPES = {
    "reference": {},
    "improved": {"normalize_q_grad": True, "m_q": 1.0, "box_prior": True},
}


def parse_args(argv=None):
    """Args from the command line; with --recipe, parsed again with that recipe's values as the defaults."""
    args = tyro.cli(Args, args=argv)
    if RECIPES[args.recipe]:
        args = tyro.cli(Args, args=argv, default=replace(Args(), recipe=args.recipe, **RECIPES[args.recipe]))
    return args


def gym_make(env_id, **kwargs):
    if env_id.startswith("dm_control/"):  # DeepMind Control Suite tasks, registered by Shimmy on first use
        with warnings.catch_warnings():  # dm_control probes GLFW at import; without a display that only warns
            warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing")
            import shimmy
        gym.register_envs(shimmy)
    return gym.make(env_id, **kwargs)


def make_env(env_id, seed, idx, capture_video, run_name, max_episode_steps=None):
    def thunk():
        kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        if capture_video and idx == 0:
            env = gym_make(env_id, render_mode="rgb_array", **kwargs)
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}")
        else:
            env = gym_make(env_id, **kwargs)
        if isinstance(env.observation_space, gym.spaces.Dict):  # dm_control: dict of arrays -> one flat vector
            env = gym.wrappers.FlattenObservation(env)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        # the policy acts in [-1, 1]^act_dim; the wrapper maps that onto the env's bounds
        unit = np.ones(env.action_space.shape, dtype=np.float32)
        env = gym.wrappers.RescaleAction(env, -unit, unit)
        env.action_space.seed(seed)
        return env

    return thunk


def make_vector_env(env_id, seed, num_envs, capture_video=False, run_name="", max_episode_steps=None):
    # SAME_STEP autoreset: an ending step returns the reset observation and puts the true last one in
    # infos["final_obs"], so no stored transition ever spans a reset.
    return gym.vector.SyncVectorEnv(
        [make_env(env_id, seed + i, i, capture_video, run_name, max_episode_steps) for i in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


def final_observations(next_obs, infos):
    """The true next observations of a step: the final observation where an episode ended, not the reset one."""
    real_next_obs = next_obs.copy()
    if "final_obs" in infos:
        for i in np.flatnonzero(infos["_final_obs"]):
            real_next_obs[i] = infos["final_obs"][i]
    return real_next_obs


def mlp(in_dim, hidden_dim, num_layers, out_dim, activation, layer_norm=False):
    layers, dim = [], in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(dim, hidden_dim)] + ([nn.LayerNorm(hidden_dim)] if layer_norm else []) + [activation()]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def xavier_init(module):
    # the reference code initialises every layer, critics included, with Xavier-uniform weights and zero biases
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class QNetwork(nn.Module):
    """Q(s, a): concat[s, a] -> hidden -> ... -> 1, ReLU (optionally with layer norm before each ReLU)."""

    def __init__(self, obs_dim, act_dim, hidden_dim=512, num_layers=2, layer_norm=False):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden_dim, num_layers, 1, nn.ReLU, layer_norm)
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
            nn.Linear(time_hidden, time_hidden),
        )
        self.net = mlp(act_dim + obs_dim + time_hidden, hidden_dim, num_layers, act_dim, nn.Mish)
        self.act_dim = act_dim
        self.apply(xavier_init)  # FourierFeatures.w keeps its N(0, 0.2^2) init

    def forward(self, obs, noisy_actions, t):  # t: (B,) integer step index in 0..T-1
        cond = self.time_embed(t.float().unsqueeze(-1))
        return self.net(torch.cat([noisy_actions, obs, cond], -1))


def ddpm_schedule(T, kind="vp", device="cpu"):
    """betas, alphas = 1 - betas and alpha_bars = cumprod(alphas), entry i belonging to step t = i + 1."""
    t = np.arange(1, T + 1, dtype=np.float64)
    if kind == "vp":  # the reference code's variance-preserving schedule
        b_min, b_max = 0.1, 10.0
        alphas = np.exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * t - 1) / T**2)
        betas = 1 - alphas
    elif kind == "cosine":  # Nichol & Dhariwal (2021)
        s = 0.008
        f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
        betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
    elif kind == "linear":  # Ho et al. (2020); meant for long chains, it barely noises the actions when T is small
        betas = np.linspace(1e-4, 2e-2, T)
    else:
        raise ValueError(f"unknown beta schedule {kind!r}")
    alphas = 1 - betas
    alpha_bars = np.cumprod(alphas)
    as_tensor = lambda x: torch.tensor(x, dtype=torch.float32, device=device)  # noqa: E731
    return {"betas": as_tensor(betas), "alphas": as_tensor(alphas), "alpha_bars": as_tensor(alpha_bars)}


@torch.no_grad()
def ddpm_sample(eps_theta, obs, schedule, temperature=1.0, clip_final_only=False):
    """The reverse DDPM chain, batched over states: x_T ~ N(0, I), then T denoising steps, each clipped to [-1, 1]
    (with `clip_final_only`, only the last one)."""
    betas, alphas, alpha_bars = schedule["betas"], schedule["alphas"], schedule["alpha_bars"]
    x = torch.randn(obs.shape[0], eps_theta.act_dim, device=obs.device)
    for i in reversed(range(len(betas))):
        t = torch.full((obs.shape[0],), i, device=obs.device, dtype=torch.long)
        eps = eps_theta(obs, x, t)
        # x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t) + sqrt(beta_t) * temperature * z
        x = (x - betas[i] / torch.sqrt(1 - alpha_bars[i]) * eps) / torch.sqrt(alphas[i])
        if i > 0:
            x = x + torch.sqrt(betas[i]) * temperature * torch.randn_like(x)
        if i == 0 or not clip_final_only:
            x = x.clamp(-1.0, 1.0)
    return x


class ReplayBuffer:
    """A numpy ring buffer of (s, a, r, s', terminated); actions are stored in the policy's [-1, 1] space."""

    def __init__(self, size, obs_dim, act_dim, seed=0):
        self.size, self.pos, self.full = size, 0, False
        self.obs = np.zeros((size, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((size, obs_dim), dtype=np.float32)
        self.actions = np.zeros((size, act_dim), dtype=np.float32)
        self.rewards = np.zeros((size, 1), dtype=np.float32)
        self.terminations = np.zeros((size, 1), dtype=np.float32)
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return self.size if self.full else self.pos

    def add(self, obs, next_obs, actions, rewards, terminations):  # each with a leading num_envs axis
        for i in range(len(obs)):
            self.obs[self.pos], self.next_obs[self.pos], self.actions[self.pos] = obs[i], next_obs[i], actions[i]
            self.rewards[self.pos], self.terminations[self.pos] = rewards[i], terminations[i]
            self.pos = (self.pos + 1) % self.size
            self.full = self.full or self.pos == 0

    def sample(self, batch_size, device="cpu"):
        idx = self.rng.integers(0, len(self), size=batch_size)
        fields = (self.obs, self.actions, self.rewards, self.next_obs, self.terminations)
        return tuple(torch.as_tensor(f[idx], device=device) for f in fields)


class RunningRMS(nn.Module):
    """A running estimate of the RMS of grad_a Q, for the scale-free target of --normalize-q-grad.

    An exponential moving average of mean(grad^2) over batch and action dimensions, bias-corrected like Adam's
    moments; one scalar for all dimensions, so dividing by it changes the target's size, not its direction."""

    def __init__(self, decay=0.99):
        super().__init__()
        self.decay = decay
        self.register_buffer("mean_square", torch.zeros(()))
        self.register_buffer("weight", torch.zeros(()))

    @torch.no_grad()
    def update(self, x):
        self.mean_square.mul_(self.decay).add_((1 - self.decay) * x.pow(2).mean())
        self.weight.mul_(self.decay).add_(1 - self.decay)
        return self.value()

    def value(self):
        return torch.sqrt(self.mean_square / self.weight.clamp_min(1e-12)).clamp_min(1e-8)


def box_prior_eps(noisy_actions, alpha_bar):
    """eps of a uniform prior on the action box: -sqrt(1 - alpha_bar) * grad log p_t(a_t), a_0 ~ Uniform[-1, 1]^d.

    Per dimension p_t(x) is proportional to Phi(A) - Phi(B), A = (s - x) / sigma, B = (-s - x) / sigma, with
    s = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar); so eps = (phi(A) - phi(B)) / (Phi(A) - Phi(B)). It is 0 at x = 0
    and (x - s) / sigma far above the box: the noise that carries the nearest edge to x. Computed at |x| in log space
    (p_t is even), so it stays finite far outside the box."""
    s, sigma, x = torch.sqrt(alpha_bar), torch.sqrt(1 - alpha_bar), noisy_actions.abs()
    a, b = (s - x) / sigma, (-s - x) / sigma
    log_cdf_a, log_cdf_b = torch.special.log_ndtr(a), torch.special.log_ndtr(b)
    diff = log_cdf_b - log_cdf_a  # < 0; log(1 - e^diff), accurate for diff near 0 and far below it
    log_mass = log_cdf_a + torch.where(diff > -math.log(2), torch.log(-torch.expm1(diff)), torch.log1p(-torch.exp(diff)))
    log_pdf = lambda z: -0.5 * z**2 - 0.5 * math.log(2 * math.pi)  # noqa: E731
    return torch.sign(noisy_actions) * (torch.exp(log_pdf(a) - log_mass) - torch.exp(log_pdf(b) - log_mass))


def critic_loss(critics, critic_targets, eps_theta, schedule, batch, args):
    """TD loss of each critic; the next action is a fresh DDPM sample plus exploration noise."""
    obs, actions, rewards, next_obs, terminations = batch
    with torch.no_grad():
        sampled_actions = ddpm_sample(eps_theta, next_obs, schedule, args.temperature, args.clip_final_only)
        next_actions = (sampled_actions + args.exploration_noise * torch.randn_like(sampled_actions)).clamp(-1.0, 1.0)
        min_q_next = torch.min(*(q_targ(next_obs, next_actions) for q_targ in critic_targets))
        # only a true termination stops the bootstrap: a time-limit truncation is not the end of the task
        q_target = rewards + args.gamma * (1.0 - terminations) * min_q_next
    q_values = [q(obs, actions) for q in critics]
    return [F.mse_loss(v, q_target) for v in q_values], q_values, sampled_actions


def actor_loss(eps_theta, critics, schedule, obs, actions, m_q, q_grad_rms=None, box_prior=False):
    """The QSM loss: at noisy replay actions a_t, regress eps_theta(s, a_t, t) onto -M_q * grad_a Q(s, a_t).

    With a `RunningRMS` as `q_grad_rms` (--normalize-q-grad), the Q term is -M_q * grad_a Q / rms instead; with
    `box_prior` (--box-prior), the target also gets the box prior's eps at a_t (`box_prior_eps`)."""
    alpha_bars = schedule["alpha_bars"]
    t = torch.randint(0, len(alpha_bars), (obs.shape[0],), device=obs.device)
    ab = alpha_bars[t].unsqueeze(-1)
    noisy_actions = (torch.sqrt(ab) * actions + torch.sqrt(1 - ab) * torch.randn_like(actions)).requires_grad_(True)
    q_mean = sum(q(obs, noisy_actions) for q in critics) / len(critics)
    # only the input gradient is needed: leave the critics' parameter gradients alone
    (q_grad,) = torch.autograd.grad(q_mean.sum(), noisy_actions)
    eps = eps_theta(obs, noisy_actions.detach(), t)
    # eps points against the score, so the target is -M_q * grad_a Q (the paper's text writes +; the code uses -)
    scale = m_q if q_grad_rms is None else m_q / q_grad_rms.update(q_grad)
    target = -scale * q_grad + (box_prior_eps(noisy_actions.detach(), ab) if box_prior else 0.0)
    loss = ((eps - target) ** 2).mean()
    return loss, q_grad, eps.detach()


def qsm_update(batch, eps_theta, critics, critic_targets, q_optimizer, actor_optimizer, schedule, args, q_grad_rms=None):
    """One training step: critic step, then actor step with the updated critics, then Polyak-averaged targets.

    `q_grad_rms` is the `RunningRMS` of --normalize-q-grad (None: the paper's target)."""
    qf_losses, q_values, sampled_actions = critic_loss(critics, critic_targets, eps_theta, schedule, batch, args)
    q_optimizer.zero_grad()
    sum(qf_losses).backward()
    q_optimizer.step()

    a_loss, q_grad, eps = actor_loss(eps_theta, critics, schedule, batch[0], batch[1], args.m_q, q_grad_rms, args.box_prior)
    actor_optimizer.zero_grad()
    a_loss.backward()
    actor_optimizer.step()

    with torch.no_grad():
        for q, q_targ in zip(critics, critic_targets):
            for p, p_targ in zip(q.parameters(), q_targ.parameters()):
                p_targ.lerp_(p, args.tau)
    metrics = {
        "losses/qf1_loss": qf_losses[0].detach(),
        "losses/qf2_loss": qf_losses[1].detach(),
        "losses/qf1_values": q_values[0].detach().mean(),
        "losses/qf2_values": q_values[1].detach().mean(),
        "losses/actor_loss": a_loss.detach(),
        "qsm/q_grad_norm": q_grad.norm(dim=-1).mean(),
        "qsm/eps_norm": eps.norm(dim=-1).mean(),
        "qsm/eps_q_grad_cosine": F.cosine_similarity(eps, -q_grad, dim=-1).mean(),
        # share of the DDPM samples' components (before exploration noise) at the bounds: near 1 means bang-bang
        "qsm/action_at_bounds_frac": (sampled_actions.abs() >= 0.999).float().mean(),
    }
    if q_grad_rms is not None:
        metrics["qsm/q_grad_rms"] = q_grad_rms.value()
    return metrics


def evaluate(
    eps_theta, schedule, env_id, eval_episodes, seed, device, temperature=1.0, max_episode_steps=None, clip_final_only=False
):
    """Mean return of `eval_episodes` episodes, one per env run side by side, acting with the plain DDPM sample."""
    envs = make_vector_env(env_id, seed, eval_episodes, max_episode_steps=max_episode_steps)
    obs, _ = envs.reset(seed=seed)
    returns = np.full(eval_episodes, np.nan)
    while np.isnan(returns).any():
        obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device)
        actions = ddpm_sample(eps_theta, obs_tensor, schedule, temperature, clip_final_only)
        obs, _, _, _, infos = envs.step(actions.cpu().numpy())
        if "final_info" in infos:
            for i in np.flatnonzero(infos["final_info"]["_episode"]):
                if np.isnan(returns[i]):
                    returns[i] = infos["final_info"]["episode"]["r"][i]
    envs.close()
    return returns


def check_args(args):
    """Reject flags out of range with one readable line, before anything is built."""
    rules = [
        (args.diffusion_steps >= 1, "--diffusion-steps (T) must be >= 1"),
        (args.total_timesteps >= 1, "--total-timesteps must be >= 1"),
        (args.buffer_size >= 1, "--buffer-size must be >= 1"),
        (args.batch_size >= 1, "--batch-size must be >= 1"),
        (args.batch_size <= args.buffer_size, "--batch-size must not exceed --buffer-size"),
        (0 <= args.learning_starts < args.total_timesteps, "--learning-starts must be in [0, --total-timesteps)"),
        (0.0 <= args.gamma <= 1.0, "--gamma must be in [0, 1]"),
        (0.0 < args.tau <= 1.0, "--tau must be in (0, 1]"),
        (args.critic_lr > 0 and args.actor_lr > 0, "--critic-lr and --actor-lr must be > 0"),
        (args.actor_lr_decay_steps >= 1, "--actor-lr-decay-steps must be >= 1"),
        (args.m_q > 0, "--m-q must be > 0"),
        (args.temperature >= 0, "--temperature must be >= 0"),
        (args.exploration_noise >= 0, "--exploration-noise must be >= 0"),
        (args.hidden_dim >= 1 and args.num_layers >= 1, "--hidden-dim and --num-layers must be >= 1"),
        (all(n is None or n >= 1 for n in (args.critic_hidden_dim, args.critic_num_layers)), "critic sizes must be >= 1"),
        (args.eval_frequency >= 0, "--eval-frequency must be >= 0"),
        (args.eval_episodes >= 1, "--eval-episodes must be >= 1"),
        (args.max_episode_steps is None or args.max_episode_steps >= 1, "--max-episode-steps must be >= 1"),
    ]
    for ok, message in rules:
        if not ok:
            return message
    try:
        env = gym_make(args.env_id, render_mode="rgb_array" if args.capture_video else None)
        action_space, observation_space = env.action_space, env.observation_space
        if args.capture_video:
            env.reset(seed=args.seed)
            if env.render() is None:
                raise RuntimeError("render() returned no frame")
        env.close()
    except gym.error.Error as e:
        return f"cannot make env {args.env_id!r}: {e}"
    except ImportError as e:
        return f"cannot make env {args.env_id!r}: {e} (pip install -r requirements.txt brings dm-control and shimmy)"
    except Exception as e:
        if not args.capture_video:
            raise
        gl = os.environ.get("MUJOCO_GL", "unset")
        return (
            f"--capture-video: cannot render {args.env_id} here (MUJOCO_GL={gl}): {type(e).__name__}: {e}. "
            "Headless rendering needs MUJOCO_GL=egl (EGL libraries) or MUJOCO_GL=osmesa (apt-get install libosmesa6)"
        )
    if not isinstance(action_space, gym.spaces.Box):
        return f"{args.env_id} has a {type(action_space).__name__} action space; QSM needs a continuous (Box) one"
    if not (np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
        return f"{args.env_id}'s action space {action_space} is unbounded; QSM needs finite bounds"
    if isinstance(observation_space, gym.spaces.Dict):
        if not all(isinstance(space, gym.spaces.Box) for space in observation_space.values()):
            return f"{args.env_id} has observation space {observation_space}; this script needs Box entries"
    elif not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        return f"{args.env_id} has observation space {observation_space}; this script needs a flat Box or a dict of Boxes"
    return None


def fail(message, code=2):
    print(f"{os.path.basename(__file__)}: error: {message}", file=sys.stderr)
    sys.exit(code)


def load_and_evaluate(args, device):
    """Rebuild the policy from a `--save-model` file and report `--eval-episodes` evaluation returns."""
    ckpt = torch.load(args.load_model, map_location=device, weights_only=False)
    saved = ckpt["args"]
    eps_theta = Denoiser(ckpt["obs_dim"], ckpt["act_dim"], saved["hidden_dim"], saved["num_layers"]).to(device)
    eps_theta.load_state_dict(ckpt["eps_theta"])
    schedule = ddpm_schedule(saved["diffusion_steps"], saved["beta_schedule"], device)
    returns = evaluate(
        eps_theta, schedule, saved["env_id"], args.eval_episodes, args.seed, device, saved["temperature"],
        saved["max_episode_steps"], saved.get("clip_final_only", False),
    )  # fmt: skip
    print(f"{saved['env_id']}: {args.eval_episodes} evaluation episodes, return {returns.mean():.2f} +- {returns.std():.2f}")
    return returns


if __name__ == "__main__":
    args = parse_args()
    if args.capture_video and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless: render MuJoCo through EGL unless told otherwise
    if args.load_model is None and (problem := check_args(args)):
        fail(problem)
    if args.load_model is not None and not os.path.isfile(args.load_model):
        fail(f"--load-model: no such file {args.load_model!r}")
    if args.cuda and not torch.cuda.is_available():
        print("warning: --cuda was given but no GPU is available; running on the CPU", file=sys.stderr)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic

    if args.load_model is not None:
        load_and_evaluate(args, device)
        sys.exit(0)

    run_name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    if args.track:
        try:
            import wandb
        except ImportError:
            fail("--track needs Weights and Biases: pip install wandb")
        wandb.init(
            project=args.wandb_project_name,
            entity=args.wandb_entity,
            sync_tensorboard=True,
            config=vars(args),
            name=run_name,
            monitor_gym=True,
            save_code=True,
        )
    writer = SummaryWriter(f"runs/{run_name}")
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % ("\n".join([f"|{key}|{value}|" for key, value in vars(args).items()])),
    )

    # env setup
    envs = make_vector_env(args.env_id, args.seed, 1, args.capture_video, run_name, args.max_episode_steps)
    obs_dim = envs.single_observation_space.shape[0]
    act_dim = envs.single_action_space.shape[0]

    eps_theta = Denoiser(obs_dim, act_dim, args.hidden_dim, args.num_layers).to(device)
    critic_size = (args.critic_hidden_dim or args.hidden_dim, args.critic_num_layers or args.num_layers)
    qf1, qf2 = (QNetwork(obs_dim, act_dim, *critic_size, args.critic_layer_norm).to(device) for _ in range(2))
    qf1_target, qf2_target = copy.deepcopy(qf1), copy.deepcopy(qf2)
    critics, critic_targets = (qf1, qf2), (qf1_target, qf2_target)
    q_optimizer = optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=args.critic_lr)
    actor_optimizer = optim.Adam(eps_theta.parameters(), lr=args.actor_lr)
    actor_scheduler = optim.lr_scheduler.LambdaLR(  # cosine decay to 0 over actor_lr_decay_steps updates
        actor_optimizer,
        lambda step: 0.5 * (1 + math.cos(math.pi * min(step, args.actor_lr_decay_steps) / args.actor_lr_decay_steps)),
    )
    schedule = ddpm_schedule(args.diffusion_steps, args.beta_schedule, device)
    q_grad_rms = RunningRMS().to(device) if args.normalize_q_grad else None

    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, seed=args.seed)
    start_time = last_print = time.time()
    sps_step, sps_time = 0, start_time
    last_return, last_eval = float("nan"), float("nan")

    # TRY NOT TO MODIFY: start the game
    obs, _ = envs.reset(seed=args.seed)
    for global_step in range(args.total_timesteps):
        # ALGO LOGIC: put action logic here
        if global_step < args.learning_starts:
            actions = np.random.uniform(-1.0, 1.0, size=(1, act_dim)).astype(np.float32)
        else:
            obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device)
            actions = ddpm_sample(eps_theta, obs_tensor, schedule, args.temperature, args.clip_final_only)
            actions = (actions + args.exploration_noise * torch.randn_like(actions)).clamp(-1.0, 1.0).cpu().numpy()

        # TRY NOT TO MODIFY: execute the game and log data.
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)

        if "final_info" in infos:
            for i in np.flatnonzero(infos["final_info"]["_episode"]):
                last_return = float(infos["final_info"]["episode"]["r"][i])
                writer.add_scalar("charts/episodic_return", last_return, global_step)
                writer.add_scalar("charts/episodic_length", infos["final_info"]["episode"]["l"][i], global_step)

        # TRY NOT TO MODIFY: save data to replay buffer; the true final observation on truncation, not the reset one
        rb.add(obs, final_observations(next_obs, infos), actions, rewards, terminations)
        obs = next_obs

        # ALGO LOGIC: training.
        if global_step >= args.learning_starts:
            batch = rb.sample(args.batch_size, device)
            metrics = qsm_update(
                batch, eps_theta, critics, critic_targets, q_optimizer, actor_optimizer, schedule, args, q_grad_rms
            )
            actor_scheduler.step()

            losses = torch.stack([metrics["losses/qf1_loss"], metrics["losses/qf2_loss"], metrics["losses/actor_loss"]])
            if not torch.isfinite(losses).all():
                writer.close()
                envs.close()
                fail(
                    f"non-finite loss at global step {global_step} (qf1, qf2, actor: {losses.tolist()}); "
                    "try lower learning rates or a smaller --m-q",
                    code=1,
                )

            if global_step % 100 == 0:
                now = time.time()
                sps = (global_step - sps_step) / max(now - sps_time, 1e-9)
                sps_step, sps_time = global_step, now
                for tag, value in metrics.items():
                    writer.add_scalar(tag, value.item(), global_step)
                writer.add_scalar("losses/actor_lr", actor_scheduler.get_last_lr()[0], global_step)
                writer.add_scalar("charts/SPS", sps, global_step)

        if (
            args.eval_frequency > 0 and (global_step + 1) % args.eval_frequency == 0
        ) or global_step + 1 == args.total_timesteps:
            eval_start = time.time()
            last_eval = float(
                evaluate(
                    eps_theta, schedule, args.env_id, args.eval_episodes, args.seed + 10_000, device, args.temperature,
                    args.max_episode_steps, args.clip_final_only,
                ).mean()
            )  # fmt: skip
            writer.add_scalar("eval/episodic_return", last_eval, global_step)
            sps_time += time.time() - eval_start  # evaluation time does not count against the training SPS

        if args.progress and time.time() - last_print >= 10.0:
            last_print = time.time()
            print(
                f"step {global_step + 1}/{args.total_timesteps} | SPS {int((global_step + 1) / (last_print - start_time))} "
                f"| last return {last_return:.1f} | last eval {last_eval:.1f}",
                flush=True,
            )

    if args.save_model:
        model_path = f"runs/{run_name}/{args.exp_name}.qsm_model"
        torch.save(
            {
                "args": vars(args),
                "obs_dim": obs_dim,
                "act_dim": act_dim,
                "action_low": envs.envs[0].unwrapped.action_space.low,
                "action_high": envs.envs[0].unwrapped.action_space.high,
                "eps_theta": eps_theta.state_dict(),
                "qf1": qf1.state_dict(),
                "qf2": qf2.state_dict(),
            },
            model_path,
        )
        print(f"model saved to {model_path}")

    envs.close()
    writer.close()
