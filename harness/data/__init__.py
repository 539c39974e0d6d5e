"""Stage 2, data. Takes a recipe's `[data]` and `[augment]` sections and a budget; gives CIFAR-10's images
(cifar10.py: loaded, split into train/val/test, batched), the augmentation pipelines (augment/) and the
test set's corruptions (corrupt.py)."""
