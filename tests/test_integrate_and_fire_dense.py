"""The export's dense integrate-and-fire against the scatter-based one that training and decoding use
(itself checked against a sequential reference in tests/test_cif.py)."""

import pytest
import torch

from cif_plugin.modules.integrate_and_fire import integrate_and_fire
from cif_plugin.modules.integrate_and_fire_dense import cumulative_min, integrate_and_fire_dense


@pytest.mark.parametrize("threshold, tail_threshold", [(0.99, None), (0.99, 0.4), (1.0, 0.0), (0.5, 0.4)])
def test_dense_fires_like_integrate_and_fire(threshold, tail_threshold):
    generator = torch.Generator().manual_seed(int(threshold * 100) + (0 if tail_threshold is None else 7))
    for trial in range(60):
        batch = int(torch.randint(1, 5, (), generator=generator))
        frames = int(torch.randint(1, 40, (), generator=generator))
        hidden = torch.randn(batch, frames, 3, generator=generator)
        alpha = torch.rand(batch, frames, generator=generator) * (1.5 if trial % 3 else 0.3)
        if trial % 5 == 0:  # weights above 1 force fires on consecutive frames
            alpha = alpha * 4
        lengths = torch.randint(1, frames + 1, (batch,), generator=generator)
        expected = integrate_and_fire(hidden, alpha, lengths, threshold, tail_threshold)
        got = integrate_and_fire_dense(hidden, alpha, lengths, threshold, tail_threshold)
        assert torch.equal(got.fire_counts, expected.fire_counts)
        assert torch.equal(got.fire_frames, expected.fire_frames)
        torch.testing.assert_close(got.cif_out, expected.cif_out, rtol=1e-5, atol=1e-5)


def test_cumulative_min_is_torch_cummin():
    values = torch.randint(-5, 5, (3, 17), generator=torch.Generator().manual_seed(0))
    assert torch.equal(cumulative_min(values), torch.cummin(values, dim=1).values)
