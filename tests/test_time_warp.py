"""cif_plugin/tasks/time_warp.py: SpecAugment time warping against numpy.interp."""

import numpy as np
import pytest
from fairseq.data.audio.feature_transforms import CompositeAudioFeatureTransform

import cif_plugin  # noqa: F401  (registers time_warp)
from cif_plugin.tasks.time_warp import TimeWarp


def _interp_columns(features, positions):
    """numpy.interp of each feature column at fractional frame positions."""
    frames = np.arange(features.shape[0])
    return np.stack([np.interp(positions, frames, column) for column in features.T], axis=1)


@pytest.mark.parametrize("centre, shift", [(20, 5), (20, -5), (7, 4), (40, -9)])
def test_warp_moves_the_centre_frame_and_stretches_both_sides_linearly(centre, shift):
    frames = 60
    ramp = np.repeat(np.arange(frames, dtype=np.float64)[:, None], 3, axis=1)
    warped = TimeWarp.warp(ramp, centre, shift)
    # On a ramp the output is the source position: piecewise linear through three knots.
    knots = np.interp(np.arange(frames), [0, centre + shift, frames - 1], [0, centre, frames - 1])
    np.testing.assert_allclose(warped, np.repeat(knots[:, None], 3, axis=1), atol=1e-9)
    assert warped[centre + shift, 0] == pytest.approx(centre)
    assert (warped[0, 0], warped[-1, 0]) == (0, frames - 1)


def test_warp_interpolates_every_bin_like_numpy_interp():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(83, 80)).astype(np.float32)
    centre, shift = 30, -6
    positions = np.interp(np.arange(83), [0, centre + shift, 82], [0, centre, 82])
    warped = TimeWarp.warp(features, centre, shift)
    assert warped.dtype == np.float32 and warped.shape == features.shape
    np.testing.assert_allclose(warped, _interp_columns(features, positions), rtol=1e-5, atol=1e-5)


def test_random_warps_stay_within_w_and_keep_the_ends():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(50, 4))
    transform = TimeWarp(5)
    np.random.seed(3)
    changed = 0
    for _ in range(40):
        warped = transform(features)
        assert warped.shape == features.shape
        np.testing.assert_allclose(warped[[0, -1]], features[[0, -1]])
        changed += not np.allclose(warped, features)
        # The warp is one of the (centre, shift) pairs W allows: find it by brute force.
        matches = [
            (c, s)
            for c in range(5, 45)
            for s in range(-5, 6)
            if 0 < c + s < 49 and np.allclose(warped, TimeWarp.warp(features, c, s))
        ]
        assert matches
    assert changed > 30  # shift 0 (no change) is 1 draw in 11


def test_no_warp_for_w_0_or_a_short_input():
    features = np.arange(20.0).reshape(10, 2)
    assert TimeWarp(0)(features) is features
    assert TimeWarp(5)(features) is features  # 10 frames leave no room for a warp point
    with pytest.raises(ValueError, match="W must be >= 0"):
        TimeWarp(-1)
    with pytest.raises(ValueError, match=r"warp target frame 9 is not inside \(0, 9\)"):
        TimeWarp.warp(features, 7, 2)


def test_the_data_config_builds_it_by_name():
    transforms = CompositeAudioFeatureTransform.from_config_dict(
        {"feature_transforms": ["utterance_cmvn", "time_warp"], "time_warp": {"W": 4}}
    )
    assert [repr(t) for t in transforms.transforms][1] == "TimeWarp(W=4)"
