"""Run one training command over seeds x envs, checking every job, and report what finished and what failed.

    python benchmark/launch.py --env-ids Hopper-v4 Walker2d-v4 --seeds 1 2 3 --workers 2 -- \\
        python qsm_continuous_action.py --total-timesteps 20000

Each job is the command after `--` with `--env-id ENV --seed SEED` appended. Jobs run in a local pool of `--workers`
processes; each job's stdout and stderr go to `{log_dir}/{name}__{env}__{seed}.log`. At the end a table lists every job
with its exit status and time, the log tail of each failed job is printed, and the launcher exits 1 if any job failed,
so a failed run never looks like a finished one. `--dry-run` prints the commands and runs nothing.

The backend (where jobs run) is one flag: `--backend local` is the only one for now; a cluster backend plugs into
`BACKENDS` with the same signature (jobs in, one `JobResult` per job out).
"""

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional


@dataclass
class Job:
    name: str
    env_id: str
    seed: int
    command: List[str]
    log_path: str


@dataclass
class JobResult:
    job: Job
    returncode: Optional[int]  # None: never started, or interrupted
    seconds: float

    @property
    def ok(self):
        return self.returncode == 0

    @property
    def status(self):
        if self.returncode is None:
            return "NOT RUN"
        if self.returncode == 0:
            return "ok"
        if self.returncode < 0:
            try:
                return f"FAILED (killed by {signal.Signals(-self.returncode).name})"
            except ValueError:
                return f"FAILED (signal {-self.returncode})"
        return f"FAILED (exit {self.returncode})"


def make_jobs(command, env_ids, seeds, name, log_dir):
    """One job per (env, seed), seeds innermost, so the first results to come in cover every env."""
    jobs = []
    for env_id in env_ids:
        for seed in seeds:
            log_path = os.path.join(log_dir, f"{name}__{env_id.replace('/', '-')}__{seed}.log")
            jobs.append(Job(name, env_id, seed, list(command) + ["--env-id", env_id, "--seed", str(seed)], log_path))
    return jobs


def run_local(jobs, workers, threads_per_job=None, timeout=None, echo=print):
    """Run the jobs as subprocesses, at most `workers` at a time; never raises for a failed job."""
    env = dict(os.environ)
    if threads_per_job:  # each job gets its share of the cores instead of all of them
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads_per_job)
    running, lock, stopping = set(), threading.Lock(), threading.Event()

    def run_one(job):
        if stopping.is_set():
            return JobResult(job, None, 0.0)
        os.makedirs(os.path.dirname(job.log_path) or ".", exist_ok=True)
        start = time.time()
        with open(job.log_path, "w") as log:
            log.write(f"$ {shlex.join(job.command)}\n")
            log.flush()
            proc = subprocess.Popen(job.command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            with lock:
                running.add(proc)
            echo(f"[launch] started  {job.name} {job.env_id} seed {job.seed} (pid {proc.pid}, log {job.log_path})")
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                returncode = proc.wait()
                log.write(f"\n[launch] killed after the --timeout of {timeout} s\n")
            finally:
                with lock:
                    running.discard(proc)
        result = JobResult(job, returncode, time.time() - start)
        echo(f"[launch] finished {job.name} {job.env_id} seed {job.seed}: {result.status} in {result.seconds:.0f} s")
        return result

    pool = ThreadPoolExecutor(max_workers=workers)
    futures = [pool.submit(run_one, job) for job in jobs]
    try:
        return [f.result() for f in futures]
    except KeyboardInterrupt:
        stopping.set()
        with lock:
            for proc in running:  # each job is its own process group: stop it and its children
                os.killpg(proc.pid, signal.SIGTERM)
        echo("[launch] interrupted: stopped the running jobs")
        return [f.result() if f.done() else JobResult(job, None, 0.0) for f, job in zip(futures, jobs)]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# backend name -> function(jobs, workers, threads_per_job, timeout) returning one JobResult per job, in order
BACKENDS: Dict[str, Callable[..., List[JobResult]]] = {"local": run_local}


def log_tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})\n"


def summary(results):
    """The table printed at the end: one row per job, failures first named in full."""
    header = ("job", "env", "seed", "status", "time", "log")
    rows = [(r.job.name, r.job.env_id, str(r.job.seed), r.status, f"{r.seconds:.0f} s", r.job.log_path) for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*row) for row in rows]
    failed = [r for r in results if not r.ok]
    lines.append(f"{len(results) - len(failed)} of {len(results)} jobs finished with exit status 0, {len(failed)} failed")
    return "\n".join(lines)


def parse_args(argv):
    if "--" not in argv:
        raise SystemExit("launch.py: error: give the training command after `--`, e.g. -- python qsm_continuous_action.py")
    split = argv.index("--")
    command = argv[split + 1 :]
    if not command:
        raise SystemExit("launch.py: error: the command after `--` is empty")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-ids", nargs="+", required=True, help="Gymnasium env ids")
    parser.add_argument("--seeds", nargs="+", type=int, required=True, help="seeds, one job per env and seed")
    parser.add_argument("--workers", type=int, default=1, help="jobs running at the same time")
    parser.add_argument("--threads-per-job", type=int, default=None, help="OMP/MKL threads per job (default: cores / workers)")
    parser.add_argument(
        "--name",
        default=None,
        help="job name in logs and the table (default: the --exp-name passed on, else the script's name)",
    )
    parser.add_argument("--log-dir", default="runs/logs", help="folder of the jobs' stdout/stderr logs")
    parser.add_argument("--timeout", type=float, default=None, help="seconds after which a job is killed (and fails)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="local", help="where the jobs run")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv[:split])
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.name is None:  # the run's --exp-name if given (runs of one script under two names keep their own logs)
        scripts = [os.path.basename(c)[: -len(".py")] for c in command if c.endswith(".py")]
        args.name = scripts[0] if scripts else os.path.basename(command[0])
        for i, word in enumerate(command[:-1]):
            if word == "--exp-name":
                args.name = command[i + 1]
    if args.threads_per_job is None:
        args.threads_per_job = max(1, (os.cpu_count() or 1) // args.workers)
    return args, command


def main(argv=None):
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    jobs = make_jobs(command, args.env_ids, args.seeds, args.name, args.log_dir)
    if args.dry_run:
        for job in jobs:
            print(shlex.join(job.command))
        return 0
    print(
        f"[launch] {len(jobs)} jobs on backend {args.backend}, {args.workers} at a time, {args.threads_per_job} thread(s) each"
    )
    start = time.time()
    results = BACKENDS[args.backend](jobs, args.workers, args.threads_per_job, args.timeout)
    for r in results:
        if not r.ok and r.returncode is not None:
            print(f"\n[launch] {r.job.name} {r.job.env_id} seed {r.job.seed} {r.status}; last lines of {r.job.log_path}:")
            print(log_tail(r.job.log_path), end="")
    print(f"\n[launch] summary ({time.time() - start:.0f} s in all)")
    print(summary(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
