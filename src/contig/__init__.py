"""ContIG: contrastive learning of medical images with genetics, as a reproducible workflow."""

__version__ = "0.1.0"
