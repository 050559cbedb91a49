"""Q-Score Matching (QSM) in JAX: a diffusion-model policy trained off-policy from rewards.

The policy pi(a|s) is a small DDPM over actions, conditioned on the state. QSM trains its denoiser eps_theta(s, a_t, t)
by regression onto the action-gradient of a learned Q-function at noisy actions,
    eps_theta(s, a_t, t) ~= -M_q * grad_a Q(s, a_t),
so that denoising moves actions uphill on Q. No gradient flows through the sampling chain, and the policy stays
stochastic (it can be multi-modal). Twin critics are trained as in TD3/SAC, with a DDPM sample as the next action.
The defaults are the paper's recipe, as the authors' code runs it. This file is the JAX + Flax + Optax twin of
`qsm_continuous_action.py`: the same flags and logged metrics, one jit-compiled update per env step.

Paper: Psenka, Escontrela, Abbeel, Ma, "Learning a Diffusion Model Policy from Rewards via Q-Score Matching",
ICML 2024, https://arxiv.org/abs/2312.11752

Train:     python qsm_continuous_action_jax.py --env-id Hopper-v4
Evaluate:  python benchmark/evaluate_model.py runs/<run_name>/qsm_continuous_action_jax.qsm_model
"""

import importlib
import json
import os
import random
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro
from flax import serialization


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
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


# the authors' code initialises every layer, critics included, with Xavier-uniform weights and zero biases
dense = partial(nn.Dense, kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros)


class QNetwork(nn.Module):
    """Q(s, a): concat[s, a] -> hidden -> ... -> 1, ReLU. With `batch_norm` (--crossq), batch norm on the input and after
    each hidden layer: on the batch's statistics in training, on their running averages otherwise."""

    hidden_dim: int = 512
    num_layers: int = 2
    batch_norm: bool = False
    train: bool = False

    @nn.compact
    def __call__(self, obs, actions):
        # momentum and epsilon of CrossQ's batch renorm, which is plain batch norm for its first 100k updates
        norm = partial(nn.BatchNorm, use_running_average=not self.train, momentum=0.99, epsilon=1e-3)
        x = jnp.concatenate([obs, actions], -1)
        if self.batch_norm:
            x = norm()(x)
        for _ in range(self.num_layers):
            x = nn.relu(dense(self.hidden_dim)(x))
            if self.batch_norm:
                x = norm()(x)
        return dense(1)(x)  # (B, 1)


class TwinQNetwork(nn.Module):
    """Q1 and Q2 as one module: two independent QNetworks whose parameters are stacked on a leading axis of size 2."""

    hidden_dim: int = 512
    num_layers: int = 2
    batch_norm: bool = False

    @nn.compact
    def __call__(self, obs, actions, train=False):
        axes = {"params": 0, "batch_stats": 0}
        twin = nn.vmap(QNetwork, variable_axes=axes, split_rngs={"params": True}, in_axes=None, out_axes=0, axis_size=2)
        return twin(self.hidden_dim, self.num_layers, self.batch_norm, train)(obs, actions)  # (2, B, 1): Q1 then Q2


class FourierFeatures(nn.Module):
    """Learnable Fourier features of the step index t: [cos(2 pi t w), sin(2 pi t w)], w ~ N(0, 0.2^2)."""

    out_dim: int = 64
    std: float = 0.2

    @nn.compact
    def __call__(self, t):  # t: (B, 1) float, the 0-based step index, not normalised
        w = self.param("w", nn.initializers.normal(self.std), (1, self.out_dim // 2))
        f = 2 * jnp.pi * t * w
        return jnp.concatenate([jnp.cos(f), jnp.sin(f)], -1)


class Denoiser(nn.Module):
    """eps_theta(s, a_t, t): predicts the noise in a_t; QSM trains it to point against grad_a Q."""

    act_dim: int
    hidden_dim: int = 512
    num_layers: int = 2
    time_dim: int = 64
    time_hidden: int = 128

    @nn.compact
    def __call__(self, obs, noisy_actions, t):  # t: (B,) integer step index in 0..T-1
        cond = FourierFeatures(self.time_dim)(t.astype(jnp.float32)[:, None])
        cond = jax.nn.mish(dense(self.time_hidden)(cond))
        cond = dense(self.time_hidden)(cond)  # no activation after the time MLP's last layer
        x = jnp.concatenate([noisy_actions, obs, cond], -1)
        for _ in range(self.num_layers):
            x = jax.nn.mish(dense(self.hidden_dim)(x))
        return dense(self.act_dim)(x)


def ddpm_schedule(T):
    """The authors' variance-preserving schedule: betas, alphas = 1 - betas, alpha_bars = cumprod(alphas), where entry i
    belongs to step t = i + 1 and alpha_t = exp(-b_min / T - (b_max - b_min) (2t - 1) / (2 T^2)), b_min = 0.1, b_max = 10."""
    t = np.arange(1, T + 1, dtype=np.float64)
    alphas = np.exp(-0.1 / T - 0.5 * (10.0 - 0.1) * (2 * t - 1) / T**2)
    as_array = lambda x: jnp.asarray(x, dtype=jnp.float32)  # noqa: E731
    return {"betas": as_array(1 - alphas), "alphas": as_array(alphas), "alpha_bars": as_array(np.cumprod(alphas))}


def ddpm_sample(eps_theta, eps_params, obs, schedule, key, temperature=1.0):
    """The reverse DDPM chain, batched over states: x_T ~ N(0, I), then T denoising steps, each clipped to [-1, 1]."""
    betas, alphas, alpha_bars = schedule["betas"], schedule["alphas"], schedule["alpha_bars"]
    T = betas.shape[0]
    key, x_key = jax.random.split(key)
    x = jax.random.normal(x_key, (obs.shape[0], eps_theta.act_dim))

    def reverse_step(k, carry):  # k = 0..T-1 walks the step index i = T-1..0
        x, key = carry
        i = T - 1 - k
        key, z_key = jax.random.split(key)
        eps = eps_theta.apply(eps_params, obs, x, jnp.full((obs.shape[0],), i))
        # x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t) + sqrt(beta_t) * temperature * z
        x = (x - betas[i] / jnp.sqrt(1 - alpha_bars[i]) * eps) / jnp.sqrt(alphas[i])
        x = x + jnp.where(i > 0, jnp.sqrt(betas[i]) * temperature, 0.0) * jax.random.normal(z_key, x.shape)
        return jnp.clip(x, -1.0, 1.0), key

    return jax.lax.fori_loop(0, T, reverse_step, (x, key))[0]


def make_policy(eps_theta, schedule, temperature=1.0, exploration_noise=0.0):
    """The jitted acting function: obs in, (actions, next key) out; a DDPM sample plus optional Gaussian noise."""

    @jax.jit
    def policy(eps_params, obs, key):
        key, sample_key, noise_key = jax.random.split(key, 3)
        actions = ddpm_sample(eps_theta, eps_params, obs, schedule, sample_key, temperature)
        if exploration_noise > 0:
            actions = jnp.clip(actions + exploration_noise * jax.random.normal(noise_key, actions.shape), -1.0, 1.0)
        return actions, key

    return policy


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

    def sample(self, batch_size):
        idx = self.rng.integers(0, len(self), size=batch_size)
        return tuple(f[idx] for f in (self.obs, self.actions, self.rewards, self.next_obs, self.terminations))


def critic_loss(critic_params, critic_target_params, eps_params, batch, key, eps_theta, critic, schedule, args):
    """TD loss of each critic; the next action is a fresh DDPM sample plus exploration noise."""
    obs, actions, rewards, next_obs, terminations = batch
    sample_key, noise_key = jax.random.split(key)
    sampled_actions = ddpm_sample(eps_theta, eps_params, next_obs, schedule, sample_key, args.temperature)
    noise = args.exploration_noise * jax.random.normal(noise_key, sampled_actions.shape)
    next_actions = jnp.clip(sampled_actions + noise, -1, 1)
    if args.crossq:
        q_values, q_next, batch_stats = crossq_values(critic, critic_params, obs, actions, next_obs, next_actions)
    else:
        q_next, batch_stats = critic.apply(critic_target_params, next_obs, next_actions), None
        q_values = critic.apply(critic_params, obs, actions)  # (2, B, 1)
    # only a true termination stops the bootstrap: a time-limit truncation is not the end of the task
    q_target = jax.lax.stop_gradient(rewards + args.gamma * (1.0 - terminations) * q_next.min(0))
    qf_losses = ((q_values - q_target) ** 2).mean(axis=(1, 2))
    return qf_losses.sum(), (qf_losses, q_values, sampled_actions, batch_stats)


def crossq_values(critic, critic_params, obs, actions, next_obs, next_actions):
    """--crossq (beyond the paper): no target critics; (s, a) and (s', a') pass as one batch, so batch norm sees both.
    Returns Q(s, a), Q(s', a') and the batch norm's updated running averages."""
    both = jnp.concatenate([obs, next_obs]), jnp.concatenate([actions, next_actions])
    q_both, updates = critic.apply(critic_params, *both, train=True, mutable=["batch_stats"])
    return *jnp.split(q_both, 2, axis=1), updates["batch_stats"]


def actor_loss(eps_params, critic_params, obs, actions, key, eps_theta, critic, schedule, m_q, rms=None, box_prior=False):
    """The QSM loss: at noisy replay actions a_t, regress eps_theta(s, a_t, t) onto -M_q * grad_a Q(s, a_t).
    Beyond the paper: `rms` (--normalize-q-grad) divides grad_a Q by its running RMS; `box_prior` adds its eps.
    Returns the loss and (grad_a Q, eps, the updated running RMS or None)."""
    alpha_bars = schedule["alpha_bars"]
    t_key, noise_key = jax.random.split(key)
    t = jax.random.randint(t_key, (obs.shape[0],), 0, alpha_bars.shape[0])
    ab = alpha_bars[t][:, None]
    noisy_actions = jnp.sqrt(ab) * actions + jnp.sqrt(1 - ab) * jax.random.normal(noise_key, actions.shape)
    # grad_a of the two critics' mean; each sample's Q depends only on its own action, so the sum's gradient is per-sample
    q_grad = jax.lax.stop_gradient(jax.grad(lambda a: critic.apply(critic_params, obs, a).mean(0).sum())(noisy_actions))
    eps = eps_theta.apply(eps_params, obs, noisy_actions, t)
    # eps points against the score, so the target is -M_q * grad_a Q (the paper's text writes +; the code uses -)
    scale = m_q
    if rms is not None:
        rms = rms.update(q_grad)
        scale = m_q / rms.value()
    target = -scale * q_grad
    if box_prior:
        target = target + box_prior_eps(noisy_actions, ab)
    loss = ((eps - target) ** 2).mean()
    return loss, (q_grad, eps, rms)


class QSMState(NamedTuple):
    """Everything one update reads and writes, as one pytree that stays on the device."""

    eps_params: Any
    critic_params: Any  # Q1 and Q2 stacked
    critic_target_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    key: jax.Array
    q_grad_rms: Any  # the RunningRMS of --normalize-q-grad (beyond the paper)


def init_qsm_state(key, eps_theta, critic, actor_tx, critic_tx, obs_dim, act_dim):
    """Fresh parameters (the targets start as copies of the critics), optimiser states, the update's RNG key."""
    key, eps_key, critic_key = jax.random.split(key, 3)
    obs, actions = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
    # jitted, so that each init compiles once instead of as one small program per layer
    eps_params = jax.jit(eps_theta.init)(eps_key, obs, actions, jnp.zeros((1,), jnp.int32))
    critic_params = jax.jit(critic.init)(critic_key, obs, actions)
    # float32 zeros, not Python floats: a weakly typed leaf would change type after the first update and recompile it
    q_grad_rms = RunningRMS(jnp.zeros(()), jnp.zeros(()), jnp.zeros(()))
    return QSMState(
        eps_params, critic_params, critic_params, actor_tx.init(eps_params), critic_tx.init(critic_params), key, q_grad_rms
    )


def make_qsm_update(eps_theta, critic, actor_tx, critic_tx, schedule, args):
    """The jitted training step: critic step, then actor step with the updated critics, then Polyak-averaged targets.
    The flags in `args` are Python values read when the step is traced: static, so each flag's `if` costs nothing."""
    critic_loss_fn = partial(critic_loss, eps_theta=eps_theta, critic=critic, schedule=schedule, args=args)
    actor_loss_fn = partial(
        actor_loss, eps_theta=eps_theta, critic=critic, schedule=schedule, m_q=args.m_q, box_prior=args.box_prior
    )

    @jax.jit
    def qsm_update(state, batch):
        key, critic_key, actor_key = jax.random.split(state.key, 3)
        (_, (qf_losses, q_values, sampled_actions, batch_stats)), critic_grads = jax.value_and_grad(
            critic_loss_fn, has_aux=True
        )(state.critic_params, state.critic_target_params, state.eps_params, batch, critic_key)
        critic_updates, critic_opt_state = critic_tx.update(critic_grads, state.critic_opt_state, state.critic_params)
        critic_params = optax.apply_updates(state.critic_params, critic_updates)
        if args.crossq:  # the running averages that the actor's grad_a Q uses
            critic_params = {**critic_params, "batch_stats": batch_stats}

        rms = state.q_grad_rms if args.normalize_q_grad else None
        (a_loss, (q_grad, eps, rms)), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(
            state.eps_params, critic_params, batch[0], batch[1], actor_key, rms=rms
        )
        actor_updates, actor_opt_state = actor_tx.update(actor_grads, state.actor_opt_state, state.eps_params)
        eps_params = optax.apply_updates(state.eps_params, actor_updates)

        critic_target_params = state.critic_target_params
        if not args.crossq:  # --crossq has no target critics
            critic_target_params = optax.incremental_update(critic_params, critic_target_params, args.tau)
        eps_norm, q_grad_norm = jnp.linalg.norm(eps, axis=-1), jnp.linalg.norm(q_grad, axis=-1)
        metrics = {
            **{f"losses/qf{i}_loss": loss for i, loss in zip("12", qf_losses)},
            **{f"losses/qf{i}_values": v.mean() for i, v in zip("12", q_values)},
            "losses/actor_loss": a_loss,
            "qsm/q_grad_norm": q_grad_norm.mean(),
            "qsm/eps_norm": eps_norm.mean(),
            "qsm/eps_q_grad_cosine": ((eps * -q_grad).sum(-1) / jnp.maximum(eps_norm * q_grad_norm, 1e-8)).mean(),
            # share of the DDPM samples' components (before exploration noise) at the bounds: near 1 means bang-bang
            "qsm/action_at_bounds_frac": (jnp.abs(sampled_actions) >= 0.999).mean(),
        }
        q_grad_rms = state.q_grad_rms
        if args.normalize_q_grad:
            q_grad_rms = rms
            metrics["qsm/q_grad_rms"] = rms.value()
        state = QSMState(eps_params, critic_params, critic_target_params, actor_opt_state, critic_opt_state, key, q_grad_rms)
        return state, metrics

    return qsm_update


# Beyond the paper: the changes to the actor target that won in our measurements (docs/beyond_the_paper.md)
class RunningRMS(NamedTuple):
    """--normalize-q-grad: the RMS of grad_a Q over batch and dimensions, as an EMA of its mean square bias-corrected like
    Adam's moments. One scalar for all dimensions: dividing by it changes the target's size, not its direction. Like
    grad_a Q, it scales with the rewards and ignores a constant added to them. Three scalars in the train state (the
    jitted update carries them from step to step): the EMA, its weight and the RMS's peak so far."""

    mean_square: jax.Array
    weight: jax.Array
    peak: jax.Array

    def update(self, x, decay=0.99):
        mean_square, weight = decay * self.mean_square + (1 - decay) * jnp.mean(x**2), decay * self.weight + (1 - decay)
        return RunningRMS(mean_square, weight, jnp.maximum(self.peak, jnp.sqrt(mean_square / weight)))

    def value(self):
        # a relative floor: where a solved task leaves Q flat in a, the target shrinks instead of amplifying the critic's noise
        rms = jnp.sqrt(self.mean_square / jnp.maximum(self.weight, 1e-12))
        return jnp.maximum(rms, jnp.maximum(0.1 * self.peak, jnp.finfo(jnp.float32).tiny))


def box_prior_eps(noisy_actions, alpha_bar):
    """--box-prior: the eps of a uniform prior on the box, -sqrt(1 - alpha_bar) * grad log p_t(a_t), a_0 ~ U[-1, 1]^d.
    Per dimension p_t(x) ~ Phi(A) - Phi(B), A = (s - x) / sigma, B = (-s - x) / sigma, s = sqrt(alpha_bar), sigma =
    sqrt(1 - alpha_bar): eps = (phi(A) - phi(B)) / (Phi(A) - Phi(B)), taken at |x| in log space to stay finite."""
    s, sigma, x = jnp.sqrt(alpha_bar), jnp.sqrt(1 - alpha_bar), jnp.abs(noisy_actions)
    a, b = (s - x) / sigma, (-s - x) / sigma
    log_cdf_a, log_cdf_b = jax.scipy.special.log_ndtr(a), jax.scipy.special.log_ndtr(b)
    diff = log_cdf_b - log_cdf_a  # < 0; log(1 - e^diff), accurate for diff near 0 and far below it
    log_mass = log_cdf_a + jnp.where(diff > -jnp.log(2.0), jnp.log(-jnp.expm1(diff)), jnp.log1p(-jnp.exp(diff)))
    log_pdf = lambda z: -0.5 * z**2 - 0.5 * jnp.log(2 * jnp.pi)  # noqa: E731
    return jnp.sign(noisy_actions) * (jnp.exp(log_pdf(a) - log_mass) - jnp.exp(log_pdf(b) - log_mass))


def evaluate(policy, eps_params, args, seed, key, max_steps=100_000):
    """Returns of `args.eval_episodes` episodes side by side, acting with `policy` (the DDPM sample, no exploration noise)
    and its own key. Episodes still running after `max_steps` steps (an env without a time limit) are cut there."""
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, seed + i, 1, False, "", args.max_episode_steps) for i in range(args.eval_episodes)]
    )
    obs, _ = envs.reset(seed=seed)
    returns, done = np.zeros(args.eval_episodes), np.zeros(args.eval_episodes, dtype=bool)
    for _ in range(max_steps):
        actions, key = policy(eps_params, obs.astype(np.float32), key)
        obs, rewards, terminations, truncations, _ = envs.step(np.asarray(actions))
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
             "wandb_entity", "capture_video"}  # flags that may change on --resume  # fmt: skip
BUFFER_FIELDS = ("obs", "next_obs", "actions", "rewards", "terminations")


is_key = lambda x: jnp.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731  (a typed PRNG key array)
key_data = lambda tree: jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)  # noqa: E731  (for msgpack)


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


def write_checkpoint(path, train, rb, step, progress, args, env_states):
    """`train`: the train state and the PRNG keys. Atomic: a kill mid-write leaves the previous checkpoint whole."""
    rngs = {"python": random.getstate(), "numpy": np.random.get_state(legacy=False), "buffer": rb.rng.bit_generator.state,
            "env": env_states}  # fmt: skip
    rngs = json.dumps(rngs, default=np.ndarray.tolist)  # Python ints of any size, which msgpack cannot store
    buffer = {"pos": rb.pos, "full": rb.full, **{f: getattr(rb, f)[: len(rb)] for f in BUFFER_FIELDS}}
    train = serialization.to_state_dict(jax.device_get(key_data(train)))
    checkpoint = {"args": vars(args), "step": step, "progress": progress, "rngs": rngs, "train": train, "buffer": buffer}
    with open(path + ".tmp", "wb") as f:
        f.write(serialization.msgpack_serialize(checkpoint))
    os.replace(path + ".tmp", path)


def read_checkpoint(args):
    """The --resume checkpoint, once it is known to continue a run of these flags; else one line and exit 2."""
    try:  # msgpack: arrays and plain containers, never code from the file
        with open(args.resume, "rb") as f:
            checkpoint = serialization.msgpack_restore(f.read())
        saved = dict(checkpoint["args"])
    except Exception as e:
        fail(f"--resume: {args.resume!r} is not a checkpoint of --checkpoint-every ({type(e).__name__}); nothing was run")
    if changed := [name for name, value in vars(args).items() if name not in RESUMABLE and saved.get(name) != value]:
        fail(f"--resume: --{changed[0].replace('_', '-')} is {getattr(args, changed[0])!r}, the checkpoint's run has "
             f"{saved.get(changed[0])!r}")  # fmt: skip
    return checkpoint


def restore_checkpoint(checkpoint, train, rb, envs):
    """The buffer and the RNGs in place; returns `train` (the train state and the PRNG keys) as the checkpoint holds it,
    the step to go on from and the progress line's latest returns."""
    restored = serialization.from_state_dict(key_data(train), checkpoint["train"])
    restored = jax.tree.map(lambda x, like: jax.random.wrap_key_data(x) if is_key(like) else jnp.asarray(x), restored, train)
    for f in BUFFER_FIELDS:
        getattr(rb, f)[: len(checkpoint["buffer"][f])] = checkpoint["buffer"][f]
    rb.pos, rb.full = checkpoint["buffer"]["pos"], checkpoint["buffer"]["full"]
    rngs = json.loads(checkpoint["rngs"])
    random.setstate((rngs["python"][0], tuple(rngs["python"][1]), rngs["python"][2]))
    np.random.set_state(rngs["numpy"])
    rb.rng.bit_generator.state = rngs["buffer"]
    env_rngs(envs, rngs["env"])
    return restored, checkpoint["step"], checkpoint["progress"]


if __name__ == "__main__":
    args = tyro.cli(Args)
    if args.capture_video and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless: render MuJoCo through EGL unless told otherwise
    if problem := check_args(args):
        fail(problem)
    checkpoint = read_checkpoint(args) if args.resume else None

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    key = jax.random.key(args.seed)
    key, init_key, act_key, eval_key = jax.random.split(key, 4)

    run_name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    if args.track:
        import wandb

        wandb_kwargs = dict(sync_tensorboard=True, config=vars(args), name=run_name, monitor_gym=True, save_code=True)
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, **wandb_kwargs)
    hide_torch = "torch" not in sys.modules  # tensorboardX imports torch whenever it is installed: keep it out
    sys.modules.setdefault("torch", None)  # `import torch` now raises ImportError, which tensorboardX handles
    from tensorboardX import SummaryWriter

    if hide_torch:
        del sys.modules["torch"]
    run_dir = os.path.dirname(args.resume) if checkpoint else f"runs/{run_name}"
    writer = SummaryWriter(run_dir, purge_step=checkpoint and checkpoint["step"])  # TensorBoard drops what came after it
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))

    # env setup. SAME_STEP autoreset: an ending step returns the reset observation, the true last one in infos["final_obs"]
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, args.seed, 0, args.capture_video, run_name, args.max_episode_steps)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs_dim, act_dim = envs.single_observation_space.shape[0], envs.single_action_space.shape[0]

    eps_theta = Denoiser(act_dim, args.hidden_dim, args.num_layers)
    # Q1, Q2; the targets live in `state`
    critic = TwinQNetwork(args.critic_hidden_dim or args.hidden_dim, args.num_layers, batch_norm=args.crossq)
    critic_tx = optax.adam(args.critic_lr, b1=0.5 if args.crossq else 0.9)  # CrossQ's beta1
    actor_lr_schedule = optax.cosine_decay_schedule(args.actor_lr, args.actor_lr_decay_steps)
    actor_tx = optax.adam(actor_lr_schedule)
    schedule = ddpm_schedule(args.diffusion_steps)
    state = init_qsm_state(init_key, eps_theta, critic, actor_tx, critic_tx, obs_dim, act_dim)
    qsm_update = make_qsm_update(eps_theta, critic, actor_tx, critic_tx, schedule, args)
    explore = make_policy(eps_theta, schedule, args.temperature, args.exploration_noise)
    sample_policy = make_policy(eps_theta, schedule, args.temperature)  # evaluation: no exploration noise

    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, seed=args.seed)
    train, start_step, (last_return, last_eval) = (state, act_key, eval_key), 0, (float("nan"), float("nan"))
    if checkpoint:
        train, start_step, (last_return, last_eval) = restore_checkpoint(checkpoint, train, rb, envs)
    state, act_key, eval_key = train
    ckpt_path, next_checkpoint = f"{run_dir}/{args.exp_name}.qsm_checkpoint", start_step + args.checkpoint_every
    stop = []  # SIGUSR2 (Slurm's notice before a time limit) or SIGTERM: checkpoint at the next episode end and exit 75
    for signum in (signal.SIGUSR2, signal.SIGTERM) if args.checkpoint_every else ():
        signal.signal(signum, lambda signum, frame: stop.append(signum))
    sps_time = last_print = time.time()
    sps_step = print_step = start_step

    # TRY NOT TO MODIFY: start the game
    obs, _ = envs.reset(seed=None if checkpoint else args.seed)  # a resumed run resets from the checkpoint's env RNGs
    obs = obs.astype(np.float32)
    for global_step in range(start_step, args.total_timesteps):
        # ALGO LOGIC: put action logic here
        if global_step < args.learning_starts:
            actions = np.random.uniform(-1.0, 1.0, size=(1, act_dim)).astype(np.float32)
        else:
            actions, act_key = explore(state.eps_params, obs, act_key)
            actions = np.asarray(actions)

        env_states = env_rngs(envs) if args.checkpoint_every and (global_step + 1 >= next_checkpoint or stop) else None

        # TRY NOT TO MODIFY: execute the game and log data.
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        next_obs = next_obs.astype(np.float32)

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
            state, metrics = qsm_update(state, rb.sample(args.batch_size))

            losses = np.array([metrics["losses/qf1_loss"], metrics["losses/qf2_loss"], metrics["losses/actor_loss"]])
            if not np.isfinite(losses).all():
                writer.close()
                fail(f"non-finite loss at global step {global_step} (qf1, qf2, actor: {losses.tolist()}); "
                     "try lower learning rates or a smaller --m-q", code=1)  # fmt: skip

            if global_step % 100 == 0:
                for tag, value in jax.device_get(metrics).items():
                    writer.add_scalar(tag, float(value), global_step)
                actor_lr = actor_lr_schedule(global_step - args.learning_starts + 1)  # the next update's, as in PyTorch
                writer.add_scalar("charts/learning_rate", float(actor_lr), global_step)
                writer.add_scalar("charts/SPS", (global_step - sps_step) / max(time.time() - sps_time, 1e-9), global_step)
                sps_step, sps_time = global_step, time.time()

        if global_step + 1 == args.total_timesteps or args.eval_frequency and (global_step + 1) % args.eval_frequency == 0:
            eval_start = time.time()
            eval_key, this_eval_key = jax.random.split(eval_key)
            last_eval = float(evaluate(sample_policy, state.eps_params, args, args.seed + 10_000, this_eval_key).mean())
            writer.add_scalar("eval/episodic_return", last_eval, global_step)
            sps_time += time.time() - eval_start  # evaluation time does not count against the training SPS

        if args.progress and time.time() - last_print >= 10.0:  # the rate of the last 10 s, evaluations included
            rate = (global_step + 1 - print_step) / (time.time() - last_print)
            print_step, last_print = global_step + 1, time.time()
            print(f"step {global_step + 1}/{args.total_timesteps} | {rate:.0f} steps/s | "
                  f"{(args.total_timesteps - global_step - 1) / rate / 60:.0f} min left | "
                  f"last return {last_return:.1f} | last eval {last_eval:.1f}", flush=True)  # fmt: skip

        if env_states and "final_obs" in infos:
            writer.close()  # every curve up to here is on disk before the checkpoint says so (tensorboardX's flush() leaves
            writer = SummaryWriter(run_dir, filename_suffix=f".{global_step + 1}")  # queued events behind): a new file
            progress = [last_return, last_eval]
            write_checkpoint(ckpt_path, (state, act_key, eval_key), rb, global_step + 1, progress, args, env_states)
            next_checkpoint = global_step + 1 + args.checkpoint_every
            if stop:
                print(f"stopped by signal {stop[0]} at step {global_step + 1}; continue with --resume {ckpt_path}")
                sys.exit(75)

    if args.save_model:
        model_path = f"{run_dir}/{args.exp_name}.qsm_model"
        bounds = envs.envs[0].unwrapped.action_space  # the env's own action bounds, which [-1, 1] is mapped onto
        # the twin critic's stacked parameters, split back into Q1 and Q2
        qf1, qf2 = (jax.tree.map(lambda p, i=i: np.asarray(p[i]), state.critic_params) for i in (0, 1))
        nets = {"eps_theta": jax.tree.map(np.asarray, state.eps_params), "qf1": qf1, "qf2": qf2}
        dims = {"obs_dim": obs_dim, "act_dim": act_dim, "action_low": bounds.low, "action_high": bounds.high}
        with open(model_path, "wb") as f:
            f.write(serialization.msgpack_serialize({"args": vars(args), **dims, **nets}))
        print(f"model saved to {model_path}")

    envs.close()
    writer.close()
