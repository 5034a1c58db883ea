"""This project's CPU path against PyTorch on the same machine, in one run: main (pretraining) and
joint training steps of B-LeNet and B-AlexNet, and batch-1 inference of their main networks.

    .venv/bin/python benchmarks/bench_peer_pytorch.py --install \
        --out results/benchmarks/peer_pytorch_cpu.json --text-out results/benchmarks/peer_pytorch_cpu.txt

Cases, in this order (``--cases`` picks some by name, comma-separated; ``--skip-alexnet`` drops
B-AlexNet's): lenet-main, lenet-joint, alexnet-main, alexnet-joint (training steps), lenet-batch1,
alexnet-batch1 (batch-1 inference). Single layers run only when named: lenet-conv1..3,
lenet-pool1, alexnet-conv1..5, alexnet-pool1 (a convolution's forward and all its gradients, or a
max pooling's forward and input gradient, on the training batch; the networks' first convolution
without the input gradient, as in training), and gemm (one float32 matrix product, 64x800 by
800x4608: numpy's OpenBLAS against ``torch.mm``); each reports GMAC/s on both sides.

PyTorch is not a dependency of the project: this benchmark runs it in a worker process with a
Python of its own (``--torch-python``; default ``.peer/venv/bin/python`` when it exists, a
git-ignored folder). ``--install`` makes that virtual environment and installs ``torch==2.13.0``
into it with pip. Where pip finds the CPU build of that release on local disk (this workplace's
machines) that is a ~970 MB environment; from PyPI alone, on x86-64 Linux, ``torch`` is the CUDA
build (several GB of wheels, CUDA libraries included, run here on the CPU): the CPU-only wheels are
on PyTorch's own package index, which this project's machines cannot reach.

Both sides build the same branchy networks (``networks/lenet_mnist.py`` and the "faithful"
``networks/alex_cifar10.py``: ceil-mode max pooling, Chainer's LRN, dropout in training; the layers
a head begins with that equal the trunk's next ones run once, as ours runs them), checked by their
parameter counts, on random N(0, 1) inputs and random labels, with Adam; the time of the arithmetic
does not depend on the values. A training step is forward, loss, zeroing the gradients, backward
and the update: a main step trains the main network on its softmax cross-entropy (ours:
``BranchyNet.train_main``), a joint step every exit on the weighted sum of their cross-entropies,
with our network's loss weights (ours: ``BranchyNet.train``). Batch-1 inference runs the main
network on one sample at a time (ours: ``predict_main``; PyTorch: the module in eval mode under
``torch.inference_mode``). The two sides run in turns, one timed block each per round (the worker
waits on its pipe while ours runs, and the other way round), each timed in its own process on the
wall clock and the process's CPU time; medians over rounds. ``--threads K`` (default 2) gives both
K threads: ours splits a batch over K kernel threads (``branchynet.fast.threads``) and PyTorch runs
``torch.set_num_threads(K)``. The output records the CPU model (``environment.hardware.cpu``) and
our kernel settings (``kernels``: the fast-kernel switch, threads, the compiled kernels and their
limits; for batch-1 cases the convolutions that run as the compiled direct kernel). Ours keeps
freed memory mapped for the next step (``branchynet.fast.memory``); PyTorch runs with glibc's
defaults, or with the same setting under ``--peer-keeps-memory``.
"""
import os
import statistics
import time

import numpy

import chainer
import chainer.links as L

import networks
from branchynet import benchmark, fast
from branchynet.data import split
from branchynet.fast import jit
from branchynet.model.layers import MaxPool
from branchynet.training import optimizers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
DEFAULT_PEER = os.path.join(REPO, ".peer", "venv")
TORCH_RELEASE = "2.13.0"
# short name: (network, kind); kind "main" or "joint" (training steps) or "batch1" (inference)
CASES = {"lenet-main": ("b-lenet", "main"), "lenet-joint": ("b-lenet", "joint"),
         "alexnet-main": ("b-alexnet", "main"), "alexnet-joint": ("b-alexnet", "joint"),
         "lenet-batch1": ("b-lenet", "batch1"), "alexnet-batch1": ("b-alexnet", "batch1")}
# Single layers, run only when --cases names them: where a training step's time goes, side by side.
# conv: (C, H, O, k, pad, input gradient?) on a batch, forward and every gradient; pool: (C, H, k),
# max pooling with stride 2, ceil mode, forward and input gradient; gemm: (M, K, N), C = A B.
LAYERS = {"lenet-conv1": ("b-lenet", "conv", (1, 28, 5, 5, 3, False)),
          "lenet-conv2": ("b-lenet", "conv", (5, 15, 10, 5, 3, True)),
          "lenet-conv3": ("b-lenet", "conv", (10, 9, 20, 5, 3, True)),
          "lenet-pool1": ("b-lenet", "pool", (5, 30, 2)),
          "alexnet-conv1": ("b-alexnet", "conv", (3, 32, 32, 5, 2, False)),
          "alexnet-conv2": ("b-alexnet", "conv", (32, 16, 64, 5, 2, True)),
          "alexnet-conv3": ("b-alexnet", "conv", (64, 8, 96, 3, 1, True)),
          "alexnet-conv4": ("b-alexnet", "conv", (96, 8, 96, 3, 1, True)),
          "alexnet-conv5": ("b-alexnet", "conv", (96, 8, 64, 3, 1, True)),
          "alexnet-pool1": ("b-alexnet", "pool", (32, 32, 3)),
          "gemm": (None, "gemm", (64, 800, 4608))}


def _parse(argv=None):
    p = benchmark.parser(__doc__)
    p.add_argument("--torch-python", default=None,
                   help="a Python that imports torch (default: %s/bin/python)" % DEFAULT_PEER)
    p.add_argument("--install", action="store_true",
                   help="create %s and pip install torch==%s there if it has no torch"
                        % (DEFAULT_PEER, TORCH_RELEASE))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peer-keeps-memory", action="store_true",
                   help="run PyTorch with glibc's malloc keeping freed memory, as ours does")
    p.add_argument("--cases", default=",".join(CASES),
                   help="comma-separated cases to run, of: %(default)s")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds of the B-LeNet and batch-1 cases")
    p.add_argument("--alexnet-rounds", type=int, default=4, help="timed rounds of B-AlexNet training")
    p.add_argument("--lenet-batch", type=int, default=512)
    p.add_argument("--alexnet-batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=3, help="B-LeNet training steps per timed block")
    p.add_argument("--infer-samples", type=int, default=200, help="batch-1 samples per timed block")
    p.add_argument("--skip-alexnet", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = benchmark.parse_args(p, argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(args.cases) - set(CASES) - set(LAYERS))
    if unknown:
        p.error("unknown cases %s; known: %s" % (", ".join(unknown),
                                                 ", ".join(list(CASES) + list(LAYERS))))
    return args


# ----------------------------------------------------------------------------- PyTorch worker
WORKER = r'''
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Branchy(nn.Module):
    """Trunk segments and one head per exit; the layers a head shares with the next segment end
    the segment before it (run once, as ours runs them)."""
    def __init__(self, segments, heads, weights):
        super().__init__()
        self.segments = nn.ModuleList(nn.Sequential(*s) for s in segments)
        self.heads = nn.ModuleList(nn.Sequential(*h) for h in heads)
        self.weights = weights

    def forward(self, x):
        """The main network's logits."""
        for segment in self.segments:
            x = segment(x)
        return self.heads[-1](x)

    def joint_loss(self, x, t):
        """The weighted sum of every exit's cross-entropy, from one pass through the trunk."""
        loss = 0.0
        for segment, head, w in zip(self.segments, self.heads, self.weights):
            x = segment(x)
            loss = loss + w * F.cross_entropy(head(x), t)
        return loss


def pool(k):
    return nn.MaxPool2d(k, 2, ceil_mode=True)


def lrn():
    """Chainer's LRN(n=3, k=2, alpha=5e-5, beta=0.75): torch divides alpha by n."""
    return nn.LocalResponseNorm(3, alpha=5e-5 * 3, beta=0.75, k=2.0)


def lenet(weights):
    return Branchy(
        [[nn.Conv2d(1, 5, 5, padding=3), pool(2), nn.ReLU()],  # + exit 1's pool and ReLU
         [nn.Conv2d(5, 10, 5, padding=3), pool(2), nn.ReLU(),
          nn.Conv2d(10, 20, 5, padding=3), pool(2), nn.ReLU(), nn.Flatten(), nn.Linear(720, 84)]],
        [[nn.Conv2d(5, 10, 3, padding=1), pool(2), nn.ReLU(), nn.Flatten(), nn.Linear(640, 10)],
         [nn.Linear(84, 10)]], weights)


def alexnet(weights):
    conv = lambda n: [nn.Conv2d(n, 32, 3, padding=1), nn.ReLU()]
    cap = lambda n: [pool(3), nn.Flatten(), nn.Linear(n, 10)]
    return Branchy(
        [[nn.Conv2d(3, 32, 5, padding=2), nn.ReLU(), pool(3), lrn(),
          nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), pool(3), lrn()],  # + branch 1's norm()
         [nn.Conv2d(64, 96, 3, padding=1), nn.ReLU()],  # + the ReLU of branch 2's norm()
         [nn.Conv2d(96, 96, 3, padding=1), nn.ReLU(), nn.Conv2d(96, 64, 3, padding=1), nn.ReLU(),
          pool(3), nn.Flatten(), nn.Linear(1024, 256), nn.ReLU(), nn.Dropout(0.5),
          nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.5)]],
        [conv(64) + conv(32) + cap(512), [pool(3), lrn()] + conv(96) + cap(128), [nn.Linear(128, 10)]],
        weights)


cases = {}


def setup_layer(msg):
    """A single layer's timed block (see LAYERS); returns its parameter count."""
    kind, spec, n = msg["kind"], msg["spec"], msg["batch"]
    if kind == "gemm":
        m, k, cols = spec
        a, b, out = torch.randn(m, k), torch.randn(k, cols), torch.empty(m, cols)
        cases[msg["name"]] = lambda: torch.mm(a, b, out=out)
        return 0
    if kind == "conv":
        c, h, o, k, pad, grad_x = spec
        layer = nn.Conv2d(c, o, k, padding=pad)
    else:
        c, h, k = spec
        layer, grad_x = pool(k), True
    x = torch.randn(n, c, h, h, requires_grad=grad_x)
    gy = torch.randn_like(layer(x))

    def run():
        layer.zero_grad(set_to_none=False)
        layer(x).backward(gy)
    cases[msg["name"]] = run
    return sum(p.numel() for p in layer.parameters())


def setup(msg):
    """Builds a case's network and its timed block; returns the network's parameter count."""
    torch.manual_seed(msg["seed"])
    if msg["kind"] in ("conv", "pool", "gemm"):
        return setup_layer(msg)
    model = {"b-lenet": lenet, "b-alexnet": alexnet}[msg["net"]](msg["weights"])
    shape = tuple(msg["shape"])
    if msg["kind"] == "batch1":
        model.eval()
        xs = [torch.randn((1,) + shape) for _ in range(msg["samples"])]

        def run():
            with torch.inference_mode():
                for x1 in xs:
                    model(x1)
    else:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn((msg["batch"],) + shape)
        t = torch.randint(0, 10, (msg["batch"],))
        loss_of = (model.joint_loss if msg["kind"] == "joint"
                   else lambda x, t: F.cross_entropy(model(x), t))

        def run():
            loss = loss_of(x, t)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
    cases[msg["name"]] = run
    return sum(p.numel() for p in model.parameters())


def main():
    threads = int(sys.argv[1])
    torch.set_num_threads(threads)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "config": torch.__config__.parallel_info()}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["op"] == "setup":
            reply = {"params": setup(msg)}
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

    def __init__(self, python, threads, keeps_memory=False):
        import json
        import subprocess
        self.json = json
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads))
        if keeps_memory:  # glibc's malloc as branchynet.fast.memory sets ours
            env.update(MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_=str(2 ** 31 - 1))
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
def plan(args):
    """The cases to run, in CASES' order: dicts of name, label, net, kind, batch, repeat (steps per
    timed block; a batch-1 block is all --infer-samples samples once) and rounds."""
    every = dict(CASES, **{name: (net, kind) for name, (net, kind, _) in LAYERS.items()})
    names = [n for n in every if n in args.cases
             and not (args.skip_alexnet and every[n][0] == "b-alexnet")]
    cases = []
    for name in names:
        net, kind = every[name]
        if name in LAYERS:
            cases.append(_layer_case(name, args))
            continue
        lenet = net == "b-lenet"
        title = "B-LeNet" if lenet else "B-AlexNet"
        batch = args.lenet_batch if lenet else args.alexnet_batch
        case = {"name": name, "net": net, "kind": kind, "batch": batch,
                "repeat": args.steps if lenet else 1,
                "rounds": args.rounds if lenet else args.alexnet_rounds}
        if kind == "batch1":
            case.update(label="%s main path, batch 1 (ms per sample)" % title, batch=1, repeat=1,
                        rounds=args.rounds)
        else:
            case["label"] = "%s %s training step, batch %d" % (title, kind, batch)
        cases.append(case)
    return cases


def _layer_case(name, args):
    """A LAYERS case: its label, batch, steps per timed block, rounds and MACs per block."""
    net, kind, spec = LAYERS[name]
    lenet = net == "b-lenet"
    batch = args.lenet_batch if lenet else args.alexnet_batch
    case = {"name": name, "net": net, "kind": kind, "spec": list(spec), "batch": batch,
            "repeat": args.steps if net != "b-alexnet" else 1,
            "rounds": args.rounds if net != "b-alexnet" else args.alexnet_rounds}
    if kind == "gemm":
        m, k, cols = spec
        case.update(batch=0, macs=m * k * cols,
                    label="float32 matrix product %dx%d by %dx%d" % (m, k, k, cols))
        return case
    title = name.replace("lenet-", "B-LeNet ").replace("alexnet-", "B-AlexNet ")
    if kind == "conv":
        c, h, o, k, pad, grad_x = spec
        out = h + 2 * pad - k + 1
        case["macs"] = batch * o * c * k * k * out * out * (3 if grad_x else 2)
        case["label"] = "%s %d->%d %dx%d on %dx%d, forward + gradients%s, batch %d" % (
            title, c, o, k, k, h, h, "" if grad_x else " (no input gradient)", batch)
    else:
        c, h, k = spec
        case["label"] = "%s max pool %dx%d/2 of %dx%dx%d, forward + gradient, batch %d" % (
            title, k, k, c, h, h, batch)
    return case


def _our_layer(case, rng):
    """Our side of a LAYERS case: the timed block's work and its parameter count."""
    if case["kind"] == "gemm":
        m, k, cols = case["spec"]
        a = rng.standard_normal((m, k), dtype=numpy.float32)
        b = rng.standard_normal((k, cols), dtype=numpy.float32)
        out = numpy.empty((m, cols), numpy.float32)
        return (lambda: numpy.matmul(a, b, out=out)), 0
    n = case["batch"]
    if case["kind"] == "conv":
        c, h, o, k, pad, grad_x = case["spec"]
        layer = L.Convolution2D(c, o, k, pad=pad)
        params = int(sum(p.size for p in layer.params()))
    else:
        c, h, k = case["spec"]
        layer, grad_x, params = MaxPool(k, 2), True, 0
    x = rng.standard_normal((n, c, h, h), dtype=numpy.float32)
    gy = rng.standard_normal(fast.switch.apply(layer, x).shape, dtype=numpy.float32)

    def run():
        if params:
            layer.cleargrads()
        with fast.cpu_scope(x):
            y = fast.switch.apply(layer, chainer.Variable(x, requires_grad=grad_x))
            y.grad = gy
            y.backward()
    return run, params


def direct_convs(net):
    """The main path's convolutions that the batch-1 programs run as the compiled direct kernel
    (``jit.direct_conv_applies``; the others: im2col + GEMM), as "CxKxK->O"."""
    convs = [layer for segment in net.segments for layer in segment.layers
             if isinstance(layer, L.Convolution2D)]
    return ["%dx%dx%d->%d" % (c.W.shape[1], c.W.shape[2], c.W.shape[3], c.W.shape[0])
            for c in convs if jit.direct_conv_applies(c, numpy.float32, 1)]


def ours(case, net, shape, rng, samples):
    """Our side of a case: (one call of the timed block's work, its units per block: steps or
    samples)."""
    if case["kind"] == "batch1":
        xs = [rng.standard_normal((1,) + shape, dtype=numpy.float32) for _ in range(samples)]

        def infer():
            for x1 in xs:
                net.predict_main(x1)
        return infer, samples
    x = rng.standard_normal((case["batch"],) + shape, dtype=numpy.float32)
    t = rng.integers(0, 10, case["batch"]).astype(numpy.int32)
    step = net.train if case["kind"] == "joint" else net.train_main
    optimizer = optimizers.adam()(net)
    return (lambda: step(x, t, optimizer)), case["repeat"]


def time_case(case, peer, args, rng):
    """Builds a case on both sides (same parameter count, or an error) and times it in turns:
    the case's record with both sides' medians (ms per step or per sample)."""
    numpy.random.seed(args.seed)
    if "spec" in case:
        run, params = _our_layer(case, rng)
        per, weights = case["repeat"], []
        theirs_params = peer.ask(op="setup", name=case["name"], kind=case["kind"],
                                 spec=case["spec"], batch=case["batch"], seed=args.seed)["params"]
    else:
        net = networks.build(case["net"])
        shape = split.SAMPLE_SHAPES[networks.dataset_of(case["net"])]
        params, weights = int(sum(p.size for p in net.params())), list(net.weights)
        theirs_params = peer.ask(op="setup", name=case["name"], net=case["net"], kind=case["kind"],
                                 batch=case["batch"], samples=args.infer_samples, seed=args.seed,
                                 shape=shape, weights=weights)["params"]
        run, per = ours(case, net, shape, rng, args.infer_samples)
    if theirs_params != params:
        raise RuntimeError("%s: PyTorch's has %d parameters, ours %d"
                           % (case["name"], theirs_params, params))
    times = {"ours": {"wall": [], "cpu": []}, "pytorch": {"wall": [], "cpu": []}}
    for r in range(case["rounds"] + 1):  # round 0 warms up both sides
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(case["repeat"]):
            run()
        w1, c1 = time.perf_counter(), time.process_time()
        theirs = peer.ask(op="run", name=case["name"], repeat=case["repeat"])
        if r == 0:
            continue
        for side, wall, cpu in (("ours", w1 - w0, c1 - c0),
                                ("pytorch", theirs["wall"], theirs["cpu"])):
            times[side]["wall"].append(wall / per)
            times[side]["cpu"].append(cpu / per)
    res = dict(case, params=params, weights=weights, times_s=times)
    if case["kind"] == "batch1":
        res["direct_convs"] = direct_convs(net)
    for side in ("ours", "pytorch"):
        res[side + "_ms"] = statistics.median(times[side]["wall"]) * 1e3
        res[side + "_cpu_ms"] = statistics.median(times[side]["cpu"]) * 1e3
    res["pytorch_over_ours"] = res["pytorch_ms"] / res["ours_ms"]
    if "macs" in case:
        for side in ("ours", "pytorch"):
            res[side + "_gmacs"] = case["macs"] / res[side + "_ms"] / 1e6
    return res


def report(res, out):
    """Prints one case's medians and ranges."""
    times = res["times_s"]
    out("")
    out("%s, medians of %d rounds in turns" % (res["label"], res["rounds"]))
    extra = ", loss weights %s" % res["weights"] if res["kind"] == "joint" else ""
    if res["kind"] == "gemm":
        extra = "; %.3f GMAC a block" % (res["macs"] / 1e9)
    if res["kind"] == "batch1":
        extra = ", direct convolutions: %s" % (", ".join(res["direct_convs"]) or "none")
    out("  parameters: %d on both sides%s" % (res["params"], extra))
    for side, name in (("ours", "ours   "), ("pytorch", "PyTorch")):
        rate = " %.1f GMAC/s" % res[side + "_gmacs"] if side + "_gmacs" in res else ""
        out("  %s %9.3f ms (range %.3f-%.3f; cpu %.3f ms)%s" % (
            name, res[side + "_ms"], 1e3 * min(times[side]["wall"]),
            1e3 * max(times[side]["wall"]), res[side + "_cpu_ms"], rate))
    out("  PyTorch / ours: %.2fx (%s)" % (
        res["pytorch_over_ours"], "ours ahead" if res["pytorch_over_ours"] > 1 else "PyTorch ahead"))


def main(args):
    python = find_python(args)
    fast.threads.set_threads(args.threads)
    out, env, blas = benchmark.start()
    kernels = benchmark.kernels()
    peer = Peer(python, args.threads, args.peer_keeps_memory)
    out("PyTorch %s (%s), %d threads; ours: %d kernel threads" % (
        peer.info["torch"], python, peer.info["threads"], kernels["threads"]))
    out("freed memory: ours keeps it for the next step (unless BRANCHYNET_KEEP_MEMORY=0); "
        "PyTorch %s" % ("the same (--peer-keeps-memory)" if args.peer_keeps_memory
                        else "returns it (glibc's defaults)"))
    out("our kernels: fast CPU kernels %s; compiled (Numba) kernels %s; limits %s" % (
        "on" if kernels["fast_cpu"] else "off",
        "on" if kernels["jit"] else "off (%s)" % kernels["jit_why_not"],
        " ".join("%s=%s" % kv for kv in kernels["jit_limits"].items())))
    rng = numpy.random.default_rng(args.seed)
    summary = {"environment": env, "blas": blas, "kernels": kernels, "settings": vars(args),
               "torch": peer.info, "method": __doc__.split("\n\n", 2)[2], "cases": []}
    try:
        for case in plan(args):
            summary["cases"].append(time_case(case, peer, args, rng))
            report(summary["cases"][-1], out)
    finally:
        peer.close()
    out("")
    width = max([45] + [len(res["label"]) for res in summary["cases"]])
    out("%-*s %11s %11s %8s" % (width, "case (ms per step or per sample)", "ours", "PyTorch",
                                "PT/ours"))
    for res in summary["cases"]:
        out("%-*s %11.3f %11.3f %7.2fx" % (width, res["label"], res["ours_ms"], res["pytorch_ms"],
                                            res["pytorch_over_ours"]))
    out("load average at the end: %s" % " ".join("%.2f" % v for v in os.getloadavg()))
    summary["load_average_end"] = list(os.getloadavg())
    benchmark.write_outputs(args, summary, out)
    return summary


if __name__ == "__main__":
    main(_parse())
