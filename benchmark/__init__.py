"""solderbench: a cross-validated benchmark of fine-grained classification methods."""

__version__ = "0.1.0"
