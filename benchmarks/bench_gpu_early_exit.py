"""Early exit on a GPU: batch 1 with and without CUDA graphs, and the gain against batch size.

    python3 benchmarks/bench_gpu_early_exit.py --device @cupy:0 --out OUT/gpu_early_exit.json \
        --text-out OUT/gpu_early_exit.txt --plot OUT/gain_batch_gpu.png

Batch 1: each committed run (B-LeNet, B-AlexNet, B-ResNet-110's short run) on its first
``--samples`` test images, one at a time, at the paper's thresholds: the main network
(``predict_main``) and early exit (``predict``), each replayed as CUDA graphs (``branchynet.gpu``)
and on plain Chainer, the four variants in turns, one pass over the images each, medians over
passes. Graphs and plain Chainer must give the same labels and exits (checked, recorded).

Batched: ``bench_gain_batch``'s comparison on the GPU (main network, early exit, the exit-1 path;
gain against the MAC bound) for B-LeNet and B-AlexNet at ``--batches``.

Every call returns host arrays, so each timed call ends with the device synchronised. The CIFAR-10
test images come from the dataset files, or from ``--cifar-images`` (an .npz of the preprocessed
images ``x`` and labels ``t`` written by ``--write-cifar-images`` on a machine that has the files).
"""
import os

import numpy
from bench_gain_batch import bench_network, plot

import chainer

import networks
from branchynet import benchmark
from branchynet.evaluation import frontier, timing
from branchynet.fast import calibration

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "..", "results")
RUNS = {"B-LeNet": ("b-lenet/run", "lenet"), "B-AlexNet": ("b-alexnet/run", "alexnet"),
        "B-ResNet-110": ("b-resnet110/run-short", "resnet110")}


def _parse(argv=None):
    p = benchmark.parser(__doc__)
    p.add_argument("--device", default="@cupy:0")
    p.add_argument("--networks", default="B-LeNet,B-AlexNet,B-ResNet-110")
    p.add_argument("--samples", type=int, default=300, help="test images per batch-1 pass")
    p.add_argument("--resnet-samples", type=int, default=60, help="the same for B-ResNet-110")
    p.add_argument("--repeats", type=int, default=5, help="timed batch-1 passes")
    p.add_argument("--batches", default="1,16,64,256,1024", help="batch sizes of the gain curve")
    p.add_argument("--batch-samples", type=int, default=1024, help="test images per batched pass")
    p.add_argument("--batch-repeats", type=int, default=5)
    p.add_argument("--cifar-images", default=None, help="preprocessed CIFAR-10 test images (.npz)")
    p.add_argument("--write-cifar-images", default=None,
                   help="write the first --batch-samples preprocessed test images to this .npz, exit")
    p.add_argument("--plot", default=None, help="write the batched gain figure (PNG)")
    return benchmark.parse_args(p, argv)


ARGS = _parse() if __name__ == "__main__" else None


def test_images(name, samples, cifar_images=None):
    """(x, t): the first ``samples`` test images of a run's dataset, preprocessed as it was trained."""
    from branchynet.data import datasets
    from branchynet.data import split as data_split
    if name == "B-LeNet":
        _, test = datasets.get_mnist(download=False)
        x, t = datasets.arrays(test)
    elif cifar_images:
        with numpy.load(cifar_images) as f:
            x, t = f["x"], f["t"]
    else:
        run = os.path.join(RESULTS, RUNS[name][0])
        (_, _, (x, t)) = data_split.load_split("cifar10", statistics=data_split.run_statistics(run))
    if len(x) < samples:
        raise ValueError("%s: %d test images asked for, %d available" % (name, samples, len(x)))
    return numpy.ascontiguousarray(x[:samples], dtype=numpy.float32), numpy.asarray(t[:samples])


def batch1(name, net, x, thresholds, repeats, out):
    """Batch-1 main network and early exit, with CUDA graphs and on plain Chainer, in turns."""
    samples = [x[i:i + 1] for i in range(len(x))]
    variants = {}
    for graphs in (True, False):
        def main_pass(graphs=graphs):
            with chainer.using_config("branchynet_cuda_graphs", graphs):
                return [net.predict_main(s) for s in samples]

        def early_pass(graphs=graphs):
            with chainer.using_config("branchynet_cuda_graphs", graphs):
                return [net.predict(s, thresholds) for s in samples]
        tag = "graphs" if graphs else "plain"
        variants["main " + tag], variants["early " + tag] = main_pass, early_pass
    results = {key: fn() for key, fn in variants.items()}  # warm-up, and the outputs compared
    agree = {
        "main": all(numpy.array_equal(a, b) for a, b in zip(results["main graphs"], results["main plain"])),
        "early": all(numpy.array_equal(a[0], b[0]) and numpy.array_equal(a[1], b[1])
                     for a, b in zip(results["early graphs"], results["early plain"]))}
    captured = net._graphs.captured()
    exits = numpy.concatenate([r[1] for r in results["early plain"]])
    timed = benchmark.time_interleaved(variants, repeats, warmup=0)
    ms = {key: timed[key]["wall_ms"] / len(x) for key in variants}
    row = {"network": name, "samples": len(x), "thresholds": list(thresholds),
           "exit_fractions": (numpy.bincount(exits, minlength=net.numexits()) / len(x)).tolist(),
           "ms_per_sample": ms, "agree": agree, "graphs_captured": captured,
           "spread_ms": {key: [v / len(x) for v in timed[key]["wall_all_ms"]] for key in variants},
           "graph_speedup_main": ms["main plain"] / ms["main graphs"],
           "graph_speedup_early": ms["early plain"] / ms["early graphs"],
           "gain_graphs": ms["main graphs"] / ms["early graphs"],
           "gain_plain": ms["main plain"] / ms["early plain"]}
    out("%-13s %5d %8.3f %8.3f %6.2fx | %8.3f %8.3f %6.2fx | %6.2fx %6.2fx | %s %s | %-8s | %s" % (
        name, len(x), ms["main plain"], ms["main graphs"], row["graph_speedup_main"],
        ms["early plain"], ms["early graphs"], row["graph_speedup_early"], row["gain_plain"],
        row["gain_graphs"], "yes" if agree["main"] else "NO", "yes" if agree["early"] else "NO",
        "yes" if captured else "NO", "/".join("%.1f" % (100 * f) for f in row["exit_fractions"])))
    return row


def main(args):
    if args.write_cifar_images:
        x, t = test_images("B-AlexNet", args.batch_samples)
        numpy.savez(args.write_cifar_images, x=x, t=t)
        return None
    out, env, blas = benchmark.start()
    device = chainer.get_device(args.device)
    gpu = timing.gpu_name(device) if device.xp is not numpy else calibration.cpu_model()
    out("device %s: %s" % (args.device, gpu))
    summary = {"environment": env, "blas": blas, "settings": vars(args), "gpu": gpu,
               "method": __doc__.split("\n\n", 2)[2], "batch1": [], "batched": []}
    names = args.networks.split(",")
    out("")
    out("Batch 1, ms per sample (plain Chainer / CUDA graphs / speed-up), gain = main / early exit")
    out("%-13s %5s %8s %8s %7s | %8s %8s %7s | %7s %7s | %-7s | %-8s | %s" % (
        "network", "imgs", "main", "graphs", "", "early", "graphs", "", "gain", "graphs",
        "agree", "captured", "exits %"))
    nets = {}
    for name in names:
        run, family = RUNS[name]
        net = networks.load(os.path.join(RESULTS, run, "branchy.npz"))
        net.to_device(device)
        nets[name] = net, family
        samples = args.resnet_samples if name == "B-ResNet-110" else args.samples
        x, _ = test_images(name, samples, args.cifar_images)
        summary["batch1"].append(batch1(name, net, x, frontier.paper_thresholds(family),
                                        args.repeats, out))
    batches = [int(v) for v in args.batches.split(",")]
    for name in names:
        if name == "B-ResNet-110":
            continue  # its short run's exits say little about a trained net's gain curve
        net, family = nets[name]
        x, t = test_images(name, args.batch_samples, args.cifar_images)
        res = bench_network(name, net, x, t, list(frontier.paper_thresholds(family)), batches,
                            args.batch_repeats, 1, out)
        summary["batched"].append(res)
    if args.plot and summary["batched"]:
        plot(summary["batched"], args.plot, "Early-exit gain on %s against batch size" % gpu,
             cpu_time=False, guide=lambda res: (1.0, "no gain"))
        out("wrote %s" % args.plot)
    benchmark.write_outputs(args, summary, out)
    return summary


if __name__ == "__main__":
    main(ARGS)
