"""benchmark/launch.py on a real Slurm: jobs go out as one job array through submitit and every outcome comes back.

The module's fixture brings up a one-node Slurm with accounting (`.ci/slurm.sh up`: munged, MariaDB, slurmdbd,
slurmctld, slurmd on loopback) unless one already answers, and stops what it started at the end. Where Slurm cannot be
installed (not root, no apt-get) the Slurm tests skip with the script's reason; with CI=true they fail instead.
A QSM run longer than its job's time limit is requeued and resumes from its checkpoint until it is done. The resume
tests at the end need no Slurm: a launch again skips the finished jobs and resumes the cut ones from their checkpoints.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmark"))

import plot  # noqa: E402

LAUNCH = os.path.join(ROOT, "benchmark", "launch.py")
SLURM_SH = os.path.join(ROOT, ".ci", "slurm.sh")
TINY_QSM = (
    "--total-timesteps 150 --learning-starts 100 --batch-size 16 --hidden-dim 16 --eval-episodes 1 --max-episode-steps 20"
).split()

# A stand-in job. Seed 7 dies the hard way: it kills the Slurm task's Python process (submitit's, which would write the
# result file) with SIGKILL, so the job ends without a result. Seed 8 cancels its own Slurm job. Others print and exit 0.
FAKE_JOB = textwrap.dedent(
    """
    import argparse, os, signal, subprocess, time
    p = argparse.ArgumentParser(); p.add_argument("--env-id"); p.add_argument("--seed", type=int)
    a = p.parse_args()
    print(f"fake job {a.env_id} seed {a.seed} starting", flush=True)
    if a.seed == 7:
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(10)
    if a.seed == 8:
        job = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ["SLURM_JOB_ID"])
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        subprocess.run(["scancel", f"{job}_{task}" if task else job], check=True)
        time.sleep(10)
    print("fake job done")
    """
)


def slurm_answers():
    return subprocess.run(["bash", SLURM_SH, "status"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def slurm():
    """A Slurm cluster to submit to: the one that answers, or one brought up here (and stopped at the end)."""
    started = False
    if not slurm_answers():
        start = time.time()
        proc = subprocess.run(["bash", SLURM_SH, "up"], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            reason = f"Slurm could not be brought up by .ci/slurm.sh (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
            if os.environ.get("CI") == "true" or proc.returncode != 3:  # 3: cannot install here; anything else is a bug
                pytest.fail(reason)
            pytest.skip(reason)
        started = True
        print(f"\n[test] Slurm brought up in {time.time() - start:.0f} s")
    yield
    if started:
        subprocess.run(["bash", SLURM_SH, "down"], timeout=120)


def launch_slurm(cwd, seeds, command, *extra, env=None, timeout=240):
    cmd = [sys.executable, LAUNCH, "--backend", "slurm", "--env-ids", "EnvA", "--seeds", *map(str, seeds)]
    cmd += ["--log-dir", str(cwd / "logs"), "--slurm-poll", "2", *extra, "--", *command]
    start = time.time()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return proc, time.time() - start


def row(stdout, seed):
    """The summary table's row of one seed."""
    return next(line for line in stdout.splitlines() if line.startswith("fake ") and f"  {seed}  " in line)


def submitted_ids(stdout):
    return [line.split("as Slurm job ")[1].split()[0] for line in stdout.splitlines() if "as Slurm job" in line]


def scalar_steps(run_dir):
    """The steps of each scalar tag in the run folder's event files, read as TensorBoard reads them (every event file
    of the folder, and a resumed run's purge step, which drops what the cut run logged after its checkpoint)."""
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_continuous(run_dir, total, learning_starts, eval_frequency):
    """Every step that a Pendulum run (200-step episodes) logs, once, in order, from the first to the last."""
    steps = scalar_steps(run_dir)
    assert steps["charts/episodic_return"] == list(range(199, total, 200))
    assert steps["losses/qf1_loss"] == list(range(learning_starts, total, 100))
    assert steps["eval/episodic_return"] == sorted({*range(eval_frequency - 1, total, eval_frequency), total - 1})


@pytest.fixture
def fake_job(tmp_path):
    path = tmp_path / "fake.py"
    path.write_text(FAKE_JOB)
    return [sys.executable, str(path)]


# ---------------------------------------------------------------------------------------------------------------------
# Two tiny QSM runs as one job array through the shell runner, read back by the plot script, then resumed


@pytest.fixture(scope="module")
def qsm_sweep(slurm, tmp_path_factory):
    """`BACKEND=slurm benchmark/qsm.sh` with seeds 1 and 2 on Pendulum-v1; run folders under the repo's runs/ with an
    exp_name of their own, removed at the end."""
    exp_name = f"slurmtest_{uuid.uuid4().hex[:8]}"
    logs = tmp_path_factory.mktemp("sweep") / "logs"

    def run(seeds):
        # PYTHON: this interpreter, so the runner works from an un-activated virtual environment too
        env = dict(os.environ, BACKEND="slurm", ENV_IDS="Pendulum-v1", SEEDS=" ".join(map(str, seeds)), PYTHON=sys.executable)
        env["LAUNCH_ARGS"] = f"--log-dir {logs} --slurm-partition debug --slurm-time 10 --slurm-cpus 1 --slurm-mem 1G"
        env["LAUNCH_ARGS"] += " --slurm-poll 2"
        cmd = ["bash", os.path.join(ROOT, "benchmark", "qsm.sh"), "--exp-name", exp_name, *TINY_QSM]
        start = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        print(f"\n[test] sweep of seeds {seeds}: {time.time() - start:.0f} s")
        return proc

    first = run([1, 2])
    yield exp_name, logs, first, run
    for path in glob.glob(os.path.join(ROOT, "runs", f"*__{exp_name}__*")):
        shutil.rmtree(path)


def test_slurm_array_of_two_qsm_runs_read_by_plot(qsm_sweep, tmp_path):
    exp_name, logs, proc, _ = qsm_sweep
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 of 2 jobs finished with exit status 0, 0 failed" in proc.stdout
    ids = submitted_ids(proc.stdout)
    array_id = ids[0].split("_")[0]
    assert ids == [f"{array_id}_0", f"{array_id}_1"]  # one array, two tasks
    # the per-job flags reached sbatch
    (script,) = glob.glob(str(logs / "slurm" / array_id / "*_submission.sh"))
    text = open(script).read()
    for line in ("--array=0-1", "--partition=debug", "--time=10", "--cpus-per-task=1", "--mem=1G"):
        assert f"#SBATCH {line}" in text, line
    # Slurm's accounting saw both tasks complete
    sacct = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", array_id], capture_output=True, text=True)
    assert sorted(sacct.stdout.split()) == [f"{array_id}_0|COMPLETED", f"{array_id}_1|COMPLETED"]
    # one log folder per job, and each job's training log
    for task in ids:
        assert os.path.isdir(logs / "slurm" / task)
    assert "Slurm job" in (logs / f"{exp_name}__Pendulum-v1__1.log").read_text()  # jobs are named after --exp-name

    # the plot script reads the event files the Slurm jobs wrote
    runs = plot.load_runs(os.path.join(ROOT, "runs"), algos=[exp_name], echo=lambda *_: None)
    assert sorted((r.env_id, r.seed) for r in runs) == [("Pendulum-v1", 1), ("Pendulum-v1", 2)]
    for run in runs:
        assert len(run.series(plot.RETURN_TAG)) >= 150 // 20 - 1
        assert run.last_step >= 100  # the updates' losses were logged after learning_starts
    png = tmp_path / "curves.png"
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "plot.py"), "--runs-dir", os.path.join(ROOT, "runs")]
    cmd += ["--algos", exp_name, "--output", str(png), "--bootstrap-reps", "50"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert png.stat().st_size > 0
    assert any(line.split()[:3] == ["Pendulum-v1", exp_name, "2"] for line in out.stdout.splitlines()), out.stdout


def test_slurm_resumed_sweep_does_not_rerun_finished_jobs(qsm_sweep):
    exp_name, logs, first, run = qsm_sweep
    assert first.returncode == 0, first.stdout + first.stderr
    folders = lambda seed: glob.glob(os.path.join(ROOT, "runs", f"Pendulum-v1__{exp_name}__{seed}__*"))  # noqa: E731
    (seed1_dir,) = folders(1)
    events_before = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(seed1_dir, "events.out.tfevents.*"))}

    proc = run([1, 2, 3])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(submitted_ids(proc.stdout)) == 1  # only seed 3 went to Slurm
    assert f"submitted {exp_name} Pendulum-v1 seed 3" in proc.stdout
    for seed in (1, 2):
        assert f"skipping {exp_name} Pendulum-v1 seed {seed}: finished before" in proc.stdout
        assert len(folders(seed)) == 1  # no second run folder
    assert len(folders(3)) == 1
    assert {p: os.path.getmtime(p) for p in glob.glob(os.path.join(seed1_dir, "events.out.tfevents.*"))} == events_before
    assert "3 of 3 jobs finished with exit status 0, 0 failed" in proc.stdout
    assert "(2 of them finished in an earlier launch and were not run again)" in proc.stdout


# ---------------------------------------------------------------------------------------------------------------------
# Jobs that fail in each way Slurm jobs fail


def test_slurm_job_dying_without_result_is_reported_failed_within_a_bound(slurm, tmp_path, fake_job):
    proc, seconds = launch_slurm(tmp_path, [1, 7], fake_job, timeout=90)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert seconds < 60, f"took {seconds:.0f} s to report the lost job"
    assert row(proc.stdout, 1).split()[3] == "ok"
    assert "FAILED (Slurm: FAILED)" in row(proc.stdout, 7)
    assert "fake job EnvA seed 7 starting" in proc.stdout  # the failed job's log tail is printed
    assert "1 of 2 jobs finished with exit status 0, 1 failed" in proc.stdout


def test_slurm_job_lost_without_accounting_is_reported_failed(slurm, tmp_path, fake_job):
    """On a cluster whose sacct does not answer, a job that leaves the queue without a result is not waited on."""
    no_sacct = tmp_path / "bin"
    no_sacct.mkdir()
    (no_sacct / "sacct").write_text("#!/bin/sh\necho 'sacct: error: accounting storage is disabled' >&2\nexit 1\n")
    (no_sacct / "sacct").chmod(0o755)
    env = dict(os.environ, PATH=f"{no_sacct}:{os.environ['PATH']}")
    proc, seconds = launch_slurm(tmp_path, [7], fake_job, env=env, timeout=90)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert seconds < 60, f"took {seconds:.0f} s to report the lost job"
    assert "FAILED (lost: left the queue without a result)" in row(proc.stdout, 7)


def test_slurm_cancelled_and_failing_commands(slurm, tmp_path, fake_job):
    failing = tmp_path / "fail.py"
    failing.write_text("import sys\nprint('planted failure: diverged', file=sys.stderr)\nsys.exit(3)\n")
    proc, _ = launch_slurm(tmp_path, [8], fake_job)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "CANCELLED" in row(proc.stdout, 8)
    proc, _ = launch_slurm(tmp_path, [1], [sys.executable, str(failing)], "--name", "fake")
    assert proc.returncode == 1
    assert "FAILED (exit 3)" in row(proc.stdout, 1)
    assert "planted failure: diverged" in proc.stdout


def test_slurm_time_limit_is_a_failure(slurm, tmp_path):
    """A job past --slurm-time is killed by Slurm and reported with Slurm's TIMEOUT state."""
    sleeper = tmp_path / "fake.py"
    sleeper.write_text("import time\ntime.sleep(600)\n")
    proc, seconds = launch_slurm(tmp_path, [1], [sys.executable, str(sleeper)], "--slurm-time", "1", timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED (Slurm: TIMEOUT)" in row(proc.stdout, 1)


def test_slurm_job_past_its_time_limit_is_requeued_and_resumes(slurm, tmp_path):
    """A QSM run longer than its 1-minute time limit. Slurm's signal comes 5 s (and up to 30 s more) before the limit:
    25 to 55 s into the first attempt, 49 s into the requeued ones (they start 11 s after a 30-s check of the limits).
    The run writes its checkpoint and stops, the job is requeued and resumes from it, until the run is done. Only these
    stops write checkpoints (--checkpoint-every is beyond the run)."""
    total = 45000  # 105 s of training on an idle 2-core machine (430 steps/s): still running at 55 s up to 800 steps/s
    run = ["--total-timesteps", str(total), "--learning-starts", "100", "--batch-size", "16", "--hidden-dim", "16"]
    run += ["--eval-episodes", "1", "--eval-frequency", "4000", "--checkpoint-every", "100000"]
    command = [sys.executable, os.path.join(ROOT, "qsm_continuous_action_jax.py"), "--no-progress", *run]
    cmd = [sys.executable, LAUNCH, "--backend", "slurm", "--env-ids", "Pendulum-v1", "--seeds", "1"]
    cmd += ["--log-dir", str(tmp_path / "logs"), "--slurm-poll", "2", "--slurm-time", "1", "--slurm-signal-delay", "5"]
    start = time.time()
    proc = subprocess.run([*cmd, "--", *command], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    print(f"\n[test] requeued run: {time.time() - start:.0f} s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 of 1 jobs finished with exit status 0, 0 failed" in proc.stdout
    (job_id,) = submitted_ids(proc.stdout)
    sacct = subprocess.run(["sacct", "-n", "-X", "-D", "-P", "-o", "State", "-j", job_id], capture_output=True, text=True)
    states = sacct.stdout.split()
    assert len(states) >= 2, f"the run finished before Slurm's signal: make it longer for this CPU ({states})"
    assert set(states[:-1]) == {"REQUEUED"} and states[-1] == "COMPLETED", states

    (run_dir,) = glob.glob(str(tmp_path / "runs" / "Pendulum-v1__qsm_continuous_action_jax__1__*"))
    log = (tmp_path / "logs" / "qsm_continuous_action_jax__Pendulum-v1__1.log").read_text()
    checkpoint = os.path.join(run_dir, "qsm_continuous_action_jax.qsm_checkpoint")
    commands = [line for line in log.splitlines() if line.startswith("$ ")]
    assert len(commands) == len(states) and log.count("stopped by signal") == len(states) - 1, log
    assert all(line.endswith(f"--resume {checkpoint}") for line in commands[1:]), log  # each requeued attempt resumed
    assert json.loads((tmp_path / "logs" / "qsm_continuous_action_jax__Pendulum-v1__1.done").read_text())["run_dir"] == run_dir
    assert_continuous(run_dir, total, learning_starts=100, eval_frequency=4000)


# ---------------------------------------------------------------------------------------------------------------------
# Resuming a sweep (any backend; shown here on the local one, no Slurm needed)

# A stand-in training script: writes a run folder with an event file, as the real scripts do, and fails (exit 5) while a
# file `fail_{seed}` is in its working directory
EVENT_JOB = textwrap.dedent(
    """
    import argparse, os, time
    p = argparse.ArgumentParser()
    p.add_argument("--env-id"); p.add_argument("--seed", type=int); p.add_argument("--exp-name", default="evjob")
    a = p.parse_args()
    if os.path.exists(f"fail_{a.seed}"):
        raise SystemExit(5)
    run = f"runs/{a.env_id}__{a.exp_name}__{a.seed}__{int(time.time())}"
    os.makedirs(run, exist_ok=True)
    open(os.path.join(run, "events.out.tfevents.0.fake"), "w").close()
    if os.path.exists("later_twin"):  # the same job, launched again a little later, wrote its own run folder meanwhile
        twin = f"runs/{a.env_id}__{a.exp_name}__{a.seed}__{int(time.time()) + 5}"
        os.makedirs(twin, exist_ok=True)
        open(os.path.join(twin, "events.out.tfevents.0.fake"), "w").close()
    with open("ran.txt", "a") as f:
        f.write(f"{a.seed}\\n")
    """
)


def launch_local(tmp_path, seeds, *args, job_args=()):
    job = tmp_path / "evjob.py"
    job.write_text(EVENT_JOB)
    cmd = [sys.executable, LAUNCH, "--env-ids", "EnvA", "--seeds", *map(str, seeds), "--log-dir", str(tmp_path / "logs")]
    cmd += [*args, "--", sys.executable, str(job), *job_args]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    ran = (tmp_path / "ran.txt").read_text().split() if (tmp_path / "ran.txt").exists() else []
    (tmp_path / "ran.txt").unlink(missing_ok=True)
    return proc, ran


def test_resume_runs_only_what_did_not_finish(tmp_path):
    (tmp_path / "fail_2").touch()
    proc, ran = launch_local(tmp_path, [1, 2, 3])
    assert proc.returncode == 1 and ran == ["1", "3"]
    done = json.loads((tmp_path / "logs" / "evjob__EnvA__1.done").read_text())
    assert os.path.basename(done["run_dir"]).startswith("EnvA__evjob__1__")
    assert not (tmp_path / "logs" / "evjob__EnvA__2.done").exists()

    (tmp_path / "fail_2").unlink()  # the cause of the failure is gone: the same sweep again runs only seed 2
    proc, ran = launch_local(tmp_path, [1, 2, 3])
    assert proc.returncode == 0 and ran == ["2"], proc.stdout
    assert proc.stdout.count("[launch] skipping evjob EnvA seed") == 2
    assert proc.stdout.count("ok (finished before)") == 2

    proc, ran = launch_local(tmp_path, [1, 2, 3])
    assert proc.returncode == 0 and ran == []
    assert "3 of 3 jobs finished with exit status 0, 0 failed" in proc.stdout

    # a run whose event files are gone is not finished
    shutil.rmtree(json.loads((tmp_path / "logs" / "evjob__EnvA__2.done").read_text())["run_dir"])
    proc, ran = launch_local(tmp_path, [1, 2, 3])
    assert proc.returncode == 0 and ran == ["2"]

    # --dry-run says what it would skip
    proc, ran = launch_local(tmp_path, [1, 4], "--dry-run")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# finished before, skipped: ") and not lines[1].startswith("#") and ran == []

    # another command is another run; --rerun-finished runs the finished ones again
    proc, ran = launch_local(tmp_path, [1, 2], job_args=["--exp-name", "evjob"])
    assert ran == ["1", "2"]
    proc, ran = launch_local(tmp_path, [1, 2], "--rerun-finished")
    assert ran == ["1", "2"]


def test_the_done_record_names_the_jobs_own_run_folder(tmp_path):
    # a second launch of the same job, started later, has a later run folder: it is not this job's
    (tmp_path / "later_twin").touch()
    proc, ran = launch_local(tmp_path, [1])
    assert proc.returncode == 0 and ran == ["1"]
    own, twin = sorted(glob.glob(str(tmp_path / "runs" / "EnvA__evjob__1__*")))
    assert json.loads((tmp_path / "logs" / "evjob__EnvA__1.done").read_text())["run_dir"] == own


# A stand-in for the training scripts' --checkpoint-every / --resume: one step every 10 ms, an "episode" every 10 steps,
# the logged steps one per line in a file named like an event file. At the first episode end after every
# --checkpoint-every steps it writes {exp_name}.qsm_checkpoint (the step reached) into its run folder; SIGUSR2 or
# SIGTERM make it write one at the next episode end and exit 75. `--resume PATH` continues in PATH's run folder from the
# stored step, dropping the logged steps after it (as TensorBoard's purge_step does). It kills itself with SIGKILL
# right after a checkpoint while a file `kill_{seed}` is in its working directory (the file is removed).
CHECKPOINT_JOB = textwrap.dedent(
    """
    import argparse, json, os, signal, time
    p = argparse.ArgumentParser()
    p.add_argument("--env-id"); p.add_argument("--seed", type=int); p.add_argument("--exp-name", default="ckjob")
    p.add_argument("--total-timesteps", type=int, default=100); p.add_argument("--checkpoint-every", type=int, default=0)
    p.add_argument("--resume"); p.add_argument("--step-s", type=float, default=0.01)
    a = p.parse_args()
    stop = []
    if a.checkpoint_every:
        for sig in (signal.SIGUSR2, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.append(True))
    if a.resume:
        run, start = os.path.dirname(a.resume), json.load(open(a.resume))["step"]
    else:
        run, start = f"runs/{a.env_id}__{a.exp_name}__{a.seed}__{int(time.time())}", 0
        os.makedirs(run)
    with open("trace.txt", "a") as f:
        f.write(f"{a.seed} {'resume' if a.resume else 'start'} {start}\\n")
    events = os.path.join(run, "events.out.tfevents.0.fake")
    logged = open(events).read().split() if a.resume else []
    with open(events, "w") as f:
        f.writelines(f"{s}\\n" for s in logged if int(s) < start)
    checkpoint, last = os.path.join(run, f"{a.exp_name}.qsm_checkpoint"), start
    for step in range(start, a.total_timesteps):
        time.sleep(a.step_s)
        with open(events, "a") as f:
            f.write(f"{step}\\n")
        if a.checkpoint_every and (step + 1) % 10 == 0 and (step + 1 - last >= a.checkpoint_every or stop):
            with open(checkpoint + ".tmp", "w") as f:
                json.dump({"step": step + 1}, f)
            os.replace(checkpoint + ".tmp", checkpoint)
            last = step + 1
            if os.path.exists(f"kill_{a.seed}"):
                os.remove(f"kill_{a.seed}")
                os.kill(os.getpid(), signal.SIGKILL)
            if stop:
                raise SystemExit(75)
    """
)


def launch_checkpointing(tmp_path, seeds, *args, job_args=("--checkpoint-every", "30")):
    """The launcher over CHECKPOINT_JOB; returns its process and the lines the jobs wrote to trace.txt."""
    job = tmp_path / "ckjob.py"
    job.write_text(CHECKPOINT_JOB)
    cmd = [sys.executable, LAUNCH, "--env-ids", "EnvA", "--seeds", *map(str, seeds), "--log-dir", str(tmp_path / "logs")]
    cmd += [*args, "--", sys.executable, str(job), *job_args]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    trace = tmp_path / "trace.txt"
    lines = trace.read_text().splitlines() if trace.exists() else []
    trace.unlink(missing_ok=True)
    return proc, lines


def logged_steps(run_dir):
    return [int(s) for s in open(os.path.join(run_dir, "events.out.tfevents.0.fake")).read().split()]


def test_a_job_killed_after_its_checkpoint_resumes_from_it(tmp_path):
    (tmp_path / "kill_1").touch()  # seed 1 dies with SIGKILL right after its first checkpoint, at step 30
    proc, trace = launch_checkpointing(tmp_path, [1, 2])
    assert proc.returncode == 1 and trace == ["1 start 0", "2 start 0"], proc.stdout
    assert "FAILED (killed by SIGKILL)" in proc.stdout
    (run_dir,) = glob.glob(str(tmp_path / "runs" / "EnvA__ckjob__1__*"))
    assert not (tmp_path / "logs" / "ckjob__EnvA__1.done").exists()

    proc, trace = launch_checkpointing(tmp_path, [1, 2])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert trace == ["1 resume 30"]  # seed 2 finished before; seed 1 goes on from its checkpoint's step
    checkpoint = os.path.join(run_dir, "ckjob.qsm_checkpoint")
    assert f"[launch] resuming ckjob EnvA seed 1 from its checkpoint {checkpoint}" in proc.stdout
    assert "ok (resumed)" in proc.stdout and "(1 resumed from the checkpoint of a run cut in an earlier launch)" in proc.stdout
    assert glob.glob(str(tmp_path / "runs" / "EnvA__ckjob__1__*")) == [run_dir]  # no second run folder
    assert logged_steps(run_dir) == list(range(100))  # every step logged once
    done = json.loads((tmp_path / "logs" / "ckjob__EnvA__1.done").read_text())
    assert done["run_dir"] == run_dir and "--resume" not in done["command"]  # the job's own command: a later launch knows it
    log = (tmp_path / "logs" / "ckjob__EnvA__1.log").read_text()
    assert log.count("$ ") == 2 and log.splitlines()[-1].endswith(f"--resume {checkpoint}")  # the log goes on

    proc, trace = launch_checkpointing(tmp_path, [1, 2])
    assert proc.returncode == 0 and trace == [] and proc.stdout.count("ok (finished before)") == 2

    # --rerun-finished starts afresh, and never from a finished run's checkpoint
    proc, trace = launch_checkpointing(tmp_path, [1], "--rerun-finished")
    assert proc.returncode == 0 and trace == ["1 start 0"], proc.stdout


def test_a_qsm_run_killed_with_its_launcher_resumes_when_launched_again(tmp_path):
    """The JAX script through the launcher, both killed with SIGKILL after the run's first checkpoint (at step 600):
    the same launch again resumes the run in its folder, and its curves join without a gap or an overlap."""
    run = ["--total-timesteps", "1200", "--learning-starts", "100", "--batch-size", "16", "--hidden-dim", "16"]
    run += ["--eval-episodes", "1", "--eval-frequency", "400", "--checkpoint-every", "600"]
    cmd = [sys.executable, LAUNCH, "--env-ids", "Pendulum-v1", "--seeds", "1", "--log-dir", str(tmp_path / "logs"), "--"]
    cmd += [sys.executable, os.path.join(ROOT, "qsm_continuous_action_jax.py"), "--no-progress", *run]
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # the launcher's lines as they come
    launcher = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=env)
    job_pid = int(next(line for line in launcher.stdout if "started" in line).split("(pid ")[1].split(",")[0])
    deadline = time.time() + 120
    while not glob.glob(str(tmp_path / "runs" / "*" / "*.qsm_checkpoint")) and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(job_pid, signal.SIGKILL)  # the job is its own process group
    launcher.kill()
    launcher.communicate()
    (run_dir,) = glob.glob(str(tmp_path / "runs" / "Pendulum-v1__qsm_continuous_action_jax__1__*"))
    assert not (tmp_path / "logs" / "qsm_continuous_action_jax__Pendulum-v1__1.done").exists()

    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok (resumed)" in proc.stdout
    assert glob.glob(str(tmp_path / "runs" / "*")) == [run_dir]
    assert json.loads((tmp_path / "logs" / "qsm_continuous_action_jax__Pendulum-v1__1.done").read_text())["run_dir"] == run_dir
    assert_continuous(run_dir, 1200, learning_starts=100, eval_frequency=400)


def test_a_stopped_job_resumes_and_another_command_starts_afresh(tmp_path):
    # --timeout sends SIGTERM: the job writes its checkpoint at its next episode end and exits 75
    run = ("--checkpoint-every", "30", "--total-timesteps", "300")
    proc, trace = launch_checkpointing(tmp_path, [1], "--timeout", "1.5", job_args=run)
    assert proc.returncode == 1 and trace == ["1 start 0"], proc.stdout
    assert "STOPPED (checkpoint written: launch again to resume)" in proc.stdout
    (run_dir,) = glob.glob(str(tmp_path / "runs" / "EnvA__ckjob__1__*"))
    stopped_at = json.load(open(os.path.join(run_dir, "ckjob.qsm_checkpoint")))["step"]
    assert 0 < stopped_at < 300

    # the same run with another --checkpoint-every is the same job; a command that differs otherwise is another run
    other = ("--checkpoint-every", "30", "--total-timesteps", "250")
    proc, trace = launch_checkpointing(tmp_path, [1], "--dry-run", job_args=other)
    assert "--resume" not in proc.stdout and trace == []  # another command's checkpoint is not resumed
    proc, trace = launch_checkpointing(tmp_path, [1], job_args=("--checkpoint-every", "20", "--total-timesteps", "300"))
    assert proc.returncode == 0 and trace == [f"1 resume {stopped_at}"], proc.stdout
    assert logged_steps(run_dir) == list(range(300))
    proc, trace = launch_checkpointing(tmp_path, [1], job_args=run)  # finished, whichever --checkpoint-every
    assert proc.returncode == 0 and trace == [] and "ok (finished before)" in proc.stdout


def interruptible(cmd, **kwargs):
    """Popen with SIGINT at its default action: a shell without job control starts a background command (pytest run
    as `... &`) with SIGINT ignored, its children inherit that, and the launcher would never see the Ctrl-C we send."""
    return subprocess.Popen(cmd, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def test_ctrl_c_stops_the_jobs_at_their_checkpoints(tmp_path):
    (tmp_path / "ckjob.py").write_text(CHECKPOINT_JOB)
    cmd = [sys.executable, LAUNCH, "--env-ids", "EnvA", "--seeds", "1", "--log-dir", str(tmp_path / "logs"), "--"]
    job_args = ("--checkpoint-every", "1000", "--total-timesteps", "500")  # 5 s: still running when Ctrl-C comes
    cmd += [sys.executable, str(tmp_path / "ckjob.py"), *job_args]
    launcher = interruptible(cmd, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    while not (tmp_path / "trace.txt").exists():  # the job is running, with its signal handlers
        time.sleep(0.05)
    launcher.send_signal(signal.SIGINT)
    out = launcher.communicate(timeout=30)[0]
    summary = out.split("[launch] summary")[1]  # the table waits for the stopped jobs
    assert launcher.returncode == 1 and "STOPPED (checkpoint written: launch again to resume)" in summary, out
    (tmp_path / "trace.txt").unlink()
    proc, trace = launch_checkpointing(tmp_path, [1], job_args=job_args)
    assert proc.returncode == 0 and len(trace) == 1 and trace[0].startswith("1 resume "), proc.stdout


def test_slurm_interrupt_cancels_unfinished_jobs(slurm, tmp_path):
    sleeper = tmp_path / "fake.py"
    sleeper.write_text("import time\ntime.sleep(120)\n")
    cmd = [sys.executable, LAUNCH, "--backend", "slurm", "--env-ids", "EnvA", "--seeds", "1", "2"]
    cmd += ["--log-dir", str(tmp_path / "logs"), "--slurm-poll", "2", "--", sys.executable, str(sleeper)]
    proc = interruptible(cmd, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(3)]  # the header and the two "submitted" lines
    array_id = submitted_ids("".join(lines))[0].split("_")[0]
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=180)[0]  # a loaded machine's Slurm takes its time to answer sacct and scancel
    assert proc.returncode == 1
    assert "interrupted: cancelled the unfinished Slurm jobs" in out
    assert "0 of 2 jobs finished with exit status 0, 2 failed" in out
    assert row(out, 1).split()[3] == "CANCELLED" and row(out, 2).split()[3] == "CANCELLED"
    for _ in range(20):  # scancel is asynchronous: the tasks leave the queue within seconds
        queue = subprocess.run(["squeue", "-h", "-j", array_id], capture_output=True, text=True).stdout
        if not queue.strip():
            break
        time.sleep(1)
    assert not queue.strip(), queue
