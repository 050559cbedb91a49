"""What a flag costs per update: one jitted update of the JAX script for each flag set, timed alternately in one process.

Each flag set gets its own train state and update function on a fixed batch of the env's sizes; then rounds of
--updates updates run for each set in turn, so that a load that comes and goes on shared cores hits all sets alike.
The flag sets come after `--`, each as one string ("" is --base alone). Prints the median time of one update per set
and its ratio to the first set.

    python benchmark/update_cost.py --env-id Hopper-v4 \
        --base "--hidden-dim 256 --normalize-q-grad --box-prior --m-q 1 --crossq" \
        -- "" "--critic-hidden-dim 512" "--critic-hidden-dim 1024"
"""

import argparse
import os
import shlex
import sys
import time

import gymnasium as gym
import jax
import numpy as np
import optax
import tyro

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import qsm_continuous_action_jax as qsm  # noqa: E402


def make_update(flags, obs_dim, act_dim):
    """The script's update and a fresh train state for these flags, built as its main block builds them."""
    args = tyro.cli(qsm.Args, args=flags)
    eps_theta = qsm.Denoiser(act_dim, args.hidden_dim, args.num_layers)
    critic = qsm.TwinQNetwork(args.critic_hidden_dim or args.hidden_dim, args.num_layers, batch_norm=args.crossq)
    critic_tx = optax.adam(args.critic_lr, b1=0.5 if args.crossq else 0.9)
    actor_tx = optax.adam(optax.cosine_decay_schedule(args.actor_lr, args.actor_lr_decay_steps))
    state = qsm.init_qsm_state(jax.random.key(0), eps_theta, critic, actor_tx, critic_tx, obs_dim, act_dim)
    update = qsm.make_qsm_update(eps_theta, critic, actor_tx, critic_tx, qsm.ddpm_schedule(args.diffusion_steps), args)
    return update, state, args.batch_size


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="Hopper-v4", help="the env whose observation and action sizes are used")
    parser.add_argument("--base", default="", help="flags of the JAX script common to every set")
    parser.add_argument("variants", nargs="*", default=[""], help="the flag sets, each added to --base (after --)")
    parser.add_argument("--updates", type=int, default=50, help="updates per set in each round")
    parser.add_argument("--rounds", type=int, default=10, help="rounds; the median over rounds is reported")
    cli = parser.parse_args()
    env = gym.make(cli.env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    rng = np.random.default_rng(0)
    sets = {}
    for variant in cli.variants:
        update, state, batch_size = make_update(shlex.split(cli.base) + shlex.split(variant), obs_dim, act_dim)
        obs, next_obs = rng.normal(size=(2, batch_size, obs_dim))
        actions, rewards = rng.uniform(-1, 1, (batch_size, act_dim)), rng.normal(size=(batch_size, 1))
        batch = tuple(x.astype(np.float32) for x in (obs, actions, rewards, next_obs, np.zeros((batch_size, 1))))
        state, metrics = update(state, batch)  # compile
        jax.block_until_ready(metrics)
        sets[variant] = [update, state, batch, []]
    for _ in range(cli.rounds):
        for entry in sets.values():
            update, state, batch, times = entry
            start = time.perf_counter()
            for _ in range(cli.updates):
                state, metrics = update(state, batch)
            jax.block_until_ready(metrics)
            times.append((time.perf_counter() - start) / cli.updates * 1e3)
            entry[1] = state
    first = np.median(next(iter(sets.values()))[3])
    for variant, (*_, times) in sets.items():
        print(f"{variant or '(base)':30s} {np.median(times):7.2f} ms per update  x{np.median(times) / first:.2f}")
