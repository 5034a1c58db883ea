"""How a BranchyNet is declared: a flat list of layers with ``Branch`` markers in it.

The trunk is every item that is not a Branch, in order; a Branch taps the trunk at its position (after
every trunk item before it) and holds that exit's head. The list ends with a Branch: the final
classifier, which is also the head of the baseline (main) network.
"""
import numbers

import chainer
import chainer.functions as F


class Branch:
    """An exit: its head (a list of layers) and its loss weight w_n in L = sum_n w_n L_n.

    Unlike the original's, the weight is kept and used (docs/original.md, B1).
    """

    def __init__(self, layers, weight=1.0):
        layers = list(layers)
        if not layers:
            raise ValueError("Branch needs at least one layer (its head, e.g. [L.Linear(None, 10)])")
        if not isinstance(weight, numbers.Real) or weight < 0:
            raise ValueError("Branch weight must be a non-negative number, got %r" % (weight,))
        for layer in layers:
            _check_layer(layer)
        self.layers = layers
        self.weight = float(weight)

    def __repr__(self):
        return "Branch(%d layers, weight=%g)" % (len(self.layers), self.weight)


def _check_layer(layer):
    if isinstance(layer, Branch):
        raise ValueError("a Branch cannot be nested inside another Branch's layers")
    if not (isinstance(layer, chainer.Link) or callable(layer)):
        raise TypeError("network items must be Chainer links or callables, got %r" % (layer,))


def split_network(network):
    """Splits a network list into K trunk segments, K heads and K loss weights.

    Segment k holds the trunk items between Branch k-1 and Branch k, so running the segments one
    after another is the whole trunk, and exit k sees the output of segment k. A segment may be
    empty (two Branches in a row tap the same point).
    """
    network = list(network)
    if not network or not isinstance(network[-1], Branch):
        raise ValueError("a network list must end with a Branch: the final classifier "
                         "(e.g. Branch([L.Linear(84, 10)]))")
    segments, heads, weights, current = [], [], [], []
    for item in network:
        if isinstance(item, Branch):
            segments.append(current)
            heads.append(item.layers)
            weights.append(item.weight)
            current = []
        else:
            _check_layer(item)
            current.append(item)
    return segments, heads, weights


# Bare functions known to be fixed, parameter-free functions of their input.
_DETERMINISTIC_FUNCTIONS = (F.relu, F.sigmoid, F.tanh)


def _same_function(a, b):
    """True when items a and b compute the same deterministic, parameter-free function."""
    if isinstance(a, chainer.Link) or isinstance(b, chainer.Link):
        return False
    if not getattr(a, "deterministic", any(a is f for f in _DETERMINISTIC_FUNCTIONS)):
        return False
    return a is b or (type(a) is type(b) and a == b)


def shared_prefixes(segments, heads):
    """For each exit k, how many leading layers head k has in common with segment k+1 (0 for the
    last exit). Several of the original's heads begin with the trunk's next steps (B-LeNet's exit 1
    with pool and ReLU); joint training runs those once, on the trunk's path, instead of twice
    (docs/original.md#differences)."""
    counts = []
    for k, head in enumerate(heads):
        n = 0
        if k + 1 < len(segments):
            following = segments[k + 1]
            while (n < len(head) - 1 and n < len(following)
                   and _same_function(head[n], following[n])):
                n += 1
        counts.append(n)
    return counts
