"""The repository explains itself: docs/ is current, and what the code and docs cite exists."""

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from write_option_reference import DEFAULT_OUTPUT, reference  # noqa: E402

SOURCE_PATTERNS = ("cif_plugin/**/*.py", "scripts/*.py", "egs/**/*.sh", "egs/**/*.md", "egs/**/*.conf")
SOURCE_PATTERNS += ("docs/*.md", "benchmarks/*.py", "examples/*.py")
SOURCES = [path for pattern in SOURCE_PATTERNS for path in REPO.glob(pattern)] + [REPO / "README.md"]


def test_option_reference_is_current():
    assert DEFAULT_OUTPUT.read_text(encoding="utf-8") == reference(), (
        "docs/options.md is out of date: run python scripts/write_option_reference.py"
    )


def test_cited_docs_and_sections_exist():
    cited = 0
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r'docs/(\w+\.md)(?:, "([^"]+)")?', text):
            cited += 1
            document = REPO / "docs" / match.group(1)
            assert document.is_file(), f"{path.relative_to(REPO)} cites missing {match.group(0)}"
            if match.group(2):
                headings = re.findall(r"^#+ (.+)$", document.read_text(encoding="utf-8"), re.MULTILINE)
                assert match.group(2) in headings, f"{path.relative_to(REPO)}: no section {match.group(0)}"
    assert cited > 10


def test_tests_named_in_the_docs_exist():
    named = 0
    for document in REPO.glob("docs/*.md"):
        for test_file, test_name in re.findall(
            r"tests/(\w+\.py)::(\w+)", document.read_text(encoding="utf-8")
        ):
            named += 1
            source = (REPO / "tests" / test_file).read_text(encoding="utf-8")
            assert f"def {test_name}(" in source, (
                f"{document.name} names missing tests/{test_file}::{test_name}"
            )
    assert named > 10


@pytest.mark.parametrize("pattern", ["hieradist_spec", r"\.\./shared", r"reference/hieradist", r"\bspec \d"])
def test_no_citation_of_documents_outside_the_repository(pattern):
    offending = [
        str(path.relative_to(REPO))
        for path in SOURCES
        if re.search(pattern, path.read_text(encoding="utf-8"))
    ]
    assert not offending, offending
