"""The inference linear map equals ``nn.functional.linear`` on every path, and follows weight changes."""

import pytest
import torch
from torch import nn

from cif_plugin.modules import inference_linear
from cif_plugin.modules.inference_linear import apply_linear, linear, stacked


@pytest.mark.parametrize("rows", [1, 2, 10, 225])  # a matrix-vector product, then matrix products
@pytest.mark.parametrize("bias", [True, False])
def test_equals_the_stock_linear_map(rows, bias):
    torch.manual_seed(rows)
    layer = nn.Linear(48, 80, bias=bias)
    x = torch.randn(1, rows, 48)
    with torch.no_grad():
        fast = apply_linear(layer, x)
    expected = nn.functional.linear(x, layer.weight, layer.bias)
    assert fast.shape == (1, rows, 80)
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)


def test_a_kernel_one_convolution_is_its_linear_map():
    torch.manual_seed(0)
    conv = nn.Conv1d(16, 24, kernel_size=1)
    x = torch.randn(2, 9, 16)  # (B, T, C)
    with torch.no_grad():
        fast = linear(x, conv.weight, conv.bias)
        expected = conv(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rows", [1, 6])
def test_a_weight_changed_in_place_or_swapped_is_read_again(rows):
    """The laid-out copies are remade after an in-place write (an optimiser step) or a .data swap."""
    torch.manual_seed(1)
    layer = nn.Linear(32, 32)
    x = torch.randn(rows, 32)
    with torch.no_grad():
        before = apply_linear(layer, x)
        layer.weight.mul_(-2.0)
        after_in_place = apply_linear(layer, x)
        torch.testing.assert_close(after_in_place, layer(x), atol=1e-5, rtol=1e-5)
        layer.weight.data = torch.randn(32, 32)
        after_swap = apply_linear(layer, x)
        torch.testing.assert_close(after_swap, layer(x), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before, after_in_place)


def test_with_gradients_or_in_double_it_is_the_stock_map():
    """Training and float64 take nn.functional.linear itself: gradients flow, no copies are made."""
    layer = nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    inference_linear._COPIES.clear()
    apply_linear(layer, x).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    with torch.no_grad():
        double = layer.double()
        torch.testing.assert_close(apply_linear(double, x.double()), double(x.double()), atol=0, rtol=0)
    assert not inference_linear._COPIES


def test_copies_go_when_their_weight_goes():
    layer = nn.Linear(8, 8)
    with torch.no_grad():
        apply_linear(layer, torch.randn(3, 8))
    key = (id(layer.weight), "transposed")
    assert key in inference_linear._COPIES
    del layer
    assert key not in inference_linear._COPIES


def test_an_optimiser_step_through_param_data_is_seen():
    """fairseq's Adam writes ``p.data`` in place (no version bump, same pointer): the validation
    inside a training run must still read the stepped weights."""
    from fairseq.optim.adam import Adam

    torch.manual_seed(0)
    layer = nn.Linear(8, 4)
    x = torch.randn(5, 8)
    with torch.no_grad():
        apply_linear(layer, x)  # caches copies of the weight
    optimizer = Adam(layer.parameters(), lr=0.1)
    layer(x).sum().backward()
    optimizer.step()
    with torch.no_grad():
        torch.testing.assert_close(apply_linear(layer, x), layer(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(apply_linear(layer, x[:1]), layer(x[:1]), rtol=1e-5, atol=1e-5)


def test_stacked_projections_are_the_separate_ones_and_follow_their_weights():
    """One product with stacked query/key/value weights gives the three products; a change to any
    weight (in place or a .data swap) is read at the next call; with gradients on it is torch.cat."""
    torch.manual_seed(2)
    projections = [nn.Linear(16, 16) for _ in range(3)]
    x = torch.randn(4, 16)

    def separate():
        return torch.cat([projection(x) for projection in projections], dim=1)

    def together():
        weights, biases = [p.weight for p in projections], [p.bias for p in projections]
        return linear(x, stacked(weights), stacked(biases))

    with torch.no_grad():
        torch.testing.assert_close(together(), separate(), atol=1e-5, rtol=1e-5)
        projections[1].weight.mul_(3.0)
        torch.testing.assert_close(together(), separate(), atol=1e-5, rtol=1e-5)
        projections[2].bias.data = torch.randn(16)
        torch.testing.assert_close(together(), separate(), atol=1e-5, rtol=1e-5)
    weights = [p.weight for p in projections]
    stacked(weights).sum().backward()
    assert all(torch.equal(w.grad, torch.ones_like(w)) for w in weights)
