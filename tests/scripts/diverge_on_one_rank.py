"""Run under torchrun: rank 1's real data turns NaN at step 7; every rank must stop at the
same log step with status diverged. Each rank writes its result to argv[1]/rank<r>.json;
rank 0 trains in argv[1]/run. tests/test_distributed.py reads them."""

import json
import math
import sys
from pathlib import Path

from ganopt.composition import compose_config
from ganopt.distributed import World, init, shutdown, world_from_env
from ganopt.logger import NullLogger, TensorBoardLogger
from ganopt.setup.assembly import build, make_trainer

POISON_AT = 7


class PoisonedData:
    def __init__(self, data, at: int) -> None:
        self.data, self.at, self.n = data, at, 0

    def __iter__(self):
        return self

    def __next__(self):
        self.n += 1
        batch = next(self.data)
        return batch * math.nan if self.n >= self.at else batch


def main(out: Path, world: World) -> None:
    """A function, so that the Trainer and its DDP wrappers are gone before shutdown()."""
    cfg = compose_config(
        [
            "trainer.steps=50",
            "trainer.log_every=5",
            "trainer.ckpt_every=5",
            "trainer.batch_size=64",
            "trainer.progress=false",
            "trainer.sample_every=0",
        ]
    )
    parts = build(cfg, world)
    run_dir = out / "run"
    logger = TensorBoardLogger(run_dir) if world.is_main else NullLogger()
    trainer = make_trainer(parts, run_dir, logger)
    if world.rank == 1:
        trainer.data = PoisonedData(trainer.data, at=POISON_AT)
    result = trainer.fit()
    logger.close()
    (out / f"rank{world.rank}.json").write_text(
        json.dumps({"status": result.status, "step": result.step, **result.metrics})
    )


world = world_from_env()
init(world)
main(Path(sys.argv[1]), world)
shutdown()
