"""Kernel choices timed on the machine: the faster candidate wins, the choice is kept in the file
and read back by a later process, and the convolution's gradients follow the choice."""
import json
import time

import numpy
import pytest

import branchynet  # noqa: F401  (before chainer)
from branchynet.fast import calibration, conv, layout


@pytest.fixture
def timing_on(tmp_path, monkeypatch):
    path = tmp_path / "kernels.json"
    monkeypatch.setenv("BRANCHYNET_CALIBRATE", "1")
    monkeypatch.setenv("BRANCHYNET_CALIBRATION", str(path))
    calibration.reset()
    yield path
    calibration.reset()


def test_the_faster_candidate_wins_and_is_kept(timing_on):
    calls = {"slow": 0, "fast": 0}

    def slow():
        calls["slow"] += 1
        time.sleep(0.004)

    def fast():
        calls["fast"] += 1
    assert calibration.choose("k", {"slow": slow, "fast": fast}, default="slow") == "fast"
    assert calls == {"slow": 6, "fast": 6}  # a warm-up and five timed calls each
    saved = json.loads(timing_on.read_text())
    (machine, table), = saved.items()
    assert calibration.cpu_model() in machine
    assert table["k"]["choice"] == "fast" and table["k"]["ms"]["slow"] >= 4.0
    # Asked again, and by a new process (the file read anew): no timing.
    calibration.reset()
    assert calibration.choose("k", {"slow": slow, "fast": fast}, default="slow") == "fast"
    assert calls == {"slow": 6, "fast": 6}
    assert calibration.choices() == {"k": "fast"}


def test_a_new_candidate_is_timed_against_a_kept_choice(timing_on):
    """A choice kept from before a path existed (a newer version, a new kernel) is timed again
    with it; a candidate missing this time (a kernel off here) does not cause timing."""
    slow = {"old": lambda: time.sleep(0.004), "older": lambda: time.sleep(0.006)}
    assert calibration.choose("k", slow, default="older") == "old"
    calibration.reset()
    grown = dict(slow, new=lambda: None)
    assert calibration.choose("k", grown, default="older") == "new"
    calibration.reset()
    ran = []
    assert calibration.choose("k", {"older": lambda: ran.append(1), "new": lambda: None},
                              default="older") == "new"
    assert ran == []


def test_choices_reports_only_what_this_process_ran(timing_on):
    """The file holds every shape timed on this CPU by any run; a benchmark records its own."""
    fast = {"slow": lambda: time.sleep(0.004), "fast": lambda: None}
    calibration.choose("other run's shape", fast, default="slow")
    calibration.reset()  # a new process: the file has the other run's choice
    assert calibration.choices() == {}
    calibration.choose("this run's shape", fast, default="slow")
    assert calibration.choices() == {"this run's shape": "fast"}
    assert set(json.loads(timing_on.read_text()).popitem()[1]) == {"other run's shape",
                                                                   "this run's shape"}


def test_the_default_stays_unless_another_is_clearly_faster(timing_on):
    """Within the margin the default is kept: a choice must not flip with timing noise."""
    def default():
        time.sleep(0.0105)

    def other():
        time.sleep(0.010)
    assert calibration.choose("near", {"default": default, "other": other}, "default") == "default"
    assert calibration.choose("far", {"default": lambda: time.sleep(0.01), "other": lambda: None},
                              "default") == "other"


def test_timing_off_gives_the_default_and_writes_nothing(timing_on, monkeypatch):
    monkeypatch.setenv("BRANCHYNET_CALIBRATE", "0")
    assert calibration.choose("k", {"a": lambda: time.sleep(0.01), "b": lambda: None}, "a") == "a"
    assert not timing_on.exists()


def test_a_damaged_file_is_measured_again(timing_on):
    timing_on.write_text("{not json")
    assert calibration.choose("k", {"a": lambda: time.sleep(0.004), "b": lambda: None}, "a") == "b"
    assert json.loads(timing_on.read_text())


def test_a_default_outside_the_candidates_is_refused():
    with pytest.raises(ValueError, match="default 'c'"):
        calibration.choose("k", {"a": lambda: None, "b": lambda: None}, "c")


@pytest.mark.parametrize("path", ["corr", "col2im"])
def test_conv_input_gradient_follows_the_choice(path, monkeypatch):
    rng = numpy.random.RandomState(0)
    x = rng.standard_normal((3, 4, 7, 6)).astype(numpy.float32)
    W = rng.standard_normal((5, 4, 3, 3)).astype(numpy.float32)
    g = layout.geom(x.shape, W.shape, (1, 1), (1, 1))
    gy = rng.standard_normal((3, 5, g.OH, g.OW)).astype(numpy.float32)
    ran = []
    for name in ("_corr_grad_x", "_col2im_grad_x"):
        real = getattr(conv, name)
        monkeypatch.setattr(conv, name, lambda *a, real=real, name=name: ran.append(name) or real(*a))
    monkeypatch.setattr(conv.calibration, "choose",
                        lambda key, candidates, default: path if path in candidates else default)
    gx = conv.grad_x(W, gy, g, numpy.float32)
    assert ran == ["_corr_grad_x" if path == "corr" else "_col2im_grad_x"]
    assert gx.shape == x.shape


def test_cpu_model_tells_generations_of_one_name_apart(tmp_path):
    """A virtual machine's generic model name gets the first processor's family, model and
    stepping numbers; where cpuinfo has none (other architectures), the name alone."""
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\n"
                    "model name\t: Intel(R) Xeon(R) Processor\nstepping\t: 2\n\n"
                    "processor\t: 1\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Other\n")
    assert calibration.cpu_model(str(info)) == (
        "Intel(R) Xeon(R) Processor (family 6, model 207, stepping 2)")
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nBogoMIPS\t: 50.00\n")
    assert calibration.cpu_model(str(info)) == "Some CPU"
