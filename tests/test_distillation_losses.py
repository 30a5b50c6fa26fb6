"""ACD and LRD against hand computations and the reference's direct N x K x D formulation."""

import math

import pytest
import torch
import torch.nn.functional as F

from cif_plugin.criterions.distillation_losses import (
    acd_loss,
    contrastive_distillation,
    lrd_loss,
    negative_count,
    sample_negatives,
)


def test_identical_student_and_teacher_with_orthogonal_negatives_give_zero_loss():
    features = torch.eye(6)  # every token orthogonal to every other
    negatives = sample_negatives(6, 4, torch.Generator().manual_seed(0))
    loss, correct = acd_loss(features, features.clone(), negatives, temperature=0.02, remove_overlap=True)
    assert loss.item() < 1e-15 and correct.item() == 6


def test_a_self_negative_does_not_change_the_loss_with_remove_overlap():
    generator = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(5, 8, generator=generator), torch.randn(5, 8, generator=generator)
    others = torch.tensor([[1, 2], [0, 2], [3, 4], [4, 0], [1, 3]])
    with_self = torch.cat([others, torch.arange(5).unsqueeze(1)], dim=1)  # each anchor also drew itself
    base, _ = acd_loss(student, teacher, others, 0.1, remove_overlap=True)
    selfed, _ = acd_loss(student, teacher, with_self, 0.1, remove_overlap=True)
    torch.testing.assert_close(selfed, base)
    counted, _ = acd_loss(student, teacher, with_self, 0.1, remove_overlap=False)
    assert counted > base


def test_equals_the_direct_n_by_k_by_d_computation():
    generator = torch.Generator().manual_seed(2)
    student, teacher = torch.randn(7, 16, generator=generator), torch.randn(7, 16, generator=generator)
    student[3] *= 1e-8  # below the 1e-6 norm floor: its cosines shrink instead of staying unit-norm
    teacher[5] *= 1e-8
    negatives = sample_negatives(7, 5, generator)
    loss, correct = acd_loss(student, teacher, negatives, 0.05, remove_overlap=True)
    # The reference: gather an N x K x D tensor of negatives and take cosines one by one.
    expected, expected_correct = 0.0, 0
    for n in range(7):
        positive = F.cosine_similarity(student[n], teacher[n], dim=0, eps=1e-6)
        negative_rows = teacher[negatives[n]]  # (K, D)
        negative = F.cosine_similarity(student[n].expand_as(negative_rows), negative_rows, dim=1, eps=1e-6)
        negative[negatives[n] == n] = -math.inf
        logits = torch.cat([positive.view(1), negative]) / 0.05
        expected += -torch.log_softmax(logits, 0)[0].item()
        expected_correct += int(logits.argmax() == 0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert correct.item() == expected_correct


def test_negatives_are_distinct_and_reduced_for_small_batches():
    negatives = sample_negatives(10, 8, torch.Generator().manual_seed(3))
    assert negatives.shape == (10, 8) and all(len(set(row.tolist())) == 8 for row in negatives)
    assert negative_count(950, 700) == 700 and negative_count(700, 700) == 560 and negative_count(3, 700) == 2


def test_lrd_against_hand_computation():
    student = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[1.0, 1.0], [3.0, 0.0]]])
    teacher = torch.tensor([[[0.0, 2.0], [5.0, 5.0]], [[1.0, 3.0], [0.0, 4.0]]])
    valid = torch.tensor([[True, False], [True, True]])
    # valid squared errors: (1 + 0), (0 + 4), (9 + 16)
    assert lrd_loss(student, teacher, valid, dim_scaling=False).item() == 1 + 4 + 25
    assert lrd_loss(student, teacher, valid, dim_scaling=True).item() == (1 + 4 + 25) / 2


def test_negatives_are_drawn_from_the_given_generator():
    expected = torch.multinomial(
        torch.ones(9, 9), 4, replacement=False, generator=torch.Generator().manual_seed(5)
    )
    torch.manual_seed(123)  # the global generator must not matter
    assert torch.equal(sample_negatives(9, 4, torch.Generator().manual_seed(5)), expected)


def test_contrastive_distillation_with_one_negative_and_with_none():
    generator = torch.Generator().manual_seed(6)
    student, teacher = torch.randn(2, 8, generator=generator), torch.randn(2, 8, generator=generator)
    assert negative_count(2, 1) == 1
    for remove_overlap in (False, True):
        loss, correct = contrastive_distillation(
            student, teacher, 1, 0.1, remove_overlap, torch.Generator().manual_seed(7)
        )
        negatives = sample_negatives(2, 1, torch.Generator().manual_seed(7))
        expected, expected_correct = acd_loss(student, teacher, negatives, 0.1, remove_overlap)
        torch.testing.assert_close(loss, expected)
        assert correct == expected_correct
    # A single anchor has no negatives: zero loss, nothing counted, as 0-d float32 and int64.
    loss, correct = contrastive_distillation(student[:1].half(), teacher[:1].half(), 700, 0.1, True)
    assert loss.shape == () and loss.dtype == torch.float32 and loss.item() == 0.0
    assert correct.shape == () and correct.dtype == torch.long and correct.item() == 0
