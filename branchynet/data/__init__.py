"""Datasets (MNIST, CIFAR-10 in their published formats) and the train/validation/test split."""
