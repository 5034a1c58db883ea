"""The authors' numbers and settings, kept as data in this one place.

Everything here is transcribed from the paper (Teerapittayanon, McDanel, Kung, ICPR 2016) and its
code, as docs/original.md describes them:

* ``TABLE1``: Table I (docs/original.md#table-i): the knee points, batch size 1, mean ms per test
  sample, on "3.0GHz CPU with 20MB L3 Cache and NVIDIA GeForce GTX TITAN X (Maxwell) 12GB". Their
  times are the original's trunk-only accounting (docs/original.md, B9) against a baseline timed
  end to end, so their gains are best compared with our "trunk-only" gains.
* ``NOTEBOOK``: the second set of the authors' numbers, the outputs saved in their notebooks (the
  original repository's HEAD; docs/original.md, the study of the original, section 5.2): a CPU
  table of another training run on unknown hardware, at the paper's thresholds. Their B-AlexNet exit
  mix differs from the paper's Table I.
* ``MACS_M``: multiply-accumulates per sample of each trunk segment and head, in millions
  (docs/original.md#cost-per-segment, computed from the layer specifications of the original code).
* ``SCHEDULES``: the training schedule of each network (docs/original.md#schedules).
* ``THRESHOLD_LISTS`` and ``INC_AMT``: the threshold sweep and the frontier's tolerance of the
  original experiments (docs/original.md#threshold-lists, #frontier-and-knee).

Everything is keyed by the *family*, the paper's network a registered variant belongs to
(``networks.family_of``): "lenet", "alexnet" or "resnet110".
"""

PAPER_HARDWARE = "3.0GHz CPU with 20MB L3 Cache; NVIDIA GeForce GTX TITAN X (Maxwell) 12GB"

FAMILIES = ("lenet", "alexnet", "resnet110")

# Networks as Table I names them.
DISPLAY_NAMES = {
    "lenet": ("LeNet", "B-LeNet"),
    "alexnet": ("AlexNet", "B-AlexNet"),
    "resnet110": ("ResNet-110", "B-ResNet"),
}

# Table I (docs/original.md#table-i). Accuracy and exit fractions in %, time in ms per sample, gain as
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

# The authors' notebooks' saved outputs (HEAD; reference study section 5.2): their CPU tables, at the
# paper's thresholds, from another training run than the paper's, on a Windows machine whose hardware
# is not known. Their ms are the original's trunk-only accounting; the baseline may have been timed
# with the net still on the GPU (bug B8). Their "GPU" tables reuse the CPU times (bug B7), so there
# are no GPU entries. No ResNet sweep output was saved.
NOTEBOOK = {
    "lenet": {
        "thresholds": (0.025,),
        "exits": (93.95, 6.05),
        "cpu": {"baseline": {"accuracy": 99.07, "ms": 2.79},
                "branchy": {"accuracy": 99.25, "ms": 0.56, "gain": 4.96}},
    },
    "alexnet": {
        "thresholds": (0.0001, 0.05),
        "exits": (43.61, 35.79, 20.6),
        "cpu": {"baseline": {"accuracy": 77.76, "ms": 5.26},
                "branchy": {"accuracy": 79.36, "ms": 4.11, "gain": 1.28}},
    },
}

# docs/original.md#cost-per-segment: MACs per sample, in millions, of trunk segments 1..K and heads 1..K.
MACS_M = {
    "lenet": {"segments": (0.11, 1.03), "heads": (0.11, 0.001)},
    "alexnet": {"segments": (15.6, 3.54, 9.14), "heads": (1.78, 0.44, 0.001)},
    "resnet110": {"segments": (0.39, 74.7, 157.4), "heads": (48.2, 4.29, 0.006)},
}


# docs/original.md#schedules: the paper's schedule, pretraining epochs of the main network, joint
# epochs of all exits, batch size; and the registered network each family's script runs by default.
SCHEDULES = {
    "lenet": {"network": "b-lenet", "main_epochs": 100, "joint_epochs": 100, "batchsize": 512},
    "alexnet": {"network": "b-alexnet", "main_epochs": 50, "joint_epochs": 100, "batchsize": 512},
    "resnet110": {"network": "b-resnet110", "main_epochs": 100, "joint_epochs": 100,
                  "batchsize": 128},
}

# docs/original.md#threshold-lists: the per-exit threshold lists of the original experiments (nats); the
# sweep is their Cartesian product over the K-1 non-final exits.
LENET_THRESHOLDS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
                    1.0, 2.0, 3.0, 5.0, 10.0)  # 17 configurations (B-LeNet has one early exit)
ALEXNET_THRESHOLDS = (0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 0.75, 1.0, 5.0, 10.0)  # 11 x 11
RESNET_THRESHOLDS = LENET_THRESHOLDS  # 17 x 17 = 289; the paper's (0.3, 0.2) is not in it

THRESHOLD_LISTS = {"lenet": LENET_THRESHOLDS, "alexnet": ALEXNET_THRESHOLDS,
                   "resnet110": RESNET_THRESHOLDS}

# docs/original.md#frontier-and-knee: the original's frontier tolerance, a fraction of accuracy (0.01 points).
INC_AMT = -0.0001


def paper_thresholds(family):
    """The thresholds of the paper's Table I row for a family, one per non-final exit."""
    return tuple(TABLE1[family]["thresholds"])
