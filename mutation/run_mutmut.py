"""Mutation testing of the core modules with mutmut; writes a per-module report (docs/testing.md).

Copies the repository's tracked files (and the built ASG extension) into a workspace, configures
mutmut there for the modules in ``mutation/modules.toml`` and the fast tests that exercise them, runs
it, and writes ``report.md``: for each module the mutants killed, surviving, equivalent (matched by a
rule in ``mutation/equivalent_mutants.toml``, each with its reason) and the score
killed / (all - equivalent). Re-running continues where a killed run stopped: mutmut keeps each
mutant's result in the workspace (``--fresh`` starts over).

Usage: python mutation/run_mutmut.py [--workspace build/mutation] [--max-children N] [--fresh]
       [--rerun-not-killed] [--report-only]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
MUTMUT = Path(sys.executable).with_name("mutmut")
ALSO_COPY = ["examples", "scripts", "egs", "docs", "benchmarks", "pytest.ini", "README.md", "setup.py"]
KILLED = {"killed", "timeout", "segfault"}  # a mutant that crashes or hangs the tests is caught too
CLI_TESTS = "fairseq_generate or fairseq_train or align_script or an_ngram_lm_with_a_cif_model"


def _copy_repository(workspace: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    extensions = [p.relative_to(REPO_ROOT) for p in (REPO_ROOT / "cif_plugin" / "ops" / "asg").glob("*.so")]
    for relative in [Path(name.decode()) for name in tracked if name] + extensions:
        source, target = REPO_ROOT / relative, workspace / relative
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists() or target.read_bytes() != source.read_bytes():
                shutil.copy2(source, target)


def _write_config(workspace: Path, modules: Dict[str, List[str]]) -> None:
    tests = sorted({test for module_tests in modules.values() for test in module_tests})
    lines = ["[mutmut]", "source_paths = cif_plugin", "only_mutate ="]
    lines += [f"    {module}" for module in modules]
    lines += ["also_copy ="] + [f"    {path}" for path in ALSO_COPY]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {test}" for test in tests]
    # The command-line tests (fairseq-train/-generate in a subprocess) take 10-20 s each and check the
    # plumbing; the unit tests next to them exercise the same functions in process.
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -k", f"    not ({CLI_TESTS})"]
    lines += ["process_isolation = forkserver", ""]
    (workspace / "setup.cfg").write_text("\n".join(lines), encoding="utf-8")


def _with_fixture_cache(workspace: Path, modules: Dict[str, List[str]]) -> Dict[str, str]:
    """Build the tests' data and model fixtures once, from unmutated code, for every mutant's run
    to reuse (tests/conftest.py); returns the environment that points the tests at them."""
    cache = workspace / "fixture_cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "CIF_TEST_FIXTURE_CACHE": str(cache)}
    env.pop("MUTANT_UNDER_TEST", None)
    tests = sorted({test for module_tests in modules.values() for test in module_tests})
    setup = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", f"not ({CLI_TESTS})"]
    setup += ["--setup-only", *tests]
    subprocess.run(setup, cwd=workspace, env=env, check=True, capture_output=True)
    return env


def _results(workspace: Path) -> Dict[str, str]:
    output = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"], cwd=workspace, capture_output=True, text=True, check=True
    ).stdout
    results = {}
    for line in output.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            results[name] = status
    return results


def _changed_lines(workspace: Path, mutant: str) -> List[str]:
    diff = subprocess.run(
        [str(MUTMUT), "show", mutant], cwd=workspace, capture_output=True, text=True, check=True
    ).stdout
    return [line for line in diff.splitlines() if line[:1] in "-+" and line[:3] not in ("---", "+++")]


def _module_of(mutant: str) -> str:
    dotted = mutant.split(".x")[0] if ".x" in mutant else mutant.rsplit(".", 1)[0]
    return dotted.replace(".", "/") + ".py"


def _function_of(mutant: str) -> str:
    """mutmut's mangled name -> ``function`` or ``Class.method``."""
    name = re.sub(r"__mutmut_\d+$", "", mutant.rsplit(".", 1)[1])
    if name.startswith("xǁ"):
        return ".".join(name[2:].split("ǁ"))
    return name[2:] if name.startswith("x_") else name


def _equivalence(rules: List[dict], module: str, function: str, changed: List[str]) -> Optional[str]:
    removed = "\n".join(line[1:].strip() for line in changed if line.startswith("-"))
    added = "\n".join(line[1:].strip() for line in changed if line.startswith("+"))
    for rule in rules:
        if "module" in rule and rule["module"] != module:
            continue
        if "function" in rule and not re.fullmatch(rule["function"], function):
            continue
        if "original" in rule and not re.search(rule["original"], removed):
            continue
        if "mutated" in rule and not re.search(rule["mutated"], added):
            continue
        if "dropped" in rule and not removed.count(rule["dropped"]) > added.count(rule["dropped"]):
            continue
        return rule["why"]
    return None


def write_report(
    workspace: Path, modules: Dict[str, List[str]], rules: List[dict], report: Path
) -> List[str]:
    """Write the report; return the names of surviving mutants that no rule calls equivalent."""
    results = _results(workspace)
    counts: Dict[str, Counter] = defaultdict(Counter)
    equivalents, unexplained = defaultdict(list), []
    for mutant, status in sorted(results.items()):
        module = _module_of(mutant)
        if module not in modules:
            continue
        if status in KILLED or status == "not checked":
            counts[module]["killed" if status in KILLED else "not run yet"] += 1
            continue
        changed = _changed_lines(workspace, mutant)
        why = _equivalence(rules, module, _function_of(mutant), changed)
        if why is not None and status in ("survived", "no tests"):
            counts[module]["equivalent"] += 1
            equivalents[module].append((mutant, changed, why))
        else:
            counts[module][status] += 1
            unexplained.append(mutant)
            equivalents[module].append((mutant, changed, f"**{status}, not explained**"))
    lines = [
        "# Mutation testing report",
        "",
        f"mutmut over {len(modules)} modules; tests run per mutant:",
        "",
    ]
    lines += [
        "the tests mutmut saw calling the mutated function, from: "
        + ", ".join(sorted({t for ts in modules.values() for t in ts}))
        + ".",
        "",
    ]
    lines += ["| module | mutants | killed | equivalent | not killed | score |", "|---|---|---|---|---|---|"]
    for module in modules:
        c = counts[module]
        total = sum(c.values())
        not_killed = total - c["killed"] - c["equivalent"] - c["not run yet"]
        effective = total - c["equivalent"] - c["not run yet"]
        score = f"{100.0 * c['killed'] / effective:.1f} %" if effective else "-"
        lines.append(f"| `{module}` | {total} | {c['killed']} | {c['equivalent']} | {not_killed} | {score} |")
    lines += [
        "",
        "Score = killed / (mutants - equivalent); a timeout or crash under a mutant counts as killed.",
    ]
    pending = sum(c["not run yet"] for c in counts.values())
    if pending:
        lines.append(
            f"**{pending} mutants not run yet** (an interrupted run): they are left out of the scores."
        )
    lines.append("")
    for module in modules:
        if not equivalents[module]:
            continue
        lines += [f"## `{module}`: mutants not killed", ""]
        for mutant, changed, why in equivalents[module]:
            lines.append(f"- `{mutant.rsplit('.', 1)[1]}`: {why}")
            lines += [f"  `{line}`" for line in changed[:4]]
        lines.append("")
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return unexplained


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        default=REPO_ROOT / "build" / "mutation",
        help="copy of the repository mutmut runs in",
    )
    parser.add_argument(
        "--max-children", type=int, default=os.cpu_count() or 1, help="mutants tested in parallel"
    )
    parser.add_argument("--fresh", action="store_true", help="forget the results of an earlier run")
    parser.add_argument("--report-only", action="store_true", help="write the report from the results so far")
    parser.add_argument(
        "--rerun-not-killed",
        action="store_true",
        help="after adding tests: run again only the mutants that survived or had no tests",
    )
    args = parser.parse_args(argv)
    if not MUTMUT.exists():
        parser.error(f"{MUTMUT} not found: `make mutation` installs mutmut (requirements-mutation.txt)")
    modules = tomllib.loads((HERE / "modules.toml").read_text(encoding="utf-8"))["modules"]
    rules = tomllib.loads((HERE / "equivalent_mutants.toml").read_text(encoding="utf-8"))["equivalent"]
    workspace = args.workspace.resolve()
    if args.fresh:
        shutil.rmtree(workspace, ignore_errors=True)
    if not args.report_only:
        workspace.mkdir(parents=True, exist_ok=True)
        _copy_repository(workspace)
        _write_config(workspace, modules)
        log = workspace / "mutmut.log"
        env = _with_fixture_cache(workspace, modules)
        print(f"mutmut run in {workspace} ({args.max_children} at a time); progress in {log}", flush=True)
        names = []
        if args.rerun_not_killed:
            wanted = ("survived", "no tests", "not checked")
            names = [name for name, status in _results(workspace).items() if status in wanted]
            print(f"running the {len(names)} mutants not killed so far (or not run yet)", flush=True)
        with log.open("a", encoding="utf-8") as handle:
            run = subprocess.run(
                [str(MUTMUT), "run", "--max-children", str(args.max_children), *names], cwd=workspace,
                stdout=handle, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        if run.returncode != 0:
            print(f"mutmut run failed ({run.returncode}); see {log}", file=sys.stderr)
            return run.returncode
    report = workspace / "report.md"
    unexplained = write_report(workspace, modules, rules, report)
    print(report.read_text(encoding="utf-8").split("\n## ")[0])
    print(f"report: {report}; {len(unexplained)} surviving mutants not explained as equivalent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
