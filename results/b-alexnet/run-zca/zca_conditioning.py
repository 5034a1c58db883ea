"""How ZCA without epsilon behaves on CIFAR-10's training part (45,000 images, validation 5,000,
seed 0: the statistics of results/b-alexnet/run-zca): the singular values of the covariance of the
raw 0-255 pixels in float32 (as the original's numpy on float32 arrays, and as
branchynet.data.zca) against float64, and whether any whitened image is non-finite.

    PYTHONPATH=. BRANCHYNET_DATA=... python results/b-alexnet/run-zca/zca_conditioning.py \\
        > results/b-alexnet/run-zca/zca_conditioning.txt
"""
import numpy as np

from branchynet.data import datasets, zca


def covariance(flat, dtype):
    x = flat.astype(dtype)
    x -= x.mean(axis=0)
    return x.T @ x / dtype(len(x))


def main(val_size=5000):
    x, _, x_test, _ = datasets.load_cifar10_raw(download=False)
    order = np.random.RandomState(0).permutation(len(x))  # as split.load_split
    keep, val = np.sort(order[val_size:]), np.sort(order[:val_size])
    flat = x[keep].reshape(len(keep), -1)
    s32 = np.linalg.svd(covariance(flat, np.float32), compute_uv=False)
    u64, s64, _ = np.linalg.svd(covariance(flat, np.float64))
    print(f"CIFAR-10 training part: {len(keep)} images x {flat.shape[1]} features (raw 0-255 pixels)")
    print(f"{'':22}{'float32':>14}{'float64':>14}")
    for name, i in (("largest S", 0), ("second S", 1), ("smallest S", -1), ("second smallest S", -2)):
        print(f"{name:22}{s32[i]:14.6g}{s64[i]:14.6g}")
    print(f"{'condition number':22}{s32[0] / s32[-1]:14.4g}{s64[0] / s64[-1]:14.4g}")
    relative = np.abs(s32 - s64) / s64
    print(f"float32 vs float64 S, relative difference: max {relative.max():.2e} "
          f"(over the 100 smallest {relative[-100:].max():.2e}), median {np.median(relative):.2e}")
    print(f"singular values below 1: {(s32 < 1).sum()} (float32), {(s64 < 1).sum()} (float64); "
          f"1/sqrt(S) up to {s32[-1] ** -0.5:.3f}")
    stats = zca.zca_statistics(x[keep])
    centred = flat.astype(np.float32) - stats["zca_mean"]
    whitened = centred @ stats["zca_components"].T
    identity = whitened.astype(np.float64).T @ whitened.astype(np.float64) / len(whitened)
    print(f"float32 whitened training images (before min-max): max |cov - I| "
          f"{np.abs(identity - np.eye(len(identity))).max():.2e}")
    exact = (flat - flat.mean(axis=0)) @ ((u64 / np.sqrt(s64)) @ u64.T)
    print(f"float32 vs float64 whitening: rms difference {np.sqrt(np.mean((whitened - exact) ** 2)):.2e} "
          f"(rms value 1), max {np.abs(whitened - exact).max():.3f}")
    for name, images in (("training", x[keep]), ("validation", x[val]), ("test", x_test)):
        out = zca.zca_whiten(images, stats)
        print(f"{name:11} {len(images):6d} images after min-max: all finite {bool(np.isfinite(out).all())}, "
              f"mean {out.mean():.4f}, std {out.std():.4f}")


if __name__ == "__main__":
    main()
