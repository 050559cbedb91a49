"""QSM's saturation diagnostics per env and algorithm, from the TensorBoard event files under runs/ (no network).

    python benchmark/diagnostics.py --runs-dir runs --markdown

For each env and algorithm (the run's exp_name), each diagnostic is averaged over a run's last `--last-logged` logged
values (the scripts log every 100 training steps), then over seeds. Runs that do not log a tag (SAC) show "-".
  at bounds   qsm/action_at_bounds_frac: share of the DDPM samples' components at -1 or +1 (near 100%: bang-bang)
  grad Q norm qsm/q_grad_norm: mean norm of grad_a Q at the noisy replay actions
  eps norm    qsm/eps_norm: mean norm of the denoiser's output there
  cos         qsm/eps_q_grad_cosine: cosine between eps_theta and -grad_a Q (1: the denoiser fits the target's direction)
  critic loss losses/qf1_loss
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import load_runs, text_table  # noqa: E402

COLUMNS = [
    ("at bounds", "qsm/action_at_bounds_frac", lambda v: f"{100 * v:.0f}%"),
    ("grad Q norm", "qsm/q_grad_norm", lambda v: f"{v:.2f}"),
    ("eps norm", "qsm/eps_norm", lambda v: f"{v:.2f}"),
    ("cos", "qsm/eps_q_grad_cosine", lambda v: f"{v:.2f}"),
    ("critic loss", "losses/qf1_loss", lambda v: f"{v:.2f}"),
]


def diagnostics(runs, last_logged=10):
    """(env, algo) -> {tag: mean over seeds of each seed's mean of its last `last_logged` values} (NaN if not logged)."""
    groups = {}
    for run in runs:
        groups.setdefault((run.env_id, run.algo), []).append(run)
    table = {}
    for key, group in sorted(groups.items()):
        row = {"seeds": len(group)}
        for _, tag, _ in COLUMNS:
            values = [r.series(tag)[-last_logged:, 1].mean() for r in group if len(r.series(tag))]
            row[tag] = float(np.mean(values)) if values else float("nan")
        table[key] = row
    return table


def format_table(table, markdown=False):
    header = ["env", "algorithm", "seeds"] + [name for name, _, _ in COLUMNS]
    rows = [
        [env, algo, str(row["seeds"])] + ["-" if np.isnan(row[tag]) else fmt(row[tag]) for _, tag, fmt in COLUMNS]
        for (env, algo), row in table.items()
    ]
    return text_table(header, rows, markdown)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", default="runs", help="folder holding the run folders")
    parser.add_argument("--env-ids", nargs="*", help="only these envs (default: all)")
    parser.add_argument("--algos", nargs="*", help="only these algorithms, i.e. exp_names (default: all)")
    parser.add_argument("--last-logged", type=int, default=10, help="logged values averaged per run (from the end)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--max-step", type=int, default=None, help="use only what was logged before this env step")
    args = parser.parse_args(argv)
    if args.last_logged < 1:
        parser.error("--last-logged must be >= 1")
    runs = load_runs(args.runs_dir, args.env_ids, args.algos, max_step=args.max_step)
    if not runs:
        parser.error(f"no runs under {args.runs_dir!r}")
    print(format_table(diagnostics(runs, args.last_logged), args.markdown))


if __name__ == "__main__":
    main()
