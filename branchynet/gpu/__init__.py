"""The GPU backend: batch-1 inference replayed as CUDA graphs (``graphs``).

``branchynet_cuda_graphs``: on by default, off with ``BRANCHYNET_CUDA_GRAPHS=0`` or
``with chainer.using_config('branchynet_cuda_graphs', False): ...``. CuPy is imported only for a
net whose inputs are on a GPU.
"""
import os

import numpy

import chainer

chainer.global_config.branchynet_cuda_graphs = os.environ.get("BRANCHYNET_CUDA_GRAPHS", "1") != "0"


def enabled(x):
    """Whether inference on the batch x (on its device) runs as CUDA graphs: one sample on a GPU,
    with the switch on."""
    return (bool(chainer.config.branchynet_cuda_graphs) and len(x) == 1
            and chainer.backend.get_array_module(x) is not numpy)


class GraphCache:
    """A net's captured graphs, per thread, input shape and dtype (``graphs.GraphSteps``); empty
    in a copy, whose graphs would read the original's parameters."""

    def __init__(self):
        self._steps = {}

    def __deepcopy__(self, memo):
        return GraphCache()

    def __getstate__(self):
        return {"_steps": {}}

    def captured(self):
        """Whether graphs run for every input shape met so far (False before the first)."""
        return bool(self._steps) and all(steps is not None for _, steps in self._steps.values())

    def steps(self, net, x):
        """(segment, head, context) replaying graphs for inputs like x, or None where capture
        failed for them (the failure is warned about once, and plain Chainer runs instead)."""
        from branchynet.gpu import graphs
        return graphs.steps_for(self._steps, net, x)
