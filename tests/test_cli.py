"""The script end to end through its command line, as a user runs it."""

import glob
import os
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "qsm_continuous_action.py")
# a short Hopper run that still updates (from step 100) and truncates (20-step episodes)
SHORT_RUN = [
    "--env-id", "Hopper-v4", "--total-timesteps", "300", "--learning-starts", "100", "--batch-size", "32",
    "--hidden-dim", "32", "--max-episode-steps", "20", "--eval-frequency", "150", "--eval-episodes", "2", "--no-progress",
]  # fmt: skip
TAGS = [
    "charts/episodic_return", "charts/episodic_length", "charts/SPS", "losses/qf1_loss", "losses/qf2_loss",
    "losses/qf1_values", "losses/qf2_values", "losses/actor_loss", "eval/episodic_return", "qsm/q_grad_norm",
    "qsm/eps_norm", "qsm/eps_q_grad_cosine", "qsm/action_at_bounds_frac", "charts/learning_rate",
]  # fmt: skip


def run(args, cwd):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def evaluate_model(args, cwd):
    """benchmark/evaluate_model.py, the tool that evaluates a model saved by either script."""
    tool = os.path.join(ROOT, "benchmark", "evaluate_model.py")
    return subprocess.run([sys.executable, tool, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def scalars(run_dir):
    acc = EventAccumulator(run_dir)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("short_run")
    result = run([*SHORT_RUN, "--save-model", "--cuda"], cwd)
    assert result.returncode == 0, result.stderr
    (run_dir,) = glob.glob(str(cwd / "runs" / "*"))
    return result, run_dir, cwd


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


def test_cuda_flag_trains_on_the_gpu_or_falls_back_to_cpu_with_a_warning(short_run):
    result, run_dir, _ = short_run
    (model,) = glob.glob(os.path.join(run_dir, "*.qsm_model"))
    saved = torch.load(model, weights_only=True)  # tensors come back on the device they were saved from
    devices = {p.device.type for p in saved["eps_theta"].values()} | {p.device.type for p in saved["qf1"].values()}
    gpu = torch.cuda.is_available()
    assert devices == {"cuda" if gpu else "cpu"}
    assert ("no GPU is available; running on the CPU" in result.stderr) == (not gpu)


def test_saved_model_loads_and_evaluates(short_run):
    result, run_dir, cwd = short_run
    (model,) = glob.glob(os.path.join(run_dir, "*.qsm_model"))
    assert model in result.stdout.replace("runs/", str(cwd / "runs") + "/")
    saved = torch.load(model, weights_only=True)  # tensors and plain containers only
    assert {"eps_theta", "qf1", "qf2", "args", "obs_dim", "act_dim", "action_low", "action_high"} <= set(saved)
    evaluation = evaluate_model([model, "--eval-episodes", "3"], cwd)
    assert evaluation.returncode == 0, evaluation.stderr
    assert "Hopper-v4: 3 evaluation episodes, return" in evaluation.stdout


def test_same_seed_same_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for cwd in (a, b):
        assert run([*SHORT_RUN, "--seed", "7", "--eval-frequency", "0"], cwd).returncode == 0
    (run_a,), (run_b,) = glob.glob(str(a / "runs" / "*")), glob.glob(str(b / "runs" / "*"))
    sa, sb = scalars(run_a), scalars(run_b)
    for tag in ["charts/episodic_return", "losses/qf1_loss", "losses/actor_loss", "eval/episodic_return"]:
        assert sa[tag] == sb[tag], tag


def test_beyond_the_paper_flags_run(tmp_path):
    # the target scale and the box prior together, without the evaluation halfway: a few seconds
    flags, tag = ["--normalize-q-grad", "--box-prior", "--eval-frequency", "0"], "q_grad_rms"
    result = run([*SHORT_RUN, *flags], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = glob.glob(str(tmp_path / "runs" / "*"))
    logged = scalars(run_dir)
    assert [step for step, _ in logged[f"qsm/{tag}"]] == [100, 200]
    assert all(v > 0 for _, v in logged[f"qsm/{tag}"])


BAD_INPUTS = [
    (["--env-id", "CartPole-v1"], "requires a Box action space, got <class 'gymnasium.spaces.discrete.Discrete'>"),
    (["--env-id", "NoSuchEnv-v0"], "cannot train on 'NoSuchEnv-v0'"),
    (["--diffusion-steps", "0"], "--diffusion-steps (T) must be >= 1"),
    (["--batch-size", "512", "--buffer-size", "256"], "--batch-size must not exceed --buffer-size"),
    (["--learning-starts", "100", "--total-timesteps", "100"], "--learning-starts must be in [0, --total-timesteps)"),
    (["--m-q", "-1"], "--m-q must be > 0"),
    (["--critic-hidden-dim", "0"], "network sizes must be >= 1"),
]  # each script must reject these with one line and exit 2


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_exits_with_one_readable_line(args, message, tmp_path):
    result = run(args, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1
    assert not (tmp_path / "runs").exists()  # nothing started


class RunsCode:
    """Unpickling this calls os.system: what a malicious model file would do."""

    def __reduce__(self):
        return (os.system, ("touch code_ran",))


def test_a_model_file_that_runs_code_is_refused_and_runs_nothing(tmp_path):
    torch.save({"args": {}, "eps_theta": RunsCode()}, tmp_path / "evil.qsm_model")
    result = evaluate_model(["evil.qsm_model"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'evil.qsm_model' is not a model saved by --save-model" in result.stderr
    assert not (tmp_path / "code_ran").exists()


@pytest.mark.parametrize("content, message", [(None, "no such file"), ("not a model", "is not a model saved by")])
def test_evaluate_model_refuses_a_file_that_is_not_a_model_and_runs_nothing(content, message, tmp_path):
    if content is not None:
        (tmp_path / "bogus.qsm_model").write_text(content)
    result = evaluate_model(["bogus.qsm_model"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("script", [SCRIPT, SCRIPT.replace(".py", "_jax.py")], ids=["torch", "jax"])
def test_evaluation_settings_do_not_change_the_training_run(script, tmp_path):
    # evaluation draws from its own generator (PyTorch) or key (JAX): training sees the same random numbers either way
    logged = []
    for i, evaluation in enumerate([["--eval-frequency", "0", "--eval-episodes", "1"], ["--eval-frequency", "50"]]):
        (tmp_path / str(i)).mkdir()
        flags = [f for f in SHORT_RUN if f not in ("--eval-frequency", "150", "--eval-episodes", "2")] + evaluation
        result = subprocess.run([sys.executable, script, *flags], cwd=tmp_path / str(i), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        logged.append(scalars(glob.glob(str(tmp_path / str(i) / "runs" / "*"))[0]))
    assert len(logged[0]["eval/episodic_return"]) == 1 and len(logged[1]["eval/episodic_return"]) == 6
    for tag in ["charts/episodic_return", "losses/qf1_loss", "losses/actor_loss", "qsm/action_at_bounds_frac"]:
        assert logged[0][tag] == logged[1][tag], tag


def test_non_finite_loss_stops_the_run_naming_the_step(tmp_path):
    result = run([*SHORT_RUN, "--critic-lr", "1e12"], tmp_path)
    assert result.returncode == 1
    assert "non-finite loss at global step" in result.stderr
    assert "Traceback" not in result.stderr
