"""--checkpoint-every and --resume, in both scripts: a run killed with SIGKILL after a checkpoint and resumed from it
logs the same scalars at the same steps and ends with the same parameters as the run that was never stopped; a bad
checkpoint stops with one line and exit 2, running nothing from the file; SIGUSR2 or SIGTERM checkpoint and exit 75."""

import glob
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from flax import serialization, traverse_util
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"torch": "qsm_continuous_action.py", "jax": "qsm_continuous_action_jax.py"}
# Pendulum with 100-step episodes (truncations): a checkpoint at the first episode end after every 300 steps
RUN = [
    "--env-id", "Pendulum-v1", "--total-timesteps", "1200", "--learning-starts", "200", "--batch-size", "16",
    "--hidden-dim", "16", "--max-episode-steps", "100", "--eval-frequency", "500", "--eval-episodes", "2",
    "--checkpoint-every", "300", "--save-model", "--no-progress", "--normalize-q-grad",
]  # fmt: skip


def command(framework, *args):
    return [sys.executable, os.path.join(ROOT, SCRIPTS[framework]), *RUN, *args]


def run_folder(cwd):
    (run_dir,) = glob.glob(str(cwd / "runs" / "*"))
    return run_dir


def scalars(run_dir):
    acc = EventAccumulator(run_dir)  # reads every event file of the folder, and honours a resumed run's purge step
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"] if tag != "charts/SPS"}


def parameters(framework, run_dir):
    path = glob.glob(os.path.join(run_dir, "*.qsm_model"))[0]
    if framework == "torch":
        saved = torch.load(path, weights_only=True)
        return {f"{net}/{k}": v.numpy() for net in ("eps_theta", "qf1", "qf2") for k, v in saved[net].items()}
    with open(path, "rb") as f:
        saved = serialization.msgpack_restore(f.read())
    flat = traverse_util.flatten_dict({net: saved[net] for net in ("eps_theta", "qf1", "qf2")}, sep="/")
    return {name: np.asarray(value) for name, value in flat.items()}


@pytest.fixture(scope="module", params=list(SCRIPTS))
def uninterrupted(request, tmp_path_factory):
    cwd = tmp_path_factory.mktemp(f"whole_{request.param}")
    result = subprocess.run(command(request.param), cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return request.param, run_folder(cwd)


def test_a_run_killed_after_a_checkpoint_resumes_bit_for_bit(uninterrupted, tmp_path):
    framework, whole = uninterrupted
    proc = subprocess.Popen(command(framework), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not glob.glob(str(tmp_path / "runs" / "*" / "*.qsm_checkpoint")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let it run on past the checkpoint, so that the killed run has logged what the resumed one redoes
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    run_dir = run_folder(tmp_path)
    (checkpoint,) = glob.glob(os.path.join(run_dir, "*.qsm_checkpoint"))
    result = subprocess.run(command(framework, "--resume", checkpoint), cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_folder(tmp_path) == run_dir  # the same folder, with the event files of both processes
    expected, got = scalars(whole), scalars(run_dir)
    assert set(got) == set(expected) and len(expected["losses/qf1_loss"]) == 10  # steps 200, 300, ..., 1100
    for tag in expected:
        assert got[tag] == expected[tag], tag  # same steps, same values: no gap, no overlap
    ours, theirs = parameters(framework, run_dir), parameters(framework, whole)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


@pytest.fixture(scope="module", params=list(SCRIPTS))
def stopped(request, tmp_path_factory):
    """A run stopped by SIGUSR2 (Slurm's notice before a time limit): it checkpoints at the next episode end, exits 75."""
    cwd = tmp_path_factory.mktemp(f"stopped_{request.param}")
    proc = subprocess.Popen(command(request.param), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not glob.glob(str(cwd / "runs" / "*" / "*.qsm_checkpoint")) and time.time() < deadline:
        time.sleep(0.05)  # the first checkpoint: the signal handlers are in place by then
    proc.send_signal(signal.SIGUSR2)
    stdout, stderr = proc.communicate(timeout=300)
    return request.param, cwd, proc.returncode, stdout, stderr


def test_sigusr2_writes_a_checkpoint_and_exits_75(stopped):
    framework, cwd, returncode, stdout, stderr = stopped
    assert returncode == 75, stderr[-3000:]
    (checkpoint,) = glob.glob(str(cwd / "runs" / "*" / "*.qsm_checkpoint"))
    assert f"continue with --resume {os.path.relpath(checkpoint, cwd)}" in stdout
    assert not glob.glob(str(cwd / "runs" / "*" / "*.tmp"))  # written whole, then renamed


def bad_run(framework, cwd, *args):
    result = subprocess.run(command(framework, *args), cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("change", [["--m-q", "7"], ["--env-id", "MountainCarContinuous-v0"]])
def test_resume_refuses_other_algorithm_flags(stopped, change):
    framework, cwd, *_ = stopped
    (checkpoint,) = glob.glob(str(cwd / "runs" / "*" / "*.qsm_checkpoint"))
    stderr = bad_run(framework, cwd, "--resume", checkpoint, *change)
    assert f"--resume: {change[0]} is" in stderr and "the checkpoint's run has" in stderr


def test_resume_refuses_a_truncated_or_crafted_checkpoint(stopped, tmp_path):
    framework, cwd, *_ = stopped
    (checkpoint,) = glob.glob(str(cwd / "runs" / "*" / "*.qsm_checkpoint"))
    with open(checkpoint, "rb") as f:
        data = f.read()
    truncated = tmp_path / "truncated.qsm_checkpoint"
    truncated.write_bytes(data[: len(data) // 2])
    assert "is not a checkpoint of --checkpoint-every" in bad_run(framework, tmp_path, "--resume", str(truncated))

    class Evil:  # unpickling this runs a command
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'code_ran'}",))

    crafted = tmp_path / "evil.qsm_checkpoint"
    if framework == "torch":
        torch.save({"args": Evil()}, crafted)
    else:
        crafted.write_bytes(pickle.dumps({"args": Evil()}))
    assert "is not a checkpoint of --checkpoint-every" in bad_run(framework, tmp_path, "--resume", str(crafted))
    assert not (tmp_path / "code_ran").exists()
    assert not (tmp_path / "runs").exists()  # nothing started


# Episodes of 100 steps; a checkpoint at the first episode end after every 150 steps (so at 200)
PLAIN = ["--total-timesteps", "300", "--learning-starts", "150", "--batch-size", "16", "--hidden-dim", "16",
         "--max-episode-steps", "100", "--eval-frequency", "0", "--eval-episodes", "1", "--no-progress"]  # fmt: skip


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "dm_control/cartpole-swingup-v0"])
@pytest.mark.parametrize("framework", list(SCRIPTS))
def test_checkpoints_leave_the_run_alone(framework, env_id, tmp_path):
    # A run with --checkpoint-every takes the same episodes, and logs the same values at the same steps, as the same
    # command without it: the checkpoint stores the env's RNG states as they were before the reset that began the next
    # episode (dm_control: the task's RandomState), and a resumed run restores them and resets without a seed. On the
    # dm_control task, a run resumed from that checkpoint in a fresh process repeats the plain run too.
    logged = {}
    for name, extra in [("plain", []), ("checkpointed", ["--checkpoint-every", "150"])]:
        cwd = tmp_path / name
        cwd.mkdir()
        args = [sys.executable, os.path.join(ROOT, SCRIPTS[framework]), "--env-id", env_id, *PLAIN, *extra]
        result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        logged[name] = scalars(run_folder(cwd))
    assert len(logged["plain"]["charts/episodic_return"]) == 3
    assert logged["checkpointed"] == logged["plain"]
    if env_id.startswith("dm_control/"):
        (checkpoint,) = glob.glob(str(tmp_path / "checkpointed" / "runs" / "*" / "*.qsm_checkpoint"))
        args = [sys.executable, os.path.join(ROOT, SCRIPTS[framework]), "--env-id", env_id, *PLAIN, *extra]
        result = subprocess.run([*args, "--resume", checkpoint], cwd=tmp_path / "checkpointed", capture_output=True,
                                text=True, timeout=600)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert scalars(run_folder(tmp_path / "checkpointed")) == logged["plain"]


# A Pendulum that sends its own process SIGUSR2 inside its 200th step, the step that ends its second 100-step episode:
# the signal comes after the loop decided whether to keep the env's RNG states for a checkpoint at this step's end
SIGNALLING_ENV = """
import os, signal
import gymnasium as gym
from gymnasium.envs.classic_control.pendulum import PendulumEnv

class SignalInStep200(PendulumEnv):
    steps = 0
    def step(self, action):
        self.steps += 1
        if self.steps == 200:
            os.kill(os.getpid(), signal.SIGUSR2)
        return super().step(action)

gym.register("SignalInStep200-v0", entry_point=SignalInStep200, max_episode_steps=100)
"""


@pytest.mark.parametrize("framework", list(SCRIPTS))
def test_a_signal_inside_an_episodes_last_step_checkpoints_at_the_next_episode_end(framework, tmp_path):
    # The step's RNG states were not kept (no checkpoint was due when it began), so its episode end writes no checkpoint:
    # the next one does, and the run resumes from it
    (tmp_path / "signalling_env.py").write_text(SIGNALLING_ENV)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    args = [sys.executable, os.path.join(ROOT, SCRIPTS[framework]), "--env-id", "signalling_env:SignalInStep200-v0",
            *PLAIN, "--total-timesteps", "400", "--checkpoint-every", "1000"]  # fmt: skip
    stopped = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert stopped.returncode == 75, stopped.stderr[-3000:]
    assert "stopped by signal 12 at step 300;" in stopped.stdout, stopped.stdout
    (checkpoint,) = glob.glob(str(tmp_path / "runs" / "*" / "*.qsm_checkpoint"))
    resumed = subprocess.run([*args, "--resume", checkpoint], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
