"""Whole training steps on the GPU (CuPy, Chainer's own kernels, no cuDNN): B-LeNet and B-AlexNet at
batch 512, B-ResNet-110 at batch 128, each as a pretraining step (``train_main``) and a joint step
(``train``), to plan the paper's schedules on a GPU slot.

    python3 benchmarks/bench_gpu_training.py --device @cupy:0 --out OUT/training_gpu.json

A step is what the training loop runs per batch, the host-to-device copy of the batch included.
Warm-up steps first (Chainer's kernels compile on first use), the device synchronised before every
clock read, medians over the timed steps. Inputs are random images of each dataset's shape: the
arithmetic, and so the time, does not depend on the values. Epoch times are ms/step x training-set
size / batch (55000 MNIST, 45000 CIFAR-10 images), training steps only.
"""
import argparse
import json
import platform

import numpy

import chainer

import networks
from branchynet import benchmark
from branchynet.evaluation import timing
from branchynet.training import optimizers

CASES = (("b-lenet", (1, 28, 28), 512, 55000),
         ("b-alexnet", (3, 32, 32), 512, 45000),
         ("b-resnet110", (3, 32, 32), 128, 45000))


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="@cupy:0")
    p.add_argument("--out", default=None, help="write the numbers and the environment to this JSON")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--networks", nargs="*", default=[c[0] for c in CASES])
    return p.parse_args(argv)


def bench(name, shape, batch, train_size, device, warmup, repeats):
    rng = numpy.random.default_rng(0)
    numpy.random.seed(0)
    net = networks.build(name)
    net.to_device(device)
    x = rng.standard_normal((batch,) + shape, dtype=numpy.float32)
    t = rng.integers(0, 10, batch).astype(numpy.int32)
    row = {"network": name, "batch": batch, "epoch_steps": train_size / batch}
    optimizer = optimizers.adam()(net)
    for step, fn in (("main", net.train_main), ("joint", net.train)):
        seconds = benchmark.median_time(lambda fn=fn: fn(x, t, optimizer), repeats, warmup,
                                     clock=lambda: timing.clock(device.xp))
        row[step] = {"ms_per_step": seconds * 1e3, "epoch_s": seconds * train_size / batch}
    return row


def main(argv=None):
    args = _parse(argv)
    device = chainer.get_device(args.device)
    device.use()
    env = {"device": str(device), "python": platform.python_version(),
           "numpy": numpy.__version__, "chainer": chainer.__version__,
           "warmup": args.warmup, "repeats": args.repeats}
    if device.xp is not numpy:
        props = device.xp.cuda.runtime.getDeviceProperties(device.device.id)
        env.update(gpu=props["name"].decode(), cupy=device.xp.__version__,
                   cudnn=chainer.backends.cuda.cudnn_enabled)
    print(json.dumps(env), flush=True)
    rows = []
    for name, shape, batch, train_size in CASES:
        if name not in args.networks:
            continue
        row = bench(name, shape, batch, train_size, device, args.warmup, args.repeats)
        rows.append(row)
        print("%-13s batch %4d  main %8.1f ms/step (%6.1f s/epoch)  joint %8.1f ms/step (%6.1f s/epoch)"
              % (name, batch, row["main"]["ms_per_step"], row["main"]["epoch_s"],
                 row["joint"]["ms_per_step"], row["joint"]["epoch_s"]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
