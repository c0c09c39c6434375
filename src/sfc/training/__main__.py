"""``python -m sfc.training`` / ``torchrun ... -m sfc.training``: run :func:`sfc.training.train_fc` from a shell.

See :func:`sfc.training.fc_trainer.main` for the arguments.
"""

from sfc.training.fc_trainer import main

if __name__ == "__main__":
    raise SystemExit(main())
