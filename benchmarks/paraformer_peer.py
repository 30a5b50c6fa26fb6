"""FunASR's Paraformer, built from its AISHELL-1 recipe with random weights, for bench_decode.py.

The configuration is FunASR's ``examples/aishell/paraformer/conf/paraformer_conformer_12e_6d_2048_256.yaml``
(model, encoder, decoder and predictor sections; training-only sections left out), with our
AISHELL-1 vocabulary size. The package comes from ``make bench-peers`` (``.venv-peers/``); nothing
is downloaded at run time.
"""

import contextlib
import io
import logging
import sys
from pathlib import Path
from typing import Optional

import torch

PEERS_DIR = Path(__file__).resolve().parents[1] / ".venv-peers"

RECIPE = {
    "ctc_weight": 0.3,
    "lsm_weight": 0.1,
    "length_normalized_loss": False,
    "predictor_weight": 1.0,
    "sampling_ratio": 0.4,
    "use_1st_decoder_loss": True,
    "encoder": "ConformerEncoder",
    "encoder_conf": {
        "output_size": 256, "attention_heads": 4, "linear_units": 2048, "num_blocks": 12,
        "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0,
        "input_layer": "conv2d", "normalize_before": True, "pos_enc_layer_type": "rel_pos",
        "selfattention_layer_type": "rel_selfattn", "activation_type": "swish", "macaron_style": True,
        "use_cnn_module": True, "cnn_module_kernel": 15,
    },
    "decoder": "ParaformerSANDecoder",
    "decoder_conf": {
        "attention_heads": 4, "linear_units": 2048, "num_blocks": 6, "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.0, "src_attention_dropout_rate": 0.0,
    },
    "predictor": "CifPredictor",
    "predictor_conf": {"idim": 256, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
    "input_size": 80,
}  # fmt: skip
FRAME_SECONDS = 0.04  # the conv2d front end subsamples 10 ms frames by 4


def import_error() -> Optional[str]:
    """None when FunASR can be imported from .venv-peers/, else why not."""
    if not PEERS_DIR.is_dir():
        return f"{PEERS_DIR} is missing: run `make bench-peers`"
    if str(PEERS_DIR) not in sys.path:
        sys.path.append(str(PEERS_DIR))  # after our site-packages: our torch and numpy win
    try:
        with _quiet():
            import funasr.models.paraformer.model  # noqa: F401
    except ImportError as error:
        return f"FunASR does not import from {PEERS_DIR} ({error}): run `make bench-peers`"
    return None


@contextlib.contextmanager
def _quiet():
    """FunASR prints notices about optional packages and logs its registry: keep the table readable."""
    root = logging.getLogger()
    level = root.level
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            yield
        finally:
            root.setLevel(level)


class Paraformer:
    """The recipe's model in eval mode, its predictor set to ``tokens_per_second``.

    Args:
        vocab_size (int): output vocabulary (ours: 4,234 symbols).
        tokens_per_second (float): the constant CIF weight per 40 ms frame is this rate x 0.04.
        encoder_blocks (int): conformer blocks of the encoder (the recipe's 12 by default; more to
            compare encoders at equal parameter count).
    """

    def __init__(self, vocab_size: int, tokens_per_second: float, encoder_blocks: int = 12):
        from funasr.register import tables

        recipe = dict(RECIPE, encoder_conf=dict(RECIPE["encoder_conf"], num_blocks=encoder_blocks))
        with _quiet():
            self.model = tables.model_classes["Paraformer"](**recipe, vocab_size=vocab_size).eval()
        with torch.no_grad():
            output = self.model.predictor.cif_output
            output.weight.zero_()
            output.bias.fill_(torch.logit(torch.tensor(tokens_per_second * FRAME_SECONDS)).item())

    def parameters(self, active_only: bool = False) -> int:
        """All parameters, or those decoding uses (without the CTC head)."""
        total = sum(p.numel() for p in self.model.parameters())
        return total - sum(p.numel() for p in self.model.ctc.parameters()) if active_only else total

    def encoder_parameters(self) -> int:
        return sum(p.numel() for p in self.model.encoder.parameters())

    @torch.no_grad()
    def encode(self, features: torch.Tensor) -> None:
        """(1, T, 80) features through the encoder only."""
        self.model.encode(features, torch.tensor([features.size(1)]))

    @torch.no_grad()
    def recognise(self, features: torch.Tensor) -> int:
        """(1, T, 80) features through FunASR's own inference path (greedy); returns the token count."""
        results, _ = self.model.inference(
            features, torch.tensor([[features.size(1)]]), key=["utterance"], data_type="fbank", device="cpu"
        )
        return len(results[0]["token_int"])
