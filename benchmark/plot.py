"""Curves, a table, the IQM and performance profiles from the TensorBoard event files under runs/, or from a study's
committed curves (no network, no W&B).

    python benchmark/plot.py --runs-dir runs --output runs/curves.png --markdown --csv runs.csv
    python benchmark/plot.py --results benchmark/results/scale_screen    # -> benchmark/results/scale_screen/figures/

`--results DIR` reads a results folder as `launch.py --results-csv DIR/runs.csv` writes it: one row per run in runs.csv
(of two rows with the same task, algorithm and seed the later counts) and each run's curves in
`curves/TASK__ALGORITHM__SEED.csv` (step, tag, value: the evaluation and training returns), so a fresh clone redraws a
study's figures and tables. The SPS column is then the median over runs of each row's `sps_median`, the share of actions
at the bounds is not recorded ("-"), and the figures go to `DIR/figures/` unless `--output` says otherwise.

Run folders are named `{env_id}__{exp_name}__{seed}__{time}` (a `/` in the env id becomes `-`, and envs are named that
way here too); the algorithm is the exp_name. Of several runs with the same env, algorithm and seed only the latest
counts. Statistics over seeds use rliable (Agarwal et al., 2021, "Deep RL at the edge of the statistical precipice"):

- Curves (`--output`): per env, `eval/episodic_return` (each point is the mean over one evaluation's episodes) against
  env steps: the mean over seeds with a 95% bootstrap band, one line per algorithm. The band comes from rliable's
  `get_interval_estimates` (percentile bootstrap, seeds resampled with replacement) applied to the mean over seeds at
  each evaluation step: a pointwise band. A curve keeps the steps at which every one of its seeds evaluated, so a run
  that stopped early shows. `--curves training` draws `charts/episodic_return` instead: each seed's running mean of
  its last `--window` episodes on a grid of env steps, with the same band.
- Table (printed; `--markdown` for Markdown): per env and algorithm, the final evaluation return (each seed's last
  `eval/episodic_return`, then mean ± sample std over seeds); for each return threshold of the env (`--thresholds`,
  defaults in DEFAULT_THRESHOLDS), the first env step at which the mean-over-seeds evaluation curve reaches it
  ("-": never); the final training return (each seed's mean over its last `--last-episodes` training episodes, then
  mean ± sample std); the median `charts/SPS`; for QSM, the share of sampled actions at the bounds.
- Aggregate over envs: an algorithm enters only when it has the same number of evaluated seeds on every env. Each of
  its runs' final evaluation return is normalised per env, by default by a min/max over the runs of that env of the
  algorithms that enter (one left out does not move the scale): 0 is the lowest final evaluation return, 1 the highest.
  `--score-range ENV=LOW:HIGH` gives reference scores instead, `--fixed-references` fixed ones (MUJOCO_REFERENCES). Printed,
  and drawn as the curves' last panel: the interquartile mean (IQM, `rliable.metrics.aggregate_iqm`) over runs x envs
  with 95% stratified-bootstrap intervals (`rliable.library.get_interval_estimates`: seeds resampled within each env).
  Saved next to the curves (`--profile-output`, default `{output}_profiles.png`): rliable's performance profiles, the
  share of runs whose normalised score exceeds tau, with 95% stratified-bootstrap bands.
- `--csv PATH`: one row per run: env, algorithm, seed, the exact training command (from the launcher's `.done` record
  of that run, found under `--log-dir`, by default `{runs_dir}/logs`, searched recursively; empty when there is none;
  with `--results`, the row's command),
  the final evaluation return, the final training return, the median `charts/SPS`, and the run folder.

Steps are as logged: QSM counts env steps from 0 (its evaluations fall at 4999, 9999, ... and total_timesteps - 1), SB3
from 1 (5000, 10000, ...). `--max-step` keeps only what was logged before that step, so runs of a longer budget compare
with shorter ones at equal steps.
"""

import argparse
import glob
import json
import os
import re
import shlex
import sys
import textwrap
from dataclasses import dataclass, field

import numpy as np

RETURN_TAG, SPS_TAG, EVAL_TAG, BOUNDS_TAG = (
    "charts/episodic_return",
    "charts/SPS",
    "eval/episodic_return",
    "qsm/action_at_bounds_frac",
)

# Evaluation returns whose first crossing the table reports, per env (as named in run folders); --thresholds overrides.
# Chosen for budgets of about 50k env steps: roughly where SAC gets to mid-way, and beyond.
DEFAULT_THRESHOLDS = {
    "InvertedPendulum-v4": (500.0, 1000.0),
    "Hopper-v4": (1000.0, 2000.0),
    "Walker2d-v4": (500.0, 1000.0),
    "HalfCheetah-v4": (1000.0, 3000.0),
    "Ant-v4": (500.0, 1000.0),
    "Humanoid-v4": (500.0, 1000.0),
    "dm_control-walker-walk-v0": (300.0, 600.0),
}


@dataclass
class Run:
    env_id: str
    algo: str
    seed: int
    path: str
    scalars: dict[str, np.ndarray] = field(default_factory=dict)  # tag -> array of (step, value) rows
    last_step: int = 0
    command: str = ""  # the training command, where a launcher's record or a results row gives it

    def series(self, tag):
        return self.scalars.get(tag, np.zeros((0, 2)))

    @property
    def final_eval(self):
        """The last evaluation return (NaN if the run never evaluated)."""
        evals = self.series(EVAL_TAG)
        return float(evals[-1, 1]) if len(evals) else float("nan")


def env_name(env_id):
    """Envs as run folders name them: `dm_control/walker-walk-v0` -> `dm_control-walker-walk-v0`."""
    return env_id.replace("/", "-")


def parse_run_name(name):
    """`{env_id}__{exp_name}__{seed}__{time}` -> (env_id, exp_name, seed, time), or None for other folders."""
    parts = name.split("__")
    if len(parts) < 4 or not parts[-2].lstrip("-").isdigit() or not parts[-1].isdigit():
        return None
    return parts[0], "__".join(parts[1:-2]), int(parts[-2]), int(parts[-1])


def read_scalars(path):
    """All scalar series of one run folder, as tag -> (N, 2) arrays of (step, value) sorted by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(path, size_guidance={"scalars": 0})  # 0: keep every event, no subsampling
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        rows = np.array([(e.step, e.value) for e in acc.Scalars(tag)], dtype=np.float64).reshape(-1, 2)
        out[tag] = rows[np.argsort(rows[:, 0], kind="stable")]
    return out


def load_runs(runs_dir, env_ids=None, algos=None, echo=print, max_step=None):
    """Every run under `runs_dir` (filtered by env and algorithm); of several runs with the same env, algorithm and
    seed only the latest counts, and a note says so. With `max_step`, only what was logged before that step counts,
    so runs of a longer budget compare with shorter ones at equal steps."""
    env_ids = {env_name(e) for e in env_ids} if env_ids else None
    latest = {}
    for path in sorted(glob.glob(os.path.join(runs_dir, "*"))):
        parsed = parse_run_name(os.path.basename(path))
        if not os.path.isdir(path) or parsed is None:
            continue
        env_id, algo, seed, stamp = parsed
        if (env_ids and env_id not in env_ids) or (algos and algo not in algos):
            continue
        key = (env_id, algo, seed)
        if key in latest:
            echo(
                f"note: several runs of {env_id} {algo} seed {seed}; "
                f"using the latest ({path if stamp > latest[key][0] else latest[key][1]})"
            )
        if key not in latest or stamp > latest[key][0]:
            latest[key] = (stamp, path)
    runs = [make_run(*key, path, read_scalars(path), max_step, echo) for key, (_, path) in sorted(latest.items())]
    return [run for run in runs if run]


def curves_file(task, algorithm, seed):
    """TASK__ALGORITHM__SEED.csv, with each run of characters other than letters, digits, `.`, `-` and `_` in the
    algorithm (a recipe name such as "grad-rms (torch)") as one `_`."""
    return f"{task}__{re.sub(r'[^A-Za-z0-9._-]+', '_', algorithm).strip('_')}__{seed}.csv"


def load_results(results_dir, env_ids=None, algos=None, echo=print, max_step=None):
    """Every run of a results folder (filtered by env and algorithm): runs.csv's rows, the later of two rows with the same
    task, algorithm and seed, each with its committed curves (curves/, named by `curves_file`). The row's median SPS
    stands as a one-point `charts/SPS` series at step 0; its command and run_dir are the run's."""
    import pandas as pd

    rows = pd.read_csv(os.path.join(results_dir, "runs.csv"), dtype={"task": str, "algorithm": str, "command": str})
    rows = rows.drop_duplicates(["task", "algorithm", "seed"], keep="last").sort_values(["task", "algorithm", "seed"])
    if env_ids:
        rows = rows[rows.task.isin({env_name(e) for e in env_ids})]
    if algos:
        rows = rows[rows.algorithm.isin(algos)]
    runs = []
    for row in rows.itertuples():
        path = os.path.join(results_dir, "curves", curves_file(row.task, row.algorithm, row.seed))
        if not os.path.isfile(path):
            echo(f"note: {row.task} {row.algorithm} seed {row.seed} has no curves ({path}); skipped")
            continue
        curves = pd.read_csv(path).sort_values("step", kind="stable")
        scalars = {tag: group[["step", "value"]].to_numpy(np.float64) for tag, group in curves.groupby("tag")}
        if not pd.isna(row.sps_median):
            scalars[SPS_TAG] = np.array([[0.0, row.sps_median]])
        run = make_run(row.task, row.algorithm, int(row.seed), row.run_dir, scalars, max_step, echo)
        if run:
            run.command = "" if pd.isna(row.command) else row.command
            runs.append(run)
    return runs


def make_run(env_id, algo, seed, path, scalars, max_step=None, echo=print):
    """The Run of these series, keeping only what was logged before `max_step`; None (and a note) without an episode."""
    if max_step is not None:
        scalars = {tag: rows[rows[:, 0] < max_step] for tag, rows in scalars.items()}
    if not len(scalars.get(RETURN_TAG, ())):
        echo(f"note: {path} has no {RETURN_TAG} (no episode finished); skipped")
        return None
    last_step = int(max(rows[-1, 0] for rows in scalars.values() if len(rows)))
    return Run(env_id, algo, seed, path, scalars, last_step)


# ---------------------------------------------------------------------------------------------------------------------
# Statistics over seeds: rliable


def interval_estimates(score_dict, func, reps):
    """rliable's point estimates and 95% percentile stratified-bootstrap intervals of `func` for each algorithm's
    (runs, tasks) array. rliable draws its resamples from numpy's global generator: seeded here for repeatable output."""
    from rliable import library

    np.random.seed(0)
    return library.get_interval_estimates(score_dict, func, reps=reps)


def mean_band(values, reps=2000):
    """(mean, low, high) over seeds at each column of a (seeds, steps) array: the 95% band of the curves."""
    point, interval = interval_estimates({"curve": np.asarray(values, dtype=np.float64)}, lambda x: x.mean(axis=0), reps)
    return point["curve"], interval["curve"][0], interval["curve"][1]


def iqm_intervals(scores, reps=2000):
    """algo -> (IQM, (low, high)) of its (runs, envs) array of normalised scores, with 95% stratified-bootstrap intervals."""
    from rliable import metrics

    point, interval = interval_estimates(scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps)
    return {algo: (float(point[algo][0]), (float(interval[algo][0, 0]), float(interval[algo][1, 0]))) for algo in scores}


def performance_profiles(scores, taus, reps=2000):
    """rliable's score distributions: algo -> share of runs with normalised score > tau at each tau, and their 95% bands."""
    from rliable import library

    np.random.seed(0)  # as in interval_estimates
    return library.create_performance_profile(scores, taus, reps=reps)


# ---------------------------------------------------------------------------------------------------------------------
# Curves and the table's numbers


def running_curve(run, grid, window):
    """At each grid step, the mean return of the run's last `window` episodes finished by then (NaN before its first
    episode and after its last logged step)."""
    steps, returns = run.series(RETURN_TAG).T
    cumsum = np.concatenate([[0.0], np.cumsum(returns)])
    n_done = np.searchsorted(steps, grid, side="right")  # episodes finished at or before each grid step
    n_used = np.minimum(n_done, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = (cumsum[n_done] - cumsum[n_done - n_used]) / n_used
    curve[(n_done == 0) | (grid > run.last_step)] = np.nan
    return curve


def eval_curves(group):
    """(steps, values): the steps at which every run of `group` evaluated, and a (seeds, steps) array of its returns."""
    common = None
    for run in group:
        steps = set(run.series(EVAL_TAG)[:, 0])
        common = steps if common is None else common & steps
    steps = np.array(sorted(common or ()))
    values = np.zeros((len(group), len(steps)))
    for i, run in enumerate(group):
        rows = run.series(EVAL_TAG)
        values[i] = rows[np.searchsorted(rows[:, 0], steps), 1]  # rows are sorted by step
    return steps, values


def first_step_reaching(steps, curve, threshold):
    """The first step at which `curve` is at least `threshold`, or None."""
    reached = np.flatnonzero(np.asarray(curve) >= threshold)
    return int(steps[reached[0]]) if len(reached) else None


def final_return(run, last_episodes):
    returns = run.series(RETURN_TAG)[:, 1]
    return float(returns[-last_episodes:].mean())


def mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean()) if len(values) else float("nan")
    return mean, float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def summarize(runs, last_episodes=10, thresholds=None):
    """(env, algo) -> dict of the table's numbers over seeds. `thresholds`: env -> returns (default DEFAULT_THRESHOLDS)."""
    thresholds = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    groups = {}
    for run in runs:
        groups.setdefault((run.env_id, run.algo), []).append(run)
    table = {}
    for (env, algo), group in sorted(groups.items()):
        finals = np.array([final_return(r, last_episodes) for r in group])
        evaluated = [r for r in group if len(r.series(EVAL_TAG))]
        eval_finals = np.array([r.final_eval for r in evaluated])
        steps, values = eval_curves(evaluated) if len(evaluated) == len(group) else (np.zeros(0), np.zeros((0, 0)))
        curve = values.mean(axis=0) if values.size else np.zeros(0)
        sps = np.concatenate([r.series(SPS_TAG)[:, 1] for r in group])
        bounds = [r.series(BOUNDS_TAG)[-10:, 1].mean() for r in group if len(r.series(BOUNDS_TAG))]
        final_mean, final_std = mean_std(finals)
        eval_mean, eval_std = mean_std(eval_finals)
        table[(env, algo)] = {
            "seeds": sorted(r.seed for r in group),
            "min_last_step": min(r.last_step for r in group),
            "final_mean": final_mean,
            "final_std": final_std,
            "finals": finals,
            "eval_finals": eval_finals,  # of the seeds that evaluated, in the order of "eval_seeds"
            "eval_seeds": [r.seed for r in evaluated],
            "eval_mean": eval_mean,
            "eval_std": eval_std,
            "eval_steps": steps,  # where every seed evaluated (empty if one never did)
            "eval_curve": curve,  # the mean over seeds there
            "reach": {t: first_step_reaching(steps, curve, t) for t in thresholds.get(env, ())},
            "sps_median": float(np.median(sps)) if len(sps) else float("nan"),
            "at_bounds": float(np.mean(bounds)) if bounds else float("nan"),
        }
    return table


# (random, TD3) returns of the v4 MuJoCo tasks, as SimbaV2's code tabulates them (github.com/dojeon-ai/SimbaV2,
# scale_rl/envs/mujoco.py: MUJOCO_RANDOM_SCORE, MUJOCO_TD3_SCORE; checked at its commit 14fafb2)
MUJOCO_REFERENCES = {"Hopper-v4": (18.791, 3226.0), "Walker2d-v4": (2.791, 3946.0), "HalfCheetah-v4": (-289.415, 10574.0),
                     "Ant-v4": (-70.288, 3942.0), "Humanoid-v4": (120.423, 5165.0)}  # fmt: skip


def fixed_references(envs):
    """env -> (score of 0, score of 1): the MuJoCo table above, (0, 1000) for the DeepMind Control Suite."""
    return {env: MUJOCO_REFERENCES[env] if env in MUJOCO_REFERENCES else (0.0, 1000.0) for env in envs}


def shown(point, interval):
    """An estimate with its interval as the tables print it: 0.56 [0.33, 0.72]."""
    return f"{point:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def normalised_scores(table, score_ranges=None, echo=print):
    """algo -> (seeds, envs) array of normalised final evaluation returns, and env -> (low, high) used.

    Only the algorithms with the same number of evaluated seeds on every env enter. By default, per env, 0 is the lowest
    and 1 the highest final evaluation return of their runs of that env (an algorithm left out does not move the scale);
    `score_ranges` (env -> (low, high)) gives reference scores instead."""
    score_ranges = {env_name(env): r for env, r in (score_ranges or {}).items()}
    envs = sorted({env for env, _ in table})
    finals = {}  # algo -> per env final evaluation returns, for the algorithms that enter
    for algo in sorted({algo for _, algo in table}):
        columns = [table[(env, algo)]["eval_finals"] if (env, algo) in table else np.array([]) for env in envs]
        if all(len(c) for c in columns) and len({len(c) for c in columns}) == 1:
            finals[algo] = columns
        else:
            echo(f"note: {algo} is left out of the aggregate: it lacks evaluated runs on some env, or has unequal seeds")
    ranges = {}
    for i, env in enumerate(envs):
        if env in score_ranges:
            ranges[env] = tuple(score_ranges[env])
        elif finals:
            values = np.concatenate([columns[i] for columns in finals.values()])
            ranges[env] = (float(values.min()), float(values.max()))
    out = {
        algo: np.stack([(c - ranges[env][0]) / max(ranges[env][1] - ranges[env][0], 1e-8) for env, c in zip(envs, columns)], 1)
        for algo, columns in finals.items()
    }
    return out, ranges


def format_table(table, markdown=False):
    def pm(mean, std, fmt="{:.1f}"):
        if np.isnan(mean):
            return "-"
        return fmt.format(mean) + ("" if np.isnan(std) else " ± " + fmt.format(std))

    def reach(t):
        return ", ".join(f"{thr:g}: {'-' if step is None else step}" for thr, step in t["reach"].items()) or "-"

    header = [
        "env",
        "algorithm",
        "seeds",
        "last step",
        "final eval return",
        "first step mean eval ≥ threshold",
        "final train return",
        "SPS (median)",
        "actions at bounds",
    ]
    rows = []
    for (env, algo), t in table.items():
        bounds = "-" if np.isnan(t["at_bounds"]) else f"{100 * t['at_bounds']:.0f}%"
        rows.append(
            [
                env,
                algo,
                str(len(t["seeds"])),
                str(t["min_last_step"]),
                pm(t["eval_mean"], t["eval_std"]),
                reach(t),
                pm(t["final_mean"], t["final_std"]),
                "-" if np.isnan(t["sps_median"]) else f"{t['sps_median']:.0f}",
                bounds,
            ]
        )
    return text_table(header, rows, markdown)


def text_table(header, rows, markdown=False):
    """Rows of strings as a Markdown table, or as left-aligned columns under a ruled header."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


# ---------------------------------------------------------------------------------------------------------------------
# The CSV: one row per run, with the command that made it


def done_commands(log_dir):
    """run folder -> the launcher's command for it, from every `.done` record under `log_dir` (recursively)."""
    commands = {}
    for path in glob.glob(os.path.join(glob.escape(log_dir), "**", "*.done"), recursive=True):
        try:
            with open(path) as f:
                record = json.load(f)
            run_dir, command = record["run_dir"], shlex.join(record["command"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        commands[os.path.realpath(run_dir)] = command
        commands.setdefault(os.path.basename(os.path.normpath(run_dir)), command)  # runs/ copied or moved elsewhere
    return commands


CSV_COLUMNS = ["task", "algorithm", "seed", "command", "final_eval_return", "final_train_return", "sps_median", "run_dir"]


def write_csv(runs, path, last_episodes=10):
    """One row per run; final_train_return is the mean of the run's last `last_episodes` training episodes."""
    import pandas as pd

    rows = []
    for r in sorted(runs, key=lambda r: (r.env_id, r.algo, r.seed)):
        sps = r.series(SPS_TAG)[:, 1]
        median_sps = np.median(sps) if len(sps) else np.nan
        rows.append((r.env_id, r.algo, r.seed, r.command, r.final_eval, final_return(r, last_episodes), median_sps, r.path))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    pd.DataFrame(rows, columns=CSV_COLUMNS).to_csv(path, index=False)  # NaN: an empty field


# ---------------------------------------------------------------------------------------------------------------------
# Figures


def plot(runs, output, window=10, reps=2000, aggregate=None, num_points=200, title=None, curves="eval", colors=None):
    """Per env, the mean over seeds with its 95% band, one line per algorithm; with `aggregate` (algo -> (IQM, (low,
    high))) a last panel. Returns (env, algo) -> (steps, mean, low, high) as drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r.env_id for r in runs})
    colors = colors or algo_colors(runs)
    n_panels = len(envs) + (1 if aggregate else 0)
    n_cols = min(n_panels, 4)  # wrap: at most four panels a row
    n_rows = -(-n_panels // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.6 * n_cols, 3.6 * n_rows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    drawn = {}
    for ax, env in zip(axes, envs):
        env_runs = [r for r in runs if r.env_id == env]
        grid = np.linspace(0, max(r.last_step for r in env_runs), num_points)
        for algo in sorted(colors):
            group = [r for r in env_runs if r.algo == algo]
            if not group:
                continue
            if curves == "eval":
                if not all(len(r.series(EVAL_TAG)) for r in group):
                    continue
                steps, values = eval_curves(group)
            else:
                values = np.stack([running_curve(r, grid, window) for r in group])
                shown = ~np.isnan(values).any(axis=0)  # only where every seed has data
                steps, values = grid[shown], values[:, shown]
            if not len(steps):
                continue
            mean, low, high = mean_band(values, reps)
            drawn[(env, algo)] = (steps, mean, low, high)
            ax.plot(
                steps, mean, color=colors[algo], label=f"{algo} ({len(group)} seeds)", marker="." if curves == "eval" else None
            )
            ax.fill_between(steps, low, high, color=colors[algo], alpha=0.2, linewidth=0)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel("evaluation return" if curves == "eval" else f"episodic return (last {window} episodes)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    if aggregate:
        ax = axes[n_panels - 1]
        names = sorted(aggregate)
        for i, algo in enumerate(names):
            point, (low, high) = aggregate[algo]
            ax.barh(i, high - low, left=low, color=colors[algo], alpha=0.5, height=0.5)
            ax.plot([point, point], [i - 0.25, i + 0.25], color="black")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("IQM of normalised final eval return")
        ax.set_title(f"aggregate over {len(envs)} envs (95% CI)")
        ax.grid(alpha=0.3, axis="x")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)
    return drawn


def algo_colors(runs):
    import matplotlib.pyplot as plt

    return {a: plt.get_cmap("tab10")(i % 10) for i, a in enumerate(sorted({r.algo for r in runs}))}


def plot_profiles(scores, output, reps=2000, colors=None, title=None):
    """rliable's performance profiles of the normalised scores, saved to `output`; returns (taus, profiles, bands)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import plot_utils

    all_scores = np.concatenate([s.ravel() for s in scores.values()])
    taus = np.linspace(min(0.0, all_scores.min()), max(1.0, all_scores.max()), 101)
    profiles, bands = performance_profiles(scores, taus, reps)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    plot_utils.plot_performance_profiles(
        profiles, taus, performance_profile_cis=bands, colors=colors, ax=ax, xlabel=r"normalised final eval return ($\tau$)"
    )
    ax.legend(fontsize=8, loc="upper right")
    n_envs = next(iter(scores.values())).shape[1]
    ax.set_title(textwrap.fill(title or f"performance profiles over {n_envs} envs (95% CI)", 75), fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)
    return taus, profiles, bands


# ---------------------------------------------------------------------------------------------------------------------
# Command line


def parse_ranges(items):
    ranges = {}
    for item in items or []:
        env, _, bounds = item.partition("=")
        low, _, high = bounds.partition(":")
        ranges[env_name(env)] = (float(low), float(high))
    return ranges


def parse_thresholds(items):
    """["Hopper-v4=1000,2000", ...] -> DEFAULT_THRESHOLDS updated with {"Hopper-v4": (1000.0, 2000.0), ...}."""
    thresholds = dict(DEFAULT_THRESHOLDS)
    for item in items or []:
        env, _, values = item.partition("=")
        thresholds[env_name(env)] = tuple(float(v) for v in values.split(",") if v)
    return thresholds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", default="runs", help="folder holding the run folders")
    parser.add_argument("--results", default=None, metavar="DIR", help="read a results folder's committed curves instead")
    parser.add_argument("--env-ids", nargs="*", default=None, help="only these envs (default: all)")
    parser.add_argument("--algos", nargs="*", default=None, help="only these algorithms, i.e. exp_names (default: all)")
    parser.add_argument("--output", default=None, help="PNG of the curves (default: runs/curves.png, DIR/figures/curves.png)")
    parser.add_argument(
        "--profile-output", default=None, help="PNG of the performance profiles (default: {output}_profiles.png)"
    )
    parser.add_argument(
        "--curves",
        choices=["eval", "training"],
        default="eval",
        help="curves of eval/episodic_return or of the training return",
    )
    parser.add_argument("--window", type=int, default=10, help="episodes in each seed's running mean (--curves training)")
    parser.add_argument("--last-episodes", type=int, default=10, help="episodes averaged for a seed's final training return")
    parser.add_argument("--bootstrap-reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument(
        "--thresholds",
        nargs="*",
        metavar="ENV=R1,R2",
        help="evaluation returns whose first crossing the table gives, per env (default: DEFAULT_THRESHOLDS in plot.py)",
    )
    parser.add_argument(
        "--score-range",
        nargs="*",
        metavar="ENV=LOW:HIGH",
        help="reference scores of an env for the aggregate (default: min and max final eval return of its runs)",
    )
    parser.add_argument(
        "--fixed-references",
        action="store_true",
        help="normalise by fixed references (MuJoCo: random and TD3 scores, MUJOCO_REFERENCES; DMC: 0 and 1000)",
    )
    parser.add_argument("--title", default=None, help="figure title")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--max-step", type=int, default=None, help="use only what was logged before this env step")
    parser.add_argument("--csv", default=None, metavar="PATH", help="write one row per run to this CSV file")
    parser.add_argument(
        "--log-dir",
        default=None,
        help="the launcher's log folder, whose .done files give the commands (default: {runs_dir}/logs)",
    )
    args = parser.parse_args(argv)

    if args.results:
        runs = load_results(args.results, args.env_ids, args.algos, max_step=args.max_step)
        args.output = args.output or os.path.join(args.results, "figures", "curves.png")
    else:
        runs = load_runs(args.runs_dir, args.env_ids, args.algos, max_step=args.max_step)
        commands = done_commands(args.log_dir or os.path.join(args.runs_dir, "logs"))
        for run in runs:
            name = os.path.basename(os.path.normpath(run.path))  # matches a record of runs/ copied or moved elsewhere
            run.command = commands.get(os.path.realpath(run.path), commands.get(name, ""))
        args.output = args.output or "runs/curves.png"
    if not runs:
        print(f"plot.py: error: no runs with {RETURN_TAG} under {args.results or args.runs_dir!r}", file=sys.stderr)
        return 2
    table = summarize(runs, args.last_episodes, parse_thresholds(args.thresholds))
    given = fixed_references({env for env, _ in table}) if args.fixed_references else parse_ranges(args.score_range)
    scores, ranges = normalised_scores(table, given)
    aggregate = iqm_intervals(scores, args.bootstrap_reps) if scores else None
    colors = algo_colors(runs)
    plot(runs, args.output, args.window, args.bootstrap_reps, aggregate, title=args.title, curves=args.curves, colors=colors)
    profile_output = args.profile_output or os.path.splitext(args.output)[0] + "_profiles.png"
    if scores:
        plot_profiles(scores, profile_output, args.bootstrap_reps, colors, title=args.title)

    print(format_table(table, args.markdown))
    print(
        "\nfinal eval return: each seed's last evaluation, mean ± sample std over seeds; first step: where the mean over "
        f"seeds of the evaluation returns first reaches each threshold; final train return: each seed's mean over its last "
        f"{args.last_episodes} training episodes, mean ± sample std over seeds"
    )
    if aggregate:
        print("\nIQM of normalised final eval return (rliable), 95% stratified-bootstrap interval:")
        for env, (low, high) in ranges.items():
            print(f"  {env}: 0 = {low:.1f}, 1 = {high:.1f}" + (" (given)" if env in given else ""))
        for algo, estimate in sorted(aggregate.items()):
            print(f"  {algo}: {shown(*estimate)}")
    print(f"\nfigure: {args.output}")
    if scores:
        print(f"performance profiles: {profile_output}")
    if args.csv:
        write_csv(runs, args.csv, args.last_episodes)
        print(f"csv: {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
