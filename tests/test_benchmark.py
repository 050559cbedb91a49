"""benchmark/: the launcher runs jobs and reports failures; plot.py turns event files into the right numbers and a PNG."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmark"))

import plot  # noqa: E402

LAUNCH = os.path.join(ROOT, "benchmark", "launch.py")

# A stand-in training script: records that it ran, fails with exit 3 for seed 13, sleeps for seed 99.
FAKE_JOB = textwrap.dedent(
    """
    import argparse, os, sys, time
    p = argparse.ArgumentParser()
    p.add_argument("--env-id"); p.add_argument("--seed", type=int); p.add_argument("--out")
    a = p.parse_args()
    if a.seed == 99:
        time.sleep(60)
    if a.seed == 13:
        print("planted failure: seed 13 diverged", file=sys.stderr)
        sys.exit(3)
    open(os.path.join(a.out, f"{a.env_id}_{a.seed}_{os.environ.get('OMP_NUM_THREADS')}.done"), "w").close()
    print("trained")
    """
)


def launch(tmp_path, *launcher_args):
    job = tmp_path / "fake_train.py"
    job.write_text(FAKE_JOB)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    cmd = [sys.executable, LAUNCH, *launcher_args, "--log-dir", str(tmp_path / "logs"), "--"]
    cmd += [sys.executable, str(job), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return proc, sorted(os.listdir(out))


def test_launcher_runs_every_job(tmp_path):
    proc, done = launch(tmp_path, "--env-ids", "EnvA", "--seeds", "1", "2", "--workers", "2", "--threads-per-job", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert done == ["EnvA_1_1.done", "EnvA_2_1.done"]  # OMP_NUM_THREADS=1 set for each job
    assert "2 of 2 jobs finished with exit status 0, 0 failed" in proc.stdout
    assert "trained" in (tmp_path / "logs" / "fake_train__EnvA__1.log").read_text()


def test_launcher_reports_a_planted_failure(tmp_path):
    proc, done = launch(tmp_path, "--env-ids", "EnvA", "--seeds", "1", "13", "2", "--workers", "2")
    assert proc.returncode == 1
    assert done == ["EnvA_1_1.done", "EnvA_2_1.done"]  # the other jobs still ran
    row = next(line for line in proc.stdout.splitlines() if line.startswith("fake_train") and " 13 " in line)
    assert "FAILED (exit 3)" in row
    assert "planted failure: seed 13 diverged" in proc.stdout  # the failed job's log tail is shown
    assert "2 of 3 jobs finished with exit status 0, 1 failed" in proc.stdout


def test_launcher_timeout_is_a_failure(tmp_path):
    proc, _ = launch(tmp_path, "--env-ids", "EnvA", "--seeds", "99", "--timeout", "1")
    assert proc.returncode == 1
    assert "FAILED (killed by SIGTERM)" in proc.stdout


def test_launcher_dry_run_runs_nothing(tmp_path):
    proc, done = launch(tmp_path, "--env-ids", "EnvA", "EnvB", "--seeds", "1", "2", "--dry-run")
    assert proc.returncode == 0
    assert done == []
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4 and lines[-1].endswith("--env-id EnvB --seed 2")


def test_launcher_job_names():
    import launch

    args, _ = launch.parse_args(["--env-ids", "E", "--seeds", "1", "--", "python", "benchmark/sac_sb3.py", "--seed", "2"])
    assert args.name == "sac_sb3"
    args, _ = launch.parse_args(["--env-ids", "E", "--seeds", "1", "--", "python", "qsm.py", "--exp-name", "tp-qsm"])
    assert args.name == "tp-qsm"  # its logs must not overwrite those of the runs named after the script


@pytest.mark.parametrize("runner, script", [("qsm.sh", "qsm_continuous_action.py"), ("sac.sh", "benchmark/sac_sb3.py")])
def test_runner_commands(runner, script):
    env = dict(os.environ, DRY_RUN="1", ENV_IDS="Hopper-v4 Walker2d-v4", SEEDS="1 2 3")
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmark", runner), "--total-timesteps", "100"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 6
    assert lines[0] == f"python {script} --no-progress --total-timesteps 100 --env-id Hopper-v4 --seed 1"


def test_sac_sb3_logs_the_same_tags(tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "sac_sb3.py"), "--env-id", "InvertedPendulum-v4"]
    cmd += ["--total-timesteps", "300", "--learning-starts", "100", "--batch-size", "32", "--hidden-dim", "16"]
    cmd += ["--max-episode-steps", "20", "--eval-frequency", "0", "--eval-episodes", "2", "--seed", "5", "--no-progress"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (run,) = plot.load_runs(str(tmp_path / "runs"))
    assert (run.env_id, run.algo, run.seed) == ("InvertedPendulum-v4", "sac_sb3", 5)
    for tag in (plot.RETURN_TAG, plot.SPS_TAG, plot.EVAL_TAG, "charts/episodic_length"):
        assert len(run.series(tag)) > 0, tag
    assert len(run.series(plot.RETURN_TAG)) >= 300 // 20
    assert run.series(plot.EVAL_TAG)[-1, 0] == 300


def write_run(runs_dir, env, algo, seed, returns, steps, sps=(), evals=(), stamp=1000):
    writer = SummaryWriter(os.path.join(runs_dir, f"{env}__{algo}__{seed}__{stamp}"))
    for step, value in zip(steps, returns):
        writer.add_scalar(plot.RETURN_TAG, value, step)
    for step, value in sps:
        writer.add_scalar(plot.SPS_TAG, value, step)
    for step, value in evals:
        writer.add_scalar(plot.EVAL_TAG, value, step)
    writer.close()


@pytest.fixture
def fake_runs(tmp_path):
    """Two envs x two algorithms x three seeds; 'good' returns 100*seed + episode index, 'bad' returns seed."""
    runs_dir = str(tmp_path / "runs")
    steps = np.arange(1, 21) * 50  # 20 episodes, one every 50 steps, the last at step 1000
    for env in ("EnvA-v0", "EnvB-v0"):
        for seed in (1, 2, 3):
            write_run(runs_dir, env, "good", seed, 100 * seed + np.arange(20), steps, [(500, 40), (600, 50), (700, 90)])
            write_run(runs_dir, env, "bad", seed, np.full(20, float(seed)), steps, [(500, 10)], evals=[(999, 7 * seed)])
    # an older run of the same key that must be ignored, and a folder that is not a run
    write_run(runs_dir, "EnvA-v0", "bad", 1, np.full(20, -1e6), steps, stamp=10)
    os.makedirs(os.path.join(runs_dir, "logs"))
    return runs_dir


def test_plot_table_numbers(fake_runs):
    runs = plot.load_runs(fake_runs, echo=lambda *_: None)
    assert len(runs) == 12
    table = plot.summarize(runs, last_episodes=4)
    good = table[("EnvA-v0", "good")]
    # seed s: mean of its last 4 episodes = 100 s + mean(16..19) = 100 s + 17.5; over seeds: 217.5 +- 100
    np.testing.assert_allclose(good["finals"], [117.5, 217.5, 317.5])
    assert good["final_mean"] == pytest.approx(217.5)
    assert good["final_std"] == pytest.approx(100.0)  # sample std of 117.5, 217.5, 317.5
    assert good["sps_median"] == pytest.approx(50.0)
    assert np.isnan(good["eval_mean"])
    bad = table[("EnvA-v0", "bad")]
    assert bad["final_mean"] == pytest.approx(2.0)  # the older seed-1 run at -1e6 was ignored
    assert bad["eval_mean"] == pytest.approx(14.0) and bad["eval_std"] == pytest.approx(7.0)
    assert bad["min_last_step"] == 1000
    text = plot.format_table(table, markdown=True)
    assert "| EnvA-v0 | good | 3 | 1000 | 217.5 ± 100.0 | - | 50 | - |" in text


def test_plot_curves_and_aggregate(fake_runs, tmp_path, capsys):
    runs = plot.load_runs(fake_runs, echo=lambda *_: None)
    run = next(r for r in runs if (r.env_id, r.algo, r.seed) == ("EnvA-v0", "good", 2))
    curve = plot.running_curve(run, np.array([0.0, 50.0, 149.0, 1000.0, 1001.0]), window=3)
    # before the first episode: nothing; at 50: episode 0 alone; at 149: episodes 0-1; at 1000: the last 3; past the end: nothing
    np.testing.assert_allclose(curve, [np.nan, 200.0, 200.5, 218.0, np.nan])

    assert plot.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    table = plot.summarize(runs, last_episodes=4)
    scores, ranges = plot.normalised_scores(runs, table, last_episodes=4)
    # 0 = mean first-episode return (good: 100, 200, 300; bad: 1, 2, 3) = 101; 1 = best final return = 317.5
    assert ranges["EnvA-v0"] == pytest.approx((101.0, 317.5))
    np.testing.assert_allclose(scores["good"][:, 0], (np.array([117.5, 217.5, 317.5]) - 101) / 216.5)
    low, high = plot.stratified_bootstrap_ci(scores["good"], reps=200)
    assert low <= plot.iqm(scores["good"]) <= high

    output = str(tmp_path / "fig" / "curves.png")
    assert plot.main(["--runs-dir", fake_runs, "--output", output, "--last-episodes", "4", "--bootstrap-reps", "200"]) == 0
    out = capsys.readouterr().out
    assert "217.5 ± 100.0" in out and "IQM of normalised final return" in out
    with open(output, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(output) > 10_000


def test_plot_curve_stops_where_a_seed_stopped(tmp_path):
    runs_dir = str(tmp_path / "runs")
    steps = np.arange(1, 21) * 50
    write_run(runs_dir, "EnvA-v0", "algo", 1, np.ones(20), steps)
    write_run(runs_dir, "EnvA-v0", "algo", 2, np.ones(10), steps[:10])  # stopped at step 500
    runs = plot.load_runs(runs_dir)
    curves = plot.plot(runs, str(tmp_path / "c.png"), window=5, reps=50)
    grid, mean, low, high = curves[("EnvA-v0", "algo")]
    assert grid.max() <= 500 and np.allclose(mean, 1.0)
    assert plot.summarize(runs)[("EnvA-v0", "algo")]["min_last_step"] == 500


def test_plot_without_runs_fails(tmp_path, capsys):
    assert plot.main(["--runs-dir", str(tmp_path), "--output", str(tmp_path / "x.png")]) == 2
    assert "no runs" in capsys.readouterr().err


def test_diagnostics_table_numbers(tmp_path, capsys):
    import diagnostics

    runs_dir = str(tmp_path / "runs")
    steps = np.arange(1, 21) * 100
    for seed in (1, 2):
        writer = SummaryWriter(os.path.join(runs_dir, f"EnvA-v0__qsm__{seed}__1000"))
        for i, step in enumerate(steps):
            writer.add_scalar(plot.RETURN_TAG, 1.0, step)
            writer.add_scalar("qsm/action_at_bounds_frac", 0.1 * seed, step)
            writer.add_scalar("qsm/q_grad_norm", float(i), step)  # 0..19: its last 4 average 17.5
            writer.add_scalar("losses/qf1_loss", 2.0 * seed, step)
        writer.close()
    write_run(runs_dir, "EnvA-v0", "sac", 1, np.ones(20), steps)
    table = diagnostics.diagnostics(plot.load_runs(runs_dir, echo=lambda *_: None), last_logged=4)
    qsm = table[("EnvA-v0", "qsm")]
    assert qsm["seeds"] == 2
    assert qsm["qsm/action_at_bounds_frac"] == pytest.approx(0.15)
    assert qsm["qsm/q_grad_norm"] == pytest.approx(17.5)
    assert qsm["losses/qf1_loss"] == pytest.approx(3.0)
    assert np.isnan(qsm["qsm/eps_norm"])
    assert all(np.isnan(v) for k, v in table[("EnvA-v0", "sac")].items() if k != "seeds")
    diagnostics.main(["--runs-dir", runs_dir, "--markdown", "--last-logged", "4"])
    out = capsys.readouterr().out
    assert "| EnvA-v0 | qsm | 2 | 15% | 17.50 | - | - | 3.00 |" in out
    assert "| EnvA-v0 | sac | 1 | - | - | - | - | - |" in out


def test_plot_max_step_compares_runs_at_equal_steps(fake_runs):
    runs = plot.load_runs(fake_runs, echo=lambda *_: None, max_step=500)
    # episodes every 50 steps: those before step 500 are the first 9 (indices 0..8); the last 4 average 6.5
    table = plot.summarize(runs, last_episodes=4)
    np.testing.assert_allclose(table[("EnvA-v0", "good")]["finals"], [106.5, 206.5, 306.5])
    assert table[("EnvA-v0", "good")]["min_last_step"] == 450
    assert np.isnan(table[("EnvA-v0", "bad")]["eval_mean"])  # its only evaluation, at step 999, is past the cap
    assert plot.load_runs(fake_runs, echo=lambda *_: None, max_step=10) == []  # no episode before step 10: skipped


def test_variants_runner_commands():
    env = dict(os.environ, DRY_RUN="1", ENV_IDS="Walker2d-v4", SEEDS="1 2", VARIANTS="qsm_norm1_box qsm_clip_final")
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmark", "variants.sh"), "--total-timesteps", "100"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines == [
        "python qsm_continuous_action.py --no-progress --normalize-q-grad --m-q 1 --box-prior --exp-name qsm_norm1_box "
        "--total-timesteps 100 --env-id Walker2d-v4 --seed 1",
        "python qsm_continuous_action.py --no-progress --normalize-q-grad --m-q 1 --box-prior --exp-name qsm_norm1_box "
        "--total-timesteps 100 --env-id Walker2d-v4 --seed 2",
        "python qsm_continuous_action.py --no-progress --clip-final-only --exp-name qsm_clip_final "
        "--total-timesteps 100 --env-id Walker2d-v4 --seed 1",
        "python qsm_continuous_action.py --no-progress --clip-final-only --exp-name qsm_clip_final "
        "--total-timesteps 100 --env-id Walker2d-v4 --seed 2",
    ]
    bad = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmark", "variants.sh")],
        capture_output=True,
        text=True,
        env=dict(env, VARIANTS="qsm_nonsense"),
    )
    assert bad.returncode == 2 and "unknown variant qsm_nonsense" in bad.stderr
