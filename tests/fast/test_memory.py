"""Freed memory kept mapped (``fast/memory.py``), in fresh processes (the setting is
process-wide): a large array allocated again after being freed faults in no new pages once it is
on, as many as the first time when switched off; the first fast CPU step switches it on."""
import json
import os
import platform
import subprocess
import sys

import pytest

from branchynet.fast import memory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FAULTS = r"""
import json, resource, numpy
from branchynet.fast import memory
kept = [memory.keep_freed(), memory.keep_freed()]  # the second call: the flag only
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for _ in range(3):
    before = faults()
    a = numpy.ones(16 << 20, numpy.float32)  # 64 MB, past glibc's mmap threshold
    counts.append(faults() - before)
    del a
print(json.dumps({"kept": kept, "faults": counts}))
"""


def _run(code, **env):
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, **env), timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_a_freed_array_comes_back_without_page_faults():
    on = _run(FAULTS, BRANCHYNET_KEEP_MEMORY="1")
    off = _run(FAULTS, BRANCHYNET_KEEP_MEMORY="0")
    # (numpy asks for huge pages on large arrays, so a fault may bring in 4 kB or 2 MB)
    assert on["kept"] == [True, True] and off["kept"] == [False, False]
    first = min(on["faults"][0], off["faults"][0])
    assert first >= (64 << 20) >> 21  # the first time: every page
    assert max(on["faults"][1:]) <= first // 10  # again: the heap block the last one freed
    assert min(off["faults"][1:]) >= first // 2  # returned each time, faulted in again


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_the_first_fast_step_keeps_freed_memory():
    code = r"""
import json, numpy
import branchynet, networks
from branchynet.fast import memory
from branchynet.training import optimizers
before = memory.kept()
net = networks.build("b-lenet")
x = numpy.zeros((4, 1, 28, 28), numpy.float32)
net.train_main(x, numpy.zeros(4, numpy.int32), optimizers.adam()(net))
print(json.dumps({"before": before, "after": memory.kept()}))
"""
    assert _run(code, BRANCHYNET_KEEP_MEMORY="1") == {"before": False, "after": True}
    assert _run(code, BRANCHYNET_KEEP_MEMORY="0") == {"before": False, "after": False}


def test_why_not_names_the_switch_and_the_platform(monkeypatch):
    monkeypatch.setenv("BRANCHYNET_KEEP_MEMORY", "0")
    assert memory.why_not() == "switched off (BRANCHYNET_KEEP_MEMORY=0)"
    monkeypatch.setenv("BRANCHYNET_KEEP_MEMORY", "1")
    assert memory.why_not() == (None if GLIBC else "not Linux with glibc")
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert memory.why_not() == "not Linux with glibc"
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    assert memory.why_not() == "not Linux with glibc"
