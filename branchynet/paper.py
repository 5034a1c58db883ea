"""The authors' published numbers, kept as data in this one place.

Everything here is transcribed from the paper (Teerapittayanon, McDanel, Kung, ICPR 2016) as
summarised in ``/work/shared/reference/branchynet_original.md``:

* ``TABLE1``: Table I (reference section 5.1): the knee points, batch size 1, mean ms per test
  sample, on "3.0GHz CPU with 20MB L3 Cache and NVIDIA GeForce GTX TITAN X (Maxwell) 12GB".
  Their times are the original's trunk-only accounting (reference section 3.4, bug B9) against a
  baseline timed end to end, so their gains are best compared with our "trunk-only" gains.
* ``MACS_M``: multiply-accumulates per sample of each trunk segment and head, in millions
  (reference section 2.7, computed there from the layer specifications of the original code).
"""

PAPER_HARDWARE = "3.0GHz CPU with 20MB L3 Cache; NVIDIA GeForce GTX TITAN X (Maxwell) 12GB"

# Networks as Table I names them, keyed by our family name (``family_of``).
DISPLAY_NAMES = {
    "lenet": ("LeNet", "B-LeNet"),
    "alexnet": ("AlexNet", "B-AlexNet"),
    "resnet110": ("ResNet-110", "B-ResNet"),
}

# Reference section 5.1, Table I. Accuracy and exit fractions in %, time in ms per sample, gain as
# the paper prints it (baseline time / B-net time). "exits" lists the % of test samples leaving
# at each exit, first exit first.
TABLE1 = {
    "lenet": {
        "thresholds": (0.025,),
        "exits": (94.3, 5.63),
        "cpu": {"baseline": {"accuracy": 99.20, "ms": 3.37},
                "branchy": {"accuracy": 99.25, "ms": 0.62, "gain": 5.4}},
        "gpu": {"baseline": {"accuracy": 99.20, "ms": 1.58},
                "branchy": {"accuracy": 99.25, "ms": 0.34, "gain": 4.7}},
    },
    "alexnet": {
        "thresholds": (0.0001, 0.05),
        "exits": (65.6, 25.2, 9.2),
        "cpu": {"baseline": {"accuracy": 78.38, "ms": 9.56},
                "branchy": {"accuracy": 79.19, "ms": 6.32, "gain": 1.5}},
        "gpu": {"baseline": {"accuracy": 78.38, "ms": 3.15},
                "branchy": {"accuracy": 79.19, "ms": 1.30, "gain": 2.4}},
    },
    "resnet110": {
        "thresholds": (0.3, 0.2),
        "exits": (41.5, 13.8, 44.7),
        "cpu": {"baseline": {"accuracy": 80.70, "ms": 137.20},
                "branchy": {"accuracy": 79.17, "ms": 73.5, "gain": 1.9}},
        "gpu": {"baseline": {"accuracy": 80.70, "ms": 70.9},
                "branchy": {"accuracy": 79.17, "ms": 37.2, "gain": 1.9}},
    },
}

# Reference section 2.7: MACs per sample, in millions, of trunk segments 1..K and heads 1..K.
MACS_M = {
    "lenet": {"segments": (0.11, 1.03), "heads": (0.11, 0.001)},
    "alexnet": {"segments": (15.6, 3.54, 9.14), "heads": (1.78, 0.44, 0.001)},
    "resnet110": {"segments": (0.39, 74.7, 157.4), "heads": (48.2, 4.29, 0.006)},
}


def family_of(network):
    """The paper's network a registered name belongs to: "lenet", "alexnet" or "resnet110"
    (``b-alexnet-paper`` is an AlexNet, ``b-resnet110-paper`` a ResNet-110)."""
    name = network.lower()
    for family in ("lenet", "alexnet", "resnet110"):
        if family in name:
            return family
    raise KeyError("%r is none of the paper's networks (LeNet, AlexNet, ResNet-110)" % (network,))


def paper_thresholds(network):
    """The thresholds of the paper's Table I row for this network, one per non-final exit."""
    return tuple(TABLE1[family_of(network)]["thresholds"])
