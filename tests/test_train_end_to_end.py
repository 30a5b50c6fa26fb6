"""Stock fairseq-train with --user-dir cif_plugin: trains, saves, reloads and resumes."""

import subprocess
import sys

import torch
from fairseq import checkpoint_utils

from cif_plugin.generation import CifGenerator
from cif_plugin.models import S2TCifTransformerModel

from decoded_text import (
    assert_same_decoding,
    cif_search,
    decode_in_process,
    per_utterance,
    printed_hypotheses,
)
from fairseq_setup import PLUGIN_DIR, fairseq_cli

TRAIN = [
    "--user-dir", str(PLUGIN_DIR), "--task", "speech_to_text_cif", "--config-yaml", "config.yaml",
    "--train-subset", "train", "--valid-subset", "dev", "--arch", "s2t_cif_transformer_tiny",
    "--criterion", "cif", "--ctc-loss-lambda", "0.5", "--apply-label-smoothing", "--optimizer", "adam",
    "--lr", "1e-3", "--max-tokens", "4000", "--cpu", "--no-progress-bar", "--log-interval", "1",
    "--best-checkpoint-metric", "wer", "--num-workers", "0", "--seed", "1",
]  # fmt: skip


SCRIPTS = PLUGIN_DIR.parent / "scripts"


def _run(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


def _train(data, save_dir, max_update):
    command = [sys.executable, "-m", "fairseq_cli.train", str(data), *TRAIN, "--save-dir", str(save_dir)]
    result = subprocess.run(
        command + ["--max-update", str(max_update)], capture_output=True, text=True, timeout=600
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


def test_fairseq_train_saves_reloads_and_resumes(tiny_data, tmp_path):
    save_dir = tmp_path / "checkpoints"
    log = _train(tiny_data, save_dir, max_update=3)
    assert "valid on 'dev' subset" in log and "uer" in log
    last = save_dir / "checkpoint_last.pt"
    assert last.is_file()

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(last)], arg_overrides={"data": str(tiny_data)}
    )
    assert isinstance(models[0], S2TCifTransformerModel) and cfg.model.encoder_embed_dim == 64
    state = checkpoint_utils.load_checkpoint_to_cpu(str(last))
    for name, tensor in models[0].state_dict().items():
        assert torch.equal(tensor, state["model"][name]), name
    assert state["optimizer_history"][-1]["num_updates"] == 3

    log = _train(tiny_data, save_dir, max_update=5)
    assert "Loaded checkpoint" in log and "@ 3 updates" in log
    assert checkpoint_utils.load_checkpoint_to_cpu(str(last))["optimizer_history"][-1]["num_updates"] == 5


def test_average_generate_and_score(tiny_data, tmp_path):
    save_dir = tmp_path / "checkpoints"
    _train(tiny_data, save_dir, max_update=4)  # one update per epoch on the tiny data
    averaged = save_dir / "avg_last_2.pt"
    _run([sys.executable, str(SCRIPTS / "average_checkpoints.py"), "--inputs", str(save_dir)]
         + ["--num-epoch-checkpoints", "2", "--output", str(averaged)])  # fmt: skip
    states = [checkpoint_utils.load_checkpoint_to_cpu(str(save_dir / f"checkpoint{e}.pt")) for e in (3, 4)]
    result = checkpoint_utils.load_checkpoint_to_cpu(str(averaged))
    for name, tensor in result["model"].items():
        if tensor.is_floating_point():
            expected = (states[0]["model"][name].double() + states[1]["model"][name].double()) / 2
            torch.testing.assert_close(tensor.double(), expected, rtol=1e-6, atol=1e-7)

    generate = [sys.executable, "-m", "fairseq_cli.generate", str(tiny_data), "--user-dir", str(PLUGIN_DIR)]
    generate += ["--task", "speech_to_text_cif", "--config-yaml", "config.yaml", "--path", str(averaged)]
    generate += ["--gen-subset", "dev", "--beam", "3", "--nbest", "2", "--max-tokens", "4000", "--cpu"]
    generate += ["--scoring", "wer"]  # fairseq's default BLEU scorer is meaningless for ASR
    output = _run(generate)
    assert output.count("T-") == 8 and output.count("\nD-") == 16  # every utterance, two hypotheses each
    expected = decode_in_process(averaged, tiny_data, "dev", cif_search(beam=3, nbest=2))
    assert_same_decoding(printed_hypotheses(output), expected)
    (tmp_path / "gen.txt").write_text(output, encoding="utf-8")
    score = [sys.executable, str(SCRIPTS / "score_cer.py"), "--generate-output", str(tmp_path / "gen.txt")]
    scored = _run(score + ["--manifest", str(tiny_data / "dev.tsv")])
    assert "over 8 utterances" in scored


def test_fairseq_generate_prints_the_fire_frames_as_the_hard_alignment(tiny_data, tiny_checkpoint):
    """A-<id> lines: '<encoder frame>-<token index>' for every token (</s> included), the frame at
    which the CIF fired it, as the generator finds it on the utterance alone."""
    generate = fairseq_cli("generate", tiny_data, "--gen-subset", "dev", "--cpu", "--scoring", "wer")
    output = _run(generate + ["--path", str(tiny_checkpoint), "--beam", "2", "--print-alignment", "hard"])
    printed = {}
    for line in output.splitlines():
        if line.startswith("A-"):
            name, pairs = line.split("\t")
            printed[int(name[2:])] = [tuple(int(v) for v in pair.split("-")) for pair in pairs.split()]

    def fire_frame_pairs(model, sample, dictionary):
        hypothesis = CifGenerator(model, dictionary, beam=2).generate([model], sample)[0][0]
        frames = hypothesis["fire_frames"].tolist()
        assert len(frames) == len(hypothesis["tokens"]) and frames == sorted(set(frames))
        return [(frame, i) for i, frame in enumerate(frames)]

    expected = per_utterance(tiny_checkpoint, tiny_data, "dev", fire_frame_pairs)
    assert printed == expected and len(printed) == 8
