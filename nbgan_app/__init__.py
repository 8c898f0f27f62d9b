"""nbgan: a chain of 3-D WGAN-GP models that emulates N-body density cubes of any size."""

__version__ = "0.1.0"
