"""Evaluate a policy saved by `--save-model`, from either script: rebuild its denoiser with the flags it was trained
with, run evaluation episodes (the DDPM sample, no exploration noise) and print their mean return.

The scripts train; this tool evaluates, so that neither script carries a second entry point. A PyTorch model is a
`torch.save` zip read with `weights_only=True`, a JAX model a msgpack file: neither format can run code from the file.

    python benchmark/evaluate_model.py runs/<run_name>/qsm_continuous_action.qsm_model --eval-episodes 10
"""

import argparse
import dataclasses
import os
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fail(message):
    print(f"{os.path.basename(__file__)}: error: {message}", file=sys.stderr)
    sys.exit(2)


def saved_args(qsm, saved, eval_episodes):
    """The training run's flags as the script's Args, with this evaluation's episode count."""
    names = {field.name for field in dataclasses.fields(qsm.Args)}
    return qsm.Args(**{**{k: v for k, v in saved["args"].items() if k in names}, "eval_episodes": eval_episodes})


def evaluate_torch(path, eval_episodes, seed):
    import torch

    import qsm_continuous_action as qsm

    model = torch.load(path, map_location="cpu", weights_only=True)
    args = saved_args(qsm, model, eval_episodes)
    eps_theta = qsm.Denoiser(model["obs_dim"], model["act_dim"], args.hidden_dim, args.num_layers)
    eps_theta.load_state_dict(model["eps_theta"])
    return args, qsm.evaluate(eps_theta, qsm.ddpm_schedule(args.diffusion_steps), args, seed, torch.device("cpu"))


def evaluate_jax(path, eval_episodes, seed):
    import jax
    from flax import serialization

    import qsm_continuous_action_jax as qsm

    with open(path, "rb") as f:
        model = serialization.msgpack_restore(f.read())
    args = saved_args(qsm, model, eval_episodes)
    policy = qsm.make_policy(qsm.Denoiser(int(model["act_dim"]), args.hidden_dim, args.num_layers),
                             qsm.ddpm_schedule(args.diffusion_steps), args.temperature)  # fmt: skip
    eval_key = jax.random.split(jax.random.key(seed), 4)[3]  # the key the script's seeding gives its evaluations
    return args, qsm.evaluate(policy, model["eps_theta"], args, seed, eval_key)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a file written by --save-model (PyTorch or JAX script)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="the number of evaluation episodes")
    parser.add_argument("--seed", type=int, default=1, help="the seed of the evaluation episodes and of the sampler")
    cli = parser.parse_args()
    if not os.path.isfile(cli.model):
        fail(f"no such file {cli.model!r}")
    if cli.eval_episodes < 1:
        fail("--eval-episodes must be >= 1")
    try:
        evaluate_model = evaluate_torch if zipfile.is_zipfile(cli.model) else evaluate_jax
        args, returns = evaluate_model(cli.model, cli.eval_episodes, cli.seed)
    except Exception as e:
        fail(f"{cli.model!r} is not a model saved by --save-model ({type(e).__name__}); nothing was run")
    print(f"{args.env_id}: {cli.eval_episodes} evaluation episodes, return {returns.mean():.2f} +- {returns.std():.2f}")
