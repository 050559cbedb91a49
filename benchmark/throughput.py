"""Env steps per second of the PyTorch and the JAX QSM scripts, side by side on the same machine and in the same run.

Each script trains on the same env with the same flags, one after the other; for each, the rate is read from the
TensorBoard event file: the steps between the first logged update (at --learning-starts, so after JAX's compilation)
and the last one, over the wall-clock time between them. Warm-up, compilation and the final evaluation are left out.

    python benchmark/throughput.py --env-id Hopper-v4 --learning-starts 1000 --updates 1000 --hidden-dims 512 256

--threads N caps both libraries' thread pools (OMP_NUM_THREADS for PyTorch, XLA_FLAGS for JAX): use it when other
processes share the cores, where PyTorch's OpenMP threads can slow down badly.
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"pytorch": "qsm_continuous_action.py", "jax": "qsm_continuous_action_jax.py"}


def steady_sps(run_dir):
    """(last step - first step) / (wall time between them), over the charts/SPS points logged every 100 updates."""
    acc = EventAccumulator(run_dir)
    acc.Reload()
    events = acc.Scalars("charts/SPS")
    first, last = events[0], events[-1]
    return (last.step - first.step) / (last.wall_time - first.wall_time), last.step - first.step


def thread_env(threads):
    """Environment variables that cap both libraries' intra-op thread pools (None: each library's own default)."""
    if threads is None:
        return dict(os.environ)
    xla = f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} intra_op_parallelism_threads={threads}"
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "XLA_FLAGS": xla}


def run_script(name, flags, workdir, threads=None):
    cwd = os.path.join(workdir, f"{name}_{flags[flags.index('--hidden-dim') + 1]}")
    os.makedirs(cwd)
    start = time.time()
    command = [sys.executable, os.path.join(ROOT, SCRIPTS[name]), *flags]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=thread_env(threads))
    wall = time.time() - start
    if result.returncode != 0:
        sys.exit(f"{SCRIPTS[name]} failed:\n{result.stderr[-3000:]}")
    (run_dir,) = glob.glob(os.path.join(cwd, "runs", "*"))
    sps, steps = steady_sps(run_dir)
    return sps, steps, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="Hopper-v4")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=1000, help="training steps (one update each) after the warm-up")
    parser.add_argument("--hidden-dims", type=int, nargs="+", default=[512, 256])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="cap both scripts' thread pools (default: no cap)")
    opts = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for hidden_dim in opts.hidden_dims:
            flags = [
                "--env-id", opts.env_id, "--seed", str(opts.seed), "--hidden-dim", str(hidden_dim),
                "--learning-starts", str(opts.learning_starts), "--total-timesteps", str(opts.learning_starts + opts.updates),
                "--eval-frequency", "0", "--eval-episodes", "1", "--no-progress",
            ]  # fmt: skip
            result = {}
            for name in SCRIPTS:  # one after the other, never at the same time
                result[name] = run_script(name, flags, workdir, opts.threads)
                sps, steps, wall = result[name]
                print(
                    f"{SCRIPTS[name]:30s} hidden {hidden_dim}: {sps:6.1f} env steps/s over {steps} steps"
                    f" (process {wall:.0f} s)"
                )
            rows.append((hidden_dim, result["pytorch"][0], result["jax"][0]))

    threads = "default threads" if opts.threads is None else f"--threads {opts.threads}"
    print(
        f"\n{opts.env_id}, --learning-starts {opts.learning_starts}, {opts.updates} updates,"
        f" {os.cpu_count()} CPU cores, {threads}"
    )
    print("| nets | PyTorch env steps/s | JAX env steps/s | JAX / PyTorch |")
    print("|---|---|---|---|")
    for hidden_dim, torch_sps, jax_sps in rows:
        print(f"| {hidden_dim}x{hidden_dim} | {torch_sps:.1f} | {jax_sps:.1f} | {jax_sps / torch_sps:.2f}x |")


if __name__ == "__main__":
    main()
