"""experiments/faults.py: its comparison notices any difference, a flip changes one bit, and a
short run writes its counts."""
import json
import os
import sys

import numpy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def faults_script():
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    try:
        import faults
    finally:
        sys.path.pop(0)
    return faults


def test_same_notices_one_changed_value_or_log_line():
    faults = faults_script()
    a = {"branchy.npz": {"w": numpy.arange(4.0)}, "main.npz": {"w": numpy.ones(2)},
         "log": [{"epoch": 1}]}
    b = {"branchy.npz": {"w": numpy.arange(4.0)}, "main.npz": {"w": numpy.ones(2)},
         "log": [{"epoch": 1}]}
    assert faults.same(a, b)
    b["main.npz"]["w"][1] = numpy.nextafter(1.0, 2.0)
    assert not faults.same(a, b)
    b["main.npz"]["w"][1] = 1.0
    b["log"] = [{"epoch": 2}]
    assert not faults.same(a, b)


def test_flip_changes_exactly_one_bit(tmp_path):
    import random
    faults = faults_script()
    path = tmp_path / "f"
    before = bytes(range(256)) * 4
    path.write_bytes(before)
    offset, bit = faults.flip(str(path), random.Random(1))
    after = path.read_bytes()
    diff = [i for i in range(len(before)) if before[i] != after[i]]
    assert diff == [offset] and before[offset] ^ after[offset] == 1 << bit


def test_a_short_run_writes_its_counts(tmp_path):
    faults = faults_script()
    rc = faults.main(["--trials", "model-flips", "snapshot-flips", "--count", "model-flips=4",
                      "--count", "snapshot-flips=4", "--out", str(tmp_path)])
    info = json.loads((tmp_path / "faults.json").read_text())
    assert rc == 0 and set(info["results"]) == {"model-flips", "snapshot-flips"}
    lines = (tmp_path / "summary.txt").read_text().splitlines()
    assert lines[0].startswith("model-flips 4/4 ") and lines[1].startswith("snapshot-flips 4/4 ")
