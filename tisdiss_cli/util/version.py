"""The package version, below every layer that records it (calibration caches, ONNX cards, ``--version``)."""

__version__ = "0.1.0.dev0"
