"""Knowledge transfer from a PLM into the CTC model: a training-only CIF branch pulled towards the
PLM's token features (arXiv 2203.03582)."""

import math
import subprocess

import pytest
import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils

from cif_plugin.criterions.distillation_losses import cosine_distance_loss, negative_count

from decoded_text import assert_same_decoding, ctc_search, decode_in_process, printed_hypotheses
from fairseq_setup import build_from_command_line, fairseq_cli, tiny_train_command

TRANSFER = ["--criterion", "ctc_asr", "--apply-knowledge-transfer", "--bert-distill-feat-dim", "32"]


def _batch(task, size=4):
    task.load_dataset("train")
    dataset = task.datasets["train"]
    return dataset.collater([dataset[i] for i in range(size)])


def _direct_contrastive_loss(student, teacher, negatives, temperature, remove_overlap):
    """InfoNCE anchor by anchor: -log softmax of [cos(s, own teacher), cos(s, each negative)] / tau."""
    total, correct = 0.0, 0
    for n in range(len(student)):
        rows = teacher[negatives[n]]
        negative = F.cosine_similarity(student[n].expand_as(rows), rows, dim=1, eps=1e-6)
        if remove_overlap:
            negative[negatives[n] == n] = -math.inf
        positive = F.cosine_similarity(student[n], teacher[n], dim=0, eps=1e-6)
        logits = torch.cat([positive.view(1), negative]) / temperature
        total += -torch.log_softmax(logits.double(), 0)[0].item()
        correct += int(logits.argmax() == 0)
    return total, correct


def test_cosine_distance_loss_is_one_minus_the_cosine_of_each_row():
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    teacher = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-3.0, -4.0]])  # cosines 1, 0, -1
    assert cosine_distance_loss(student, teacher).item() == pytest.approx(0.0 + 1.0 + 2.0)
    # Norms are floored at 1e-6: a student row of norm 1e-8 has cosine 0.01, not 1.
    tiny = cosine_distance_loss(torch.tensor([[1e-8, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert tiny.item() == pytest.approx(1.0 - 0.01, rel=1e-5)


def test_the_branch_exists_only_with_knowledge_transfer(plm_data):
    _, _, plain, criterion = build_from_command_line(
        plm_data, "s2t_ctc_conformer_tiny", ["--criterion", "ctc_asr"]
    )
    assert plain.cif is None and plain.plm_proj is None and not criterion.needs_plm_features
    _, task, model, criterion = build_from_command_line(plm_data, "s2t_ctc_conformer_tiny", TRANSFER)
    assert model.plm_proj.out_features == 32 and criterion.needs_plm_features
    extra = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == sum(p.numel() for p in model.cif.parameters()) + 64 * 32 + 32
    sample = _batch(task)
    model.eval()
    with torch.no_grad():  # decoding calls the model as fairseq-generate does: pure CTC
        decoded = model(**sample["net_input"])
    encoder_keys = {"encoder_out", "encoder_lengths", "encoder_padding_mask", "encoder_chunk_size"}
    assert set(decoded) == encoder_keys | {"ctc_logits"}


@pytest.mark.parametrize("kind", ["cosine", "contrastive"])
def test_loss_adds_quantity_and_transfer_terms_to_ctc(plm_data, kind):
    torch.manual_seed(0)
    options = [
        *TRANSFER,
        "--kt-loss-type",
        kind,
        "--kt-loss-lambda",
        "0.7",
        "--kt-quantity-loss-lambda",
        "0.3",
    ]
    _, task, model, criterion = build_from_command_line(plm_data, "s2t_ctc_conformer_tiny", options)
    sample = _batch(task)
    eos, pad = task.target_dictionary.eos(), task.target_dictionary.pad()
    label_lengths = (sample["target"].ne(eos) & sample["target"].ne(pad)).sum(dim=1)
    model.train()
    predicted = []
    hook = model.cif.weight_predictor.register_forward_hook(
        lambda module, args, output: predicted.append(output)
    )
    torch.manual_seed(1)
    loss, sample_size, log = criterion(model, sample)
    torch.manual_seed(1)  # same dropout
    output = model(**sample["net_input"], target_lengths=label_lengths)
    hook.remove()
    torch.testing.assert_close(predicted[0], predicted[1])
    # The predictor's own (unscaled) weights against the label count; the scaled ones sum to it.
    quantity = (predicted[0].double().sum(1) - label_lengths).abs().sum()
    assert log["kt_quantity_loss"] == pytest.approx(quantity.item(), rel=1e-5) and quantity > 1.0
    students, teachers = [], []
    for b, length in enumerate(label_lengths.tolist()):
        students.append(output["plm_space_features"][b, :length])
        teachers.append(sample["plm_features"][b, 1 : 1 + length].float())  # after [CLS]: the labels
    student, teacher = torch.cat(students), torch.cat(teachers)
    if kind == "cosine":
        expected = (1 - F.cosine_similarity(student, teacher, dim=-1)).sum()
        assert log["kt_loss"] == pytest.approx(expected.item(), rel=1e-5)
    else:
        # The same negatives as the criterion: K distinct rows per anchor, drawn uniformly from its
        # per-batch generator (recreated here).
        count = negative_count(len(student), criterion.cfg.num_contrastive_negative_samples)
        generator = criterion.batch_generator(sample, student.device)
        negatives = torch.multinomial(torch.ones(len(student), len(student)), count, generator=generator)
        expected, correct = _direct_contrastive_loss(
            student,
            teacher,
            negatives,
            criterion.cfg.contrastive_temperature,
            criterion.cfg.remove_overlap_in_negs,
        )
        assert log["kt_loss"] == pytest.approx(expected, rel=1e-5)
        assert log["contrastive_correct"] == correct
        assert log["contrastive_total"] == len(student) == sample_size
    assert loss.item() == pytest.approx(
        log["ctc_loss"] + 0.3 * log["kt_quantity_loss"] + 0.7 * log["kt_loss"], rel=1e-5
    )
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())  # the branch trains with the encoder


@pytest.fixture(scope="module")
def transfer_training(plm_data, tmp_path_factory):
    """(log, checkpoint) of three fairseq-train updates of the tiny CTC model with contrastive transfer."""
    save_dir = tmp_path_factory.mktemp("ctc_kt")
    command = tiny_train_command(plm_data, save_dir, "s2t_ctc_conformer_tiny", "ctc_asr", max_update=3)
    command += TRANSFER[2:] + ["--kt-loss-type", "contrastive", "--num-contrastive-negative-samples", "20"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    return log, save_dir / "checkpoint_last.pt"


def test_fairseq_train_with_knowledge_transfer(transfer_training):
    log, checkpoint = transfer_training
    for name in ("ctc_loss", "kt_quantity_loss", "kt_loss", "contrastive_accuracy", "uer"):
        assert f"| {name} " in log, name
    state = checkpoint_utils.load_checkpoint_to_cpu(str(checkpoint))
    assert state["model"]["plm_proj.weight"].shape == (32, 64)


def test_fairseq_generate_on_a_transfer_trained_model_needs_no_plm_features(
    plm_data, transfer_training, tmp_path
):
    data = tmp_path / "data"
    subprocess.run(["cp", "-r", str(plm_data), str(data)], check=True)
    subprocess.run(["rm", "-r", str(data / "plm_features")], check=True)
    command = fairseq_cli("generate", data, "--gen-subset", "dev", "--cpu", "--scoring", "wer")
    command += ["--path", str(transfer_training[1]), "--beam", "2", "--max-tokens", "4000"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = decode_in_process(transfer_training[1], plm_data, "dev", ctc_search(2, 1))
    assert_same_decoding(printed_hypotheses(result.stdout), expected)
    assert len(expected) == 8
