"""CIFAR-10's fixed facts: its classes, its split sizes and its image size (no imports: any module may use them)."""

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLIT_SIZES = {"train": 50_000, "test": 10_000}
IMAGE_SIZE = 32
