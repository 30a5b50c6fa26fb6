"""CIF in a plain PyTorch training step, without fairseq.

A weight predictor learns, through the quantity loss |sum(alpha) - target length| alone, to fire
as many tokens as each random utterance has targets; integrate-and-fire then yields one vector
per target token. Runs in a few seconds on a CPU:

    python examples/cif_standalone.py
"""

from typing import List

import torch

from cif_plugin.modules import Cif, CifWeightPredictor


def train(steps: int = 60, seed: int = 0) -> List[float]:
    """Train the weight predictor on random data; return the quantity loss of every step."""
    torch.manual_seed(seed)
    batch, frames, dim = 8, 50, 32
    cif = Cif(CifWeightPredictor(dim, "conv", conv_channels=32, dropout=0.0), input_dim=dim)
    optimizer = torch.optim.Adam(cif.parameters(), lr=1e-2)
    # Each utterance has ~1 token per 4 frames; the model must discover that from the features.
    hidden = torch.randn(batch, frames, dim)
    lengths = torch.randint(frames // 2, frames + 1, (batch,))
    target_lengths = (lengths + 2) // 4
    losses = []
    for _ in range(steps):
        # In training the weights are scaled to sum to the target length, so (unless a scaled
        # weight exceeds 1 near the end) each utterance fires exactly one vector per target token.
        out = cif.train()(hidden, lengths, target_lengths)
        quantity_loss = (out.quantity - target_lengths.float()).abs().mean()
        optimizer.zero_grad()
        quantity_loss.backward()
        optimizer.step()
        losses.append(quantity_loss.item())
    return losses


def main() -> None:
    losses = train()
    print(
        f"quantity loss |sum(alpha) - target length|: first step {losses[0]:.3f}, last step {losses[-1]:.3f}"
    )
    torch.manual_seed(1)
    cif = Cif(CifWeightPredictor(32, "conv", conv_channels=32), input_dim=32).eval()
    out = cif(torch.randn(2, 20, 32), tail_threshold=0.4)
    print(f"eval on random input: tokens {out.fire_counts.tolist()}, fire frames {out.fire_frames.tolist()}")


if __name__ == "__main__":
    main()
