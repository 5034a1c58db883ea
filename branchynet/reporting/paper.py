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
The original's threshold sweep, frontier tolerance and Table I thresholds are the evaluation's
(``branchynet.evaluation.frontier``: ``THRESHOLD_LISTS``, ``INC_AMT``, ``PAPER_THRESHOLDS``).

Everything is keyed by the *family*, the paper's network a registered variant belongs to
(``networks.family_of``): "lenet", "alexnet" or "resnet110".
"""
from branchynet.evaluation.frontier import PAPER_THRESHOLDS

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
        "thresholds": PAPER_THRESHOLDS["lenet"],
        "exits": (94.3, 5.63),
        "cpu": {"baseline": {"accuracy": 99.20, "ms": 3.37},
                "branchy": {"accuracy": 99.25, "ms": 0.62, "gain": 5.4}},
        "gpu": {"baseline": {"accuracy": 99.20, "ms": 1.58},
                "branchy": {"accuracy": 99.25, "ms": 0.34, "gain": 4.7}},
    },
    "alexnet": {
        "thresholds": PAPER_THRESHOLDS["alexnet"],
        "exits": (65.6, 25.2, 9.2),
        "cpu": {"baseline": {"accuracy": 78.38, "ms": 9.56},
                "branchy": {"accuracy": 79.19, "ms": 6.32, "gain": 1.5}},
        "gpu": {"baseline": {"accuracy": 78.38, "ms": 3.15},
                "branchy": {"accuracy": 79.19, "ms": 1.30, "gain": 2.4}},
    },
    "resnet110": {
        "thresholds": PAPER_THRESHOLDS["resnet110"],
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
