"""House rules that ruff does not check: no line of Python over 127 columns, whatever pragma it carries (ruff's E501
skips a line that ends in `# noqa`), and the scripts within their line budgets."""

import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_no_python_line_over_127_columns():
    long = []
    for path in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True):
        if f"{os.sep}runs{os.sep}" in path:
            continue
        with open(path, encoding="utf-8") as f:
            long += [f"{os.path.relpath(path, ROOT)}:{i}" for i, line in enumerate(f, 1) if len(line.rstrip("\n")) > 127]
    assert not long


def test_scripts_within_their_line_budgets():
    for script, budget in [("qsm_continuous_action.py", 630), ("qsm_continuous_action_jax.py", 712)]:
        with open(os.path.join(ROOT, script), encoding="utf-8") as f:
            assert len(f.readlines()) <= budget, script


def test_readme_quotes_the_recommended_recipe_as_the_results_index_maps_it():
    import re

    with open(os.path.join(ROOT, "benchmark", "results", "README.md"), encoding="utf-8") as f:
        rows = re.findall(r"^\| `([\w-]+)` \(recommended\) \| `([^`]+)` \|", f.read(), re.MULTILINE)
    assert len(rows) == 1  # one recommended recipe, one row
    name, flags = rows[0]
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    quoted = re.findall(r"\*\*The `([\w-]+)` recipe\*\*, beyond the paper, is the one we recommend:\s+`([^`]+)`", readme)
    assert quoted == [(name, flags)]
