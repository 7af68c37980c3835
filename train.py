"""Train a GAN: ``python train.py loss=wgan optim=sgd_clip`` (see README.md)."""

from ganopt.cli import main

if __name__ == "__main__":
    main()
