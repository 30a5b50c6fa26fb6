"""Waveform augmentation applied while features are prepared (``scripts/prep_aishell1.py``).

Features are computed once and stored, so augmentation that acts on the signal happens at
preparation time, on the train split only, like speed perturbation: each training utterance (each
speed-perturbed copy too) is played at a random volume and/or mixed with noise at a random
signal-to-noise ratio. The draws are a function of ``--augment-seed`` and the utterance id, so a
re-run or a resumed preparation writes the same features.

Volume: a gain ``g`` multiplies the samples, which adds ``2 ln g`` to every log-Mel value (power
spectrum), so an utterance-level CMVN (the recipes' default ``utterance_cmvn``) removes it again:
volume perturbation matters with global or no CMVN.

Noise: from a folder of audio files (e.g. MUSAN's noise part; a random file, a random excerpt,
looped when shorter than the utterance) or generated (white or pink) when no folder is given.
"""

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from .fbank_features import load_waveform

__all__ = ["NOISE_KINDS", "WaveformAugmenter", "generated_noise", "mix_at_snr", "noise_files"]

NOISE_KINDS = ("white", "pink")
AUDIO_SUFFIXES = (".wav", ".flac")


def generated_noise(kind: str, samples: int, generator: np.random.Generator) -> torch.Tensor:
    """(1, samples) zero-mean noise with unit power: ``white`` (flat spectrum) or ``pink`` (power
    falling as 1/f, shaped in the frequency domain)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind {kind!r} is not one of {NOISE_KINDS}")
    noise = generator.standard_normal(samples)
    if kind == "pink":
        spectrum = np.fft.rfft(noise)
        frequencies = np.arange(len(spectrum), dtype=np.float64)
        frequencies[0] = 1.0  # the DC bin is removed below; avoid dividing by zero
        spectrum /= np.sqrt(frequencies)
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n=samples)
    noise = noise - noise.mean()
    return torch.from_numpy(noise / np.sqrt(np.mean(noise**2))).float().unsqueeze(0)


def mix_at_snr(waveform: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """(1, samples) ``waveform`` plus ``noise`` (1, samples) scaled so that the ratio of their
    powers is ``snr_db`` decibels. Silence (zero power) is returned unchanged."""
    if noise.shape != waveform.shape:
        raise ValueError(
            f"noise of shape {tuple(noise.shape)} for a waveform of shape {tuple(waveform.shape)}"
        )
    signal_power = waveform.double().pow(2).mean()
    noise_power = noise.double().pow(2).mean()
    if signal_power == 0 or noise_power == 0:
        return waveform
    scale = torch.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return (waveform.double() + scale * noise.double()).float()


def noise_files(folder: Path) -> List[Path]:
    """The audio files (``.wav``, ``.flac``) under ``folder``, sorted; an error names an empty folder."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no .wav or .flac files under the noise folder {folder}")
    return files


def _fit_length(noise: torch.Tensor, samples: int, generator: np.random.Generator) -> torch.Tensor:
    """A random excerpt of ``samples`` samples of (1, n) noise, looped when it is shorter."""
    if noise.shape[1] < samples:
        noise = noise.repeat(1, -(-samples // noise.shape[1]))
    start = int(generator.integers(0, noise.shape[1] - samples + 1))
    return noise[:, start : start + samples]


@dataclass
class WaveformAugmenter:
    """Random volume and additive noise for one utterance at a time.

    Args:
        volume_range: (low, high) gain drawn uniformly per utterance, or None for no volume change.
        snr_range: (low, high) SNR in dB drawn uniformly per utterance, or None for no noise.
        noise_kind: generated noise (``white`` or ``pink``) used when ``noise_paths`` is empty.
        noise_paths: audio files noise excerpts are drawn from.
        seed: with the utterance id, determines every draw.
    """

    volume_range: Optional[Tuple[float, float]] = None
    snr_range: Optional[Tuple[float, float]] = None
    noise_kind: str = "white"
    noise_paths: Sequence[Path] = ()
    seed: int = 1

    def __post_init__(self):
        for name, bounds in (("volume", self.volume_range), ("SNR", self.snr_range)):
            if bounds is not None and not bounds[0] <= bounds[1]:
                raise ValueError(f"{name} range {bounds}: low must not exceed high")
        if self.volume_range is not None and self.volume_range[0] <= 0:
            raise ValueError(f"volume range {self.volume_range}: gains must be positive")
        if self.noise_kind not in NOISE_KINDS:
            raise ValueError(f"noise kind {self.noise_kind!r} is not one of {NOISE_KINDS}")

    @property
    def active(self) -> bool:
        return self.volume_range is not None or self.snr_range is not None

    def draws(self, utt_id: str) -> Tuple[float, Optional[float], np.random.Generator]:
        """The gain, the SNR (None without noise) and the generator of the noise, for ``utt_id``."""
        generator = np.random.default_rng([self.seed, zlib.crc32(utt_id.encode("utf-8"))])
        gain = float(generator.uniform(*self.volume_range)) if self.volume_range else 1.0
        snr_db = float(generator.uniform(*self.snr_range)) if self.snr_range else None
        return gain, snr_db, generator

    def __call__(self, utt_id: str, waveform: torch.Tensor) -> torch.Tensor:
        """(1, samples) ``waveform`` of ``utt_id`` with its volume and noise applied."""
        gain, snr_db, generator = self.draws(utt_id)
        if snr_db is not None:
            samples = waveform.shape[1]
            if self.noise_paths:
                path = self.noise_paths[int(generator.integers(len(self.noise_paths)))]
                noise = _fit_length(load_waveform(path), samples, generator)
            else:
                noise = generated_noise(self.noise_kind, samples, generator)
            waveform = mix_at_snr(waveform, noise, snr_db)
        return waveform * gain if gain != 1.0 else waveform
