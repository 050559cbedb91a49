"""Run one training command over seeds x envs, checking every job, and report what finished and what failed.

    python benchmark/launch.py --env-ids Hopper-v4 Walker2d-v4 --seeds 1 2 3 --workers 2 -- \\
        python qsm_continuous_action.py --total-timesteps 20000

Each job is the command after `--` with `--env-id ENV --seed SEED` appended. Jobs run in a local pool of `--workers`
processes; each job's stdout and stderr go to `{log_dir}/{name}__{env}__{seed}.log`. At the end a table lists every job
with its exit status and time, the log tail of each failed job is printed, and the launcher exits 1 if any job failed,
so a failed run never looks like a finished one. `--dry-run` prints the commands and runs nothing.

The backend (where jobs run) is one flag. `--backend local` (the default) is the process pool above.
`--backend slurm` submits the same jobs as one Slurm job array through submitit, with `--slurm-partition`,
`--slurm-time`, `--slurm-cpus`, `--slurm-gpus` and `--slurm-mem` per job; submitit's files for each job (its stdout,
stderr and pickles) go to `{log_dir}/slurm/{job id}/`. The launcher waits for every job and reports each one as ok,
FAILED (the command's exit status), CANCELLED, or FAILED with the Slurm state when a job ended without a result (killed,
out of memory, time limit, node failure). A job that leaves the queue without a result is reported failed, never waited
on forever, even on a cluster whose `sacct` does not answer.

A sweep resumes: a job whose command exited 0 leaves `{log_dir}/{name}__{env}__{seed}.done`, naming its run folder
`{runs_dir}/{env}__{exp_name}__{seed}__{time}`. A later launch skips every job whose `.done` has the same command
and whose run folder still holds its TensorBoard event files, and runs the others. `--rerun-finished` runs them all.
A job that was cut (killed, stopped, or its launcher stopped) after its run wrote `{exp_name}.qsm_checkpoint` (the
scripts' `--checkpoint-every`) continues from it: the launch appends `--resume CHECKPOINT` to its command. On Slurm, a
job whose time limit comes near, or that is preempted, stops at its checkpoint and is requeued to resume from it.
"""

import argparse
import csv
import glob
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # plot.py, beside this file
from plot import (  # noqa: E402
    EVAL_TAG,
    RETURN_TAG,
    SPS_TAG,
    Run,
    curves_file,
    env_name,
    final_return,
    read_scalars,
    text_table,
)

CHECKPOINT_EXIT = 75  # EX_TEMPFAIL: the training script stopped on a signal after writing its checkpoint ("resume me")


@dataclass
class Job:
    name: str
    env_id: str
    seed: int
    command: List[str]
    log_path: str
    runs_dir: str = "runs"  # where the command writes its run folder (relative to the launcher's working directory)
    exp_name: str = ""  # the run folder's exp_name (`--exp-name` in the command, else the launcher's job name)
    started_at: float = 0.0  # when the command was last started afresh: its run folder is the first one since
    resume: Optional[str] = None  # the checkpoint this launch continues from, else None (a fresh start)
    results: Optional["Results"] = None  # where a finished run's row and curves go (--results-csv)

    @property
    def done_path(self):
        return self.log_path[: -len(".log")] + ".done"

    @property
    def started_path(self):
        return self.log_path[: -len(".log")] + ".started"

    @property
    def launch_command(self):
        """The command as run now. The records keep `command`, so a resumed job is the same job to a later launch."""
        return self.command + ["--resume", self.resume] if self.resume else self.command


@dataclass
class JobResult:
    job: Job
    returncode: Optional[int]  # None: never started, interrupted, or ended without a result (see slurm_state)
    seconds: float
    slurm_state: Optional[str] = None  # Slurm's state when it says more than the exit status (TIMEOUT, CANCELLED, ...)
    slurm_id: Optional[str] = None
    skipped_run: Optional[str] = None  # the run folder of an earlier launch when this job was skipped as finished
    extra_logs: tuple = ()  # more logs worth a look when the job failed (submitit's stderr)

    @property
    def ok(self):
        return self.returncode == 0

    @property
    def status(self):
        if self.skipped_run:
            return "ok (finished before)"
        if self.returncode == 0 and self.job.resume:
            return "ok (resumed)"
        if self.returncode == CHECKPOINT_EXIT:
            return "STOPPED (checkpoint written: launch again to resume)"
        if self.slurm_state is not None:
            if self.slurm_state.startswith("CANCELLED"):
                return "CANCELLED"
            if self.slurm_state == "LOST":
                return "FAILED (lost: left the queue without a result)"
            return f"FAILED (Slurm: {self.slurm_state})"
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


def make_jobs(command, env_ids, seeds, name, log_dir, runs_dir="runs"):
    """One job per (env, seed), seeds innermost, so the first results to come in cover every env."""
    exp_name = name
    for i, arg in enumerate(command):  # the training script names its run folder after --exp-name
        if arg == "--exp-name" and i + 1 < len(command):
            exp_name = command[i + 1]
        elif arg.startswith("--exp-name="):
            exp_name = arg.split("=", 1)[1]
    jobs = []
    for env_id in env_ids:
        for seed in seeds:
            log_path = os.path.abspath(os.path.join(log_dir, f"{name}__{env_id.replace('/', '-')}__{seed}.log"))
            job_command = list(command) + ["--env-id", env_id, "--seed", str(seed)]
            jobs.append(Job(name, env_id, seed, job_command, log_path, os.path.abspath(runs_dir), exp_name))
    return jobs


# ---------------------------------------------------------------------------------------------------------------------
# Resuming a sweep: a job that exited 0 records its run folder; a later launch skips it while the event files are there.
# A job that did not finish resumes from the checkpoint its run folder holds, if an earlier launch of its command left one


def event_files(run_dir):
    return glob.glob(os.path.join(run_dir, "events.out.tfevents.*")) if run_dir else []


def without_flag(command, flag):
    """The command without `flag` and its value (`--flag V` or `--flag=V`)."""
    return [
        arg
        for i, arg in enumerate(command)
        if arg != flag and not arg.startswith(flag + "=") and not (i > 0 and command[i - 1] == flag)
    ]


def same_run(a, b):
    """Whether two commands count as the same job: equal but for `--checkpoint-every`, so that the records of runs made
    before the runners passed it still match. Since 2026-12-07 (issue 31) a checkpoint changes nothing in a run: with
    or without checkpoints, resumed or not, the same command gives the same run bit for bit on one machine
    (tests/test_resume.py). Rows recorded before then with `--checkpoint-every` took other episodes (a checkpoint then
    reseeded the env); they reproduce from their commit."""
    return without_flag(a, "--checkpoint-every") == without_flag(b, "--checkpoint-every")


def run_prefix(job):
    return os.path.join(job.runs_dir, f"{job.env_id.replace('/', '-')}__{job.exp_name}__{job.seed}__")


def run_folders(job, since):
    """The job's run folders made since `since` (their names end with the script's start time), oldest first."""
    prefix = run_prefix(job)
    folders = []
    for path in glob.glob(glob.escape(prefix) + "*"):
        stamp = path[len(prefix) :]
        if stamp.isdigit() and int(stamp) >= int(since) - 1:
            folders.append((int(stamp), path))
    return [path for _, path in sorted(folders)]


def latest_checkpoint(job, since):
    """The checkpoint in the newest run folder made since `since` that holds one, else None."""
    for run_dir in reversed(run_folders(job, since)):
        path = os.path.join(run_dir, f"{job.exp_name}.qsm_checkpoint")
        if os.path.isfile(path):
            return path
    return None


def plan_start(job, resume=True, dry_run=False):
    """Before the job runs: resume it from the checkpoint of an earlier launch of this command that did not finish, else
    record a fresh start (`job.started_path`), so that a later launch finds this start's run folder and resumes it.
    Only a launch of the same command counts: another command's checkpoint would not match the flags."""
    try:
        with open(job.started_path) as f:
            record = json.load(f)
        if resume and same_run(record["command"], job.command):
            job.started_at, job.resume = record["started_at"], latest_checkpoint(job, record["started_at"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if job.resume or dry_run:
        return
    job.started_at = time.time()
    os.makedirs(os.path.dirname(job.started_path), exist_ok=True)
    with open(job.started_path + ".tmp", "w") as f:
        json.dump({"command": job.command, "started_at": job.started_at}, f)
    os.replace(job.started_path + ".tmp", job.started_path)


def mark_finished(job, log):
    """After the command exited 0: find the run folder it wrote and record it in `job.done_path`.
    Without event files there is nothing to resume from, so nothing is recorded and a re-launch runs the job again."""
    if job.resume:  # the run folder of the cut run, made before this launch
        run_dirs = [os.path.dirname(job.resume)]
    else:  # the first folder since the start: a later launch of the same job writes a later one
        run_dirs = run_folders(job, job.started_at)
    run_dirs = [path for path in run_dirs if event_files(path)]
    if not run_dirs:
        log.write(f"\n[launch] exit 0 but no event files under {run_prefix(job)}*: a re-launch will run this job again\n")
        return
    record = {"command": job.command, "run_dir": run_dirs[0], "finished_at": time.time()}
    with open(job.done_path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(job.done_path + ".tmp", job.done_path)  # never a half-written record
    if job.results:
        job.results.add(job, run_dirs[0])


def finished_run(job):
    """The run folder of an earlier launch of this very command that finished with its event files, else None."""
    try:
        with open(job.done_path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not same_run(record.get("command") or [], job.command) or not event_files(record.get("run_dir")):
        return None
    return record["run_dir"]


# ---------------------------------------------------------------------------------------------------------------------
# Results that outlive this machine (--results-csv): one row per finished run, with the commit and the CPU it ran on,
# and its curves beside the CSV; a job whose row is already there is skipped, wherever that row was made.
RESULT_COLUMNS = ["task", "algorithm", "seed", "command", "commit", "cpu", "final_eval_return", "final_train_return",
                  "sps_median", "wall_clock_s", "run_dir"]  # fmt: skip


def wall_clock(run_dir):
    """Seconds the run's writers were open (first to last event of each event file), summed over the files: a resumed
    run adds one file per piece, and the time between the pieces does not count."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    total = 0.0
    for path in event_files(run_dir):
        times = [event.wall_time for event in EventFileLoader(path).Load()]
        total += max(times) - min(times) if times else 0.0
    return total


def append_row(path, row):
    """Append one row (a dict) to the CSV, in the file's own line endings; a CSV written before a column was added is
    first rewritten with it, its old rows empty there, so that every row of one file has the same columns."""
    header, old_rows, ending = [], [], "\r\n"
    if os.path.isfile(path):
        with open(path, newline="") as f:
            text = f.read()
        ending = "\n" if text and "\r\n" not in text else "\r\n"
        reader = csv.DictReader(text.splitlines())
        old_rows, header = list(reader), list(reader.fieldnames or [])
    columns = RESULT_COLUMNS + [name for name in header if name not in RESULT_COLUMNS]
    if header != columns:
        with open(path + ".tmp", "w", newline="") as f:
            writer = csv.DictWriter(f, columns, restval="", lineterminator=ending)
            writer.writeheader()
            writer.writerows(old_rows)
        os.replace(path + ".tmp", path)
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, columns, restval="", lineterminator=ending).writerow(row)


def source_commit():
    """HEAD of the checkout the launcher runs in, with `-dirty` when its tracked files differ from it ("unknown" without
    git on the PATH)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    except OSError:
        return "unknown"
    return head + ("-dirty" if dirty.stdout.strip() else "")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


class Results:
    def __init__(self, path, recipe=None):
        self.path, self.curves_dir, self.lock = path, os.path.join(os.path.dirname(path), "curves"), threading.Lock()
        self.commit, self.cpu, self.recipe = source_commit(), cpu_model(), recipe

    def rows(self):
        if not os.path.isfile(self.path):
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    @staticmethod
    def recorded(job, rows):
        """Whether `rows` (the CSV's) hold this very run: the same task, seed and command but for `--exp-name`, which
        only names the run folder, so that renaming a recipe in the `algorithm` column reruns nothing."""
        command = without_flag(job.command[1:], "--exp-name")  # [1:]: whatever the interpreter's path
        return any(
            (row["task"], row["seed"]) == (env_name(job.env_id), str(job.seed))
            and same_run(without_flag(shlex.split(row["command"])[1:], "--exp-name"), command)
            for row in rows
        )

    def add(self, job, run_dir):
        """Append the finished run's row (its numbers as plot.py's CSV has them; the algorithm is --recipe, else the
        run's exp_name) under the CSV's own header, and write its curves (step, tag, value) to curves/, named by
        curves_file."""
        run = Run(env_name(job.env_id), self.recipe or job.exp_name, job.seed, run_dir, read_scalars(run_dir))
        sps = run.series(SPS_TAG)[:, 1]
        values = [run.env_id, run.algo, run.seed, shlex.join(job.command), self.commit, self.cpu,
                  "" if np.isnan(run.final_eval) else repr(run.final_eval),
                  repr(final_return(run, 10)) if len(run.series(RETURN_TAG)) else "",
                  repr(float(np.median(sps))) if len(sps) else "", repr(round(wall_clock(run_dir), 1)), run_dir]  # fmt: skip
        with self.lock:
            os.makedirs(self.curves_dir, exist_ok=True)
            with open(os.path.join(self.curves_dir, curves_file(run.env_id, run.algo, run.seed)), "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["step", "tag", "value"])
                writer.writerows(
                    [int(step), tag, repr(float(value))] for tag in (EVAL_TAG, RETURN_TAG) for step, value in run.series(tag)
                )
            append_row(self.path, dict(zip(RESULT_COLUMNS, values)))


def open_log(job):
    """The job's log: a resumed job writes on after the lines of the run it continues."""
    os.makedirs(os.path.dirname(job.log_path) or ".", exist_ok=True)
    log = open(job.log_path, "a" if job.resume else "w")
    log.write(f"$ {shlex.join(job.launch_command)}\n")
    log.flush()
    return log


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
        start = time.time()
        job.started_at = job.started_at or start  # (a job given without plan_start: its run folder comes after now)
        with open_log(job) as log:
            proc = subprocess.Popen(job.launch_command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            with lock:
                running.add(proc)
            how = "resumed" if job.resume else "started "
            echo(f"[launch] {how} {job.name} {job.env_id} seed {job.seed} (pid {proc.pid}, log {job.log_path})")
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                returncode = proc.wait()
                log.write(f"\n[launch] killed after the --timeout of {timeout} s\n")
            finally:
                with lock:
                    running.discard(proc)
            if returncode == 0:
                mark_finished(job, log)
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
        echo("[launch] interrupted: stopping the running jobs (a run with checkpoints writes one first)")
        pool.shutdown(wait=True, cancel_futures=True)
        return [f.result() if f.done() and not f.cancelled() else JobResult(job, None, 0.0) for f, job in zip(futures, jobs)]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------------------------------
# Slurm backend: one job array through submitit; the launcher stays on the login node and collects every outcome


class CommandEnded(Exception):
    """Raised by `NodeRun.checkpoint` (inside submitit's signal handler) when the command ended without a checkpoint to
    resume from: the job then ends with the command's exit status instead of being requeued."""

    def __init__(self, returncode):
        super().__init__(f"the command ended with exit status {returncode}")
        self.returncode = returncode


class NodeRun:
    """What each Slurm job runs (pickled by submitit, called on the compute node): the command, its output to the job's
    log, like the local pool. Returns the command's exit status; a job that dies here returns nothing.

    Slurm signals the job (SIGUSR2) `--slurm-signal-delay` seconds before its time limit, and when it is preempted;
    submitit's handler then calls `checkpoint`, which stops the command at its checkpoint and has the job requeued. The
    requeued job resumes from the newest checkpoint since the job's start: it finds it in the run folder, so the same
    holds when Slurm requeues the job by itself (preemption in REQUEUE mode, node failure)."""

    def __init__(self):
        self.proc, self.log = None, None  # the running command and its log, for `checkpoint`; never pickled

    def __call__(self, job, threads, timeout, cwd):
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
        job.resume = latest_checkpoint(job, job.started_at) or job.resume  # an earlier attempt's, if requeued
        with open_log(job) as log:
            slurm_id = os.environ.get("SLURM_JOB_ID")
            if "SLURM_ARRAY_JOB_ID" in os.environ:
                slurm_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
            restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))  # set by Slurm in a requeued job
            requeued = f", requeued {restarts}x" if restarts else ""
            log.write(f"[launch] Slurm job {slurm_id} on {os.uname().nodename}{requeued}\n")
            log.flush()
            self.log = log
            self.proc = subprocess.Popen(job.launch_command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
            try:
                self.wait_unreaped(timeout)
                signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # the command has ended: a late signal has nothing to stop
                returncode = self.proc.wait()
            except CommandEnded as e:
                returncode = e.returncode
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                returncode = self.proc.wait()
                log.write(f"\n[launch] killed after the --timeout of {timeout} s\n")
            except BaseException as e:  # from submitit's handler: SystemExit once it requeued the job, else why it did not
                if self.proc.poll() is None:
                    self.proc.terminate()
                if not isinstance(e, SystemExit):
                    log.write(f"\n[launch] stopped: {type(e).__name__}: {e}\n")
                raise
            if returncode == 0:
                mark_finished(job, log)
        return returncode

    def wait_unreaped(self, timeout):
        """Wait for the command to end, leaving it for `Popen.wait` to reap. A signal handler that interrupts
        `Popen.wait` cannot wait itself (the lock that `Popen.wait` holds is taken again: a deadlock), and one that
        comes just after the command was reaped would find no exit status."""
        deadline = None if timeout is None else time.time() + timeout
        while os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if deadline is not None and time.time() > deadline:
                raise subprocess.TimeoutExpired(self.proc.args, timeout)
            time.sleep(0.5)

    def checkpoint(self, job, threads, timeout, cwd):
        """Called by submitit's signal handler: stop the command (it writes its checkpoint at its next episode end and
        exits with CHECKPOINT_EXIT), then return the call that the requeued job makes."""
        from submitit.helpers import DelayedSubmission

        if self.proc is not None:
            self.log.write("\n[launch] Slurm's signal (time limit near, or preemption): stopping the run at its checkpoint\n")
            self.log.flush()
            self.proc.send_signal(signal.SIGUSR2)  # Slurm signals the command too, but not with `--signal=B:...`
            returncode = self.proc.wait()
            if returncode != CHECKPOINT_EXIT:  # finished meanwhile, or wrote no checkpoint: nothing to resume
                raise CommandEnded(returncode)
            self.log.write("[launch] checkpoint written: a requeued job resumes from it\n")
            self.log.flush()
        return DelayedSubmission(NodeRun(), job, threads, timeout, cwd)


def squeue_ids(array_ids):
    """Job ids ("123_4") that Slurm still has queued or running, or None when squeue does not answer."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted(array_ids))], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        # squeue fails for ids it has already forgotten; an empty queue is then the answer
        return set() if "Invalid job id" in out.stderr else None
    return set(out.stdout.split())


def run_slurm(jobs, workers, timeout, options, echo=print):
    """Submit the jobs as one Slurm array and wait for each; never raises for a failed job. `options`: the parsed
    arguments, whose `slurm_*` fields are the per-job Slurm settings (parse_args)."""
    import submitit  # only this backend needs it

    if __name__ != "__main__":  # imported (tests): ship this module's code with the jobs, the node cannot import it
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    log_dir = os.path.dirname(jobs[0].log_path)
    executor = submitit.AutoExecutor(
        folder=os.path.join(log_dir, "slurm", "%j"), cluster="slurm", slurm_max_num_timeout=options.slurm_requeues
    )
    optional = dict(
        slurm_partition=options.slurm_partition,
        gpus_per_node=options.slurm_gpus or None,
        slurm_mem=options.slurm_mem,
        slurm_additional_parameters=dict(opt.split("=", 1) for opt in options.slurm_option) or None,
    )
    executor.update_parameters(
        name=jobs[0].name,
        timeout_min=options.slurm_time,
        cpus_per_task=options.slurm_cpus,
        slurm_array_parallelism=workers,
        slurm_signal_delay_s=options.slurm_signal_delay,
        **{key: value for key, value in optional.items() if value is not None},
    )
    n = len(jobs)
    submitted = executor.map_array(NodeRun(), jobs, [options.slurm_cpus] * n, [timeout] * n, [os.getcwd()] * n)
    start = time.time()
    for job, sjob in zip(jobs, submitted):
        how = "resumes from its checkpoint, " if job.resume else ""
        job_id = sjob.job_id
        echo(f"[launch] submitted {job.name} {job.env_id} seed {job.seed} as Slurm job {job_id} ({how}log {job.log_path})")

    results = [None] * n
    gone_since = {}  # job index -> when squeue first stopped listing it while it had no result
    last_poll = 0.0
    try:
        while any(r is None for r in results):
            poll = time.time() - last_poll >= options.slurm_poll
            if poll:
                last_poll = time.time()
                submitted[0].watcher.update()  # one sacct call for every registered job
                queued = squeue_ids({sjob.job_id.split("_")[0] for sjob in submitted})
            for i, (job, sjob) in enumerate(zip(jobs, submitted)):
                if results[i] is not None:
                    continue
                result = collect(job, sjob, time.time() - start)
                if result is None and poll and queued is not None and sjob.job_id not in queued:
                    # out of the queue without a result: Slurm's own state if sacct knows it, else lost, after a grace
                    # period for the result file to appear on a shared file system and for accounting to catch up
                    gone_since.setdefault(i, time.time())
                    if time.time() - gone_since[i] >= 2 * options.slurm_poll:
                        state = sjob.watcher.get_state(sjob.job_id, mode="cache")
                        state = state if state != "UNKNOWN" else "LOST"  # sacct does not know it either
                        result = JobResult(
                            job, None, time.time() - start, state, sjob.job_id, extra_logs=(str(sjob.paths.stderr),)
                        )
                if result is not None:
                    results[i] = result
                    echo(
                        f"[launch] finished {job.name} {job.env_id} seed {job.seed}: {result.status} (Slurm job {sjob.job_id})"
                    )
            time.sleep(1.0)
    except KeyboardInterrupt:
        for i, sjob in enumerate(submitted):
            if results[i] is None:
                sjob.cancel(check=False)
                results[i] = JobResult(jobs[i], None, time.time() - start, "CANCELLED", sjob.job_id)
        echo("[launch] interrupted: cancelled the unfinished Slurm jobs")
    return results


UNFINISHED_STATES = ("READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED", "SUSPENDED")


def final_state(sjob, tries=5):
    """Slurm's state of a job that has just ended, asking sacct again for a few seconds while it lags; None if unknown."""
    for _ in range(tries):
        state = sjob.watcher.get_state(sjob.job_id, mode="force")
        if state.upper() not in UNFINISHED_STATES:
            return state
        time.sleep(1)
    return None


def collect(job, sjob, seconds):
    """The outcome of one Slurm job if it has one: its result file, or a finished Slurm state; None while it runs."""
    stderr = (str(sjob.paths.stderr),)
    if sjob.paths.result_pickle.exists():
        try:
            returncode = sjob.result()
        except Exception as e:  # NodeRun raised: not requeued after the time limit's signal, or e.g. an unwritable log
            state = "TIMEOUT" if "timed-out" in str(e) else final_state(sjob)
            if state in (None, "COMPLETED", "FAILED"):
                state = f"job raised {type(e).__name__}"
            return JobResult(job, None, seconds, state, sjob.job_id, extra_logs=stderr)
        state = None
        if returncode == -signal.SIGUSR2:  # submitit's signal ahead of the time limit, passed on to the command
            state = "TIMEOUT"
        elif returncode != 0:  # killed by Slurm (scancel, time limit, memory) or a failing command: Slurm knows which
            state = final_state(sjob)
            state = None if state in ("COMPLETED", "FAILED") else state
        return JobResult(job, returncode, seconds, state, sjob.job_id, extra_logs=stderr)
    state = sjob.watcher.get_state(sjob.job_id, mode="cache")
    if state.upper() in UNFINISHED_STATES:
        return None
    if state == "COMPLETED":  # the result file may lag behind on a shared file system: look again at the next poll
        return None
    return JobResult(job, None, seconds, state, sjob.job_id, extra_logs=stderr)


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
    if any(r.slurm_id for r in results):
        header += ("Slurm job",)
        rows = [row + (r.slurm_id or "-",) for row, r in zip(rows, results)]
    lines = [text_table(header, rows)]
    failed = [r for r in results if not r.ok]
    lines.append(f"{len(results) - len(failed)} of {len(results)} jobs finished with exit status 0, {len(failed)} failed")
    skipped = sum(1 for r in results if r.skipped_run)
    if skipped:
        lines.append(f"({skipped} of them finished in an earlier launch and were not run again)")
    resumed = sum(1 for r in results if r.job.resume and not r.skipped_run and r.returncode is not None)
    if resumed:
        lines.append(f"({resumed} resumed from the checkpoint of a run cut in an earlier launch)")
    return "\n".join(lines)


def parse_args(argv):
    if "--" not in argv and not {"-h", "--help"} & set(argv):
        raise SystemExit("launch.py: error: give the training command after `--`, e.g. -- python qsm_continuous_action.py")
    split = argv.index("--") if "--" in argv else len(argv)
    command = argv[split + 1 :]
    if not command and split < len(argv):
        raise SystemExit("launch.py: error: the command after `--` is empty")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-ids", nargs="+", required=True, help="Gymnasium env ids")
    parser.add_argument("--seeds", nargs="+", type=int, required=True, help="seeds, one job per env and seed")
    parser.add_argument(
        "--workers", type=int, default=None, help="jobs running at the same time (local default 1; slurm default: no limit)"
    )
    parser.add_argument("--threads-per-job", type=int, default=None, help="OMP/MKL threads per job (default: cores / workers)")
    parser.add_argument(
        "--name",
        default=None,
        help="job name in logs and the table (default: the --exp-name passed on, else the script's name)",
    )
    parser.add_argument("--log-dir", default="runs/logs", help="folder of the jobs' stdout/stderr logs")
    parser.add_argument("--timeout", type=float, default=None, help="seconds after which a job is killed (and fails)")
    parser.add_argument("--backend", choices=["local", "slurm"], default="local", help="where the jobs run")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--runs-dir", default="runs", help="where the command writes its run folders (to resume a sweep)")
    parser.add_argument(
        "--results-csv",
        default=None,
        help="append each finished run's row (with commit and CPU) here and its curves to curves/ beside it; skip a job "
        "whose row is already in it (same task, seed and command but for --exp-name)",
    )
    parser.add_argument(
        "--recipe", default=None, help="the recipe name for the results CSV's algorithm column (default: the exp name)"
    )
    parser.add_argument(
        "--rerun-finished", action="store_true", help="run again, from the start, the jobs that finished in an earlier launch"
    )
    slurm = parser.add_argument_group("Slurm (--backend slurm), per job")
    slurm.add_argument("--slurm-partition", default=None, help="partition (default: the cluster's default)")
    slurm.add_argument("--slurm-time", type=int, default=60, help="time limit in minutes")
    slurm.add_argument("--slurm-cpus", type=int, default=1, help="CPUs per job (also its OMP/MKL threads)")
    slurm.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per job")
    slurm.add_argument("--slurm-mem", default=None, help="memory per job, as sbatch --mem takes it (e.g. 4G)")
    slurm.add_argument("--slurm-poll", type=float, default=30.0, help="seconds between two queries of the job states")
    slurm.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE", help="any other sbatch option")
    # Slurm's signal comes this long (and up to 30 s more) before the time limit: enough for a run to reach its next
    # episode end and write its checkpoint (a 1000-step episode at 20 steps/s, and a 1e6-step buffer's few GB)
    slurm.add_argument(
        "--slurm-signal-delay",
        type=int,
        default=180,
        help="seconds before the time limit at which a job stops at its checkpoint, to be requeued and resume from it",
    )
    slurm.add_argument("--slurm-requeues", type=int, default=10, help="how often a job past its time limit is requeued")
    args = parser.parse_args(argv[:split])
    if args.workers is None:
        args.workers = 1 if args.backend == "local" else 256
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    for opt in args.slurm_option:
        if "=" not in opt:
            parser.error(f"--slurm-option takes KEY=VALUE, got {opt!r}")
    if args.slurm_time < 1 or args.slurm_cpus < 1 or args.slurm_gpus < 0 or args.slurm_poll <= 0:
        parser.error("--slurm-time and --slurm-cpus must be >= 1, --slurm-gpus >= 0, --slurm-poll > 0")
    if args.slurm_signal_delay < 0 or args.slurm_requeues < 0:
        parser.error("--slurm-signal-delay and --slurm-requeues must be >= 0")
    if args.name is None:  # the run's --exp-name if given (runs of one script under two names keep their own logs)
        scripts = [os.path.basename(c)[: -len(".py")] for c in command if c.endswith(".py")]
        args.name = scripts[0] if scripts else os.path.basename(command[0])
        if args.name == "sac_sb3" and ("--algo=crossq" in command or ("--algo", "crossq") in zip(command, command[1:])):
            args.name = "crossq_sb3"  # sac_sb3.py names a crossq run so (its exp_name's default)
        for i, word in enumerate(command[:-1]):
            if word == "--exp-name":
                args.name = command[i + 1]
    if args.threads_per_job is None:
        args.threads_per_job = max(1, (os.cpu_count() or 1) // args.workers)
    return args, command


def main(argv=None):
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    jobs = make_jobs(command, args.env_ids, args.seeds, args.name, args.log_dir, args.runs_dir)
    results = Results(os.path.abspath(args.results_csv), args.recipe) if args.results_csv else None
    for job in jobs:
        job.results = results
    finished = {i: finished_run(job) for i, job in enumerate(jobs)}
    finished = {i: run_dir for i, run_dir in finished.items() if run_dir}
    if results and not args.rerun_finished:  # a row in the results CSV counts as finished, whichever machine made it
        rows = results.rows()
        recorded = {i for i, job in enumerate(jobs) if results.recorded(job, rows)}
        for i, run_dir in finished.items():  # finished here before its row was written (say, the launcher was stopped)
            if i not in recorded and not args.dry_run:
                results.add(jobs[i], run_dir)
        finished.update({i: f"row in {args.results_csv}" for i in recorded})
    done = {} if args.rerun_finished else finished
    todo = [job for i, job in enumerate(jobs) if i not in done]
    for i, job in enumerate(jobs):
        if i not in done:  # a finished run's checkpoint is not one to resume: --rerun-finished starts afresh
            plan_start(job, resume=i not in finished, dry_run=args.dry_run)
    if args.dry_run:
        for i, job in enumerate(jobs):
            print(f"# finished before, skipped: {shlex.join(job.command)}" if i in done else shlex.join(job.launch_command))
        return 0
    for i, run_dir in done.items():
        print(f"[launch] skipping {jobs[i].name} {jobs[i].env_id} seed {jobs[i].seed}: finished before ({run_dir})")
    for job in todo:
        if job.resume:
            print(f"[launch] resuming {job.name} {job.env_id} seed {job.seed} from its checkpoint {job.resume}")
    threads = args.slurm_cpus if args.backend == "slurm" else args.threads_per_job
    print(f"[launch] {len(todo)} jobs on backend {args.backend}, {args.workers} at a time, {threads} thread(s) each")
    start = time.time()
    if not todo:
        ran = []
    elif args.backend == "slurm":
        ran = run_slurm(todo, args.workers, args.timeout, args)
    else:
        ran = run_local(todo, args.workers, threads, args.timeout)
    ran = iter(ran)
    results = [JobResult(job, 0, 0.0, skipped_run=done[i]) if i in done else next(ran) for i, job in enumerate(jobs)]
    for r in results:
        if not r.ok and (r.returncode is not None or r.slurm_state is not None):  # not for jobs that never ran
            print(f"\n[launch] {r.job.name} {r.job.env_id} seed {r.job.seed} {r.status}; last lines of {r.job.log_path}:")
            print(log_tail(r.job.log_path), end="")
            for path in r.extra_logs:
                if os.path.exists(path) and os.path.getsize(path) > 0:
                    print(f"[launch] last lines of {path}:")
                    print(log_tail(path), end="")
    print(f"\n[launch] summary ({time.time() - start:.0f} s in all)")
    print(summary(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
