"""A Chainer device spec checked before any work: one clear error instead of a CUDA traceback."""
import chainer


def usable(spec):
    """The ``chainer.backend.Device`` of ``spec`` ("@numpy", "@cupy:0", ...), or ValueError saying
    why it cannot be used here and what to do."""
    try:
        device = chainer.get_device(spec)
    except Exception as err:  # Chainer raises several kinds for a bad or unusable spec
        reason = str(err).splitlines()[-1] if str(err) else type(err).__name__
        if "cupy" in str(spec).lower():
            reason = ("no usable GPU here (%s): install CuPy for your CUDA (pip install "
                      "cupy-cuda13x, docs/gpu.md) on a machine with a GPU, or use @numpy" % reason)
        raise ValueError("device %r: %s" % (spec, reason)) from None
    return device
