"""Generator and discriminator networks. Each takes the data's sample shape at build time."""

from ganopt.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganopt.models.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator"]
