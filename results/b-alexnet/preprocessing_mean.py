"""B-AlexNet (results/b-alexnet/run: trained on 45,000 images, validation 5,000, "gcn"
preprocessing whose per-pixel mean was taken over all 50,000 training images) evaluated on the
CIFAR-10 test set with that mean ("all", what it was trained with) and with the mean of the
45,000 training-part images only ("train", data_split's default now).

    BRANCHYNET_DATA=... python results/b-alexnet/preprocessing_mean.py \\
        > results/b-alexnet/preprocessing_mean.txt
"""
import os

import numpy

import networks
from branchynet.data import cifar10, datasets
from branchynet.data import split as data_split
from branchynet.evaluation import outputs

HERE = os.path.dirname(os.path.abspath(__file__))

RUN = os.path.join(HERE, "run")


def main(val_size=5000):
    raw = cifar10.load_cifar10_raw(download=False)[0]
    keep = numpy.sort(numpy.random.RandomState(0).permutation(len(raw))[val_size:])  # as load_split
    means = {s: datasets.cifar10_statistics(raw if s == "all" else raw[keep], "gcn")["pixel_mean"]
             for s in ("all", "train")}
    diff = numpy.abs(means["all"] - means["train"])
    print("B-AlexNet %s, CIFAR-10, gcn preprocessing, validation split %d (seed 0)"
          % (os.path.relpath(RUN), val_size))
    print("per-pixel mean (x / 255), all 50,000 vs the 45,000 training-part images: max |diff| "
          "%.5f, mean |diff| %.5f" % (diff.max(), diff.mean()))
    branchy = networks.load(os.path.join(RUN, "branchy.npz"))
    main_net = networks.load(os.path.join(RUN, "main.npz"))
    results = {}
    for statistics in ("all", "train"):
        split = data_split.load_split("cifar10", val_size, statistics=statistics)
        (_, _), (x_val, t_val), (x_test, t_test) = split
        rows = {}
        for name, x, t in (("test", x_test, t_test), ("validation", x_val, t_val)):
            out = outputs.ExitOutputs.from_net(branchy, x, t)
            main_labels = numpy.concatenate([main_net.predict_main(x[s:s + 1000])
                                             for s in range(0, len(x), 1000)])
            rows[name] = (out, float((main_labels == t).mean()))
        results[statistics] = rows
        print("statistics=%-5s (%s)" % (statistics, split.description))
    print()
    print("accuracy %, per exit of branchy.npz, and main.npz (the baseline):")
    print("%-10s %-10s %8s %8s %8s %8s" % ("set", "statistics", "exit 1", "exit 2", "exit 3", "main"))
    for name in ("test", "validation"):
        for statistics in ("all", "train"):
            out, main_acc = results[statistics][name]
            acc = out.exit_accuracy()
            print("%-10s %-10s %8.2f %8.2f %8.2f %8.2f" % (
                name, statistics, *(100 * a for a in acc), 100 * main_acc))
        a_out, a_main = results["all"][name]
        b_out, b_main = results["train"][name]
        gap = [100 * (b - a) for a, b in zip(a_out.exit_accuracy(), b_out.exit_accuracy())]
        changed = (a_out.predictions != b_out.predictions).sum(axis=1)
        print("%-10s %-10s %8.2f %8.2f %8.2f %8.2f   (train minus all, points)" % (
            name, "gap", *gap, 100 * (b_main - a_main)))
        print("%-10s %-10s %8d %8d %8d   (predictions that change, of %d)" % (
            name, "changed", *changed, a_out.num_samples))
        ent = numpy.abs(a_out.entropies - b_out.entropies).max(axis=1)
        print("%-10s %-10s %8.4f %8.4f %8.4f   (max |entropy change|, nats)" % (name, "entropy", *ent))


if __name__ == "__main__":
    main()
