"""Datasets: embedded digits, CIFAR, MNIST IDX, event streams, augmentation, loader."""
