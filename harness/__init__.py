"""The harness: reproduce and compare compact CIFAR-10 ResNet reports from declarative specs."""

__version__ = "0.1.0"
