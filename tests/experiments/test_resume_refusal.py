"""A resume with other settings is refused, naming the setting: one case per flag a stranger is most
likely to change between two launches (the README's promise), through experiments/train.py."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = {"--network": "b-lenet", "--main-epochs": "1", "--joint-epochs": "0", "--batchsize": "128",
        "--weights": "slides", "--seed": "0", "--train-subset": "256", "--val-size": "100"}


def train(out, **changed):
    flags = dict(BASE, **changed)
    argv = [a for pair in flags.items() for a in pair] + ["--out", str(out), "--no-progress"]
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "train.py")] + argv,
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    proc = train(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("flag, value, named", [
    ("--batchsize", "64", "batchsize: 128 -> 64"),
    ("--weights", "code", "weights: 'slides' -> 'code'"),
    ("--seed", "5", "seed: 0 -> 5"),
    ("--train-subset", "512", "train_subset: 256 -> 512"),
    ("--network", "b-alexnet", "network: 'b-lenet' -> 'b-alexnet'"),
])
def test_a_resume_with_one_other_setting_names_it(run, flag, value, named):
    before = (run / "run.json").read_text()
    proc = train(run, **{flag: value})
    assert proc.returncode != 0 and named in proc.stderr, proc.stderr[-2000:]
    assert (run / "run.json").read_text() == before
