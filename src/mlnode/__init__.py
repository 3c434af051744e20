"""mlnode: make Kubernetes ML nodes right for huge container images, and keep them right."""

__version__ = "0.1.0"
__all__ = ["__version__"]
