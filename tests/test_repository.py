"""The repository stands on its own: no committed file cites documents that are not in it, or a machine's paths.

Every file git tracks is read (text files; binary ones are skipped), this one included. Forbidden:

* Citations of documents outside the repository: the design document's name in capitals, the file names of
  the outside API reference and Dagster notes, a numbered section of any document (the section sign followed
  by a number or a letter; the repository's own documents are plain files, linked by their path) and issue
  numbers ("later issues" without a number is prose). A reader of the repository cannot open any of them,
  and they go stale silently: state the rule or the fact itself, or link a file of the repository
  (``docs/design.md``) by its path.
* Absolute paths of a machine, also in comments, docstrings and documentation: a checkout or home folder
  (the roots ``work``, ``home``, ``root``, ``Users``) and any fixed path under the temporary root (it
  collides between concurrent runs and users and outlives them: code makes a fresh one with ``tempfile``,
  ``mktemp`` or pytest's ``tmp_path``; an example command writes to a relative folder, e.g. the git-ignored
  ``benchmarks/out/``). The temporary root itself is allowed (as the parent of a ``mktemp -d``), as are
  paths that are the same on every machine of the supported platform (Debian 12): ``/usr/bin/chromium``,
  ``/usr/lib/postgresql/15/bin``, ``/dev/null``.

Relative paths (``data/tmp/``, ``.pg/``), URLs and names such as ``tmp_path`` are not matched. The examples
below are assembled from pieces (``SECTION``, ``SLASH``…) so that this file does not itself hold what it
forbids.
"""

import fnmatch
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SECTION = "\u00a7"  # the section sign
SLASH = "/"
CAPS = "DES" + "IGN"  # the outside design document's name
# (what it is, pattern)
FORBIDDEN = [
    ("design document citation", re.compile(rf"\b{CAPS}\b")),  # all caps: the outside document's name
    ("reference document file name", re.compile(r"\b(databricks_api|dagster_idioms)\.md\b")),
    ("numbered section of an outside document", re.compile(SECTION + r"\s*[0-9A-Za-z]")),
    ("issue number citation", re.compile(r"\bissues?\s+#?\d+", re.IGNORECASE)),
    # Not after a word, a dot, a variable expansion or ~ (a relative data folder, a URL, a make variable),
    # nor a longer name; the temporary root only with something under it.
    (
        "absolute machine path",
        re.compile(r"(?<![\w.~)}-])(" + SLASH + r"(work|home|root|Users)(?![\w-])|" + SLASH + r"tmp/[\w.$-])"),
    ),
]


def tracked_files() -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    done = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("not a git checkout (e.g. an unpacked sdist)")
    return [name for name in done.stdout.decode().split("\0") if name]


def offences(text: str) -> list[tuple[int, str, str]]:
    """(line number, what it breaks, line) for every line of ``text`` that holds something forbidden."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        kinds = [what for what, pattern in FORBIDDEN if pattern.search(line)]
        if kinds:
            found.append((number, ", ".join(kinds), line.strip()))
    return found


def test_no_committed_file_cites_outside_documents_or_holds_machine_paths():
    found = []
    for name in tracked_files():
        path = REPO / name
        if not path.is_file():  # deleted in the working tree, not yet in the index
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        for number, what, line in offences(data.decode("utf-8", errors="replace")):
            found.append(f"{name}:{number}: {what}: {line[:160]}")
    assert not found, f"{len(found)} offending line(s):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        f"rule ({CAPS} {SECTION}4)",
        f"see {CAPS}.md",
        f"(reference {SECTION}7.1)",
        "reference/databricks_api" + ".md",
        f"(idioms {SECTION}a4)",
        "target (iss" + "ue 4)",
        "later Iss" + "ue #12",
        f"PYTHONPATH={SLASH}tmp/duckdb1",
        f"'{SLASH}work/main/.venv'",
        f"~/x {SLASH}home/me/x",
        f"{SLASH}Users/me/x",
        f'cd "{SLASH}root/repo"',
        f"--out-dir {SLASH}tmp/bench",
        f"cd {SLASH}work.",
    ],
)
def test_the_patterns_catch_citations_and_machine_paths(line: str):
    assert offences(line)


@pytest.mark.parametrize(
    "line",
    [
        "def test_x(tmp_path: Path):",
        "the design (docs/design.md)",
        "workers from events",
        "CHROMIUM = '/usr/bin/chromium'",
        "PG_BIN := /usr/lib/postgresql/15/bin",
        "rm -rf .pg/ benchmarks/out/",
        "later issues: budget_status",
        "an issue with 503s",
        "https://example.com" + SLASH + "tmp/x",
        "data/tmp/x",
        "$(VENV)" + SLASH + "work/",
        "${HOME}" + SLASH + "tmp/x",
        SLASH + "tmpfs",
        SLASH + "rootless/x",
        "parent=${TMPDIR:-/tmp}",
        'mktemp -d "$parent/pg.XXXXXX"',
        "# As root, use /tmp: postgres must reach it",
    ],
)
def test_the_patterns_leave_ordinary_text_alone(line: str):
    assert not offences(line)


def test_every_data_file_of_the_package_ships_with_it():
    """A file the code reads at run time (SQL, YAML) is in the wheel only if package-data names it.

    An editable install finds every file in the checkout, so a forgotten glob shows only once the project is
    installed as a wheel: the migrations or the report queries would then be missing in production.
    """
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["cost_assets"]
    tracked = subprocess.run(
        ["git", "ls-files", "cost_assets"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    data = [p.removeprefix("cost_assets/") for p in tracked if not p.endswith(".py")]
    assert data, "git lists no data files under cost_assets/"
    unshipped = [p for p in data if not any(fnmatch.fnmatch(p, g) for g in globs)]
    assert not unshipped, f"add a package-data glob in pyproject.toml for: {unshipped}"
