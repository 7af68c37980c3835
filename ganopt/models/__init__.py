"""Generator and discriminator networks. Each takes the data's sample shape at build time."""

from ganopt.models.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["MLPDiscriminator", "MLPGenerator"]
