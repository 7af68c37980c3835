"""ganopt: a research framework for studying GAN optimization."""

__version__ = "0.1.0"
