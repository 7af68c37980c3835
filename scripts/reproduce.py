"""Every table of measured numbers in the docs, and the command that writes it.

    python scripts/reproduce.py --list          # each table: its file, its command, its cost
    python scripts/reproduce.py dirac           # run that command: rewrites docs/generated/dirac.md
    python scripts/reproduce.py dirac vanishing # several, in turn

Each table lives in its own file under docs/generated/, written by the script that measures
it (its ``--table`` flag) and headed by a provenance line: the exact command, the commit, torch,
the device, the thread count and the date. A docs page includes the file, so that no number in
the docs is typed by hand. A table that needs a training run first (``setup``) trains it into
outputs/reproduce/NAME/, which this script clears before it starts again. Timings are honest
only on a machine doing nothing else.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATED = Path("docs/generated")
SCRATCH = Path("outputs/reproduce")


@dataclass(frozen=True)
class Table:
    """A generated table: what it shows, the commands that make it (the last writes it with
    ``--table``), its rough cost on 2 CPU cores, figures it copies into docs/, and whether it
    needs a CUDA device."""

    what: str
    commands: tuple[str, ...]
    minutes: float
    figures: dict[str, str] = field(default_factory=dict)
    cuda: bool = False


def _table(name: str) -> str:
    return f"--table {GENERATED / name}.md"


def _bench(flags: str, name: str) -> tuple[str]:
    return (f"python scripts/bench.py {flags} {_table(name)}",)


def _scalars(run: str, name: str, tags: str, steps: str = "") -> str:
    steps = f" --steps {steps}" if steps else ""
    return f"python scripts/scalars.py {SCRATCH / run} {tags}{steps} {_table(name)}"


DIGITS_STEPS = "1000,2000,3000,4000,5000"
WGAN_STEPS = "1,1000,2000,3000,4000,5000"
DIGITS_TAGS = "metrics/fd_digits metrics/classes_covered metrics/class_kl"
GAMES = ("bilinear", "quadratic", "dirac")
GAME_METHODS = "alternating_no_r1,simultaneous_no_r1,extra_adam_no_r1,extra_adam_half_no_r1"
GAME_METHODS += (
    ",optimistic_adam_no_r1,lookahead_adam_no_r1,negative_momentum_no_r1,consensus_no_r1"
)

TABLES: dict[str, Table] = {
    "default_recipe": Table(
        "the default recipe's parts taken away one at a time, ring8, seeds 0-4",
        (
            "python scripts/mode_coverage.py --data ring8 --methods "
            "default,plain_gan,no_r1,no_ema,no_decay,gamma10 --figure "
            f"docs/img/default_vs_plain.png {_table('default_recipe')}",
        ),
        45,
    ),
    "mode_coverage": Table(
        "mode coverage of every training strategy on ring8 and grid25, seeds 0-4",
        (f"python scripts/mode_coverage.py {_table('mode_coverage')}",),
        180,
    ),
    "game_coverage": Table(
        "the update rules on ring8 and grid25, seeds 0-4, and the game's spectrum",
        (f"python scripts/mode_coverage.py --game {_table('game_coverage')}",),
        180,
    ),
    "game_no_r1": Table(
        "the update rules without R1, seeds 0-4, at equal steps and equal gradients",
        (f"python scripts/mode_coverage.py --methods {GAME_METHODS} {_table('game_no_r1')}",),
        150,
    ),
    "wgan_sgd_clip": Table(
        "WGAN with SGD and weight clipping: the Wasserstein estimate over a default-length run",
        (
            f"python train.py loss=wgan optim=sgd_clip hydra.run.dir={SCRATCH / 'wgan_sgd_clip'}",
            _scalars(
                "wgan_sgd_clip",
                "wgan_sgd_clip",
                "wasserstein/estimate",
                "1,1000,2000,3000,4000,5000",
            ),
        ),
        4,
    ),
    "digits_reference": Table(
        "fd_digits of real digits and of noise, for scale",
        (f"python scripts/digits_reference.py {_table('digits_reference')}",),
        0.5,
    ),
    **{
        f"digits_{name}": Table(
            f"fd_digits and class coverage over a DCGAN run on digits: {name}",
            (
                f"python train.py {overrides} hydra.run.dir={SCRATCH / ('digits_' + name)}",
                _scalars(f"digits_{name}", f"digits_{name}", DIGITS_TAGS, DIGITS_STEPS),
            ),
            4,
        )
        for name, overrides in {
            "default": "model=dcgan data=digits",
            "dcgan_paper": "experiment=dcgan_paper",
            "wgan": "model=dcgan data=digits loss=wgan optim=rmsprop_clip trainer.batch_size=64",
        }.items()
    },
    "games": Table(
        "the update rules on games with a known equilibrium, per gradient evaluation",
        (f"python scripts/games.py --out {SCRATCH / 'games'} {_table('games')}",),
        0.5,
        {f"{SCRATCH / 'games'}/{g}.png": f"docs/img/games_{g}.png" for g in GAMES},
    ),
    "dirac": Table(
        "the Dirac-GAN: each method's distance to the equilibrium after 500 steps",
        (f"python scripts/dirac_gan.py --out {SCRATCH / 'dirac'} {_table('dirac')}",),
        0.3,
        {f"{SCRATCH / 'dirac'}/dirac.png": "docs/img/dirac.png"},
    ),
    "clipping_depth": Table(
        "per-layer critic gradient norms: weight clipping against the gradient penalty",
        (
            f"python scripts/clipping_depth.py --out {SCRATCH / 'clipping_depth'} "
            f"{_table('clipping_depth')}",
        ),
        1,
        {f"{SCRATCH / 'clipping_depth'}/clipping_depth.png": "docs/img/clipping_depth.png"},
    ),
    "vanishing": Table(
        "Arjovsky & Bottou's Fig. 2: G's gradient norm while a fresh D trains",
        (
            f"python scripts/vanishing_gradients.py --out {SCRATCH / 'vanishing'} "
            f"{_table('vanishing')}",
        ),
        1.5,
        {f"{SCRATCH / 'vanishing'}/vanishing.png": "docs/img/vanishing.png"},
    ),
    "sweep_example": Table(
        "a sweep over three losses and two seeds, summarized",
        (
            "python train.py -m loss=standard,nonsaturating,wgan trainer.seed=0,1 "
            f"trainer.steps=1000 hydra.sweep.dir={SCRATCH / 'sweep_example'}",
            f"python scripts/summarize.py {SCRATCH / 'sweep_example'} {_table('sweep_example')}",
        ),
        3,
    ),
    "limited_data": Table(
        "DCGAN on 200 digits and on all of them, with and without DiffAugment, seeds 0-2",
        (
            "python train.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 "
            "experiment=dcgan_paper data.limit=200,null aug=none,diffaugment trainer.seed=0,1,2 "
            f"trainer.threads=1 hydra.sweep.dir={SCRATCH / 'limited_data'}",
            f"python scripts/summarize.py {SCRATCH / 'limited_data'} --metrics "
            "fd_digits,coverage,precision,recall,classes_covered,overfit_gap,ada_rt "
            f"{_table('limited_data')}",
        ),
        15,
    ),
    "bench": Table(
        "the Trainer against a hand-written loop, toy and DCGAN, and fused kernels",
        _bench("--fused --reps 5", "bench"),
        2,
    ),
    "bench_plain": Table(
        "the Trainer against a hand-written loop on the plain recipe; fused and compiled",
        _bench("--configs plain --fused --compiled --reps 5", "bench_plain"),
        1.5,
    ),
    "threads": Table(
        "the Trainer's speed at each CPU thread count",
        _bench("--threads --configs toy,plain,dcgan --reps 5", "threads"),
        1.5,
    ),
    "update_rules_cost": Table(
        "the cost of each update rule per generator step",
        _bench("--rules", "update_rules_cost"),
        1,
    ),
    "breakdown": Table(
        "where a default run's training time goes, part by part, toy and DCGAN",
        _bench("--breakdown --configs toy,dcgan", "breakdown"),
        2.5,
    ),
    "startup": Table(
        "a 6-step run's process against import torch and a refused typo",
        _bench("--startup", "startup"),
        1,
    ),
    "suite": Table(
        "the test suite's wall time, whole and its fast subset",
        _bench("--suite", "suite"),
        4,
    ),
    "one_buffer": Table(
        "each network's parameters in one buffer against separate tensors",
        _bench("--configs toy,plain,dcgan --separate --reps 5", "one_buffer"),
        3,
    ),
    "subnormals": Table(
        "optimizer steps with and without subnormal floats flushed, one buffer",
        _bench("--subnormals", "subnormals"),
        0.5,
    ),
    "subnormals_separate": Table(
        "the same over separate tensors",
        (
            "python scripts/bench.py --subnormals --extra trainer.flat_params=false "
            f"{_table('subnormals_separate')}",
        ),
        0.5,
    ),
    "scaling": Table(
        "the Trainer's cost against model width, depth and batch",
        (f"python scripts/bench.py --scaling --out {SCRATCH / 'scaling'} {_table('scaling')}",),
        4,
        {f"{SCRATCH / 'scaling'}/bench_scaling.png": "docs/img/bench_scaling.png"},
    ),
    "gpu_toy": Table(
        "on a GPU: the Trainer against a hand-written loop, toy, compiled and CUDA graphs",
        _bench("--device cuda --configs toy --compiled", "gpu_toy"),
        2,
        cuda=True,
    ),
    "gpu_dcgan": Table(
        "on a GPU: the same for DCGAN",
        (
            "python scripts/bench.py --device cuda --configs dcgan --compiled --reps 2 "
            f"{_table('gpu_dcgan')}",
        ),
        3,
        cuda=True,
    ),
}


def path(name: str) -> Path:
    return GENERATED / f"{name}.md"


README = REPO / "README.md"
#: a region of README.md that shows a generated table, between its two marker lines
REGION = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)


def generated_body(name: str) -> str | None:
    """A generated file's content under its marker line (provenance and table)."""
    file = REPO / path(name)
    return file.read_text().split("\n", 1)[1] if file.exists() else None


def sync_readme() -> None:
    """README.md's generated regions, rewritten from the files they show."""
    text = README.read_text()

    def fill(match: re.Match[str]) -> str:
        body = generated_body(match.group(2))
        return match.group(0) if body is None else f"{match.group(1)}{body}{match.group(4)}"

    updated = REGION.sub(fill, text)
    if updated != text:
        README.write_text(updated)
        print("updated README.md")


def listing() -> str:
    lines = []
    for name, table in TABLES.items():
        state = "written" if (REPO / path(name)).exists() else "not generated yet"
        needs = ", needs a CUDA device" if table.cuda else ""
        lines.append(f"{name}  ({path(name)}, {state}; about {table.minutes:g} min{needs})")
        lines.append(f"    {table.what}")
        lines += [f"    $ {command}" for command in table.commands]
    return "\n".join(lines)


def regenerate(name: str) -> int:
    table = TABLES[name]
    scratch = REPO / SCRATCH / name
    if scratch.is_symlink():
        print(f"error: {scratch} is a symlink; refused", file=sys.stderr)
        return 2
    shutil.rmtree(scratch, ignore_errors=True)  # this script's own folder for the table's runs
    for command in table.commands:
        print(f"$ {command}", file=sys.stderr)
        words = command.split()
        code = subprocess.run([sys.executable, *words[1:]], cwd=REPO).returncode
        if code != 0:
            print(f"error: {name}: `{command}` exited {code}", file=sys.stderr)
            return 1
    for source, target in table.figures.items():
        (REPO / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / source, REPO / target)
        print(f"wrote {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="tables to regenerate (see --list)")
    parser.add_argument("--list", action="store_true", help="every generated table")
    args = parser.parse_args(argv)
    if args.list or not args.names:
        print(listing())
        return 0
    if unknown := [n for n in args.names if n not in TABLES]:
        parser.error(f"unknown tables {', '.join(unknown)}; see --list")
    for name in args.names:
        if code := regenerate(name):
            return code
    sync_readme()
    return 0


if __name__ == "__main__":
    sys.exit(main())
