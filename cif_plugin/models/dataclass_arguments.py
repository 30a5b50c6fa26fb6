"""Command-line options from a fairseq dataclass config, with booleans that can be set either way.

fairseq's ``gen_parser_from_dataclass`` turns a boolean whose default is True into a
``store_false`` flag of the same name, so ``--apply-scaling`` would switch scaling *off*. Here every
boolean gets ``--name`` (True) and ``--no-name`` (False); a field named ``no_*`` too
(``--no-token-positional-embeddings`` and ``--no-no-token-positional-embeddings``), which
``argparse.BooleanOptionalAction`` gets wrong: it sets False for every flag that starts with ``--no-``.
As fairseq does for model options, no defaults are set: the architecture function fills what the
command line leaves out, then the dataclass defaults.
"""

import argparse
import dataclasses
from enum import Enum

__all__ = ["add_dataclass_arguments"]


def add_dataclass_arguments(parser: argparse.ArgumentParser, config_type: type) -> None:
    """Add ``--field-name`` for every field of the dataclass ``config_type``."""
    for field in dataclasses.fields(config_type):
        help_text = field.metadata.get("help", "")
        kwargs = {"help": f"{help_text} (default: {_default_text(field)})"}
        field_type = field.type
        if field_type is bool:
            kwargs["action"] = _BooleanFlag
        elif isinstance(field_type, type) and issubclass(field_type, Enum):
            kwargs.update(type=str, choices=[member.value for member in field_type])
        else:
            kwargs["type"] = field_type
        parser.add_argument("--" + field.name.replace("_", "-"), **kwargs)


class _BooleanFlag(argparse.Action):
    """``--name`` sets True, ``--no-name`` sets False, whatever the name starts with."""

    def __init__(self, option_strings, dest, **kwargs):
        (self.positive,) = option_strings
        super().__init__([self.positive, "--no-" + self.positive[2:]], dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, option_string == self.positive)

    def format_usage(self) -> str:
        return " | ".join(self.option_strings)


def _default_text(field: dataclasses.Field) -> str:
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    return (
        default.value
        if isinstance(default, Enum)
        else repr(default)
        if isinstance(default, str)
        else str(default)
    )
