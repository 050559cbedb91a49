"""benchmark/launch.py on a real Slurm: jobs go out as one job array through submitit and every outcome comes back.

The module's fixture brings up a one-node Slurm with accounting (`.ci/slurm.sh up`: munged, MariaDB, slurmdbd,
slurmctld, slurmd on loopback) unless one already answers, and stops what it started at the end. Where Slurm cannot be
installed (not root, no apt-get) the Slurm tests skip with the script's reason; with CI=true they fail instead.
The resume tests at the end need no Slurm.
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


def test_slurm_interrupt_cancels_unfinished_jobs(slurm, tmp_path):
    sleeper = tmp_path / "fake.py"
    sleeper.write_text("import time\ntime.sleep(120)\n")
    cmd = [sys.executable, LAUNCH, "--backend", "slurm", "--env-ids", "EnvA", "--seeds", "1", "2"]
    cmd += ["--log-dir", str(tmp_path / "logs"), "--slurm-poll", "2", "--", sys.executable, str(sleeper)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(3)]  # the header and the two "submitted" lines
    array_id = submitted_ids("".join(lines))[0].split("_")[0]
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
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
