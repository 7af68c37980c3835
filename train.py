"""Train a GAN: ``python train.py loss=wgan optim=sgd_clip`` (docs/running.md)."""

import sys

try:
    from ganopt.entry import train_and_exit
except KeyboardInterrupt:  # Ctrl-C before ganopt holds it back: the same one line and exit code
    print("interrupted", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    train_and_exit()
