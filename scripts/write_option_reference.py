"""Write docs/options.md, the reference of every option the plugin adds, from the code that declares it.

The models' and criteria's options come from their dataclasses, the task's from its argument
parser, so the reference cannot drift from the code: ``tests/test_docs.py`` fails when the
committed file differs from what this script writes.

Usage: python scripts/write_option_reference.py [--output docs/options.md] [--check]
"""

import argparse
import dataclasses
import sys
from enum import Enum
from pathlib import Path
from typing import Iterable, List, Optional

from fairseq.tasks.speech_to_text import SpeechToTextTask

from cif_plugin.criterions import AsgCriterionConfig, CifCriterionConfig, CtcAsrCriterionConfig
from cif_plugin.criterions.asr_criterion import AsrCriterionConfig
from cif_plugin.models import S2TAsgConformerConfig, S2TCifTransformerConfig, S2TCtcConformerConfig
from cif_plugin.models.s2t_encoder import S2TCifConfig, S2TEncoderConfig
from cif_plugin.tasks import SpeechToTextCifTask

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "options.md"

HEADER = """# Option reference

Every command-line option the plugin adds to fairseq, with its default and meaning. Model defaults
are the paper's AISHELL-1 configuration (`--arch s2t_cif_transformer`); the `*_tiny` architectures
override the sizes only. Booleans take `--name` and `--no-name`. This file is written by
`scripts/write_option_reference.py` from the code that declares the options; do not edit it by hand.
"""


def _default(field: dataclasses.Field) -> str:
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    if isinstance(default, Enum):
        default = default.value
    text = str(default)
    if text.startswith("${"):  # an interpolation such as ${optimization.sentence_avg}
        return f"(from --{text[2:-1].split('.')[-1].replace('_', '-')})"
    return f"`{text}`"


def _dataclass_rows(config_type: type, exclude: Iterable[type] = ()) -> List[str]:
    inherited = {field.name for base in exclude for field in dataclasses.fields(base)}
    rows = []
    for field in dataclasses.fields(config_type):
        if field.name in inherited or field.name == "_name":
            continue
        help_text = field.metadata.get("help", "").replace("|", "\\|")
        rows.append(f"| `--{field.name.replace('_', '-')}` | {_default(field)} | {help_text} |")
    return rows


def _parser_rows(parser: argparse.ArgumentParser, exclude: argparse.ArgumentParser) -> List[str]:
    stock = {option for action in exclude._actions for option in action.option_strings}
    rows = []
    for action in parser._actions:
        if not action.option_strings or set(action.option_strings) & stock:
            continue
        name = max(action.option_strings, key=len)
        rows.append(f"| `{name}` | `{action.default}` | {action.help} |")
    return rows


def _table(title: str, intro: str, rows: List[str]) -> str:
    lines = [f"## {title}", ""] + ([intro, ""] if intro else [])
    return "\n".join([*lines, "| option | default | meaning |", "|---|---|---|", *rows, ""])


def reference() -> str:
    task_parser, stock_parser = argparse.ArgumentParser(), argparse.ArgumentParser()
    SpeechToTextCifTask.add_args(task_parser)
    SpeechToTextTask.add_args(stock_parser)
    sections = [
        HEADER,
        _table(
            "Task `speech_to_text_cif`",
            "Besides the stock `speech_to_text` options (data folder, `--config-yaml`, ...); the "
            "decoding options are read by fairseq-generate.",
            _parser_rows(task_parser, stock_parser),
        ),
        _table(
            "Encoder: every model family",
            "`s2t_cif_transformer`, `s2t_ctc_conformer`, `s2t_asg_conformer`.",
            _dataclass_rows(S2TEncoderConfig),
        ),
        _table(
            "CIF: `s2t_cif_transformer`, and the knowledge-transfer branch of `s2t_ctc_conformer`",
            "",
            _dataclass_rows(S2TCifConfig, exclude=[S2TEncoderConfig]),
        ),
        _table("Model `s2t_cif_transformer`", "", _dataclass_rows(S2TCifTransformerConfig, [S2TCifConfig])),
        _table("Model `s2t_ctc_conformer`", "", _dataclass_rows(S2TCtcConformerConfig, [S2TCifConfig])),
        _table("Model `s2t_asg_conformer`", "", _dataclass_rows(S2TAsgConformerConfig, [S2TEncoderConfig])),
        _table("Every criterion", "`cif`, `ctc_asr`, `asg`.", _dataclass_rows(AsrCriterionConfig)),
        _table("Criterion `cif`", "", _dataclass_rows(CifCriterionConfig, [AsrCriterionConfig])),
        _table("Criterion `ctc_asr`", "", _dataclass_rows(CtcAsrCriterionConfig, [AsrCriterionConfig])),
        _table("Criterion `asg`", "", _dataclass_rows(AsgCriterionConfig, [AsrCriterionConfig])),
    ]
    return "\n".join(sections)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the Markdown file to write")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the file differs from the code"
    )
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(
                f"{args.output} is out of date: run python scripts/write_option_reference.py", file=sys.stderr
            )
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_name(args.output.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
