"""A one-step continuous bandit trained with the script's own QSM update (used by the learning tests)."""

import numpy as np
import torch

import qsm_continuous_action as qsm


def one_peak(a):
    """Concave, one maximum at a = 0.4."""
    return -((a - 0.4) ** 2).sum(-1, keepdim=True)


def two_peaks(a):
    """Two equal maxima, at a = -0.5 and a = +0.5: the one-peak parabola mirrored, smoothed at a = 0."""
    return -((torch.sqrt(a**2 + 0.01) - 0.5) ** 2).sum(-1, keepdim=True)


def near(samples, centre, radius=0.2):
    """Share of the samples within `radius` of `centre`."""
    return float(np.mean(np.abs(samples - centre) < radius))


def shifted_peak(a):
    """`one_peak` + 1: reward 1 at the maximum, so that a bootstrapped value differs from the reward."""
    return 1.0 + one_peak(a)


def train_bandit(
    reward_fn,
    m_q,
    steps=1000,
    warmup=1000,
    seed=0,
    hidden=64,
    n_samples=2000,
    chain=False,
    gamma=0.99,
    return_models=False,
    **variant,
):
    """Uniform warm-up, then one policy action a step (DDPM sample + exploration noise), one `qsm_update` a step.

    Bandit (default): one state, every episode ends after one step, so Q = reward. With `chain`, two states,
    A (obs 0) then B (obs 1), each paying reward_fn(a); the episode terminates after B, so the critic must bootstrap
    Q(A, a) = r(a) + gamma * E[Q(B, a')] through the target critics and stop at B's termination.
    Returns samples of the trained policy (DDPM, no exploration noise) at state A; with `return_models`, also the
    models that `q_value` reads.
    `variant`: other Args fields (the beyond-the-paper flags: normalize_q_grad, box_prior, crossq)."""
    torch.manual_seed(seed)
    args = qsm.Args(m_q=m_q, batch_size=128, gamma=gamma, tau=0.005, exploration_noise=0.1, temperature=1.0, **variant)
    obs_dim, act_dim = 1, 1
    eps_theta = qsm.Denoiser(obs_dim, act_dim, hidden, 2)
    critics = tuple(qsm.QNetwork(obs_dim, act_dim, hidden, 2, args.crossq) for _ in range(2))
    critic_targets = tuple(qsm.QNetwork(obs_dim, act_dim, hidden, 2, args.crossq) for _ in critics)
    for q, q_targ in zip(critics, critic_targets):
        q_targ.load_state_dict(q.state_dict())
    q_betas = (0.5 if args.crossq else 0.9, 0.999)  # as the script sets them
    q_optimizer = torch.optim.Adam([p for q in critics for p in q.parameters()], lr=1e-3, betas=q_betas)
    # the toy needs a fast actor: a 1-d action is one input of 130 to the first layer and bends it slowly
    actor_optimizer = torch.optim.Adam(eps_theta.parameters(), lr=1e-2)
    schedule = qsm.ddpm_schedule(5)
    q_grad_rms = qsm.RunningRMS() if args.normalize_q_grad else None
    rb = qsm.ReplayBuffer(warmup + steps, obs_dim, act_dim, seed=seed)
    obs = np.zeros((1, obs_dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for step in range(warmup + steps):
        terminated = not chain or obs[0, 0] == 1.0
        next_obs = obs if not chain else 1.0 - obs
        if step < warmup:
            a = rng.uniform(-1, 1, size=(1, act_dim)).astype(np.float32)
        else:
            a = qsm.ddpm_sample(eps_theta, torch.as_tensor(obs), schedule)
            a = (a + args.exploration_noise * torch.randn_like(a)).clamp(-1, 1).numpy()
        r = reward_fn(torch.as_tensor(a)).numpy()[:, 0]
        rb.add(obs, next_obs, a, r, np.array([terminated], dtype=np.float32))
        obs = np.zeros_like(obs) if terminated else next_obs
        if step >= warmup:
            optimizers = (q_optimizer, actor_optimizer)
            qsm.qsm_update(
                rb.sample(args.batch_size), eps_theta, critics, critic_targets, optimizers, schedule, args, q_grad_rms
            )
    samples = qsm.ddpm_sample(eps_theta, torch.zeros(n_samples, obs_dim), schedule)
    samples = samples.numpy()[:, 0]
    return (samples, (eps_theta, critics, schedule)) if return_models else samples


def q_value(models, obs, action):
    """The mean of the two online critics at one (obs, action)."""
    _, critics, _ = models
    s, a = torch.tensor([[obs]], dtype=torch.float32), torch.tensor([[action]], dtype=torch.float32)
    with torch.no_grad():
        return float(sum(q(s, a) for q in critics)) / len(critics)
