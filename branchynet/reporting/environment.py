"""Where and how a result was made: date, command line, hardware, thread settings, library versions."""
import datetime
import os
import platform
import shlex
import sys

import numpy

from branchynet.evaluation import timing
from branchynet.fast import calibration
from branchynet.versions import versions


def environment(argv=None, gpu=None):
    """Where and how a result was made: date, command line, hardware, thread settings, versions.

    ``gpu``: a CuPy ``chainer.backend.Device`` whose name to record, or None.
    """
    argv = sys.argv if argv is None else argv
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in argv),
        "cwd": os.getcwd(),
        "hardware": {"cpu": calibration.cpu_model(), "machine": platform.machine(),
                     "cpu_threads": timing.cpu_threads(), "gpu": None},
        "platform": platform.platform(),
        "versions": versions(gpu),
    }
    try:
        info["numpy_blas"] = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:
        info["numpy_blas"] = None
    if gpu is not None:
        info["hardware"]["gpu"] = timing.gpu_name(gpu)
    return info

