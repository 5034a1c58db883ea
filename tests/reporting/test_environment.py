"""The record of where and how a result was made."""
import datetime

import chainer

from branchynet import versions
from branchynet.reporting import environment


def test_environment_records_the_command_hardware_and_versions():
    env = environment.environment(["experiments/x.py", "--flag", "a b"])
    assert env["command"] == "python experiments/x.py --flag 'a b'"  # quoted as a shell would
    assert env["versions"]["chainer"] == chainer.__version__
    assert env["hardware"]["gpu"] is None and env["hardware"]["cpu_threads"]["cpu_count"] >= 1
    assert datetime.datetime.fromisoformat(env["date"]).tzinfo is not None


def test_versions_name_an_unimportable_module_instead_of_raising():
    assert versions._version("no_such_module_here") is None
    assert versions.versions()["numpy"] and environment.environment()["versions"]["chainer"]
