"""The ``asg`` criterion and ``s2t_asg_conformer`` model: targets, loss, warm-up, fairseq-train/generate."""

import subprocess

import pytest
import torch

from cif_plugin.criterions.asg_criterion import linear_segmentation
from cif_plugin.ops.asg import asg_loss

from decoded_text import asg_search, assert_same_decoding, decode_in_process, printed_hypotheses, split_words
from fairseq_setup import build_from_command_line, fairseq_cli, tiny_train_command

ASG = ["--criterion", "asg", "--asg-transitions-init", "0.5"]


def test_linear_segmentation_spreads_the_labels_evenly():
    assert linear_segmentation([7, 8, 9], 7) == [7, 7, 7, 8, 8, 9, 9]
    assert linear_segmentation([7, 8], 2) == [7, 8]


def test_replabel_symbols_must_be_in_the_dictionary(tiny_data):
    with pytest.raises(ValueError, match="dict.txt"):
        build_from_command_line(tiny_data, "s2t_asg_conformer_tiny", ASG)
    _, _, model, _ = build_from_command_line(
        tiny_data, "s2t_asg_conformer_tiny", [*ASG, "--max-replabel", "0"]
    )
    assert model.replabels == []


@pytest.mark.parametrize("implementation", ["native", "python"])
def test_loss_is_the_asg_of_the_packed_targets(asg_data, implementation):
    _, task, model, criterion = build_from_command_line(
        asg_data, "s2t_asg_conformer_tiny", [*ASG, "--asg-implementation", implementation]
    )
    dictionary = task.target_dictionary
    assert torch.equal(model.transitions, torch.eye(len(dictionary)) * 0.5) and model.max_replabel == 2
    task.load_dataset("train")
    dataset = task.datasets["train"]
    sample = dataset.collater([dataset[i] for i in range(6)])
    model.eval()
    with torch.no_grad():
        loss, sample_size, log = criterion(model, sample)
        output = model(**sample["net_input"])
    frames = output["encoder_lengths"]
    one, two = dictionary.index("1"), dictionary.index("2")
    expected = 0.0
    for b in range(6):
        tokens = [t for t in sample["target"][b].tolist() if t not in (dictionary.pad(), dictionary.eos())]
        packed = []  # written out here: x x -> x 1, x x x -> x 2
        for token in tokens:
            if packed and packed[-1] == token:
                packed.append(one)
            elif len(packed) > 1 and packed[-1] == one and packed[-2] == token:
                packed[-1] = two
            else:
                packed.append(token)
        packed = packed[: int(frames[b])]
        emissions, transitions = output["emissions"][b : b + 1].double(), model.transitions.double()
        expected += asg_loss(
            emissions, transitions, torch.tensor([packed]), frames[b : b + 1], torch.tensor([len(packed)]),
            "sum", "target_size_sqrt", implementation="python",
        ).item()  # fmt: skip
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert sample_size == int(sample["target_lengths"].sum()) - 6 and log["c_total"] == sample_size


def test_warm_up_trains_on_linear_segmentations(asg_data):
    _, task, model, criterion = build_from_command_line(
        asg_data, "s2t_asg_conformer_tiny", [*ASG, "--linseg-updates", "5"]
    )
    references, frames = [[4, 5, 6], [7, 7]], [7, 4]
    criterion.set_num_updates(4)
    targets, lengths = criterion.prepare_targets(references, frames, [0, 1], model.replabels, linseg=True)
    assert lengths.tolist() == [7, 4] and targets[0].tolist() == [4, 4, 4, 5, 5, 6, 6]
    one = task.target_dictionary.index("1")
    assert targets[1, :4].tolist() == [7, 7, one, one]  # the packed target [7, 1] over four frames
    with pytest.raises(ValueError, match="utterance 12 has an empty target"):
        criterion.prepare_targets([[]], [5], [12], model.replabels, linseg=False)


@pytest.fixture(scope="module")
def asg_training(asg_data, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("asg_run")
    command = tiny_train_command(asg_data, save_dir, "s2t_asg_conformer_tiny", "asg", max_update=4)
    command += ["--linseg-updates", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    return log, save_dir / "checkpoint_last.pt"


def test_fairseq_train_with_asg(asg_training):
    log, checkpoint = asg_training
    assert "the first 2 updates train on linear segmentations" in log
    assert "linear segmentation warm-up over at update 2" in log
    assert "valid on 'dev' subset" in log and "| uer " in log and checkpoint.is_file()


def test_fairseq_generate_decodes_asg_models_with_viterbi(asg_data, asg_training):
    command = fairseq_cli("generate", asg_data, "--gen-subset", "dev", "--cpu", "--scoring", "wer")
    command += ["--path", str(asg_training[1]), "--max-tokens", "4000", "--beam", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = printed_hypotheses(result.stdout)
    assert_same_decoding(printed, decode_in_process(asg_training[1], asg_data, "dev", asg_search()))
    symbols = {line.split()[0] for line in (asg_data / "dict.txt").read_text(encoding="utf-8").splitlines()}
    hypotheses = split_words(printed)
    assert all(word in symbols and word not in ("1", "2") for words in hypotheses for word in words)
