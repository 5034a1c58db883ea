"""Network definitions (branch lists) of the paper's three networks, and networks by name or import path."""
import branchynet  # noqa: F401  (compatibility shims before chainer)
from networks.registry import (  # noqa: F401
    UnknownNetwork,
    build,
    dataset_of,
    factory_of,
    family_of,
    load,
    load_run,
    names,
    register,
)
