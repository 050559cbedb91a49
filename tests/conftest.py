import json
import os
import sys

import pytest

# One OpenMP thread per process: the tests run several processes at once (pytest and the scripts it launches), and
# PyTorch's spinning OpenMP threads slow down by an order of magnitude when they outnumber the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, os.path.dirname(__file__))

import bandit  # noqa: E402  (after the path insert above)
import bandit_jax  # noqa: E402


@pytest.fixture(params=[bandit, bandit_jax], ids=["torch", "jax"])
def toy(request):
    """The bandit trainer of each script: `bandit.py` (PyTorch update) and `bandit_jax.py` (JAX update)."""
    return request.param


def seeds(*default):
    """The seeds a learning test runs: `default`, or every seed of QSM_TEST_SEEDS ("0-7") when tests/numerics_matrix.sh
    measures the spread of its values over seeds and float paths."""
    spec = os.environ.get("QSM_TEST_SEEDS")
    if not spec:
        return list(default)
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


@pytest.fixture
def check(request):
    """check(quantity, value, above=None, below=None, context=""): assert above < value < below for a learned or sampled
    quantity. With QSM_RECORD=FILE set (tests/numerics_matrix.sh), it appends the value and its bounds to FILE as a JSON
    line and asserts nothing, so one run records every quantity of every seed, failing ones included."""
    record = os.environ.get("QSM_RECORD")
    params = getattr(request.node, "callspec", None)
    params = {k: v for k, v in (params.params if params else {}).items() if k != "seed"}
    name = f"{request.node.path.name}::{request.node.originalname}"
    framework = {bandit: "torch", bandit_jax: "jax"}
    name += "[" + "-".join(framework.get(v, str(v)) for v in params.values()) + "]" if params else ""

    def check(quantity, value, above=None, below=None, context=""):
        value = float(value)
        if record:
            with open(record, "a") as f:
                f.write(json.dumps({"test": name, "quantity": quantity, "value": value, "above": above, "below": below}))
                f.write("\n")
            return
        assert above is None or value > above, f"{quantity} = {value:.4f}, not above {above}; {context}"
        assert below is None or value < below, f"{quantity} = {value:.4f}, not below {below}; {context}"

    return check


def pytest_configure(config):
    config.addinivalue_line("markers", "learning: asserts a learned or sampled value (tests/numerics_matrix.sh runs these)")
