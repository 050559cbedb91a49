"""Curves and a table from the TensorBoard event files under runs/ (no network, no W&B).

    python benchmark/plot.py --runs-dir runs --output benchmark/figures/curves.png

Run folders are named `{env_id}__{exp_name}__{seed}__{time}`; the algorithm is the exp_name. For each env the figure
shows `charts/episodic_return` against env steps: the mean over seeds of each seed's running mean of its last
`--window` episodes, with a 95% bootstrap confidence band over seeds, one line per algorithm. A curve stops at the
last step that every one of its seeds reached, so a run that stopped early shows. With several envs a last panel gives
the interquartile mean (IQM) of normalised final scores with 95% stratified-bootstrap intervals (as in rliable,
Agarwal et al. 2021). The table printed gives, per env and algorithm, the final return (each seed's mean over its last
`--last-episodes` training episodes, then mean and sample std over seeds), the last evaluation return, the median
`charts/SPS` and, for QSM, the share of sampled actions at the bounds.
"""

import argparse
import glob
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

RETURN_TAG, SPS_TAG, EVAL_TAG, BOUNDS_TAG = (
    "charts/episodic_return",
    "charts/SPS",
    "eval/episodic_return",
    "qsm/action_at_bounds_frac",
)


@dataclass
class Run:
    env_id: str
    algo: str
    seed: int
    path: str
    scalars: Dict[str, np.ndarray] = field(default_factory=dict)  # tag -> array of (step, value) rows
    last_step: int = 0

    def series(self, tag):
        return self.scalars.get(tag, np.zeros((0, 2)))


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
                f"note: several runs of {env_id} {algo} seed {seed}; using the latest ({path if stamp > latest[key][0] else latest[key][1]})"
            )
        if key not in latest or stamp > latest[key][0]:
            latest[key] = (stamp, path)
    runs = []
    for (env_id, algo, seed), (_, path) in sorted(latest.items()):
        scalars = read_scalars(path)
        if max_step is not None:
            scalars = {tag: rows[rows[:, 0] < max_step] for tag, rows in scalars.items()}
        if not len(scalars.get(RETURN_TAG, ())):
            echo(f"note: {path} has no {RETURN_TAG} (no episode finished); skipped")
            continue
        last_step = int(max(rows[-1, 0] for rows in scalars.values() if len(rows)))
        runs.append(Run(env_id, algo, seed, path, scalars, last_step))
    return runs


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


def bootstrap_mean_ci(values, reps=2000, rng=None):
    """95% percentile-bootstrap interval of the mean over axis 0 (the seeds), resampling seeds with replacement."""
    rng = np.random.default_rng(0) if rng is None else rng
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    idx = rng.integers(0, n, size=(reps, n))
    means = values[idx].mean(axis=1)  # (reps, ...)
    return np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)


def final_return(run, last_episodes):
    returns = run.series(RETURN_TAG)[:, 1]
    return float(returns[-last_episodes:].mean())


def summarize(runs, last_episodes=10):
    """(env, algo) -> dict of the table's numbers over seeds."""
    groups = {}
    for run in runs:
        groups.setdefault((run.env_id, run.algo), []).append(run)
    table = {}
    for key, group in sorted(groups.items()):
        finals = np.array([final_return(r, last_episodes) for r in group])
        evals = np.array([r.series(EVAL_TAG)[-1, 1] for r in group if len(r.series(EVAL_TAG))])
        sps = np.concatenate([r.series(SPS_TAG)[:, 1] for r in group])
        bounds = [r.series(BOUNDS_TAG)[-10:, 1].mean() for r in group if len(r.series(BOUNDS_TAG))]
        table[key] = {
            "seeds": sorted(r.seed for r in group),
            "min_last_step": min(r.last_step for r in group),
            "final_mean": float(finals.mean()),
            "final_std": float(finals.std(ddof=1)) if len(finals) > 1 else float("nan"),
            "finals": finals,
            "eval_mean": float(evals.mean()) if len(evals) else float("nan"),
            "eval_std": float(evals.std(ddof=1)) if len(evals) > 1 else float("nan"),
            "sps_median": float(np.median(sps)) if len(sps) else float("nan"),
            "at_bounds": float(np.mean(bounds)) if bounds else float("nan"),
        }
    return table


def iqm(scores):
    """Interquartile mean of all runs x tasks: the mean of the middle 50% (rliable's IQM, trim 25% each side)."""
    flat = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = len(flat)
    cut = int(np.floor(0.25 * n))
    return float(flat[cut : n - cut].mean())


def stratified_bootstrap_ci(scores, stat=iqm, reps=2000, rng=None):
    """95% interval of `stat` over a (runs, tasks) array, resampling runs with replacement within each task."""
    rng = np.random.default_rng(0) if rng is None else rng
    scores = np.asarray(scores, dtype=np.float64)
    n_runs, n_tasks = scores.shape
    stats = []
    for _ in range(reps):
        idx = rng.integers(0, n_runs, size=(n_runs, n_tasks))
        stats.append(stat(np.take_along_axis(scores, idx, axis=0)))
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def normalised_scores(runs, table, last_episodes=10, score_ranges=None):
    """algo -> (seeds, envs) array of normalised final returns, and env -> (low, high) used.

    By default, per env, 0 is the mean return of every run's first episode (all runs start with uniform-random
    actions, so this is a random-policy score) and 1 the best final return any run reached in that env."""
    score_ranges = dict(score_ranges or {})
    envs = sorted({r.env_id for r in runs})
    algos = sorted({r.algo for r in runs})
    for env in envs:
        if env not in score_ranges:
            low = float(np.mean([r.series(RETURN_TAG)[0, 1] for r in runs if r.env_id == env]))
            high = float(max(final_return(r, last_episodes) for r in runs if r.env_id == env))
            score_ranges[env] = (low, high)
    out = {}
    for algo in algos:
        columns = []
        for env in envs:
            if (env, algo) not in table:
                break
            low, high = score_ranges[env]
            columns.append((table[(env, algo)]["finals"] - low) / max(high - low, 1e-8))
        if len(columns) == len(envs) and len({len(c) for c in columns}) == 1:  # same seeds on every env
            out[algo] = np.stack(columns, axis=1)
    return out, score_ranges


def format_table(table, markdown=False):
    def pm(mean, std, fmt="{:.1f}"):
        if np.isnan(mean):
            return "-"
        return fmt.format(mean) + ("" if np.isnan(std) else " ± " + fmt.format(std))

    header = [
        "env",
        "algorithm",
        "seeds",
        "last step",
        "final return",
        "last eval return",
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
                pm(t["final_mean"], t["final_std"]),
                pm(t["eval_mean"], t["eval_std"]),
                "-" if np.isnan(t["sps_median"]) else f"{t['sps_median']:.0f}",
                bounds,
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def plot(runs, output, window=10, reps=2000, aggregate=None, num_points=200, title=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r.env_id for r in runs})
    algos = sorted({r.algo for r in runs})
    colors = {a: plt.get_cmap("tab10")(i % 10) for i, a in enumerate(algos)}
    n_panels = len(envs) + (1 if aggregate else 0)
    fig, axes = plt.subplots(1, n_panels, figsize=(4.6 * n_panels, 3.6), squeeze=False)
    curves = {}
    rng = np.random.default_rng(0)
    for ax, env in zip(axes[0], envs):
        env_runs = [r for r in runs if r.env_id == env]
        grid = np.linspace(0, max(r.last_step for r in env_runs), num_points)
        for algo in algos:
            group = [r for r in env_runs if r.algo == algo]
            if not group:
                continue
            values = np.stack([running_curve(r, grid, window) for r in group])
            shown = ~np.isnan(values).any(axis=0)  # only where every seed has data
            if not shown.any():
                continue
            mean = values[:, shown].mean(axis=0)
            low, high = bootstrap_mean_ci(values[:, shown], reps=reps, rng=rng)
            curves[(env, algo)] = (grid[shown], mean, low, high)
            ax.plot(grid[shown], mean, color=colors[algo], label=f"{algo} ({len(group)} seeds)")
            ax.fill_between(grid[shown], low, high, color=colors[algo], alpha=0.2, linewidth=0)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel("episodic return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    if aggregate:
        ax = axes[0][-1]
        names = sorted(aggregate)
        for i, algo in enumerate(names):
            point, (low, high) = aggregate[algo]
            ax.barh(i, high - low, left=low, color=colors[algo], alpha=0.5, height=0.5)
            ax.plot([point, point], [i - 0.25, i + 0.25], color="black")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("IQM of normalised final return")
        ax.set_title(f"aggregate over {len(envs)} envs")
        ax.grid(alpha=0.3, axis="x")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)
    return curves


def parse_ranges(items):
    ranges = {}
    for item in items or []:
        env, _, bounds = item.partition("=")
        low, _, high = bounds.partition(":")
        ranges[env] = (float(low), float(high))
    return ranges


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", default="runs", help="folder holding the run folders")
    parser.add_argument("--env-ids", nargs="*", default=None, help="only these envs (default: all)")
    parser.add_argument("--algos", nargs="*", default=None, help="only these algorithms, i.e. exp_names (default: all)")
    parser.add_argument("--output", default="benchmark/figures/curves.png", help="PNG to write")
    parser.add_argument("--window", type=int, default=10, help="episodes in each seed's running mean on the curves")
    parser.add_argument("--last-episodes", type=int, default=10, help="episodes averaged for a seed's final return")
    parser.add_argument("--bootstrap-reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument(
        "--score-range",
        nargs="*",
        metavar="ENV=LOW:HIGH",
        help="normalisation of an env for the aggregate (default: see docs)",
    )
    parser.add_argument("--title", default=None, help="figure title")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--max-step", type=int, default=None, help="use only what was logged before this env step")
    args = parser.parse_args(argv)

    runs = load_runs(args.runs_dir, args.env_ids, args.algos, max_step=args.max_step)
    if not runs:
        print(f"plot.py: error: no runs with {RETURN_TAG} under {args.runs_dir!r}", file=sys.stderr)
        return 2
    table = summarize(runs, args.last_episodes)
    aggregate: Optional[dict] = None
    envs = sorted({r.env_id for r in runs})
    if len(envs) > 1:
        scores, ranges = normalised_scores(runs, table, args.last_episodes, parse_ranges(args.score_range))
        aggregate = {algo: (iqm(s), stratified_bootstrap_ci(s, reps=args.bootstrap_reps)) for algo, s in scores.items()}
    plot(runs, args.output, args.window, args.bootstrap_reps, aggregate, title=args.title)

    print(format_table(table, args.markdown))
    print(
        f"\nfinal return: each seed's mean over its last {args.last_episodes} training episodes; mean ± sample std over seeds"
    )
    if aggregate:
        print("\nIQM of normalised final return, 95% stratified-bootstrap interval:")
        for env, (low, high) in ranges.items():
            print(f"  {env}: 0 = {low:.1f}, 1 = {high:.1f}")
        for algo, (point, (low, high)) in sorted(aggregate.items()):
            print(f"  {algo}: {point:.2f} [{low:.2f}, {high:.2f}]")
    print(f"\nfigure: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
