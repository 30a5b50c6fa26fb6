"""cif_plugin/tasks/waveform_augment.py: volume and additive noise, and what they do to the features."""

import numpy as np
import pytest
import soundfile
import torch
from fairseq.data.audio.feature_transforms.utterance_cmvn import UtteranceCMVN

from cif_plugin.tasks.fbank_features import kaldi_fbank
from cif_plugin.tasks.waveform_augment import WaveformAugmenter, generated_noise, mix_at_snr


def _speech_like(seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    time = np.arange(int(16000 * seconds)) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * time) * (1 + np.sin(2 * np.pi * 3 * time)) + 0.01 * rng.normal(
        size=time.shape
    )
    return torch.from_numpy(tone).float().unsqueeze(0)


def _snr_db(clean, mixed):
    clean, added = clean.double(), mixed.double() - clean.double()
    return float(10 * torch.log10(clean.pow(2).mean() / added.pow(2).mean()))


@pytest.mark.parametrize("snr_db", [0.0, 7.5, 30.0])
def test_noise_is_mixed_at_the_requested_snr(snr_db):
    clean = _speech_like()
    noise = generated_noise("white", clean.shape[1], np.random.default_rng(1))
    assert _snr_db(clean, mix_at_snr(clean, noise, snr_db)) == pytest.approx(snr_db, abs=1e-4)
    silence = torch.zeros_like(clean)
    assert torch.equal(mix_at_snr(silence, noise, snr_db), silence)
    with pytest.raises(ValueError, match="noise of shape"):
        mix_at_snr(clean, noise[:, :-1], snr_db)


def test_generated_noise_has_unit_power_and_its_spectral_slope():
    """White noise has as much power per hertz everywhere, so each octave holds twice the one below;
    pink noise (1/f) has as much power in every octave."""
    samples = 2**16
    for kind, octave_ratio in (("white", 2.0), ("pink", 1.0)):
        noise = generated_noise(kind, samples, np.random.default_rng(2))[0].double()
        assert noise.shape == (samples,)
        assert float(noise.mean()) == pytest.approx(0, abs=1e-9)
        assert float(noise.pow(2).mean()) == pytest.approx(1, abs=1e-9)
        power = torch.fft.rfft(noise).abs().pow(2)
        low, high = power[512:1024].sum(), power[1024:2048].sum()  # two octaves of bins
        assert float(high / low) == pytest.approx(octave_ratio, rel=0.1)
    with pytest.raises(ValueError, match="noise kind"):
        generated_noise("brown", 10, np.random.default_rng(0))


def test_a_gain_adds_2_ln_g_to_the_log_mel_features_and_utterance_cmvn_removes_it():
    clean = _speech_like()
    gain = 0.3
    augmenter = WaveformAugmenter(volume_range=(gain, gain))
    louder = augmenter("BAC009S0001W0001", clean)
    torch.testing.assert_close(louder, clean * gain)
    features, features_scaled = kaldi_fbank(clean), kaldi_fbank(louder)
    np.testing.assert_allclose(features_scaled, features + 2 * np.log(gain), atol=2e-4)
    cmvn = UtteranceCMVN()
    np.testing.assert_allclose(cmvn(features_scaled), cmvn(features), atol=5e-3)


def test_draws_depend_on_the_seed_and_the_utterance_only():
    clean = _speech_like()
    augmenter = WaveformAugmenter(volume_range=(0.5, 2.0), snr_range=(10.0, 20.0), noise_kind="pink", seed=4)
    first = augmenter("sp0.9-BAC009S0001W0001", clean)
    assert torch.equal(first, augmenter("sp0.9-BAC009S0001W0001", clean))
    draws = [augmenter.draws(f"BAC009S0001W{i:04d}")[:2] for i in range(200)]
    gains, snrs = np.array(draws).T
    assert 0.5 <= gains.min() and gains.max() <= 2.0 and 10 <= snrs.min() and snrs.max() <= 20
    assert len(set(gains)) == 200 and gains.std() > 0.3  # spread over the range, one draw per id
    other_seed = WaveformAugmenter(volume_range=(0.5, 2.0), snr_range=(10.0, 20.0), noise_kind="pink", seed=5)
    assert not torch.equal(first, other_seed("sp0.9-BAC009S0001W0001", clean))
    gain, snr_db, _ = augmenter.draws("sp0.9-BAC009S0001W0001")
    assert _snr_db(clean, first / gain) == pytest.approx(snr_db, abs=1e-3)
    with pytest.raises(ValueError, match="gains must be positive"):
        WaveformAugmenter(volume_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="low must not exceed high"):
        WaveformAugmenter(snr_range=(20.0, 10.0))


def test_noise_from_a_folder_is_an_excerpt_of_one_of_its_files_looped_when_short(tmp_path):
    rng = np.random.default_rng(6)
    short = rng.normal(size=4000).astype(np.float32) * 0.1  # a quarter of the utterance: looped
    soundfile.write(str(tmp_path / "hum.wav"), short, 16000, subtype="FLOAT")
    clean = _speech_like()
    augmenter = WaveformAugmenter(snr_range=(15.0, 15.0), noise_paths=[tmp_path / "hum.wav"])
    added = (augmenter("BAC009S0001W0001", clean) - clean).double()[0].numpy()
    looped = np.tile(short.astype(np.float64), 6)
    # Brute force: the added signal is a scaled contiguous excerpt of the looped file.
    scale = np.sqrt(np.mean(added**2) / np.mean(short.astype(np.float64) ** 2))
    starts = [s for s in range(4000) if np.allclose(added, scale * looped[s : s + 16000], atol=1e-5)]
    assert len(starts) == 1
    assert _snr_db(clean, clean + torch.from_numpy(added).unsqueeze(0)) == pytest.approx(15.0, abs=1e-3)
