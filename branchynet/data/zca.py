"""ZCA whitening then per-image min-max, the recipe of the authors' ``datasets/cifar10.py``.

The second CIFAR-10 candidate of the original repository (``datasets.py``'s "zca"): on the raw 0-255
pixels of each image, flattened, minus the per-feature mean of the training images, times the
components U diag(1/sqrt(S)) U^T of the SVD of the training covariance X^T X / N, with no epsilon;
then each image rescaled to [0, 1] by its own minimum and maximum. Test images use the training
mean and components.

The original ran numpy on float32 arrays, so the mean, covariance, SVD and components here are
float32 too (numpy's SVD keeps float32 input in float32, LAPACK's sgesdd).
"""
import numpy as np


def zca_statistics(x_raw):
    """``{"zca_mean", "zca_components"}`` of the uint8 images ``x_raw`` (N x ...; each image flattened
    to D features), in float32: the per-feature mean (D) and the whitening matrix (D x D). Raises
    ValueError where the covariance is singular for certain (N <= D, or a constant feature)."""
    flat = x_raw.reshape(len(x_raw), -1)
    _check_full_rank(flat)
    x = flat.astype(np.float32)
    mean = x.mean(axis=0)
    x -= mean
    covariance = x.T @ x
    covariance /= np.float32(len(x))
    u, s, _ = np.linalg.svd(covariance)
    components = (u / np.sqrt(s)) @ u.T
    return {"zca_mean": mean, "zca_components": components}


def _check_full_rank(flat):
    """Raises ValueError naming the cause where the N x D images certainly have a singular covariance."""
    n, d = flat.shape
    constant = int((flat.min(axis=0) == flat.max(axis=0)).sum())
    if n <= d or constant:
        why = (f"{n} images for {d} features (it needs more images than features)" if n <= d
               else f"{constant} of the {d} features are the same in every image")
        raise ValueError(f"ZCA has no epsilon, so it needs a non-singular covariance of the training "
                         f"images, and this one is singular: {why}. Whiten more images, or choose "
                         f"another preprocessing")


def zca_whiten(x_raw, statistics, chunk=5000):
    """float32 copy of the uint8 images ``x_raw``, whitened with ``statistics`` (``zca_statistics``)
    and each image min-max rescaled to [0, 1]; in chunks of images so that temporaries stay small."""
    flat = x_raw.reshape(len(x_raw), -1)
    out = np.empty(flat.shape, np.float32)
    for start in range(0, len(flat), chunk):
        part = flat[start:start + chunk].astype(np.float32)
        part -= statistics["zca_mean"]
        whitened = part @ statistics["zca_components"].T
        whitened -= whitened.min(axis=1, keepdims=True)
        whitened /= whitened.max(axis=1, keepdims=True)
        out[start:start + chunk] = whitened
    return out.reshape(x_raw.shape)
