"""benchmark/sac_sb3.py --algo crossq: CrossQ gets exactly the keywords the comparison fixes, logs what SAC logs, and
refuses SAC's own flags instead of dropping them."""

import glob
import os
import subprocess
import sys

import gymnasium as gym
import pytest
import torch
from sb3_contrib import CrossQ
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmark"))

import plot  # noqa: E402
import sac_sb3  # noqa: E402

SCRIPT = os.path.join(ROOT, "benchmark", "sac_sb3.py")
TINY = ["--env-id", "Pendulum-v1", "--total-timesteps", "300", "--learning-starts", "100", "--batch-size", "32"]
TINY += ["--max-episode-steps", "50", "--eval-frequency", "0", "--eval-episodes", "2", "--seed", "3", "--no-progress"]


def widths(module):
    return [layer.out_features for layer in module.modules() if isinstance(layer, torch.nn.Linear)]


@pytest.mark.parametrize("library_widths, critic_width", [(False, 256), (True, 1024)])
def test_crossq_gets_only_the_comparisons_keywords(library_widths, critic_width):
    args = sac_sb3.Args(algo="crossq", learning_starts=5000, library_widths=library_widths)
    kwargs = sac_sb3.model_kwargs(args, "cpu")
    expected = dict(learning_starts=5000, batch_size=256, train_freq=1, gradient_steps=1, seed=1, device="cpu")
    if not library_widths:
        expected["policy_kwargs"] = {"net_arch": {"pi": [256, 256], "qf": [256, 256]}}
    assert kwargs == expected  # no learning rate, tau, gamma or buffer size: those stay the library's
    model = CrossQ("MlpPolicy", gym.make("Pendulum-v1"), **kwargs)
    assert (model.batch_size, model.learning_starts, model.gradient_steps, model.train_freq.frequency) == (256, 5000, 1, 1)
    assert model.learning_rate == 1e-3 and model.policy_delay == 3  # the library's defaults
    assert model.actor.optimizer.defaults["betas"] == (0.5, 0.999)
    assert widths(model.actor) == [256, 256, 1, 1]  # two hidden layers, then the mean and log std heads
    assert widths(model.critic) == [critic_width, critic_width, 1] * 2  # twin critics


def test_sac_keywords_unchanged():
    kwargs = sac_sb3.model_kwargs(sac_sb3.Args(hidden_dim=64, learning_rate=1e-4), "cpu")
    assert kwargs == dict(learning_rate=1e-4, buffer_size=int(1e6), learning_starts=int(1e4), batch_size=256, tau=0.005,
                          gamma=0.99, train_freq=1, gradient_steps=1, policy_kwargs={"net_arch": [64, 64]}, seed=1,
                          device="cpu", verbose=0)  # fmt: skip


def tiny_run(folder, *flags):
    folder.mkdir()
    proc = subprocess.run([sys.executable, SCRIPT, *TINY, *flags], cwd=folder, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (run,) = plot.load_runs(str(folder / "runs"))
    return proc, run


def test_crossq_tiny_run_logs_what_sac_logs(tmp_path):
    _, sac = tiny_run(tmp_path / "sac")
    proc, crossq = tiny_run(tmp_path / "crossq", "--algo", "crossq")
    assert (crossq.env_id, crossq.algo, crossq.seed) == ("Pendulum-v1", "crossq_sb3", 3)
    assert sac.algo == "sac_sb3"
    assert set(crossq.scalars) == set(sac.scalars)  # the same tags, so plot.py and launch.py read both alike
    for tag in (plot.RETURN_TAG, plot.SPS_TAG, plot.EVAL_TAG, "charts/episodic_length"):
        assert len(crossq.series(tag)) > 0, tag
    assert crossq.series(plot.EVAL_TAG)[-1, 0] == 300
    # every keyword the constructor got: on stdout, and as a text in the run's event file
    assert "CrossQ(\"MlpPolicy\", env, **{'learning_starts': 100, 'batch_size': 32," in proc.stdout
    acc = EventAccumulator(crossq.path)
    acc.Reload()
    logged = acc.Tensors("model_kwargs/text_summary")[0].tensor_proto.string_val[0].decode()
    assert logged.startswith("sb3_contrib.crossq.crossq.CrossQ: {") and '"qf": [256, 256]' in logged
    hyperparameters = acc.Tensors("hyperparameters/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "|algo|crossq|" in hyperparameters and "learning_rate" not in hyperparameters  # not what crossq used


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--algo", "crossq", "--learning-rate", "3e-4"], "--learning-rate"),  # even at SAC's default value
        (["--algo", "crossq", "--tau=0.01", "--hidden-dim", "1024"], "--tau, --hidden-dim"),
        (["--algo", "sac", "--library-widths"], "--library-widths"),
    ],
)
def test_a_flag_the_algorithm_does_not_take_is_refused(tmp_path, flags, named):
    proc = subprocess.run([sys.executable, SCRIPT, *TINY, *flags], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].endswith(f"does not take {named}")
    assert not glob.glob(str(tmp_path / "runs" / "*"))  # nothing ran, nothing was logged
