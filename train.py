"""Train a GAN: ``python train.py loss=wgan optim=sgd_clip`` (docs/running.md)."""

from ganopt.entry import train

if __name__ == "__main__":
    train()
