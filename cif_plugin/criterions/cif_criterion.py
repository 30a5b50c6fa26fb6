"""Criterion ``cif``: label-smoothed CE + CTC + quantity loss (docs/model.md, "Losses").

loss = CE + ctc_loss_lambda * CTC + quantity_loss_lambda * |sum(alpha) - target length|, all sums
over the batch; fairseq divides by ``sample_size`` = target tokens including ``</s>``. In
validation the criterion also counts teacher-forced token and word errors, so
``--best-checkpoint-metric wer`` selects on them. Hierarchical distillation adds
cif_contrastive_dis_cos_loss_lambda * ACD + dec_state_dis_loss_lambda * LRD, read from the batch's
``plm_features`` (the task loads them when one of the two is on).
"""

from dataclasses import dataclass, field
from typing import Dict

import torch
from fairseq.criterions import register_criterion

from ..ops.ctc import ctc_blank_index, ctc_loss_sum
from .asr_criterion import AsrCriterion, AsrCriterionConfig, strip_target
from .cif_losses import cross_entropy_sum, quantity_loss_sum, teacher_forced_predictions
from .distillation_losses import aligned_teacher, contrastive_distillation, lrd_loss
from .error_rates import count_errors

__all__ = ["CifCriterion", "CifCriterionConfig"]

# Logged loss terms, each divided by sample_size and by ln 2 (bits per target token, as fairseq).
LOSS_TERMS = (
    "loss",
    "ce_loss",
    "ctc_loss",
    "quantity_loss",
    "cif_contrastive_dis_cos_loss",
    "dec_state_dis_loss",
)


@dataclass
class CifCriterionConfig(AsrCriterionConfig):
    ctc_loss_lambda: float = field(
        default=0.25, metadata={"help": "weight of the CTC loss (0.5 in the paper)"}
    )
    quantity_loss_lambda: float = field(default=1.0, metadata={"help": "weight of the quantity loss"})
    no_ctc_loss: bool = field(default=False, metadata={"help": "drop the CTC term"})
    no_quantity_loss: bool = field(default=False, metadata={"help": "drop the quantity term"})
    apply_label_smoothing: bool = field(
        default=False, metadata={"help": "uniform label smoothing on the CE (on in the paper)"}
    )
    label_smoothing_rate: float = field(default=0.1, metadata={"help": "label smoothing epsilon"})
    apply_cif_contrastive_dis_cos_loss: bool = field(
        default=False, metadata={"help": "ACD: contrastive distillation of PLM features into the CIF vectors"}
    )
    cif_contrastive_dis_cos_loss_lambda: float = field(
        default=0.0, metadata={"help": "weight of ACD (1.0 in the paper)"}
    )
    num_contrastive_negative_samples: int = field(
        default=700,
        metadata={"help": "ACD negatives per anchor (0.8 x the anchors when the batch has fewer)"},
    )
    contrastive_temperature: float = field(
        default=0.1, metadata={"help": "ACD temperature tau (0.02 in the paper)"}
    )
    remove_overlap_in_negs: bool = field(
        default=False,
        metadata={"help": "ACD: an anchor's own PLM feature drawn as a negative does not count"},
    )
    apply_dec_state_dis_loss: bool = field(
        default=False, metadata={"help": "LRD: regression of the decoder states onto the PLM features"}
    )
    dec_state_dis_loss_lambda: float = field(
        default=0.0, metadata={"help": "weight of LRD (0.01 in the paper)"}
    )
    no_dim_scaling_for_mse_loss: bool = field(
        default=False,
        metadata={"help": "LRD sums squared errors over the feature dimensions instead of averaging"},
    )


@register_criterion("cif", dataclass=CifCriterionConfig)
class CifCriterion(AsrCriterion):
    loss_terms = LOSS_TERMS

    def __init__(self, cfg: CifCriterionConfig, task):
        super().__init__(cfg, task)
        self.blank = ctc_blank_index(self.dictionary)
        self.not_predicted = [self.blank, self.pad, self.eos]

    @property
    def needs_plm_features(self) -> bool:
        return self.cfg.apply_cif_contrastive_dis_cos_loss or self.cfg.apply_dec_state_dis_loss

    def forward(self, model, sample, reduce=True):
        """Returns (loss, sample_size, logging_output) with summed values."""
        net_output = model(**sample["net_input"], target_lengths=sample["target_lengths"])
        terms = self.compute_terms(net_output, sample)
        loss = terms["ce_loss"] + sum(weight * terms[name] for name, weight in self.term_weights().items())
        logged = {name: value.item() for name, value in terms.items() if name not in ("ce_loss", "nll_loss")}
        logged.update(
            {
                name: int(logged[name])
                for name in ("contrastive_correct", "contrastive_total")
                if name in logged
            }
        )
        logged["ce_loss"] = terms["nll_loss"].item()  # unsmoothed, as the published code logs it
        sample_size, logging_output = self.logging_output(sample, loss, sample["ntokens"], **logged)
        if not model.training:
            logging_output.update(self.error_counts(net_output, sample))
        return loss, sample_size, logging_output

    def term_weights(self) -> Dict[str, float]:
        """Weights of the auxiliary terms that are on (CE always has weight 1)."""
        weights = {}
        if not self.cfg.no_ctc_loss:
            weights["ctc_loss"] = self.cfg.ctc_loss_lambda
        if not self.cfg.no_quantity_loss:
            weights["quantity_loss"] = self.cfg.quantity_loss_lambda
        if self.cfg.apply_cif_contrastive_dis_cos_loss:
            weights["cif_contrastive_dis_cos_loss"] = self.cfg.cif_contrastive_dis_cos_loss_lambda
        if self.cfg.apply_dec_state_dis_loss:
            weights["dec_state_dis_loss"] = self.cfg.dec_state_dis_loss_lambda
        return weights

    def compute_terms(self, net_output, sample) -> Dict[str, torch.Tensor]:
        """Every loss term as a float32 sum over the batch."""
        target, target_lengths = sample["target"], sample["target_lengths"]
        smoothing = self.cfg.label_smoothing_rate if self.cfg.apply_label_smoothing else 0.0
        ce_loss, nll_loss = cross_entropy_sum(net_output["decoder_logits"], target, self.pad, smoothing)
        terms = {"ce_loss": ce_loss, "nll_loss": nll_loss}
        if not self.cfg.no_ctc_loss:
            terms["ctc_loss"] = ctc_loss_sum(
                net_output["ctc_logits"], net_output["encoder_lengths"], target, target_lengths,
                self.pad, self.blank, self.cfg.zero_infinity,
            )  # fmt: skip
        if not self.cfg.no_quantity_loss:
            terms["quantity_loss"] = quantity_loss_sum(net_output["quantity"], target_lengths)
        if self.needs_plm_features:
            terms.update(self.distillation_terms(net_output, sample))
        return terms

    def distillation_terms(self, net_output, sample) -> Dict[str, torch.Tensor]:
        """ACD and LRD; the masks and truncation widths stay separate variables (docs/differences.md)."""
        if "plm_features" not in sample:
            raise KeyError(
                "the batch has no plm_features: train with --task speech_to_text_cif and a PLM store"
            )
        plm = sample["plm_features"]
        cif_valid = ~net_output["cif_padding_mask"]  # (B, N)
        terms = {}
        if self.cfg.apply_cif_contrastive_dis_cos_loss:
            features = _distill_output(net_output, "cif_distill_features")
            width = min(plm.size(1) - 1, features.size(1))
            anchors = cif_valid[:, :width]
            student, teacher = features[:, :width][anchors], aligned_teacher(plm, width)[anchors]
            loss, correct = contrastive_distillation(
                student,
                teacher,
                self.cfg.num_contrastive_negative_samples,
                self.cfg.contrastive_temperature,
                self.cfg.remove_overlap_in_negs,
                self.batch_generator(sample, student.device),
            )
            terms.update(cif_contrastive_dis_cos_loss=loss, contrastive_correct=correct)
            terms["contrastive_total"] = torch.tensor(len(student))
        if self.cfg.apply_dec_state_dis_loss:
            states = _distill_output(net_output, "decoder_distill_states")
            width = min(plm.size(1) - 1, states.size(1))
            terms["dec_state_dis_loss"] = lrd_loss(
                states[:, :width], aligned_teacher(plm, width), cif_valid[:, :width],
                dim_scaling=not self.cfg.no_dim_scaling_for_mse_loss,
            )  # fmt: skip
        return terms

    def error_counts(self, net_output, sample) -> Dict[str, int]:
        """Teacher-forced token and word errors (the published validation metric)."""
        with torch.no_grad():
            hypotheses = teacher_forced_predictions(
                net_output["decoder_logits"], net_output["fire_counts"], self.not_predicted
            )
        return count_errors(hypotheses, strip_target(sample["target"], self.not_predicted), self.words)


def _distill_output(net_output, name: str) -> torch.Tensor:
    if name not in net_output:
        raise KeyError(f"the model has no {name}: distillation needs --apply-bert-distill")
    return net_output[name]
