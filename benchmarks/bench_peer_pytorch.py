"""This project's CPU path against PyTorch on the same machine, in one run: training steps of the
B-LeNet and B-AlexNet main networks, and batch-1 inference of the same main networks.

    .venv/bin/python benchmarks/bench_peer_pytorch.py --install \
        --out results/benchmarks/peer_pytorch_cpu.json --text-out results/benchmarks/peer_pytorch_cpu.txt

PyTorch is not a dependency of the project: this benchmark runs it in a worker process with a
Python of its own (``--torch-python``; default ``.peer/venv/bin/python`` when it exists, a
git-ignored folder). ``--install`` makes that virtual environment and installs ``torch==2.13.0``
into it with pip. Where pip finds the CPU build of that release on local disk (this workplace's
machines) that is a ~970 MB environment; from PyPI alone, on x86-64 Linux, ``torch`` is the CUDA
build (several GB of wheels, CUDA libraries included, run here on the CPU): the CPU-only wheels are
on PyTorch's own package index, which this project's machines cannot reach.

Both sides build the same networks (the main path of ``networks/lenet_mnist.py`` and
``networks/alex_cifar10.py``: ceil-mode max pooling, Chainer's LRN, dropout in training), on random
N(0, 1) inputs and random labels, with Adam; the time of the arithmetic does not depend on the
values. A training step is forward, softmax cross-entropy, zeroing the gradients, backward and the
update (ours: ``BranchyNet.train_main``); batch-1 inference runs the main network on one sample at a
time (ours: ``predict_main``; PyTorch: the module in eval mode under ``torch.inference_mode``). The
two sides run in turns, one timed block each per round (the worker waits on its pipe while ours
runs, and the other way round), each timed in its own process on the wall clock and the process's
CPU time; medians over rounds. ``--threads K`` (default 2) gives both K threads: ours splits a batch
over K kernel threads (``branchynet.fast.threads``) and PyTorch runs ``torch.set_num_threads(K)``.
"""
import os

from branchynet import benchmark

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
DEFAULT_PEER = os.path.join(REPO, ".peer", "venv")
TORCH_RELEASE = "2.13.0"


def _parse(argv=None):
    p = benchmark.parser(__doc__)
    p.add_argument("--torch-python", default=None,
                   help="a Python that imports torch (default: %s/bin/python)" % DEFAULT_PEER)
    p.add_argument("--install", action="store_true",
                   help="create %s and pip install torch==%s there if it has no torch"
                        % (DEFAULT_PEER, TORCH_RELEASE))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7, help="timed rounds of the B-LeNet cases")
    p.add_argument("--alexnet-rounds", type=int, default=4, help="timed rounds of B-AlexNet training")
    p.add_argument("--lenet-batch", type=int, default=512)
    p.add_argument("--alexnet-batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=3, help="B-LeNet training steps per timed block")
    p.add_argument("--infer-samples", type=int, default=200, help="batch-1 samples per timed block")
    p.add_argument("--skip-alexnet", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return benchmark.parse_args(p, argv)


# ----------------------------------------------------------------------------- PyTorch worker
WORKER = r'''
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class LRN(nn.Module):
    """Chainer's local response normalization: x / (k + alpha sum_window x^2)^beta."""
    def __init__(self, n, k, alpha, beta):
        super().__init__()
        self.inner = nn.LocalResponseNorm(n, alpha=alpha * n, beta=beta, k=k)  # torch divides by n

    def forward(self, x):
        return self.inner(x)


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 5, 5, padding=3), nn.MaxPool2d(2, 2, ceil_mode=True), nn.ReLU(),
        nn.Conv2d(5, 10, 5, padding=3), nn.MaxPool2d(2, 2, ceil_mode=True), nn.ReLU(),
        nn.Conv2d(10, 20, 5, padding=3), nn.MaxPool2d(2, 2, ceil_mode=True), nn.ReLU(),
        nn.Flatten(), nn.Linear(720, 84), nn.Linear(84, 10))


def alexnet():
    lrn = lambda: LRN(3, 2.0, 5e-5, 0.75)
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), lrn(),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), lrn(),
        nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(),
        nn.Conv2d(96, 96, 3, padding=1), nn.ReLU(),
        nn.Conv2d(96, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Flatten(), nn.Linear(1024, 256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


SHAPES = {"lenet": (1, 28, 28), "alexnet": (3, 32, 32)}
cases = {}


def setup(msg):
    torch.manual_seed(msg["seed"])
    model = {"lenet": lenet, "alexnet": alexnet}[msg["net"]]()
    shape = SHAPES[msg["net"]]
    if msg["kind"] == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn((msg["batch"],) + shape)
        t = torch.randint(0, 10, (msg["batch"],))

        def step():
            loss = F.cross_entropy(model(x), t)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
        run = step
    else:
        model.eval()
        xs = [torch.randn((1,) + shape) for _ in range(msg["samples"])]

        def run():
            with torch.inference_mode():
                for x1 in xs:
                    model(x1)
    cases[msg["name"]] = run


def main():
    threads = int(sys.argv[1])
    torch.set_num_threads(threads)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "config": torch.__config__.parallel_info()}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["op"] == "setup":
            setup(msg)
            reply = {"ok": True}
        elif msg["op"] == "run":
            fn = cases[msg["name"]]
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(msg["repeat"]):
                fn()
            w1, c1 = time.perf_counter(), time.process_time()
            reply = {"wall": w1 - w0, "cpu": c1 - c0}
        else:
            break
        print(json.dumps(reply), flush=True)


main()
'''


class Peer:
    """The PyTorch worker process, driven over its stdin/stdout one JSON line at a time."""

    def __init__(self, python, threads):
        import json
        import subprocess
        self.json = json
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads))
        self.proc = subprocess.Popen([python, "-c", WORKER, str(threads)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch worker stopped (exit %s)" % self.proc.poll())
        return self.json.loads(line)

    def ask(self, **msg):
        self.proc.stdin.write(self.json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        try:
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=30)


def find_python(args):
    """A Python that imports torch: --torch-python, else .peer/venv (made with --install)."""
    import subprocess
    import sys
    python = args.torch_python or os.path.join(DEFAULT_PEER, "bin", "python")

    def has_torch(py):
        return os.path.exists(py) and subprocess.run(
            [py, "-c", "import torch"], capture_output=True).returncode == 0
    if has_torch(python):
        return python
    if args.torch_python is None and args.install:
        subprocess.run([sys.executable, "-m", "venv", DEFAULT_PEER], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "torch==%s" % TORCH_RELEASE,
                        "numpy"], check=True)
        if has_torch(python):
            return python
    raise SystemExit("no PyTorch: pass --torch-python PY (a Python that imports torch) or "
                     "--install (creates %s with torch==%s from pip)" % (DEFAULT_PEER, TORCH_RELEASE))


# ----------------------------------------------------------------------------- this project's side
def main(args):
    import statistics
    import time

    import numpy

    import chainer  # noqa: F401

    import branchynet  # noqa: F401  (before chainer)
    import networks
    from branchynet import fast
    from branchynet.training import optimizers

    python = find_python(args)
    fast.threads.set_threads(args.threads)
    out, env, blas = benchmark.start()
    peer = Peer(python, args.threads)
    out("PyTorch %s (%s), %d threads; ours: %d kernel threads" % (
        peer.info["torch"], python, peer.info["threads"], fast.threads.get_threads()))
    rng = numpy.random.default_rng(args.seed)
    summary = {"environment": env, "blas": blas, "settings": vars(args), "torch": peer.info,
               "method": __doc__.split("\n\n", 2)[2], "cases": []}

    cases = [("B-LeNet main training step, batch %d" % args.lenet_batch, "lenet", "b-lenet",
              "train", args.lenet_batch, args.steps, args.rounds),
             ("B-LeNet main path, batch 1 (ms per sample)", "lenet", "b-lenet", "infer", 1, 1,
              args.rounds)]
    if not args.skip_alexnet:
        cases[1:1] = [("B-AlexNet main training step, batch %d" % args.alexnet_batch, "alexnet",
                       "b-alexnet", "train", args.alexnet_batch, 1, args.alexnet_rounds)]
        cases.append(("B-AlexNet main path, batch 1 (ms per sample)", "alexnet", "b-alexnet",
                      "infer", 1, 1, args.rounds))
    shapes = {"lenet": (1, 28, 28), "alexnet": (3, 32, 32)}
    try:
        for label, family, name, kind, batch, repeat, rounds in cases:
            numpy.random.seed(args.seed)
            net = networks.build(name)
            shape = shapes[family]
            peer.ask(op="setup", name=label, net=family, kind=kind, batch=batch,
                     samples=args.infer_samples, seed=args.seed)
            if kind == "train":
                x = rng.standard_normal((batch,) + shape, dtype=numpy.float32)
                t = rng.integers(0, 10, batch).astype(numpy.int32)

                def ours(x=x, t=t, net=net, optimizer=optimizers.adam()(net)):
                    net.train_main(x, t, optimizer)
                per = repeat  # per step
            else:
                xs = [rng.standard_normal((1,) + shape, dtype=numpy.float32)
                      for _ in range(args.infer_samples)]

                def ours(xs=xs, net=net):
                    for x1 in xs:
                        net.predict_main(x1)
                per = args.infer_samples  # per sample (one block = all samples once)
                repeat = 1
            times = {"ours": {"wall": [], "cpu": []}, "pytorch": {"wall": [], "cpu": []}}
            for r in range(rounds + 1):  # round 0 warms up both sides
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(repeat):
                    ours()
                w1, c1 = time.perf_counter(), time.process_time()
                theirs = peer.ask(op="run", name=label, repeat=repeat)
                if r == 0:
                    continue
                times["ours"]["wall"].append((w1 - w0) / per)
                times["ours"]["cpu"].append((c1 - c0) / per)
                times["pytorch"]["wall"].append(theirs["wall"] / per)
                times["pytorch"]["cpu"].append(theirs["cpu"] / per)
            res = {"case": label, "rounds": rounds, "times_s": times}
            for side in ("ours", "pytorch"):
                res[side + "_ms"] = statistics.median(times[side]["wall"]) * 1e3
                res[side + "_cpu_ms"] = statistics.median(times[side]["cpu"]) * 1e3
            res["pytorch_over_ours"] = res["pytorch_ms"] / res["ours_ms"]
            summary["cases"].append(res)
            out("")
            out("%s, medians of %d rounds in turns" % (label, rounds))
            out("  ours    %9.3f ms (range %.3f-%.3f; cpu %.3f ms)" % (
                res["ours_ms"], 1e3 * min(times["ours"]["wall"]), 1e3 * max(times["ours"]["wall"]),
                res["ours_cpu_ms"]))
            out("  PyTorch %9.3f ms (range %.3f-%.3f; cpu %.3f ms)" % (
                res["pytorch_ms"], 1e3 * min(times["pytorch"]["wall"]),
                1e3 * max(times["pytorch"]["wall"]), res["pytorch_cpu_ms"]))
            out("  PyTorch / ours: %.2fx (%s)" % (
                res["pytorch_over_ours"], "ours ahead" if res["pytorch_over_ours"] > 1
                else "PyTorch ahead"))
    finally:
        peer.close()
    out("")
    out("load average at the end: %s" % " ".join("%.2f" % v for v in os.getloadavg()))
    summary["load_average_end"] = list(os.getloadavg())
    benchmark.write_outputs(args, summary, out)
    return summary


if __name__ == "__main__":
    main(_parse())
