"""benchmark/: the launcher runs jobs and reports failures; plot.py turns event files into the right numbers and a PNG."""

import csv
import json
import os
import shlex
import shutil
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
    for algo in (["--algo", "crossq"], ["--algo=crossq"]):  # sac_sb3.py names its crossq runs crossq_sb3
        args, _ = launch.parse_args(["--env-ids", "E", "--seeds", "1", "--", "python", "benchmark/sac_sb3.py", *algo])
        assert args.name == "crossq_sb3"
    args, _ = launch.parse_args(["--env-ids", "E", "--seeds", "1", "--", "python", "benchmark/sac_sb3.py", "--algo", "sac"])
    assert args.name == "sac_sb3"
    command = ["python", "benchmark/sac_sb3.py", "--algo", "crossq", "--exp-name", "crossq_sb3_wide", "--library-widths"]
    args, _ = launch.parse_args(["--env-ids", "E", "--seeds", "1", "--", *command])
    assert args.name == "crossq_sb3_wide"


def runner_env(tmp_path, **variables):
    """DRY_RUN with the interpreter in PYTHON and no `python` on the PATH, as from an un-activated virtual environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "dirname").symlink_to("/usr/bin/dirname")
    return dict(os.environ, PATH=str(bin_dir), PYTHON=sys.executable, DRY_RUN="1", **variables)


@pytest.mark.parametrize(
    "runner, script",
    [
        ("qsm.sh", "qsm_continuous_action.py --no-progress --checkpoint-every 10000"),  # the QSM runs resume when cut
        ("qsm_jax.sh", "qsm_continuous_action_jax.py --no-progress --checkpoint-every 10000"),
        ("sac.sh", "benchmark/sac_sb3.py --no-progress"),
    ],
)
def test_runner_commands(runner, script, tmp_path):
    env = runner_env(tmp_path, ENV_IDS="Hopper-v4 Walker2d-v4", SEEDS="1 2 3")
    proc = subprocess.run(
        ["/bin/bash", os.path.join(ROOT, "benchmark", runner), "--total-timesteps", "100"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 6
    assert lines[0] == f"{sys.executable} {script} --total-timesteps 100 --env-id Hopper-v4 --seed 1"


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
    assert run.series("eval/stochastic_episodic_return")[-1, 0] == 300  # the sampled policy's, QSM's kind of evaluation


def write_run(runs_dir, env, algo, seed, returns, steps, sps=(), evals=(), stamp=1000):
    writer = SummaryWriter(os.path.join(runs_dir, f"{env}__{algo}__{seed}__{stamp}"))
    for step, value in zip(steps, returns):
        writer.add_scalar(plot.RETURN_TAG, value, step)
    for step, value in sps:
        writer.add_scalar(plot.SPS_TAG, value, step)
    for step, value in evals:
        writer.add_scalar(plot.EVAL_TAG, value, step)
    writer.close()


# The evaluation returns of `fake_runs`, one row per seed (1, 2, 3), one column per evaluation, at EVAL_STEPS of the
# algorithm (QSM logs its evaluations at 0-based steps, SB3 at 1-based ones: the two grids differ).
EVAL_STEPS = {"good": np.array([250, 500, 750, 1000]), "bad": np.array([249, 499, 749, 999])}
EVALS = {
    ("EnvA-v0", "good"): np.array([[60, 110, 160, 210], [70, 120, 170, 220], [80, 130, 180, 230]], dtype=float),
    ("EnvA-v0", "bad"): np.array([[5, 8, 9, 11], [6, 12, 15, 18], [7, 14, 20, 25]], dtype=float),
    ("EnvB-v0", "good"): np.array([[100, 400, 900, 1500], [200, 500, 1200, 2000], [0, 300, 600, 2500]], dtype=float),
    ("EnvB-v0", "bad"): np.array([[50, 60, 70, 80], [40, 30, 20, 10], [100, 200, 300, 1600]], dtype=float),
}


@pytest.fixture
def fake_runs(tmp_path):
    """Two envs x two algorithms x three seeds. Training returns: 'good' 100*seed + episode index, 'bad' seed;
    evaluation returns: EVALS at EVAL_STEPS."""
    runs_dir = str(tmp_path / "runs")
    steps = np.arange(1, 21) * 50  # 20 episodes, one every 50 steps, the last at step 1000
    for env in ("EnvA-v0", "EnvB-v0"):
        for i, seed in enumerate((1, 2, 3)):
            good_evals = list(zip(EVAL_STEPS["good"], EVALS[(env, "good")][i]))
            bad_evals = list(zip(EVAL_STEPS["bad"], EVALS[(env, "bad")][i]))
            write_run(
                runs_dir, env, "good", seed, 100 * seed + np.arange(20), steps, [(500, 40), (600, 50), (700, 90)], good_evals
            )
            write_run(runs_dir, env, "bad", seed, np.full(20, float(seed)), steps, [(500, 10)], bad_evals)
    # an older run of the same key that must be ignored (its evaluation would be the max of EnvA), and a folder that is
    # not a run
    write_run(runs_dir, "EnvA-v0", "bad", 1, np.full(20, -1e6), steps, evals=[(999, 1e6)], stamp=10)
    os.makedirs(os.path.join(runs_dir, "logs"))
    return runs_dir


def first_crossing(steps, curve, threshold):
    """Plain numpy: the first step where `curve` >= threshold, or None."""
    hits = np.nonzero(curve >= threshold)[0]
    return int(steps[hits[0]]) if len(hits) else None


def expected_normalised():
    """Plain numpy: final evaluation returns min/max-normalised per env over both algorithms' runs, as (seeds, envs)."""
    out = {"good": [], "bad": []}
    for env in ("EnvA-v0", "EnvB-v0"):
        finals = {algo: EVALS[(env, algo)][:, -1] for algo in out}
        low, high = min(f.min() for f in finals.values()), max(f.max() for f in finals.values())
        for algo, columns in out.items():
            columns.append((finals[algo] - low) / (high - low))
    return {algo: np.stack(columns, axis=1) for algo, columns in out.items()}


def expected_iqm(scores):
    """Plain numpy: the mean of the middle half of all runs x envs (25% cut from each end)."""
    flat = np.sort(np.ravel(scores))
    cut = int(0.25 * len(flat))
    return flat[cut : len(flat) - cut].mean()


def test_plot_table_numbers(fake_runs):
    runs = plot.load_runs(fake_runs, echo=lambda *_: None)
    assert len(runs) == 12
    thresholds = {"EnvA-v0": (100.0, 120.0, 200.0, 500.0), "EnvB-v0": (500.0,)}
    table = plot.summarize(runs, last_episodes=4, thresholds=thresholds)
    good = table[("EnvA-v0", "good")]
    # training: seed s's mean of its last 4 episodes = 100 s + mean(16..19) = 100 s + 17.5; over seeds: 217.5 +- 100
    np.testing.assert_allclose(good["finals"], [117.5, 217.5, 317.5])
    assert good["final_mean"] == pytest.approx(217.5)
    assert good["final_std"] == pytest.approx(100.0)  # sample std of 117.5, 217.5, 317.5
    assert good["sps_median"] == pytest.approx(50.0)
    for (env, algo), evals in EVALS.items():
        row = table[(env, algo)]
        assert row["eval_mean"] == pytest.approx(evals[:, -1].mean())
        assert row["eval_std"] == pytest.approx(evals[:, -1].std(ddof=1))
        np.testing.assert_array_equal(row["eval_steps"], EVAL_STEPS[algo])
        np.testing.assert_allclose(row["eval_curve"], evals.mean(axis=0))
        curve = evals.mean(axis=0)
        assert row["reach"] == {t: first_crossing(EVAL_STEPS[algo], curve, t) for t in thresholds[env]}
    # the same by hand: EnvA good's mean curve is 70, 120, 170, 220 at 250..1000 (120 counts as reached at 500);
    # EnvB bad's ends at 563.3 at 999
    assert table[("EnvA-v0", "good")]["reach"] == {100.0: 500, 120.0: 500, 200.0: 1000, 500.0: None}
    assert table[("EnvB-v0", "bad")]["reach"] == {500.0: 999}
    bad = table[("EnvA-v0", "bad")]
    assert bad["final_mean"] == pytest.approx(2.0)  # the older seed-1 run at -1e6 was ignored
    assert bad["eval_mean"] == pytest.approx(18.0) and bad["eval_std"] == pytest.approx(7.0)  # 11, 18, 25
    assert bad["min_last_step"] == 1000
    text = plot.format_table(table, markdown=True)
    assert (
        "| EnvA-v0 | good | 3 | 1000 | 220.0 ± 10.0 | 100: 500, 120: 500, 200: 1000, 500: - | 217.5 ± 100.0 | 50 | - |" in text
    )
    assert "| EnvA-v0 | bad | 3 | 1000 | 18.0 ± 7.0 | 100: -, 120: -, 200: -, 500: - | 2.0 ± 1.0 | 10 | - |" in text


def test_plot_curves_and_aggregate(fake_runs, tmp_path, capsys):
    runs = plot.load_runs(fake_runs, echo=lambda *_: None)
    run = next(r for r in runs if (r.env_id, r.algo, r.seed) == ("EnvA-v0", "good", 2))
    curve = plot.running_curve(run, np.array([0.0, 50.0, 149.0, 1000.0, 1001.0]), window=3)
    # before the first episode: nothing; at 50: episode 0 alone; at 149: episodes 0-1; at 1000: the last 3; past the end:
    # nothing
    np.testing.assert_allclose(curve, [np.nan, 200.0, 200.5, 218.0, np.nan])

    # the eval curves: mean over seeds at each evaluation step, inside its band, and the band is not a point
    curves = plot.plot(runs, str(tmp_path / "c.png"), reps=500)
    for key, evals in EVALS.items():
        steps, mean, low, high = curves[key]
        np.testing.assert_array_equal(steps, EVAL_STEPS[key[1]])
        np.testing.assert_allclose(mean, evals.mean(axis=0))
        assert np.all(low <= mean + 1e-9) and np.all(mean <= high + 1e-9)
        assert np.all(low >= evals.min(axis=0) - 1e-9) and np.all(high <= evals.max(axis=0) + 1e-9)
        assert np.all(high - low > 0)  # the seeds differ at every step

    table = plot.summarize(runs, last_episodes=4)
    scores, ranges = plot.normalised_scores(table, echo=lambda *_: None)
    # min/max over both algorithms' final evaluations: EnvA 11 (bad seed 1) .. 230 (good seed 3), EnvB 10 .. 2500
    assert ranges == {"EnvA-v0": (11.0, 230.0), "EnvB-v0": (10.0, 2500.0)}
    expected = expected_normalised()
    for algo in ("good", "bad"):
        np.testing.assert_allclose(scores[algo], expected[algo])
    aggregate = plot.iqm_intervals(scores, reps=1000)
    for algo in ("good", "bad"):
        point, (low, high) = aggregate[algo]
        assert point == pytest.approx(expected_iqm(expected[algo]))
        assert low <= point <= high and low < high
    assert aggregate["good"][0] == pytest.approx(0.9156, abs=1e-4)  # mean of 0.799, 0.909, 0.954, 1 (by hand)
    assert aggregate["bad"][1][1] < aggregate["good"][1][0]  # the intervals are apart

    taus = np.array([0.0, 0.5, 0.95])
    profiles, bands = plot.performance_profiles(scores, taus, reps=200)
    for algo in ("good", "bad"):
        np.testing.assert_allclose(profiles[algo], [(expected[algo] > tau).mean() for tau in taus])
        assert np.all(bands[algo][0] <= profiles[algo] + 1e-9) and np.all(profiles[algo] <= bands[algo][1] + 1e-9)

    output = str(tmp_path / "fig" / "curves.png")
    args = ["--runs-dir", fake_runs, "--output", output, "--last-episodes", "4", "--bootstrap-reps", "200"]
    assert plot.main(args + ["--thresholds", "EnvA-v0=100,200"]) == 0
    out = capsys.readouterr().out
    assert "220.0 ± 10.0 | " not in out and "220.0 ± 10.0" in out  # the plain-text table
    assert "100: 500, 200: 1000" in out
    assert "IQM of normalised final eval return" in out
    assert f"good: {expected_iqm(expected['good']):.2f} [" in out
    for png in (output, str(tmp_path / "fig" / "curves_profiles.png")):
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(png) > 10_000


def test_plot_draws_a_study_from_its_committed_curves(fake_runs, tmp_path, capsys):
    # launch.py's results writer records each run's row and curves; with the event files gone, plot.py --results draws
    # the same curves, table and IQM from those files alone, into the study's figures/ folder.
    import launch

    study = tmp_path / "study"
    results = launch.Results(str(study / "runs.csv"), recipe=None)
    events = plot.load_runs(fake_runs, echo=lambda *_: None)
    for run in events:
        command = ["python", "train.py", "--exp-name", run.algo, "--env-id", run.env_id, "--seed", str(run.seed)]
        job = launch.Job(run.algo, run.env_id, run.seed, command, str(tmp_path / "x.log"), fake_runs, run.algo)
        results.add(job, run.path)
    shutil.rmtree(fake_runs)
    runs = plot.load_results(str(study), echo=lambda *_: None)
    assert [(r.env_id, r.algo, r.seed, r.path) for r in runs] == [(r.env_id, r.algo, r.seed, r.path) for r in events]
    assert runs[0].command == "python train.py --exp-name bad --env-id EnvA-v0 --seed 1"
    table, expected = plot.summarize(runs, last_episodes=4), plot.summarize(events, last_episodes=4)
    for key, row in expected.items():
        for name in ("finals", "eval_finals", "eval_steps", "eval_curve", "sps_median", "min_last_step"):
            np.testing.assert_allclose(table[key][name], row[name], err_msg=f"{key} {name}")
        assert table[key]["reach"] == row["reach"]
    for curves in ("eval", "training"):
        drawn = plot.plot(runs, str(tmp_path / "c.png"), reps=200, curves=curves)
        for key, lines in plot.plot(events, str(tmp_path / "c.png"), reps=200, curves=curves).items():
            for got, want in zip(drawn[key], lines):
                np.testing.assert_allclose(got, want, err_msg=f"{curves} {key}")

    assert plot.main(["--results", str(study), "--last-episodes", "4", "--bootstrap-reps", "200", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| EnvA-v0 | good | 3 | 1000 | 220.0 ± 10.0 | - | 217.5 ± 100.0 | 50 | - |" in out
    assert f"good: {expected_iqm(expected_normalised()['good']):.2f} [" in out
    for png in ("curves.png", "curves_profiles.png"):
        assert os.path.getsize(study / "figures" / png) > 10_000
    # --fixed-references: EnvA-v0 and EnvB-v0 are not MuJoCo's, so 0 and 1000, as aggregate_csv.py normalises them
    assert plot.main(["--results", str(study), "--bootstrap-reps", "200", "--fixed-references"]) == 0
    out = capsys.readouterr().out
    assert "EnvA-v0: 0 = 0.0, 1 = 1000.0 (given)" in out and "EnvB-v0: 0 = 0.0, 1 = 1000.0 (given)" in out
    good = np.stack([EVALS[(env, "good")][:, -1] for env in ("EnvA-v0", "EnvB-v0")], axis=1) / 1000
    assert f"good: {expected_iqm(good):.2f} [" in out
    # a row whose curves file is missing is left out, and a note says so
    os.remove(study / "curves" / plot.curves_file("EnvA-v0", "good", 1))
    notes = []
    assert len(plot.load_results(str(study), echo=notes.append)) == 11 and "has no curves" in notes[0]


def test_plot_intervals_collapse_for_identical_seeds(tmp_path):
    runs_dir = str(tmp_path / "runs")
    steps = np.arange(1, 11) * 100
    for env, evals in (("EnvA-v0", [10.0, 30.0]), ("EnvB-v0", [100.0, 400.0])):
        for seed in (1, 2, 3):
            write_run(runs_dir, env, "same", seed, np.ones(10), steps, evals=[(500, evals[0]), (1000, evals[1])])
            write_run(runs_dir, env, "spread", seed, np.ones(10), steps, evals=[(500, 0.0), (1000, evals[1] * seed / 3)])
    runs = plot.load_runs(runs_dir, echo=lambda *_: None)
    curves = plot.plot(runs, str(tmp_path / "c.png"), reps=200)
    steps, mean, low, high = curves[("EnvB-v0", "same")]
    np.testing.assert_allclose(mean, [100.0, 400.0])
    np.testing.assert_allclose(low, mean)
    np.testing.assert_allclose(high, mean)
    scores, _ = plot.normalised_scores(plot.summarize(runs), echo=lambda *_: None)
    # 'same' ends at the top of both envs (1); 'spread' at 1/3, 2/3 and 1 of it on both
    np.testing.assert_allclose(scores["same"], np.ones((3, 2)))
    np.testing.assert_allclose(scores["spread"], [[0, 0], [0.5, 0.5], [1, 1]], atol=1e-12)
    aggregate = plot.iqm_intervals(scores, reps=500)
    assert aggregate["same"] == (pytest.approx(1.0), (pytest.approx(1.0), pytest.approx(1.0)))
    point, (low, high) = aggregate["spread"]
    assert point == pytest.approx(0.5)  # the middle four of 0, 0, 0.5, 0.5, 1, 1
    assert low < point < high
    # an algorithm on one env only is left out of the aggregate and of the scale: 'spread' and 'same' keep their scores
    for seed in (1, 2, 3):
        write_run(runs_dir, "EnvA-v0", "one_env", seed, np.ones(10), steps, evals=[(500, 0.0), (1000, -1000.0 * seed)])
    table = plot.summarize(plot.load_runs(runs_dir, echo=lambda *_: None))
    rescored, ranges = plot.normalised_scores(table, echo=lambda *_: None)
    assert set(rescored) == {"same", "spread"}
    assert ranges == {"EnvA-v0": pytest.approx((10.0, 30.0)), "EnvB-v0": pytest.approx((400 / 3, 400.0))}
    np.testing.assert_allclose(rescored["spread"], scores["spread"], atol=1e-12)
    # two tasks that agree on every run: the IQM's interval collapses too
    point, (low, high) = plot.iqm_intervals({"x": np.tile([[0.2, 0.8]], (3, 1))}, reps=200)["x"]
    assert point == pytest.approx(0.5) and low == pytest.approx(0.5) and high == pytest.approx(0.5)


def test_plot_csv_has_one_row_per_run_with_its_command(fake_runs, tmp_path, capsys):
    runs = {(r.env_id, r.algo, r.seed): r for r in plot.load_runs(fake_runs, echo=lambda *_: None)}
    # launcher records: one under the default {runs_dir}/logs (in a subfolder), for a run folder given by absolute path
    command = [sys.executable, "qsm_continuous_action.py", "--exp-name", "good", "--env-id", "EnvA-v0", "--seed", "1"]
    os.makedirs(os.path.join(fake_runs, "logs", "study"))
    with open(os.path.join(fake_runs, "logs", "study", "good__EnvA-v0__1.done"), "w") as f:
        json.dump({"command": command, "run_dir": os.path.abspath(runs[("EnvA-v0", "good", 1)].path), "finished_at": 1.0}, f)
    path = str(tmp_path / "out" / "runs.csv")
    args = ["--runs-dir", fake_runs, "--output", str(tmp_path / "c.png"), "--bootstrap-reps", "50", "--csv", path]
    assert plot.main(args) == 0
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "task",
        "algorithm",
        "seed",
        "command",
        "final_eval_return",
        "final_train_return",
        "sps_median",
        "run_dir",
    ]
    assert len(rows) == 12
    by_key = {(r["task"], r["algorithm"], int(r["seed"])): r for r in rows}
    for (env, algo), evals in EVALS.items():
        for i, seed in enumerate((1, 2, 3)):
            row = by_key[(env, algo, seed)]
            assert float(row["final_eval_return"]) == pytest.approx(evals[i, -1])
            # the mean of the last 10 training episodes: good 100 s + mean(10..19), bad s
            assert float(row["final_train_return"]) == pytest.approx(100 * seed + 14.5 if algo == "good" else seed)
            assert float(row["sps_median"]) == pytest.approx(50.0 if algo == "good" else 10.0)
            assert row["run_dir"] == runs[(env, algo, seed)].path
    assert by_key[("EnvA-v0", "good", 1)]["command"] == shlex.join(command)
    assert all(r["command"] == "" for key, r in by_key.items() if key != ("EnvA-v0", "good", 1))

    # --log-dir elsewhere, with runs/ moved since: matched by the run folder's name
    other_logs = tmp_path / "other_logs"
    other_logs.mkdir()
    moved = os.path.join("/elsewhere", os.path.basename(runs[("EnvB-v0", "bad", 3)].path))
    (other_logs / "bad__EnvB-v0__3.done").write_text(json.dumps({"command": ["train", "--seed", "3"], "run_dir": moved}))
    assert plot.main(args + ["--log-dir", str(other_logs)]) == 0
    with open(path, newline="") as f:
        commands = {(r["task"], r["algorithm"], r["seed"]): r["command"] for r in csv.DictReader(f)}
    assert commands[("EnvB-v0", "bad", "3")] == "train --seed 3"
    assert commands[("EnvA-v0", "good", "1")] == ""  # that record is not under --log-dir
    capsys.readouterr()


def test_aggregate_csv_reproduces_the_study_from_its_csv(tmp_path, capsys):
    # The study's IQM lines (plot.py, from the event files) come back from its CSV alone; a later row replaces an
    # earlier one of the same run, and an algorithm with a missing env leaves the aggregate.
    import aggregate_csv

    study = os.path.join(ROOT, "benchmark", "results", "study_50k", "runs.csv")
    with open(os.path.join(ROOT, "benchmark", "results", "study_50k", "README.md")) as f:
        published_md = f.read().split("\n## 2.")[0].splitlines()  # the report's first section: the study's own runs
    published = [line.strip() for line in published_md if line.strip().startswith(("grad-rms-targets:", "sac:"))]
    assert len(published) == 2
    assert aggregate_csv.main([study, "--algos", "sac", "grad-rms-targets", "paper"]) == 0
    out = capsys.readouterr().out
    assert all(line in out for line in published)
    md_rows = [[c.strip() for c in line.split("|")[1:-1]] for line in published_md if line.startswith("| ")]
    md_rows = [r for r in md_rows if len(r) == 9]  # the first table (env, algorithm, seeds, last step, final eval, ...)
    finals = [f"| {r[0]} | {r[1]} | {r[2]} | {r[4]} |" for r in md_rows if r[1] in ("sac", "grad-rms-targets")]
    assert len(finals) == 8 and all(row in out for row in finals)  # the table's final eval returns, 4 envs x 2
    later = tmp_path / "later.csv"
    with open(study) as f:
        rows = [r for r in csv.DictReader(f) if r["algorithm"] == "sac" and r["task"] == "Hopper-v4"]
    rows[0]["final_eval_return"] = "1000.0"
    extra = dict(rows[1], algorithm="partial")
    with open(later, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([rows[0], extra])
    assert aggregate_csv.main([study, str(later), "--algos", "sac", "partial"]) == 0
    out = capsys.readouterr().out
    values = [float(r["final_eval_return"]) for r in rows]
    mean = np.mean([1000.0] + values[1:])
    assert f"| Hopper-v4 | sac | 3 | {mean:.1f}" in out
    assert "partial:" not in out and "| Hopper-v4 | partial | 1 |" in out


def test_plot_curve_stops_where_a_seed_stopped(tmp_path):
    runs_dir = str(tmp_path / "runs")
    steps = np.arange(1, 21) * 50
    evals = [(250, 1.0), (500, 1.0), (750, 1.0), (1000, 1.0)]
    write_run(runs_dir, "EnvA-v0", "algo", 1, np.ones(20), steps, evals=evals)
    write_run(runs_dir, "EnvA-v0", "algo", 2, np.ones(10), steps[:10], evals=evals[:2])  # stopped at step 500
    runs = plot.load_runs(runs_dir)
    grid, mean, low, high = plot.plot(runs, str(tmp_path / "c.png"), reps=50)[("EnvA-v0", "algo")]
    np.testing.assert_array_equal(grid, [250, 500])
    assert np.allclose(mean, 1.0) and np.allclose(low, 1.0) and np.allclose(high, 1.0)
    grid, mean, low, high = plot.plot(runs, str(tmp_path / "c.png"), window=5, reps=50, curves="training")[("EnvA-v0", "algo")]
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
    # evaluations before step 500: good's at 250, bad's at 249 and 499
    np.testing.assert_allclose(table[("EnvA-v0", "good")]["eval_finals"], EVALS[("EnvA-v0", "good")][:, 0])
    np.testing.assert_allclose(table[("EnvB-v0", "bad")]["eval_finals"], EVALS[("EnvB-v0", "bad")][:, 1])
    np.testing.assert_array_equal(table[("EnvB-v0", "bad")]["eval_steps"], [249, 499])
    assert plot.load_runs(fake_runs, echo=lambda *_: None, max_step=10) == []  # no episode before step 10: skipped


def test_variants_runner_commands(tmp_path):
    env = runner_env(tmp_path, ENV_IDS="Walker2d-v4", SEEDS="1 2", VARIANTS="qsm_norm1_box qsm_box")
    runner = ["/bin/bash", os.path.join(ROOT, "benchmark", "variants.sh")]
    proc = subprocess.run([*runner, "--total-timesteps", "100"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    python = f"{sys.executable} qsm_continuous_action.py --no-progress --checkpoint-every 10000"
    rest = "--total-timesteps 100 --env-id Walker2d-v4"
    assert proc.stdout.strip().splitlines() == [
        f"{python} --normalize-q-grad --m-q 1 --box-prior --exp-name qsm_norm1_box {rest} --seed 1",
        f"{python} --normalize-q-grad --m-q 1 --box-prior --exp-name qsm_norm1_box {rest} --seed 2",
        f"{python} --box-prior --exp-name qsm_box {rest} --seed 1",
        f"{python} --box-prior --exp-name qsm_box {rest} --seed 2",
    ]
    for removed in ["qsm_nonsense", "qsm_clip_final"]:  # a variant whose flag left the code is unknown too
        bad = subprocess.run(runner, capture_output=True, text=True, env=dict(env, VARIANTS=removed))
        assert bad.returncode == 2 and f"unknown variant {removed}" in bad.stderr


def test_study_50k_commands(tmp_path):
    # a fresh log folder and results CSV: no job counts as finished
    env = runner_env(tmp_path, LOG_DIR=str(tmp_path / "logs"), RESULTS=str(tmp_path / "runs.csv"))
    runner = ["/bin/bash", os.path.join(ROOT, "benchmark", "study_50k.sh")]
    proc = subprocess.run(runner, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    flags = "--hidden-dim 256 --batch-size 256 --total-timesteps 50000 --learning-starts 5000 --eval-frequency 5000"
    flags += " --eval-episodes 10"
    jax = f"{sys.executable} qsm_continuous_action_jax.py --no-progress --checkpoint-every 10000"
    algos = [
        f"{jax} --exp-name paper {flags}",
        f"{jax} --exp-name grad-rms-targets --normalize-q-grad --box-prior --m-q 1 {flags}",
        f"{sys.executable} benchmark/sac_sb3.py --no-progress --exp-name sac {flags}",
    ]
    torch = f"{sys.executable} qsm_continuous_action.py --no-progress --checkpoint-every 10000 --exp-name paper_torch"
    torch += f" {flags}"
    expected = []
    for env_id in ["Hopper-v4", "Walker2d-v4", "HalfCheetah-v4", "dm_control/walker-walk-v0"]:  # Hopper-v4 first, complete
        for command in algos + ([torch] if env_id == "Hopper-v4" else []):
            expected += [f"{command} --env-id {env_id} --seed {seed}" for seed in (1, 2, 3)]
    assert len(expected) == 39
    assert proc.stdout.strip().splitlines() == expected
    assert not (tmp_path / "logs").exists()  # a dry run writes nothing
    # With the committed results CSV (recorded under other exp names and algorithm names) every job counts as done
    env.pop("RESULTS")
    proc = subprocess.run(runner, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 39 and all(line.startswith("# finished before, skipped: ") for line in lines)


def test_study_50k_recipe_commands(tmp_path):
    env = runner_env(tmp_path, LOG_DIR=str(tmp_path / "logs"), RESULTS=str(tmp_path / "runs.csv"))
    runner = os.path.join(ROOT, "benchmark", "study_50k_recipe.sh")
    proc = subprocess.run(["/bin/bash", runner, "x-recipe", "--crossq"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    flags = "--hidden-dim 256 --batch-size 256 --total-timesteps 50000 --learning-starts 5000 --eval-frequency 5000"
    jax = f"{sys.executable} qsm_continuous_action_jax.py --no-progress --checkpoint-every 10000 --exp-name x-recipe"
    expected = [
        f"{jax} --crossq {flags} --eval-episodes 10 --env-id {env_id} --seed {seed}"
        for env_id in ["Hopper-v4", "HalfCheetah-v4", "Walker2d-v4", "dm_control/walker-walk-v0"]
        for seed in (1, 2, 3)
    ]
    assert proc.stdout.strip().splitlines() == expected  # the study's settings, Hopper-v4 and HalfCheetah-v4 first
    assert not (tmp_path / "logs").exists()
    assert subprocess.run(["/bin/bash", runner], capture_output=True, env=env).returncode == 2  # no name: usage
    # the committed CSV holds grad-rms's 12 runs (recorded as qsm_jax_crossq): none runs again
    env.pop("RESULTS")
    proc = subprocess.run(
        ["/bin/bash", runner, "grad-rms", "--normalize-q-grad", "--box-prior", "--m-q", "1", "--crossq"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 12 and all(line.startswith("# finished before, skipped: ") for line in lines)


def test_update_cost_times_each_flag_set():
    """update_cost.py builds each flag set's update as the JAX script does and reports one timed line per set, the first
    at x1.00; a flag the script does not have is an error, not a line."""
    tool = [sys.executable, os.path.join(ROOT, "benchmark", "update_cost.py"), "--env-id", "Pendulum-v1"]
    small = ["--base", "--hidden-dim 8 --batch-size 4 --diffusion-steps 1", "--updates", "1", "--rounds", "1"]
    out = subprocess.run(tool + small + ["--", "", "--crossq"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["(base)", "--crossq"]
    assert lines[0].endswith("x1.00") and all(float(line.split()[-5]) > 0 for line in lines)
    bad = subprocess.run(tool + small + ["--", "--no-such-flag"], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0


# A stand-in training script that writes a run folder as the real ones do: runs/{env}__{exp_name}__{seed}__{time}/ with
# one evaluation and two training episodes, and counts its starts in starts.txt.
FAKE_RUN = textwrap.dedent(
    """
    import argparse, time
    from torch.utils.tensorboard import SummaryWriter
    p = argparse.ArgumentParser()
    p.add_argument("--exp-name"); p.add_argument("--env-id"); p.add_argument("--seed", type=int)
    a = p.parse_args()
    open("starts.txt", "a").write(f"{a.env_id} {a.seed}\\n")
    w = SummaryWriter(f"runs/{a.env_id}__{a.exp_name}__{a.seed}__{int(time.time())}")
    w.add_scalar("charts/episodic_return", 10.0 * a.seed, 50)
    w.add_scalar("charts/episodic_return", 20.0 * a.seed, 90)
    w.add_scalar("eval/episodic_return", 7.5 * a.seed, 100)
    w.close()
    """
)


def test_launcher_results_csv_records_each_run_once_with_commit_cpu_and_curves(tmp_path):
    (tmp_path / "fake_run.py").write_text(FAKE_RUN)
    results = tmp_path / "results" / "runs.csv"
    cmd = [sys.executable, LAUNCH, "--env-ids", "EnvA", "--seeds", "1", "2", "--workers", "2", "--results-csv",
           str(results), "--", sys.executable, "fake_run.py", "--exp-name", "fake"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(results, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda row: row["seed"])
    assert [(r["task"], r["algorithm"], r["seed"], float(r["final_eval_return"])) for r in rows] == [
        ("EnvA", "fake", "1", 7.5), ("EnvA", "fake", "2", 15.0)]  # fmt: skip
    assert float(rows[1]["final_train_return"]) == pytest.approx(30.0)  # the mean of the last (up to 10) episodes
    assert rows[0]["commit"] and rows[0]["cpu"] and rows[0]["command"].endswith("--env-id EnvA --seed 1")
    assert all(0.0 <= float(row["wall_clock_s"]) < 60.0 for row in rows)  # the fake run's writer was open for a moment
    with open(results.parent / "curves" / "EnvA__fake__2.csv", newline="") as f:
        curve = [(int(r["step"]), r["tag"], float(r["value"])) for r in csv.DictReader(f)]
    assert curve == [(100, "eval/episodic_return", 15.0), (50, "charts/episodic_return", 20.0),
                     (90, "charts/episodic_return", 40.0)]  # fmt: skip
    # another machine: no logs, no run folders, only the committed CSV; the launcher runs nothing again
    for path in ("runs",):
        subprocess.run(["rm", "-r", str(tmp_path / path)], check=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 jobs on backend local" in proc.stdout
    assert (tmp_path / "starts.txt").read_text().count("\n") == 2
    with open(results, newline="") as f:
        assert len(list(csv.DictReader(f))) == 2


def test_launcher_skips_a_recorded_run_whose_algorithm_and_exp_name_were_renamed(tmp_path):
    """A committed row counts by task, seed and command but for --exp-name: renaming the recipe in the CSV's algorithm
    column, or the --exp-name in a runner, reruns nothing; a new run's row takes --recipe and the CSV's own columns."""
    (tmp_path / "fake_run.py").write_text(FAKE_RUN)
    results = tmp_path / "results" / "runs.csv"

    def launch(seeds, exp_name, *extra):
        cmd = [sys.executable, LAUNCH, "--env-ids", "EnvA", "--seeds", *seeds, "--results-csv", str(results), *extra,
               "--", sys.executable, "fake_run.py", "--exp-name", exp_name]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    launch(["1", "2"], "fake_old")
    with open(results, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(results, "w", newline="") as f:  # the committed form: the recipe's name, one more column, \n endings
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) + ["provenance"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(dict(row, algorithm="fake (torch)", provenance="recorded") for row in rows)
    subprocess.run(["rm", "-r", str(tmp_path / "runs")], check=True)  # another machine: only the CSV
    assert "0 jobs on backend local" in launch(["1", "2"], "fake_new", "--recipe", "fake (torch)")
    assert (tmp_path / "starts.txt").read_text().count("\n") == 2
    assert "1 jobs on backend local" in launch(["1", "2", "3"], "fake_new", "--recipe", "fake (torch)")
    with open(results, newline="") as f:
        text = f.read()
    assert "\r" not in text
    rows = list(csv.DictReader(text.splitlines()))
    assert [(r["algorithm"], r["seed"], r["provenance"]) for r in rows] == [
        ("fake (torch)", "1", "recorded"), ("fake (torch)", "2", "recorded"), ("fake (torch)", "3", "")]  # fmt: skip
    assert rows[2]["command"].endswith("--exp-name fake_new --env-id EnvA --seed 3")
    assert (results.parent / "curves" / "EnvA__fake_torch__3.csv").is_file()


def test_aggregate_csv_fixed_references_and_probability_of_improvement(tmp_path, capsys):
    import aggregate_csv

    path = tmp_path / "rows.csv"
    rows = [("Hopper-v4", "x", s, 3226.0) for s in (1, 2)] + [("Hopper-v4", "y", s, 18.791) for s in (1, 2)]
    rows += [("dm_control-walker-walk-v0", "x", s, 500.0) for s in (1, 2)] + [("dm_control-walker-walk-v0", "y", 1, 900.0),
             ("dm_control-walker-walk-v0", "y", 2, 100.0)]  # fmt: skip
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "algorithm", "seed", "command", "final_eval_return", "final_train_return", "sps_median",
                         "run_dir"])  # fmt: skip
        writer.writerows([task, algo, seed, "", score, "", "", ""] for task, algo, seed, score in rows)
    assert aggregate_csv.main([str(path), "--fixed-references", "--improvement", "x>y", "--bootstrap-reps", "200"]) == 0
    out = capsys.readouterr().out
    assert "Hopper-v4: 0 = 18.8, 1 = 3226.0" in out and "dm_control-walker-walk-v0: 0 = 0.0, 1 = 1000.0" in out
    # Hopper-v4: x (1.0) beats y (0.0) in every pair; walker-walk: 0.5 against 0.9 and 0.1, one pair of two: (1 + 0.5) / 2
    assert "P(x > y) = 0.75" in out


def write_events(path, wall_times):
    """An event file whose events carry these wall times (TensorBoard's record format, as the writers write it)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    with open(path, "wb") as f:
        writer = RecordWriter(f)
        for step, wall_time in enumerate(wall_times):
            writer.write(Event(wall_time=wall_time, step=step).SerializeToString())


def test_results_wall_clock_sums_the_pieces_of_a_resumed_run(tmp_path):
    import launch

    write_events(tmp_path / "events.out.tfevents.1.host", [100.0, 101.0, 130.0])  # the cut piece
    write_events(tmp_path / "events.out.tfevents.2.host.50000", [500.0, 520.5])  # the resumed one: the gap does not count
    assert launch.wall_clock(str(tmp_path)) == pytest.approx(50.5)


def test_results_csv_of_an_older_layout_gains_the_new_column(tmp_path):
    # a runs.csv from before wall_clock_s: its rows keep their values, the new column is empty on them, and every row
    # of the file has the same columns
    import launch

    path = tmp_path / "runs.csv"
    old_columns = [c for c in launch.RESULT_COLUMNS if c != "wall_clock_s"]
    old_row = {c: f"old_{c}" for c in old_columns}
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, old_columns)
        writer.writeheader()
        writer.writerow(old_row)
    launch.append_row(str(path), {c: f"new_{c}" for c in launch.RESULT_COLUMNS})
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == launch.RESULT_COLUMNS
    assert rows[0] == dict(old_row, wall_clock_s="") and rows[1]["wall_clock_s"] == "new_wall_clock_s"
    launch.append_row(str(path), {c: "third" for c in launch.RESULT_COLUMNS})  # now in the new layout: appended only
    with open(path, newline="") as f:
        assert [row["task"] for row in csv.DictReader(f)] == ["old_task", "new_task", "third"]


DMC_HELDOUT = ["cheetah-run", "walker-run", "finger-spin", "ball_in_cup-catch", "reacher-hard", "quadruped-walk"]
HELDOUT_TASKS = ["Ant-v4", "Humanoid-v4"] + [f"dm_control-{task}-v0" for task in DMC_HELDOUT]


def test_aggregate_csv_computes_the_heldout_analysis_on_fixed_references(tmp_path, capsys):
    # The held-out study's eight tasks (benchmark/results/heldout_50k/PLAN.md): each has a fixed reference, and the table,
    # IQM, mean and P(X > Y) come out of the launcher's CSV layout. x scores the TD3 reference (1.0) on every task, y the
    # random one (0.0), z halfway: every number is known.
    import aggregate_csv
    import launch

    low_high = {task: aggregate_csv.fixed_references([task])[task] for task in HELDOUT_TASKS}
    assert low_high["Ant-v4"] == (-70.288, 3942.0) and low_high["Humanoid-v4"] == (120.423, 5165.0)
    path = tmp_path / "runs.csv"
    for task in HELDOUT_TASKS:
        low, high = low_high[task]
        for algo, score in (("x", high), ("y", low), ("z", (low + high) / 2)):
            for seed in (1, 2, 3):
                wall = dict(wall_clock_s=600 * seed) if algo == "x" else {}  # x: 10, 20, 30 min; y and z: not recorded
                launch.append_row(str(path), dict(task=task, algorithm=algo, seed=seed, final_eval_return=repr(score), **wall))
    launch.append_row(str(path), dict(task="Hopper-v4", algorithm="x", seed=1, final_eval_return="3226.0"))  # not held out
    argv = [str(path), "--fixed-references", "--improvement", "x>y", "z>x", "--bootstrap-reps", "200", "--tasks"]
    argv += [task.replace("dm_control-", "dm_control/") for task in HELDOUT_TASKS]  # as launch.py's --env-ids names them
    assert aggregate_csv.main(argv) == 0
    out = capsys.readouterr().out
    assert "Ant-v4: 0 = -70.3, 1 = 3942.0" in out and "Humanoid-v4: 0 = 120.4, 1 = 5165.0" in out
    assert "dm_control-quadruped-walk-v0: 0 = 0.0, 1 = 1000.0" in out
    assert "| Humanoid-v4 | z | 3 | 2642.7 ± 0.0 | - |" in out and "| Ant-v4 | x | 3 | 3942.0 ± 0.0 | 20 |" in out
    iqm, mean = out.split("IQM of normalised")[1].split("Mean of normalised")
    for block in (iqm, mean):
        assert "x: 1.00 [1.00, 1.00]" in block and "y: 0.00 [0.00, 0.00]" in block and "z: 0.50 [0.50, 0.50]" in block
    assert "P(x > y) = 1.00 [1.00, 1.00]" in out and "P(z > x) = 0.00 [0.00, 0.00]" in out
    assert "Hopper-v4" not in out and "left out" not in out  # without --tasks, Hopper-v4 (x, one seed) leaves all out
    # --wide: the same numbers as one table, columns in --algos' order; w, on one task only, shows "-" on the others and
    # stays out of the aggregates (its note goes to stderr, off the table)
    launch.append_row(str(path), dict(task="Ant-v4", algorithm="w", seed=1, final_eval_return="100.0"))
    assert aggregate_csv.main(argv + ["--algos", "z", "x", "y", "w", "--wide"]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[:2] == ["| task | z | x | y | w |", "|---|---|---|---|---|"] and "w is left out" in captured.err
    assert "| Ant-v4 | 1935.9 ± 0.0 | 3942.0 ± 0.0 | -70.3 ± 0.0 | 100.0 ± nan |" in out
    assert "| Humanoid-v4 | 2642.7 ± 0.0 | 5165.0 ± 0.0 | 120.4 ± 0.0 | - |" in out
    assert "| IQM, normalised | 0.50 [0.50, 0.50] | 1.00 [1.00, 1.00] | 0.00 [0.00, 0.00] |  |" in out
    assert out[-2:] == ["| P(x > y) |  | 1.00 [1.00, 1.00] |  |  |", "| P(z > x) | 0.00 [0.00, 0.00] |  |  |  |"]
