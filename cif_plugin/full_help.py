"""``--help`` that lists the options of the chosen task, model and criterion.

fairseq's ``parse_args_and_arch`` parses the command line once before it adds the options of the
chosen ``--task``/``--arch``/``--criterion``, so ``--help`` prints and exits before any of them
exist. With ``--user-dir cif_plugin`` the plugin is imported before that first parse; this wraps
the function so that on ``-h``/``--help`` every option group is added first (parsing without the
help flag and ignoring a missing positional such as the data folder), then the help is printed.
"""

import sys

from fairseq import options

__all__ = ["install_full_help"]

_HELP_FLAGS = ("-h", "--help")


class _StopParsing(Exception):
    pass


def _stop(message):
    raise _StopParsing(message)


def install_full_help() -> None:
    """Wrap ``fairseq.options.parse_args_and_arch`` once (idempotent)."""
    original = options.parse_args_and_arch
    if getattr(original, "_cif_full_help", False):
        return

    def parse_args_and_arch(parser, input_args=None, *args, **kwargs):
        arguments = sys.argv[1:] if input_args is None else list(input_args)
        if not any(flag in arguments for flag in _HELP_FLAGS):
            return original(parser, input_args, *args, **kwargs)
        parser.error = _stop  # argparse reports a missing positional through parser.error
        try:
            original(parser, [a for a in arguments if a not in _HELP_FLAGS], *args, **kwargs)
        except _StopParsing:
            pass
        finally:
            del parser.error
        parser.print_help()
        sys.exit(0)

    parse_args_and_arch._cif_full_help = True
    options.parse_args_and_arch = parse_args_and_arch
