"""Per-frame CIF weight predictor (docs/model.md, "CIF")."""

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["CifWeightPredictor", "WEIGHT_PREDICTOR_TYPES"]

WEIGHT_PREDICTOR_TYPES = ("conv", "dense", "linear")


class CifWeightPredictor(nn.Module):
    """Predicts a weight in (0, 1) for every encoder frame; padded frames get weight 0.

    - ``conv`` (the paper's): Conv1d(C -> channels, kernel ``conv_width``, 'same' zero padding)
      -> Dropout -> Linear(channels -> 1) -> sigmoid, with no activation between conv and linear.
    - ``dense``: Linear(C -> ``dense_units``) -> ReLU -> Linear(-> 1) -> sigmoid.
    - ``linear``: Linear(C -> 1) -> sigmoid.

    In a chunk-causal model (``chunk_size`` > 0, docs/streaming.md) the convolution sees no frame
    past the end of the current chunk: there it reads zeros, as at the end of an utterance.

    Padded frames are zeroed before the convolution so that weights do not depend on how much
    padding a batch has (the reference lets padding content leak into the conv). The output layer
    runs in float32 even under fp16/bf16, so the weights are float32.

    Args:
        input_dim (int): encoder dimension C (``encoder_embed_dim``).
        predictor_type (str): ``conv``, ``dense`` or ``linear`` (``--produce-weight-type``).
        conv_width (int): odd conv kernel width (``--conv-cif-width``). Default: 3.
        conv_channels (int): conv output channels (``--conv-cif-output-channels-num``). Default: 256.
        dropout (float): dropout after the conv (``--conv-cif-dropout``). Default: 0.2.
        dense_units (int): hidden units of ``dense`` (``--dense-cif-units-num``). Default: 256.
    """

    def __init__(
        self,
        input_dim: int,
        predictor_type: str = "conv",
        conv_width: int = 3,
        conv_channels: int = 256,
        dropout: float = 0.2,
        dense_units: int = 256,
    ) -> None:
        super().__init__()
        if predictor_type not in WEIGHT_PREDICTOR_TYPES:
            raise ValueError(
                f"predictor_type must be one of {WEIGHT_PREDICTOR_TYPES}, got {predictor_type!r}"
            )
        if predictor_type == "conv" and conv_width % 2 == 0:
            raise ValueError(f"conv_width must be odd to keep the frame count, got {conv_width}")
        self.predictor_type = predictor_type
        self.conv: Optional[nn.Conv1d] = None
        self.dense: Optional[nn.Linear] = None
        if predictor_type == "conv":
            self.conv = nn.Conv1d(input_dim, conv_channels, conv_width, padding=conv_width // 2)
            self.dropout = nn.Dropout(dropout)
            hidden_dim = conv_channels
        elif predictor_type == "dense":
            self.dense = nn.Linear(input_dim, dense_units)
            self.dropout = nn.Identity()
            hidden_dim = dense_units
        else:
            self.dropout = nn.Identity()
            hidden_dim = input_dim
        self.output_proj = nn.Linear(hidden_dim, 1)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, hidden: Tensor, padding_mask: Optional[Tensor] = None, chunk_size: int = 0) -> Tensor:
        """
        Args:
            hidden (Tensor): (B, T, C) encoder output.
            padding_mask (Tensor, optional): (B, T) bool, True at padded frames.
            chunk_size (int): frames per chunk of a chunk-causal encoder (0: full context).

        Returns:
            Tensor: (B, T) float32 weights, 0 at padded frames.
        """
        if padding_mask is not None:
            hidden = hidden.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        if self.conv is not None and chunk_size > 0:
            hidden = self._chunked_conv(hidden, chunk_size)
        elif self.conv is not None:
            hidden = self.conv(hidden.transpose(1, 2)).transpose(1, 2)  # (B, T, channels)
        elif self.dense is not None:
            hidden = torch.relu(self.dense(hidden))
        return self._alpha(hidden, padding_mask)

    def _alpha(self, hidden: Tensor, padding_mask: Optional[Tensor]) -> Tensor:
        """(B, T, hidden) predictor states -> (B, T) float32 weights, 0 at padded frames."""
        hidden = self.dropout(hidden)
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            logits = nn.functional.linear(
                hidden.float(), self.output_proj.weight.float(), self.output_proj.bias.float()
            ).squeeze(-1)
        alpha = torch.sigmoid(logits)
        return alpha if padding_mask is None else alpha.masked_fill(padding_mask, 0.0)

    def _chunked_conv(self, hidden: Tensor, chunk_size: int) -> Tensor:
        """(B, T, C) -> (B, T, channels): each chunk convolved with its left context and zeros after it."""
        batch, frames, dim = hidden.shape
        half = self.conv.kernel_size[0] // 2
        chunks = -(-frames // chunk_size)
        padded = nn.functional.pad(hidden, (0, 0, half, chunks * chunk_size - frames))
        windows = padded.unfold(1, chunk_size + half, chunk_size)  # (B, chunks, C, half + chunk)
        windows = nn.functional.pad(windows, (0, half)).reshape(batch * chunks, dim, -1)
        out = nn.functional.conv1d(windows, self.conv.weight, self.conv.bias)  # (B * chunks, ch, chunk)
        out = out.view(batch, chunks, -1, chunk_size).transpose(2, 3).reshape(batch, chunks * chunk_size, -1)
        return out[:, :frames]

    def forward_chunk(self, hidden: Tensor, previous: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        """Weights of one chunk of a stream (batch 1, all frames valid), as :meth:`forward` computes
        them under a chunk mask.

        Args:
            hidden (Tensor): (1, C', C) the chunk's encoder frames.
            previous (Tensor, optional): (1, k // 2, C) the frames before it (None: stream start).

        Returns:
            (Tensor, Tensor): (1, C') float32 weights; the new ``previous``.
        """
        if self.conv is None:
            return self(hidden), previous
        half = self.conv.kernel_size[0] // 2
        if previous is None:
            previous = hidden.new_zeros(1, half, hidden.size(2))
        window = torch.cat([previous, hidden], dim=1)
        conv_input = nn.functional.pad(window, (0, 0, 0, half)).transpose(1, 2)
        states = nn.functional.conv1d(conv_input, self.conv.weight, self.conv.bias).transpose(1, 2)
        return self._alpha(states, None), window[:, window.size(1) - half :]
