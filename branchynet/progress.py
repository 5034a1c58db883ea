"""A small progress bar on stderr for long loops (sweeps, timing runs; training uses Chainer's)."""
import sys
import time


class ProgressBar:
    """``with ProgressBar(total, "epoch 3") as bar: bar.update(n, loss=0.1)``; silent if disabled."""

    def __init__(self, total, desc="", enabled=None, stream=None, width=30):
        self.total, self.desc, self.width = total, desc, width
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._postfix = ""

    def update(self, n=1, **postfix):
        self.done += n
        if postfix:
            self._postfix = " ".join("%s=%.4g" % kv for kv in postfix.items())
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw > 0.2 or self.done >= self.total):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now):
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(frac * self.width)
        elapsed = now - self.start
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        self.stream.write("\r%s [%s%s] %d/%d %.0fs<%.0fs %s" % (
            self.desc, "#" * filled, "." * (self.width - filled), self.done, self.total,
            elapsed, eta, self._postfix))
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
