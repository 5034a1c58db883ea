"""Network definitions (branch lists) of the paper's three networks, and their registry."""
import branchynet  # noqa: F401  (compatibility shims before chainer)
from networks.registry import (  # noqa: F401
    build, dataset_of, family_of, load, load_run, loss_weights, names, register)
