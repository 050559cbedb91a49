"""The JAX script end to end through its command line, as a user runs it (the same checks as test_cli.py)."""

import glob
import os
import re
import subprocess
import sys

import pytest
from flax import serialization
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_cli import BAD_INPUTS, SHORT_RUN, TAGS, evaluate_model

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qsm_continuous_action_jax.py")


# runs the script as `python SCRIPT ARGS` does, then reports whether anything imported torch
RUN_AND_REPORT_TORCH = (
    "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
    "print('torch imported:', 'torch' in sys.modules)"
)


def run(args, cwd, env=None):
    command = [sys.executable, "-c", RUN_AND_REPORT_TORCH, SCRIPT, *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def scalars(run_dir):
    acc = EventAccumulator(run_dir)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("short_run")
    # JAX_LOG_COMPILES makes JAX log every compilation to stderr: the test below counts them
    result = run([*SHORT_RUN, "--save-model"], cwd, env={"JAX_LOG_COMPILES": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = glob.glob(str(cwd / "runs" / "*"))
    return result, run_dir, cwd


def test_script_does_not_import_torch(short_run):
    result, _, _ = short_run
    assert "torch imported: False" in result.stdout


def test_short_run_logs_every_tag(short_run):
    _, run_dir, _ = short_run
    logged = scalars(run_dir)
    assert set(TAGS) <= set(logged), set(TAGS) - set(logged)
    assert [step for step, _ in logged["losses/qf1_loss"]] == [100, 200]  # updates from learning_starts on
    assert len(logged["eval/episodic_return"]) == 2  # at 150 and at the end
    acc = EventAccumulator(run_dir)
    acc.Reload()
    assert "hyperparameters/text_summary" in acc.Tags()["tensors"]


def test_short_run_hits_truncations(short_run):
    _, run_dir, _ = short_run
    lengths = [v for _, v in scalars(run_dir)["charts/episodic_length"]]
    assert 20 in lengths and max(lengths) <= 20


def test_update_and_policy_compile_once(short_run):
    result, _, _ = short_run
    compiled = re.findall(r"Finished XLA compilation of jit\((\w+)\)", result.stderr)
    assert compiled.count("qsm_update") == 1, compiled  # 200 updates, one compilation
    # acting: once for the training env (batch 1), once for the evaluation envs (batch 2), reused by the second evaluation
    assert compiled.count("policy") == 2, compiled


def test_saved_model_loads_and_evaluates(short_run):
    result, run_dir, cwd = short_run
    (model,) = glob.glob(os.path.join(run_dir, "*.qsm_model"))
    assert model in result.stdout.replace("runs/", str(cwd / "runs") + "/")
    with open(model, "rb") as f:
        saved = serialization.msgpack_restore(f.read())
    assert {"eps_theta", "qf1", "qf2", "args", "obs_dim", "act_dim", "action_low", "action_high"} <= set(saved)
    assert saved["args"]["hidden_dim"] == 32 and saved["act_dim"] == 3
    assert saved["qf1"]["params"]["VmapQNetwork_0"]["Dense_0"]["kernel"].shape == (11 + 3, 32)
    evaluation = evaluate_model([model, "--eval-episodes", "3"], cwd)
    assert evaluation.returncode == 0, evaluation.stderr
    assert "Hopper-v4: 3 evaluation episodes, return" in evaluation.stdout


def test_same_seed_same_run(short_run, tmp_path):
    # a second run with the fixture's flags and seed (its compile log on stderr changes nothing) must log the same values
    _, run_a, _ = short_run
    assert run([*SHORT_RUN, "--save-model"], tmp_path).returncode == 0
    (run_b,) = glob.glob(str(tmp_path / "runs" / "*"))
    sa, sb = scalars(run_a), scalars(run_b)
    for tag in ["charts/episodic_return", "losses/qf1_loss", "losses/actor_loss", "eval/episodic_return"]:
        assert sa[tag] == sb[tag], tag


def test_beyond_the_paper_flags_run_once_compiled_and_their_model_evaluates(tmp_path):
    flags = ["--normalize-q-grad", "--box-prior"]
    result = run([*SHORT_RUN, *flags, "--save-model"], tmp_path, env={"JAX_LOG_COMPILES": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    compiled = re.findall(r"Finished XLA compilation of jit\((\w+)\)", result.stderr)
    assert compiled.count("qsm_update") == 1, compiled  # the running RMS rides in the jitted state; the box prior is traced in
    (run_dir,) = glob.glob(str(tmp_path / "runs" / "*"))
    logged = scalars(run_dir)
    assert [step for step, _ in logged["qsm/q_grad_rms"]] == [100, 200]
    assert all(v > 0 for _, v in logged["qsm/q_grad_rms"])
    (model,) = glob.glob(os.path.join(run_dir, "*.qsm_model"))
    with open(model, "rb") as f:
        saved = serialization.msgpack_restore(f.read())
    assert all(saved["args"][flag[2:].replace("-", "_")] for flag in flags)
    evaluation = evaluate_model([model, "--eval-episodes", "2"], tmp_path)
    assert evaluation.returncode == 0, evaluation.stderr
    assert "Hopper-v4: 2 evaluation episodes, return" in evaluation.stdout


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_exits_with_one_readable_line(args, message, tmp_path):
    result = run(args, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error_lines == [line for line in error_lines if line.startswith("qsm_continuous_action_jax.py: error:")]
    assert len(error_lines) == 1
    assert not (tmp_path / "runs").exists()  # nothing started


def test_non_finite_loss_stops_the_run_naming_the_step(tmp_path):
    result = run([*SHORT_RUN, "--critic-lr", "1e12"], tmp_path)
    assert result.returncode == 1
    assert re.search(r"non-finite loss at global step \d+", result.stderr)
    assert "Traceback" not in result.stderr
