"""Size and write time of one checkpoint (`--checkpoint-every`) of either QSM script, for a run with a given replay buffer.

    python benchmark/checkpoint_cost.py --script jax --buffer 50000             # a 50k-step Hopper-v4 run
    python benchmark/checkpoint_cost.py --script torch --buffer 1000000         # a full 1e6-step buffer

The networks, optimisers and buffer are built as the script's `__main__` builds them (Hopper-v4's sizes by default:
11-dim observations, 3-dim actions, 256-wide nets); the buffer holds `--buffer` random transitions. Each write is the
script's own `write_checkpoint`, followed by the close and reopen of the event writer that a checkpoint also does.
Prints the file's size and the median time of `--repeats` writes. The file goes to a temporary folder, removed at the end.
"""

import argparse
import copy
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fill(rb, n):
    rng = np.random.default_rng(0)
    for name in ("obs", "next_obs", "actions", "rewards", "terminations"):
        field = getattr(rb, name)
        field[:n] = rng.standard_normal(field[:n].shape, dtype=np.float32)
    rb.pos, rb.full = n % rb.size, n == rb.size


def jax_writer(args, path):
    """The JAX script's checkpoint write, and its event writer class (tensorboardX, without torch)."""
    import jax
    import optax

    import qsm_continuous_action_jax as qsm

    run = qsm.Args(env_id="Hopper-v4", hidden_dim=args.hidden_dim, buffer_size=max(args.buffer, 1))
    eps_theta = qsm.Denoiser(args.act_dim, run.hidden_dim, run.num_layers)
    critic = qsm.TwinQNetwork(run.hidden_dim, run.num_layers)
    actor_tx = optax.adam(optax.cosine_decay_schedule(run.actor_lr, run.actor_lr_decay_steps))
    _, init_key, act_key, eval_key = jax.random.split(jax.random.key(1), 4)
    state = qsm.init_qsm_state(init_key, eps_theta, critic, actor_tx, optax.adam(run.critic_lr), args.obs_dim, args.act_dim)
    rb = qsm.ReplayBuffer(run.buffer_size, args.obs_dim, args.act_dim)
    fill(rb, args.buffer)
    hide_torch = "torch" not in sys.modules
    sys.modules.setdefault("torch", None)  # as the script does: tensorboardX without torch
    from tensorboardX import SummaryWriter

    if hide_torch:
        del sys.modules["torch"]
    return lambda: qsm.write_checkpoint(path, (state, act_key, eval_key), rb, args.buffer, [0.0, 0.0], run), SummaryWriter


def torch_writer(args, path):
    """The PyTorch script's checkpoint write (with Adam's moments after one step), and its event writer class."""
    import torch
    from torch import optim
    from torch.utils.tensorboard import SummaryWriter

    import qsm_continuous_action as qsm

    torch.set_num_threads(1)
    run = qsm.Args(env_id="Hopper-v4", hidden_dim=args.hidden_dim, buffer_size=max(args.buffer, 1))
    eps_theta = qsm.Denoiser(args.obs_dim, args.act_dim, run.hidden_dim, run.num_layers)
    qf1, qf2 = (qsm.QNetwork(args.obs_dim, args.act_dim, run.hidden_dim, run.num_layers) for _ in "12")
    q_optimizer = optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=run.critic_lr)
    actor_optimizer = optim.Adam(eps_theta.parameters(), lr=run.actor_lr)
    decay = run.actor_lr_decay_steps
    actor_scheduler = optim.lr_scheduler.LambdaLR(
        actor_optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, decay) / decay))
    )
    sum(p.sum() for net in (eps_theta, qf1, qf2) for p in net.parameters()).backward()
    q_optimizer.step(), actor_optimizer.step(), actor_scheduler.step()
    modules = dict(eps_theta=eps_theta, qf1=qf1, qf2=qf2, qf1_target=copy.deepcopy(qf1), qf2_target=copy.deepcopy(qf2),
                   q_optimizer=q_optimizer, actor_optimizer=actor_optimizer, actor_scheduler=actor_scheduler)  # fmt: skip
    rb = qsm.ReplayBuffer(run.buffer_size, args.obs_dim, args.act_dim)
    fill(rb, args.buffer)
    return lambda: qsm.write_checkpoint(path, modules, None, rb, args.buffer, [0.0, 0.0], run), SummaryWriter


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--script", choices=("jax", "torch"), required=True)
    parser.add_argument("--buffer", type=float, default=50_000, help="transitions in the replay buffer")
    parser.add_argument("--obs-dim", type=int, default=11)
    parser.add_argument("--act-dim", type=int, default=3)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    args.buffer = int(args.buffer)
    folder = tempfile.mkdtemp(prefix="checkpoint_cost_")
    try:
        path = os.path.join(folder, "run.qsm_checkpoint")
        write, SummaryWriter = (jax_writer if args.script == "jax" else torch_writer)(args, path)
        writer, seconds = SummaryWriter(folder), []
        for _ in range(args.repeats):
            start = time.perf_counter()
            write()
            writer.close()  # a checkpoint puts every curve on disk first, then the run writes on in a new event file
            writer = SummaryWriter(folder)
            seconds.append(time.perf_counter() - start)
        writer.close()
        size_mb, median = os.path.getsize(path) / 1e6, statistics.median(seconds)
        print(f"{args.script}: buffer of {args.buffer} transitions ({args.obs_dim}-dim obs, {args.act_dim}-dim actions), "
              f"{args.hidden_dim}-wide nets: {size_mb:.1f} MB, {median:.3f} s per checkpoint (median of {args.repeats}; "
              f"{min(seconds):.3f} to {max(seconds):.3f} s), {size_mb / median:.0f} MB/s")  # fmt: skip
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
