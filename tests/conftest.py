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
