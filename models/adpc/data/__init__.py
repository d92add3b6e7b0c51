"""Synthetic training and test data built from Debian's Fashion-MNIST
(`dataset-fashion-mnist`): segmentation scenes (`scenes`) and articulated
figures with the 16 MPII joints (`pose`). Every sample is a pure function of
(seed, split, index), so datasets are reproducible and need no cache."""
