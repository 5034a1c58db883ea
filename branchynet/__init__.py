"""BranchyNet: early-exit networks (Teerapittayanon, McDanel, Kung, ICPR 2016) on Chainer 7.8.1."""
from branchynet import _compat  # noqa: F401  (must run before the first `import chainer`)
from branchynet.model.branch import Branch  # noqa: E402
from branchynet.model.exit_rule import entropy  # noqa: E402
from branchynet.model.loss import JointLoss  # noqa: E402
from branchynet.model.net import BranchyNet  # noqa: E402

__version__ = "0.2.0"

__all__ = ["Branch", "BranchyNet", "JointLoss", "entropy"]
