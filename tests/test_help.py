"""--help of every entry point: fairseq-train and fairseq-generate with any of --task/--arch/--criterion,
and each script under scripts/."""

import subprocess
import sys
from pathlib import Path

import pytest
from fairseq import options

from fairseq_setup import PLUGIN_DIR

SCRIPTS = sorted((PLUGIN_DIR.parent / "scripts").glob("*.py"))
TASK = ["--task", "speech_to_text_cif"]
CIF_ARCH = ["--arch", "s2t_cif_transformer_tiny"]
MODEL_OPTIONS = ("--decoder-layers", "--encoder-layers")

# (choices on the command line, options that only those choices add, options that must not be there)
CHOICES = [
    ([], [], ["--plm-feature-dir", "--decoder-layers", "--ctc-loss-lambda"]),
    (TASK, ["--plm-feature-dir"], ["--decoder-layers"]),
    (CIF_ARCH, ["--decoder-layers", "--encoder-layers"], ["--plm-feature-dir"]),
    (["--criterion", "asg"], ["--linseg-updates"], ["--decoder-layers"]),
    (["--criterion", "cif"], ["--ctc-loss-lambda", "--apply-dec-state-dis-loss"], ["--linseg-updates"]),
    (["--criterion", "ctc_asr"], ["--apply-knowledge-transfer"], ["--ctc-loss-lambda"]),
    (TASK + ["--arch", "s2t_asg_conformer", "--criterion", "asg"],
     ["--plm-feature-dir", "--linseg-updates"], []),
    (TASK + CIF_ARCH + ["--criterion", "cif", "--optimizer", "adam", "--lr-scheduler", "tri_stage"],
     ["--plm-feature-dir", "--decoder-layers", "--ctc-loss-lambda", "--adam-betas", "--final-lr-scale"], []),
]  # fmt: skip


def _help_text(parser, arguments, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        options.parse_args_and_arch(parser, ["--user-dir", str(PLUGIN_DIR), *arguments, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("make_parser", [options.get_training_parser, options.get_generation_parser])
@pytest.mark.parametrize("choices, present, absent", CHOICES)
def test_help_lists_the_options_of_the_choices_given(make_parser, choices, present, absent, capsys):
    text = _help_text(make_parser(), choices, capsys)
    assert text.startswith("usage:") and "--user-dir" in text and "--max-tokens" in text
    if make_parser is options.get_generation_parser:  # the model comes from --path: no --arch
        present = [option for option in present if option not in MODEL_OPTIONS]
    elif "--arch" not in choices:
        assert "add --arch NAME to list the options of a model" in text
    for option in present:
        assert option in text, option
    for option in absent:
        assert option not in text, option


def test_help_with_the_data_folder_given(tmp_path, capsys):
    text = _help_text(options.get_training_parser(), [str(tmp_path), *TASK, *CIF_ARCH], capsys)
    assert "--plm-feature-dir" in text and "--decoder-layers" in text


def test_help_still_refuses_an_unknown_choice(capsys):
    with pytest.raises(SystemExit) as stop:
        options.parse_args_and_arch(options.get_training_parser(), ["--criterion", "no_such_loss", "--help"])
    assert stop.value.code == 2
    assert "no_such_loss" in capsys.readouterr().err


def test_training_without_arch_says_so(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        options.parse_args_and_arch(options.get_training_parser(), [str(tmp_path), *TASK])
    assert stop.value.code == 2
    assert "--arch is required" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [["fairseq-train"], ["fairseq-train", "--criterion", "asg"], ["fairseq-generate"]],
    ids=" ".join,
)
def test_fairseq_console_scripts_print_help(command):
    executable = Path(sys.executable).with_name(command[0])
    result = subprocess.run(
        [str(executable), "--user-dir", str(PLUGIN_DIR), *command[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:") and "Traceback" not in result.stderr


# Runs a script with --help, recording every argument that our code (not fairseq's) adds without help.
HELP_AUDIT = """
import argparse, runpy, sys
missing = []
add_argument = argparse._ActionsContainer.add_argument
def add_checked(self, *args, **kwargs):
    action = add_argument(self, *args, **kwargs)
    ours = "site-packages" not in sys._getframe(1).f_code.co_filename
    if ours and not action.help:
        missing.append("/".join(action.option_strings) or action.dest)
    return action
argparse._ActionsContainer.add_argument = add_checked
script = sys.argv[1]
sys.argv = [script, "--help"]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    print("arguments without help: " + " ".join(missing), file=sys.stderr)
"""


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_script_prints_help_for_every_argument(script):
    result = subprocess.run(
        [sys.executable, "-c", HELP_AUDIT, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:")
    assert result.stderr.strip().splitlines()[-1] == "arguments without help:"
