"""Relative-position multi-head attention with a float32 softmax (docs/differences.md, "Numerics")."""

from typing import Optional

import torch
from fairseq.modules import RelPositionMultiHeadedAttention
from torch import Tensor

__all__ = ["Float32SoftmaxRelPositionAttention"]


class Float32SoftmaxRelPositionAttention(RelPositionMultiHeadedAttention):
    """fairseq's ESPnet/Transformer-XL rel-pos attention, with the reference's numerics kept.

    Stock fairseq takes the softmax in the score dtype (fp16 under ``--fp16``) and leaves masked
    entries as they come out of it; here the softmax runs in float32, masked keys are reset to 0
    after it, and the result is cast back. Same parameters as the stock module.
    """

    def forward_attention(self, value: Tensor, scores: Tensor, mask: Optional[Tensor]) -> Tensor:
        """
        Args:
            value (Tensor): (B, H, T2, d_k) projected values.
            scores (Tensor): (B, H, T1, T2) attention scores.
            mask (Tensor, optional): (B, T2) bool key padding mask, True at padding.

        Returns:
            Tensor: (B, T1, H * d_k) attended values after the output projection.
        """
        batch = value.size(0)
        with torch.autocast(device_type=scores.device.type, enabled=False):
            scores = scores.float()
            if mask is not None:
                key_mask = mask.unsqueeze(1).unsqueeze(2).to(torch.bool)
                attn = torch.softmax(scores.masked_fill(key_mask, float("-inf")), dim=-1)
                attn = attn.masked_fill(key_mask, 0.0)
            else:
                attn = torch.softmax(scores, dim=-1)
        self.attn = attn.to(value.dtype)
        x = torch.matmul(self.dropout(self.attn), value)  # (B, H, T1, d_k)
        x = x.transpose(1, 2).reshape(batch, -1, self.h * self.d_k)
        return self.linear_out(x)
