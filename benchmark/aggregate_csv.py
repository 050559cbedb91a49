"""The final-return table and the IQM from the CSVs that `plot.py --csv` writes, for runs whose event files are gone.

    python benchmark/aggregate_csv.py benchmark/results/study_50k/runs.csv --algos sac grad-rms-targets grad-rms

A study whose runs ran on other machines or in other sessions joins another one this way: the rows carry each run's
final evaluation return. Per env and algorithm: the mean ± sample std over seeds of that return and the mean wall-clock
(`wall_clock_s`, where rows have it); then the IQM and the mean of the normalised returns with 95% stratified-bootstrap
intervals, by plot.py's rules (the same normalisation: per env, 0 and 1 are the lowest and highest final evaluation
return of the algorithms that enter; an algorithm enters only with the same number of seeds on every env). Of two rows
with the same env, algorithm and seed, the later one counts.

`--fixed-references` normalises by fixed scores instead, so that adding a row never moves another row's number:
MuJoCo (return - random) / (TD3 - random) with the random and TD3 scores that SimbaV2's code tabulates for the v4
tasks, DMC return / 1000. `--improvement X>Y` prints rliable's probability of improvement P(X > Y) with its interval.
`--wide` prints it all as one Markdown table: a row per task, a column per algorithm, then the aggregates' rows.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import fixed_references, interval_estimates, iqm_intervals, mean_std, normalised_scores, shown  # noqa: E402


def mean_intervals(scores, reps=2000):
    """algo -> (mean, (low, high)) of its normalised scores over runs and tasks, with 95% stratified-bootstrap intervals."""
    from rliable import metrics

    point, interval = interval_estimates(scores, lambda x: np.array([metrics.aggregate_mean(x)]), reps)
    return {algo: (float(point[algo][0]), (float(interval[algo][0, 0]), float(interval[algo][1, 0]))) for algo in scores}


def improvement(scores, x, y, reps=2000):
    """rliable's probability of improvement P(x > y) over the tasks, with its 95% stratified-bootstrap interval."""
    from rliable import metrics

    point, interval = interval_estimates({"pair": (scores[x], scores[y])}, metrics.probability_of_improvement, reps)
    low, high = np.ravel(interval["pair"])
    return float(point["pair"]), (float(low), float(high))


def read_rows(paths, algos=None, tasks=None):
    """(env, algo) -> its rows that have a final eval return (seed, return, wall-clock), later rows replacing earlier ones."""
    import pandas as pd

    rows = pd.concat([pd.read_csv(path, dtype={"task": str, "algorithm": str}) for path in paths])
    rows = rows.dropna(subset=["final_eval_return"])
    if tasks:
        rows = rows[rows.task.isin({task.replace("/", "-") for task in tasks})]  # as the CSVs name them
    if algos:
        rows = rows[rows.algorithm.isin(algos)]
    rows = rows.drop_duplicates(["task", "algorithm", "seed"], keep="last").sort_values("seed")
    if "wall_clock_s" not in rows:
        rows["wall_clock_s"] = np.nan  # CSVs from before the launcher recorded it
    return dict(tuple(rows.groupby(["task", "algorithm"])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csvs", nargs="+", help="CSV files written by plot.py --csv")
    parser.add_argument("--algos", nargs="*", default=None, help="only these algorithms (default: all)")
    parser.add_argument("--tasks", nargs="*", default=None, help="only these tasks (default: all)")
    parser.add_argument("--bootstrap-reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--fixed-references", action="store_true", help="normalise by fixed reference scores (above)")
    parser.add_argument("--improvement", nargs="*", default=[], metavar="X>Y", help="print P(X > Y) (rliable)")
    parser.add_argument("--wide", action="store_true", help="one row per task, one column per algorithm (--algos' order)")
    args = parser.parse_args(argv)

    finals = read_rows(args.csvs, args.algos, args.tasks)
    if not finals:
        print("aggregate_csv.py: error: no rows with a final evaluation return", file=sys.stderr)
        return 2
    table = {key: {"eval_finals": runs.final_eval_return.to_numpy()} for key, runs in finals.items()}
    envs = sorted({env for env, _ in finals})
    algos = args.algos or sorted({algo for _, algo in finals})
    cell = {key: "{:.1f} ± {:.1f}".format(*mean_std(entry["eval_finals"])) for key, entry in table.items()}
    references = fixed_references(envs) if args.fixed_references else None
    scores, ranges = normalised_scores(table, references, echo=lambda note: print(note, file=sys.stderr))  # off the table
    aggregates = {}  # row name -> algo -> "point [low, high]"
    if scores:
        for name, estimate in (("IQM", iqm_intervals), ("mean", mean_intervals)):
            aggregates[name] = {algo: shown(*e) for algo, e in estimate(scores, args.bootstrap_reps).items()}
        for pair in args.improvement:
            x, y = pair.split(">")
            aggregates[f"P({x} > {y})"] = {x: shown(*improvement(scores, x, y, args.bootstrap_reps))}
    if args.wide:
        print(f"| task | {' | '.join(algos)} |\n|---|{'---|' * len(algos)}")
        for env in envs:
            print(f"| {env} | {' | '.join(cell.get((env, algo), '-') for algo in algos)} |")
        for name, row in aggregates.items():
            name = f"{name}, normalised" if name in ("IQM", "mean") else name
            print(f"| {name} | {' | '.join(row.get(algo, '') for algo in algos)} |")
        return 0
    print("| env | algorithm | seeds | final eval return | wall-clock, min (mean) |\n|---|---|---|---|---|")
    for (env, algo), runs in sorted(finals.items()):
        wall = runs.wall_clock_s.mean() / 60
        wall = "-" if np.isnan(wall) else f"{wall:.0f}"  # "-": a row without it
        print(f"| {env} | {algo} | {len(runs)} | {cell[env, algo]} | {wall} |")
    if scores:
        print("\nIQM of normalised final eval return (rliable), 95% stratified-bootstrap interval:")
        for env, (low, high) in ranges.items():
            print(f"  {env}: 0 = {low:.1f}, 1 = {high:.1f}")
        for name, row in aggregates.items():
            if name == "mean":
                print("Mean of normalised final eval return (rliable), 95% stratified-bootstrap interval:")
            for algo, text in sorted(row.items()):
                print(f"  {name} = {text}" if name.startswith("P(") else f"  {algo}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
