"""Network definitions (branch lists) of the paper's three networks, and their registry."""
import branchynet  # noqa: F401  (compatibility shims before chainer)
from networks.registry import build, dataset_of, loss_weights, names, register  # noqa: F401
