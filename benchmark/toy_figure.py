"""What a QSM policy is, on a one-step bandit with two separated maxima (a = -0.5 and a = +0.5).

    python benchmark/toy_figure.py --output benchmark/results/figures/toy_bandit.png

Trains QSM with the script's own pieces (`tests/bandit.py`: uniform warm-up, then one DDPM action and one
`qsm_update` per step, a learned critic) and draws
  left:  a histogram of the trained policy's samples against the reward (= Q, the episode ends after one step) and
         the learned critic: the samples sit on both maxima, not on one, and not between them;
  right: the denoiser's field -eps_theta(s, a, t) / M_q at several steps t of the chain against grad_a Q: QSM
         regresses the first onto the second, so each denoising step moves an action uphill on Q, towards the nearer
         maximum. That is where the multimodality comes from.
"""

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from bandit import train_bandit, two_peaks  # noqa: E402


def field(eps_theta, critics, m_q, actions, steps):
    """-eps_theta(s, a, t) / M_q for each t in `steps`, and grad_a of the critics' mean Q, at the bandit's state."""
    obs = torch.zeros(len(actions), 1)
    a = torch.as_tensor(actions, dtype=torch.float32).unsqueeze(-1).requires_grad_(True)
    q = sum(critic(obs, a) for critic in critics) / len(critics)
    (q_grad,) = torch.autograd.grad(q.sum(), a)
    with torch.no_grad():
        eps = {t: eps_theta(obs, a, torch.full((len(actions),), t, dtype=torch.long))[:, 0].numpy() for t in steps}
    return {t: -e / m_q for t, e in eps.items()}, q.detach()[:, 0].numpy(), q_grad[:, 0].numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="benchmark/results/figures/toy_bandit.png")
    parser.add_argument("--m-q", type=float, default=1.0, help="M_q (the bandit's rewards are about 1 in scale)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps after 1000 uniform warm-up steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    samples, (eps_theta, critics, schedule) = train_bandit(
        two_peaks, m_q=args.m_q, steps=args.steps, seed=args.seed, n_samples=5000, return_models=True
    )
    T = len(schedule["betas"])
    grid = np.linspace(-1, 1, 201)
    fields, q_learned, q_grad = field(eps_theta, critics, args.m_q, grid, steps=sorted({0, T // 2, T - 1}))
    a = torch.as_tensor(grid, dtype=torch.float32).unsqueeze(-1).requires_grad_(True)
    reward = two_peaks(a)
    (reward_grad,) = torch.autograd.grad(reward.sum(), a)

    near = lambda centre: float(np.mean(np.abs(samples - centre) < 0.2))  # noqa: E731
    print(f"share of samples within 0.2 of a = -0.5: {near(-0.5):.2f}, of a = +0.5: {near(0.5):.2f}, of a = 0: {near(0):.2f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.6))
    left.hist(samples, bins=60, range=(-1, 1), density=True, color="tab:blue", alpha=0.5, label="policy samples (DDPM, T=5)")
    left.set_xlabel("action a")
    left.set_ylabel("density of samples")
    twin = left.twinx()
    twin.plot(grid, reward.detach()[:, 0].numpy(), color="black", label="reward = true Q")
    twin.plot(grid, q_learned, color="tab:red", linestyle="--", label="learned Q (mean of Q1, Q2)")
    twin.set_ylabel("Q(s, a)")
    handles = left.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    left.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    left.set_title("samples of the learned policy against Q")

    right.axhline(0, color="grey", linewidth=0.5)
    right.plot(grid, reward_grad[:, 0].numpy(), color="black", label="true grad_a Q")
    right.plot(grid, q_grad, color="tab:red", linestyle="--", label="grad_a of the learned Q")
    for t, values in fields.items():
        right.plot(grid, values, label=f"-eps_theta(s, a, t={t}) / M_q", alpha=0.8)
    right.set_xlabel("action a")
    right.set_title("the denoiser's field against grad_a Q")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    for ax in (left, right):
        for mode in (-0.5, 0.5):
            ax.axvline(mode, color="grey", linestyle=":", linewidth=0.8)
    fig.suptitle(f"QSM on a one-step bandit with maxima at a = -0.5 and +0.5 (M_q = {args.m_q:g})", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig.savefig(args.output, dpi=90)
    print(f"figure: {args.output}")


if __name__ == "__main__":
    main()
