"""``--help`` that lists the options of the chosen task, model and criterion.

fairseq's ``parse_args_and_arch`` parses the command line once before it adds the options of the
chosen ``--task``/``--arch``/``--criterion``, so ``--help`` prints and exits before any of them
exist; and without ``--arch`` it raises a bare ``RuntimeError``, with or without ``--help``. With
``--user-dir cif_plugin`` the plugin is imported before that first parse; this wraps the function
so that on ``-h``/``--help`` the options of every choice given (task, model, criterion, optimizer,
...) are added first and the help is printed, whichever of them are given; and so that a training
command without ``--arch`` says so instead of raising.
"""

import argparse
import sys

from fairseq import options, utils
from fairseq.dataclass.utils import gen_parser_from_dataclass

__all__ = ["install_full_help"]

_HELP_FLAGS = ("-h", "--help")


def _add_options_of_choices(parser: argparse.ArgumentParser, arguments, modify_parser) -> None:
    """Add to ``parser`` the options of each registered choice in ``arguments``, as fairseq does."""
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
    from fairseq.registry import REGISTRIES
    from fairseq.tasks import TASK_REGISTRY

    user_dir_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    user_dir_parser.add_argument("--user-dir", default=None)
    utils.import_user_module(user_dir_parser.parse_known_args(arguments)[0])
    if modify_parser is not None:
        modify_parser(parser)
    args, _ = parser.parse_known_args(arguments)
    if hasattr(args, "arch"):
        model_cls = ARCH_MODEL_REGISTRY.get(args.arch) or MODEL_REGISTRY.get(args.arch)
        description = None if model_cls else "add --arch NAME to list the options of a model"
        group = parser.add_argument_group(
            "Model-specific configuration", description, argument_default=argparse.SUPPRESS
        )
        if model_cls is not None:
            model_cls.add_args(group)
    if getattr(args, "task", None) in TASK_REGISTRY:
        TASK_REGISTRY[args.task].add_args(parser)
    for registry_name, registry in REGISTRIES.items():
        choice_cls = registry["registry"].get(getattr(args, registry_name, None))
        if choice_cls is None:
            continue
        if hasattr(choice_cls, "add_args"):
            choice_cls.add_args(parser)
        elif hasattr(choice_cls, "__dataclass"):
            gen_parser_from_dataclass(parser, choice_cls.__dataclass())


def install_full_help() -> None:
    """Wrap ``fairseq.options.parse_args_and_arch`` once (idempotent)."""
    original = options.parse_args_and_arch
    if getattr(original, "_cif_full_help", False):
        return

    def parse_args_and_arch(parser, input_args=None, *args, **kwargs):
        arguments = sys.argv[1:] if input_args is None else list(input_args)
        if not any(flag in arguments for flag in _HELP_FLAGS):
            try:
                return original(parser, input_args, *args, **kwargs)
            except RuntimeError as error:  # fairseq's bare RuntimeError() for a missing/unknown --arch
                if str(error):
                    raise
                parser.error(
                    f"--arch is required ({parser.prog} --user-dir cif_plugin --help lists the choices)"
                )
        # Only the first, partial parse runs, so a missing positional (the data folder) is no error,
        # while a misspelt choice still is.
        _add_options_of_choices(
            parser, [a for a in arguments if a not in _HELP_FLAGS], kwargs.get("modify_parser")
        )
        parser.print_help()
        sys.exit(0)

    parse_args_and_arch._cif_full_help = True
    options.parse_args_and_arch = parse_args_and_arch
