import os
import sys

# One OpenMP thread per process: the tests run several processes at once (pytest and the scripts it launches), and
# PyTorch's spinning OpenMP threads slow down by an order of magnitude when they outnumber the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, os.path.dirname(__file__))
