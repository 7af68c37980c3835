"""What TensorBoard's HParams dashboard compares: each run's hyperparameters, and for a sweep
the experiment summary that orders them (docs/sweeps.md).

TensorBoard lists hyperparameters that differ across runs first, then the rest by name, and
checks the first few of each list by default: the sweep's summary marks what differs and puts
the metrics a researcher compares first, instead of whatever run it happens to read first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from omegaconf import OmegaConf
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams.api_pb2 import (
    DataType,
    Experiment,
    HParamInfo,
    MetricInfo,
    MetricName,
)
from tensorboard.plugins.hparams.metadata import EXPERIMENT_TAG, PLUGIN_DATA_VERSION, PLUGIN_NAME
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from ganopt.config import ConfigError
from ganopt.run_record import hydra_record, recorded_config
from ganopt.tags import FINAL_SCALARS, METRICS, STEPS_PER_SEC

#: the config groups every run records, in the order a reader looks for them
CHOICES = ("loss", "optim", "reg", "model", "data", "aug", "experiment")
#: metrics.json key → the TensorBoard scalar of the same value, in the order they are shown
METRIC_TAGS = {
    **{
        name: f"{METRICS}/{name}"
        for name in (
            *("success", "modes", "hq_ratio", "kl", "fd_digits", "classes_covered", "class_kl"),
            *("fid", "precision", "recall", "density", "coverage"),
        )
    },
    **{key: FINAL_SCALARS[key] for key in ("grad_norm_G", "grad_norm_D", "grad_signal_G")},
    **{key: FINAL_SCALARS[key] for key in ("loss_D", "loss_G")},
    "steps_per_sec": STEPS_PER_SEC,
}


def _plain(value: object) -> bool | int | float | str:
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _parse_value(value: str) -> object:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def run_hparams(
    cfg: Mapping, choices: Mapping[str, str | None], overrides: Iterable[str], status: str
) -> dict[str, bool | int | float | str]:
    """One run's hyperparameters, named as their override keys: the config groups' choices,
    the learning rates, clipping ("none" when off), critic steps, batch, seed, every
    override, and how the run ended."""
    hparams: dict[str, object] = {group: choices.get(group) or "none" for group in CHOICES}
    clip = cfg["optim"]["clip"]
    hparams |= {
        "optim.g.lr": cfg["optim"]["g"]["lr"],
        "optim.d.lr": cfg["optim"]["d"]["lr"],
        "optim.clip": "none" if clip is None else str(clip),
        "trainer.d_steps": cfg["trainer"]["d_steps"],
        "trainer.batch_size": cfg["trainer"]["batch_size"],
        "trainer.seed": cfg["trainer"]["seed"],
    }
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        hparams.setdefault(key, _parse_value(value))
    hparams["status"] = status
    return {k: _plain(v) for k, v in hparams.items()}


def job_hparams(job_dir: Path, status: str) -> dict[str, bool | int | float | str]:
    """run_hparams of a finished job, from the files Hydra wrote into its .hydra/."""
    cfg = OmegaConf.to_container(recorded_config(job_dir), resolve=True)
    hydra = hydra_record(job_dir)
    try:
        choices, task = hydra["runtime"]["choices"], hydra["overrides"]["task"]
    except (KeyError, TypeError):
        raise ConfigError([f"{job_dir}/.hydra/hydra.yaml: no runtime choices or task"]) from None
    return run_hparams(cfg, choices, task, status)


def _data_type(values: Sequence[object]) -> int:
    if all(isinstance(v, bool) for v in values):
        return DataType.Value("DATA_TYPE_BOOL")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return DataType.Value("DATA_TYPE_FLOAT64")
    return DataType.Value("DATA_TYPE_STRING")


def experiment_summary(runs: Sequence[Mapping[str, object]], metric_keys: Iterable[str]) -> Summary:
    """The HParams experiment of a sweep: every hyperparameter with whether it differs across
    ``runs`` (their hparams), and the metrics in METRIC_TAGS order."""
    names: list[str] = []
    for run in runs:
        names += [k for k in run if k not in names]
    infos = []
    for name in names:
        values = [run[name] for run in runs if name in run]
        differs = len({repr(v) for v in values}) > 1 or len(values) < len(runs)
        infos.append(HParamInfo(name=name, type=_data_type(values), differs=differs))
    present = set(metric_keys)
    metrics = [MetricInfo(name=MetricName(tag=t)) for k, t in METRIC_TAGS.items() if k in present]
    content = HParamsPluginData(
        experiment=Experiment(hparam_infos=infos, metric_infos=metrics),
        version=PLUGIN_DATA_VERSION,
    )
    metadata = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=content.SerializeToString()
        )
    )
    return Summary(value=[Summary.Value(tag=EXPERIMENT_TAG, metadata=metadata)])
