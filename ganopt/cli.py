"""The Hydra entry point behind ``python train.py`` and ``ganopt-train``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ganopt.build import build
from ganopt.config import ConfigError, register_schema
from ganopt.logger import TensorBoardLogger

log = logging.getLogger("ganopt")


def config_dir() -> Path:
    """configs/ inside an installed wheel, else the source checkout's configs/."""
    packaged = Path(__file__).resolve().parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


register_schema()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> None:
    """One training run. In a sweep, a job that is rejected or fails is logged and the sweep
    goes on; in a single run it exits non-zero."""
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)

    try:
        parts = build(cfg)
    except ConfigError as e:
        log.error("%s", e)
        if in_sweep:
            return
        sys.exit(2)

    log.info("run directory: %s", run_dir)
    log.info(
        "device %s | G %s | D %s | loss %s | clip %s",
        parts.device,
        f"{sum(p.numel() for p in parts.G.parameters()):,} params",
        f"{sum(p.numel() for p in parts.D.parameters()):,} params",
        parts.loss,
        parts.clipper,
    )
    logger = TensorBoardLogger(run_dir)
    trainer = parts.make_trainer(run_dir, logger)
    try:
        result = trainer.fit()
    except Exception:
        if not in_sweep:
            raise
        log.exception("job failed (status recorded in metrics.json); the sweep goes on")
        return
    finally:
        logger.close()

    log.info(
        "%s at step %d: %s",
        result.status,
        result.step,
        ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if isinstance(v, float)),
    )
    if result.status == "interrupted":
        sys.exit(result.exit_code)
