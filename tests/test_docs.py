"""The front page and the manual hold to their rules: README is short and undated, every
generated table carries its provenance and names a command that exists with those flags, the
reference pages match the code, every pointer from the code into the docs resolves, and every
command the docs print composes."""

import os
import re
import shlex
from pathlib import Path

import pytest

from ganopt.composition import check_overrides, compose_config, override_values, parse_override
from ganopt.config import ConfigError
from ganopt.sample import parse_args as sample_args
from ganopt.setup.checks import check
from ganopt.tables import MARKER, PROVENANCE_PREFIX
from tests.conftest import REPO, load_script

DOCS = REPO / "docs"
GENERATED = DOCS / "generated"
PAGES = sorted(p for p in DOCS.rglob("*.md") if GENERATED not in p.parents)
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b|\b\d\d:\d\d(:\d\d)? UTC\b")


def test_readme_is_a_short_undated_front_page():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    prose = re.sub(r"<!-- generated: \w+ -->.*?<!-- end generated -->", "", text, flags=re.S)
    assert not DATE.findall(prose)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_no_page_is_a_diary(page):
    assert not DATE.findall(page.read_text()), "a date or clock time in prose: git keeps history"


def _generated_files() -> list[Path]:
    return sorted(GENERATED.glob("*.md"))


@pytest.mark.parametrize("table", _generated_files(), ids=lambda p: p.stem)
def test_a_generated_table_names_its_provenance_and_a_command_that_exists(table):
    first, provenance, *_ = table.read_text().splitlines()
    assert first == MARKER
    assert provenance.startswith(PROVENANCE_PREFIX) and provenance.endswith("*")
    command, _, rest = provenance[len(PROVENANCE_PREFIX) :].partition("`")
    assert all(word in rest for word in ("commit", "torch", "thread", "·"))
    assert re.search(r"\d{4}-\d\d-\d\d\*$", rest)
    python, script, *args = shlex.split(command)
    assert python == "python" and script.startswith("scripts/"), command
    assert (REPO / script).is_file()
    load_script(Path(script).stem).parse_args(args)  # argparse exits on an unknown flag
    assert f"--table docs/generated/{table.name}" in command
    reproduce = load_script("reproduce")
    assert table.stem in reproduce.TABLES
    assert reproduce.TABLES[table.stem].commands[-1] == command


INCLUDE = re.compile(r'^--8<-- "generated/([\w.]+)"$', re.M)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_every_included_table_is_generated(page):
    tables = load_script("reproduce").TABLES
    for name in INCLUDE.findall(page.read_text()):
        assert (GENERATED / name).is_file(), f"{page.name} includes {name}, not generated"
        assert Path(name).stem in tables


def test_readmes_generated_regions_match_their_files():
    reproduce = load_script("reproduce")
    for match in reproduce.REGION.finditer((REPO / "README.md").read_text()):
        body = reproduce.generated_body(match.group(2))
        assert body is None or match.group(3) == body, f"run scripts/reproduce.py {match[2]}"


def test_the_reference_pages_match_the_code():
    generator = load_script("docs_reference")
    for name, text in generator.pages().items():
        assert generator.PAGES[name].read_text() == text, (
            f"{name} is stale: python scripts/docs_reference.py"
        )


# ---------------------------------------------------------------- pointers into the docs
POINTER = re.compile(r'(docs/[\w/.-]+\.md)(?:,? "([^"]+)")?')
README_POINTER = re.compile(r'README(?:\.md)?,? "([^"]+)"')
SOURCES = [
    *sorted((REPO / "ganopt").rglob("*.py")),
    *sorted((REPO / "scripts").glob("*.py")),
    *sorted((REPO / "configs").rglob("*.yaml")),
    *sorted((REPO / "tests").glob("*.py")),
    REPO / "train.py",
]


def _headings(page: Path) -> set[str]:
    return {
        line.lstrip("#").strip()
        for line in page.read_text().splitlines()
        if re.match(r"#{1,6} ", line)
    }


def test_every_pointer_from_the_code_names_a_page_and_heading_that_exist():
    broken = []
    for source in SOURCES:
        if source == Path(__file__):
            continue
        text = re.sub(r"\s*\n\s*#?\s*", " ", source.read_text())  # pointers wrap lines
        for page, heading in POINTER.findall(text):
            target = REPO / page
            if not target.is_file():
                broken.append(f"{source.relative_to(REPO)}: {page} does not exist")
            elif heading and heading not in _headings(target):
                broken.append(f'{source.relative_to(REPO)}: {page} has no heading "{heading}"')
        for heading in README_POINTER.findall(text):
            if heading not in _headings(REPO / "README.md"):
                broken.append(f'{source.relative_to(REPO)}: README has no heading "{heading}"')
    assert not broken, "\n".join(broken)


# ---------------------------------------------------------------- commands run as printed
def _commands(text: str) -> list[tuple[str, str | None]]:
    """Every shell command of the fenced code blocks (continuations joined, prompts and
    comments dropped), with the error line a console block shows right after it, if any."""
    commands, fence, lines = [], None, text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence not in ("bash", "console", "sh", ""):
            continue
        command = line.strip().removeprefix("$ ")
        j = i
        while command.endswith("\\") and j + 1 < len(lines):
            j += 1
            command = command[:-1] + " " + lines[j].strip()
        if command.startswith(("python ", "ganopt-")):
            after = lines[j + 1].strip() if j + 1 < len(lines) else ""
            error = after if after.startswith("error:") else None
            commands.append((re.sub(r"\s+#.*$", "", command), error))
    return commands


DOCUMENTS = [REPO / "README.md", *PAGES]
COMMANDS = sorted(
    {(doc.relative_to(REPO), *c) for doc in DOCUMENTS for c in _commands(doc.read_text())},
    key=str,
)
#: placeholders a reader replaces (a run directory of theirs, their cluster's partition)
PLACEHOLDER = re.compile(r"DATE|TIME|RUN|SWEEP|\.\.\.|<")


@pytest.mark.parametrize(
    ("document", "command", "error"), COMMANDS, ids=[f"{d}: {c[:60]}" for d, c, _ in COMMANDS]
)
def test_every_printed_command_composes(document, command, error):
    """A command composes and checks as printed; one shown with its refusal is refused with
    that very line."""
    if error is not None:
        with pytest.raises(ConfigError) as refused:
            _compose_command(command)
        assert f"error: {refused.value}" == error
        return
    _compose_command(command)


def _compose_command(command: str) -> None:
    words = shlex.split(os.path.expandvars(command))
    if words[0] in ("ganopt-train",) or words[:2] == ["python", "train.py"]:
        args = words[1:] if words[0] == "ganopt-train" else words[2:]
        if any(a.startswith("-") and a not in ("-m", "--multirun") for a in args):
            return  # --help, --cfg: Hydra's own
        overrides = [a for a in args if a not in ("-m", "--multirun")]
        if any(a.startswith("resume=") for a in overrides) or PLACEHOLDER.search(command):
            return
        check_overrides(overrides)
        chosen = []
        for line in overrides:
            override = parse_override(line)
            if override is None or override.key_or_group.startswith("hydra"):
                continue
            value = override_values(override)[0] if override.is_sweep_override() else None
            chosen.append(line if value is None else f"{line.split('=', 1)[0]}={value}")
        check(compose_config(chosen))
    elif words[0] == "ganopt-sample":
        sample_args(words[1:])
    elif words[0] == "python" and words[1].startswith("scripts/"):
        script = REPO / words[1]
        assert script.is_file(), command
        module = load_script(script.stem)
        if hasattr(module, "parse_args"):
            module.parse_args(words[2:])
