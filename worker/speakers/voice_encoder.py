"""A speaker encoder without torch: Resemblyzer's GE2E network (3-layer LSTM, 256 units, over 40 mel channels
of 16 kHz audio, 1.6 s partials) run in numpy, with the weights read from the file the `resemblyzer` package
ships (installed with --no-deps: its torch, librosa and webrtcvad are not needed).

`pretrained.pt` is in torch's legacy format: a few pickles, then each tensor storage's raw bytes. A restricted
unpickler reads it (only the handful of globals such a file names are allowed; anything else is refused),
and the file's SHA-256 is checked before anything is unpickled.

The mel front-end reproduces Resemblyzer's (librosa.feature.melspectrogram: 25 ms periodic Hann window,
10 ms hop, centred frames with zero padding, power spectrum, 40 Slaney-normalised mel bands up to 8 kHz;
not a log-mel). tests/test_voice_encoder.py checks the embeddings against resemblyzer + torch + librosa.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from worker.core.errors import WhisperDeskError

SAMPLE_RATE = 16000
MEL_WINDOW = 400  # 25 ms
MEL_HOP = 160  # 10 ms: one mel frame
MEL_CHANNELS = 40
PARTIAL_FRAMES = 160  # 1.6 s: what the network was trained on
EMBEDDING_SIZE = 256
NORM_TARGET_DBFS = -30.0  # Resemblyzer's volume normalisation target
_INT16_MAX = 2**15 - 1

WEIGHTS_PACKAGE = "resemblyzer"
WEIGHTS_FILE = "pretrained.pt"
WEIGHTS_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"  # resemblyzer 0.1.4
_LAYERS = 3


class VoiceModelError(WhisperDeskError):
    """The speaker model is missing or is not the file we pinned."""


def weights_path() -> Path:
    """Where the installed `resemblyzer` package keeps its weights (the package is not imported: it needs torch)."""
    spec = find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise VoiceModelError(
            "the speaker model is not installed: pip install --no-deps resemblyzer==0.1.4 (scripts/install.sh does)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


# --- reading torch's legacy checkpoint format without torch -------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}  # fmt: skip


@dataclass
class _Storage:
    dtype: Any
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    """A tensor whose storage bytes come after the pickle that names it."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        assert self.storage.data is not None
        itemsize = self.storage.data.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :], shape=self.shape, strides=[s * itemsize for s in self.stride]
        )
        return np.array(view)  # a copy: the storage may be shared by several tensors


def _rebuild_tensor(storage: _Storage, offset: int, shape: tuple, stride: tuple, *_rest: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(shape), tuple(stride))


class _CheckpointUnpickler(pickle.Unpickler):
    """Only what a state-dict checkpoint names: tensors (as _TensorRef), storage types and OrderedDict."""

    def __init__(self, file: io.BufferedIOBase, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a speaker model file")

    def persistent_load(self, saved_id: Any) -> _Storage:
        kind, storage_type, key, _location, _size, *_view = saved_id
        if kind != "storage" or storage_type not in _STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(_STORAGE_DTYPES[storage_type])
        return self.storages[key]


def read_legacy_checkpoint(data: bytes) -> dict[str, Any]:
    """A torch legacy-format checkpoint (magic, protocol, system info, object, storage keys, raw storages) as
    plain Python with numpy arrays in place of tensors."""
    stream = io.BytesIO(data)
    for _header in range(3):  # magic number, protocol version, system info
        pickle.load(stream)  # plain ints and dicts only: find_class is never reached for them
    storages: dict[str, _Storage] = {}
    result = _CheckpointUnpickler(stream, storages).load()
    keys = _CheckpointUnpickler(stream, storages).load()
    for key in keys:
        storage = storages[key]
        (count,) = struct.unpack("<q", stream.read(8))
        nbytes = count * np.dtype(storage.dtype).itemsize
        storage.data = np.frombuffer(stream.read(nbytes), dtype=storage.dtype)
    return _resolved(result)


def _resolved(value: Any) -> Any:
    if isinstance(value, _TensorRef):
        return value.array()
    if isinstance(value, dict):
        return type(value)((k, _resolved(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_resolved(v) for v in value)
    return value


def load_weights(path: Path | None = None) -> dict[str, np.ndarray]:
    """The network's weights (float32), after checking the file's SHA-256."""
    path = path or weights_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VoiceModelError(f"cannot read the speaker model {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise VoiceModelError(f"{path.name}: SHA-256 {digest[:16]}… is not the pinned speaker model")
    state = read_legacy_checkpoint(data)["model_state"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items() if k.startswith(("lstm.", "linear."))}


# --- mel front-end ----------------------------------------------------------------------------------------


def _hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(40, 201) Slaney-normalised triangular filters from 0 Hz to 8 kHz (librosa.filters.mel's defaults)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, MEL_WINDOW // 2 + 1)
    mel_points = _mel_points_hz()
    gaps = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / gaps[:-1, None]
    upper = ramps[2:] / gaps[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]
    return weights


def mel_centre_hz() -> np.ndarray:
    """(40,) the frequency each mel channel is centred on."""
    return _mel_points_hz()[1:-1]


def _mel_points_hz() -> np.ndarray:
    """(42,) the mel filters' edges and centres, evenly spaced in mels from 0 Hz to 8 kHz."""
    return _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), MEL_CHANNELS + 2))


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    n = np.arange(MEL_WINDOW)
    return 0.5 - 0.5 * np.cos(2 * np.pi * n / MEL_WINDOW)  # periodic, as scipy's get_window("hann")


class MelStream:
    """The mel power spectrogram of audio fed block by block (so a long file never sits in memory at once):
    frame t is centred on sample t*160 (zero padding at both ends), as librosa's centred frames. Also keeps
    each 10 ms hop's mean square, for window loudness and silence."""

    def __init__(self) -> None:
        self._pending = np.zeros(MEL_WINDOW // 2, dtype=np.float32)  # the left padding
        self._next = 0  # the next frame to compute; its first sample sits at _pending[0]
        self._samples = 0
        self._tail_energy = np.zeros(0, dtype=np.float32)
        self._mels: list[np.ndarray] = []
        self._energy: list[np.ndarray] = []

    def feed(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32)
        self._samples += len(block)
        self._pending = np.concatenate([self._pending, block])
        self._energy_of(block)
        self._compute(final=False)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(frames, 40) float32 mels, len(audio)//160 + 1 frames; and (len(audio)//160,) hop mean squares."""
        self._pending = np.concatenate([self._pending, np.zeros(MEL_WINDOW // 2, dtype=np.float32)])
        self._compute(final=True)
        mels = np.concatenate(self._mels) if self._mels else np.zeros((0, MEL_CHANNELS), dtype=np.float32)
        energy = np.concatenate(self._energy) if self._energy else np.zeros(0, dtype=np.float32)
        return mels, energy

    def _energy_of(self, block: np.ndarray) -> None:
        joined = np.concatenate([self._tail_energy, block])
        whole = len(joined) - len(joined) % MEL_HOP
        if whole:
            self._energy.append(np.mean(joined[:whole].reshape(-1, MEL_HOP).astype(np.float64) ** 2, axis=1).astype(np.float32))
        self._tail_energy = joined[whole:]

    def _compute(self, final: bool) -> None:
        available = 1 + (len(self._pending) - MEL_WINDOW) // MEL_HOP if len(self._pending) >= MEL_WINDOW else 0
        if final:
            available = min(available, self._samples // MEL_HOP + 1 - self._next)
        if available <= 0:
            return
        self._mels.append(_mel_block(self._pending, available))
        self._next += available
        self._pending = self._pending[available * MEL_HOP :]


def _mel_block(samples: np.ndarray, count: int, block_frames: int = 4000) -> np.ndarray:
    basis = mel_filterbank().T.astype(np.float32)
    window = _hann().astype(np.float32)
    out = np.empty((count, MEL_CHANNELS), dtype=np.float32)
    for start in range(0, count, block_frames):
        n = min(block_frames, count - start)
        frames = np.lib.stride_tricks.as_strided(
            samples[start * MEL_HOP :], shape=(n, MEL_WINDOW), strides=(samples.strides[0] * MEL_HOP, samples.strides[0])
        )
        spectrum = np.fft.rfft(frames * window, axis=1)
        out[start : start + n] = (spectrum.real**2 + spectrum.imag**2).astype(np.float32) @ basis
    return out


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) float32 mel power spectrogram of a whole waveform (librosa.feature.melspectrogram's)."""
    stream = MelStream()
    stream.feed(wav)
    return stream.finish()[0]


def normalisation_gain(wav: np.ndarray, increase_only: bool = True) -> float:
    """Resemblyzer's normalize_volume as a gain: brings the RMS to -30 dBFS (only up, by default)."""
    rms = float(np.sqrt(np.mean((np.asarray(wav, dtype=np.float64) * _INT16_MAX) ** 2))) if len(wav) else 0.0
    if rms <= 0.0:
        return 1.0
    change_db = NORM_TARGET_DBFS - 20 * np.log10(rms / _INT16_MAX)
    if change_db < 0 and increase_only:
        return 1.0
    return float(10 ** (change_db / 20))


# --- the network ----------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 0.5 * (1 + tanh(x / 2)): the same function, without overflow warnings for large |x|
    return 0.5 + 0.5 * np.tanh(0.5 * x)


class VoiceEncoder:
    """Resemblyzer's VoiceEncoder in numpy. embed_partials() is the network; embed_utterance() reproduces
    Resemblyzer's method of the same name (partials at 1.3 per second, averaged and L2-normalised)."""

    def __init__(self, weights: dict[str, np.ndarray] | None = None) -> None:
        w = weights if weights is not None else load_weights()
        self._layers = []
        for layer in range(_LAYERS):
            w_ih = w[f"lstm.weight_ih_l{layer}"]
            w_hh = w[f"lstm.weight_hh_l{layer}"]
            bias = w[f"lstm.bias_ih_l{layer}"] + w[f"lstm.bias_hh_l{layer}"]
            self._layers.append((np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), bias))
        self._linear_w = np.ascontiguousarray(w["linear.weight"].T)
        self._linear_b = w["linear.bias"]

    def embed_partials(self, mels: np.ndarray, batch: int = 256) -> np.ndarray:
        """(n, frames, 40) mel partials -> (n, 256) L2-normalised embeddings (ReLU'd, so cosine is in [0, 1])."""
        mels = np.asarray(mels, dtype=np.float32)
        if mels.ndim != 3 or mels.shape[2] != MEL_CHANNELS:
            raise ValueError(f"expected (n, frames, {MEL_CHANNELS}) mels, got {mels.shape}")
        out = np.empty((len(mels), EMBEDDING_SIZE), dtype=np.float32)
        for start in range(0, len(mels), batch):
            out[start : start + batch] = self._forward(mels[start : start + batch])
        return out

    def _forward(self, mels: np.ndarray) -> np.ndarray:
        n, steps, _ = mels.shape
        hidden = EMBEDDING_SIZE
        sequence = mels.transpose(1, 0, 2)  # time-major: (steps, n, features)
        h = np.zeros((n, hidden), dtype=np.float32)
        for index, (w_ih, w_hh, bias) in enumerate(self._layers):
            # the input projection of every time step at once; only h @ w_hh is sequential
            projected = (sequence.reshape(steps * n, -1) @ w_ih + bias).reshape(steps, n, 4 * hidden)
            last = index == _LAYERS - 1
            outputs = None if last else np.empty((steps, n, hidden), dtype=np.float32)
            h = np.zeros((n, hidden), dtype=np.float32)
            c = np.zeros((n, hidden), dtype=np.float32)
            for t in range(steps):
                gates = projected[t] + h @ w_hh  # torch's gate order: input, forget, cell, output
                i = _sigmoid(gates[:, :hidden])
                f = _sigmoid(gates[:, hidden : 2 * hidden])
                g = np.tanh(gates[:, 2 * hidden : 3 * hidden])
                o = _sigmoid(gates[:, 3 * hidden :])
                c = f * c + i * g
                h = o * np.tanh(c)
                if outputs is not None:
                    outputs[t] = h
            if outputs is not None:
                sequence = outputs
        raw = np.maximum(h @ self._linear_w + self._linear_b, 0.0)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return raw / np.maximum(norms, 1e-12)

    def embed_utterance(self, wav: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
        """One embedding for a whole (preprocessed) utterance, exactly as Resemblyzer computes it."""
        wav = np.asarray(wav, dtype=np.float32)
        starts = partial_starts(len(wav), rate, min_coverage)
        stop = (starts[-1] + PARTIAL_FRAMES) * MEL_HOP
        if stop >= len(wav):
            wav = np.pad(wav, (0, stop - len(wav)))
        mel = mel_frames(wav)
        partials = np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
        return normalised(self.embed_partials(partials).mean(axis=0))


def partial_starts(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> list[int]:
    """First mel frame of each partial covering `n_samples` (Resemblyzer's compute_partial_slices)."""
    n_frames = int(np.ceil((n_samples + 1) / MEL_HOP))
    frame_step = max(1, int(np.round((SAMPLE_RATE / rate) / MEL_HOP)))
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    starts = list(range(0, steps, frame_step))
    coverage = (n_samples - starts[-1] * MEL_HOP) / (PARTIAL_FRAMES * MEL_HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts.pop()
    return starts


def normalised(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


_shared: VoiceEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> VoiceEncoder:
    """One encoder per process (reading and checking the 17 MB file takes a moment)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = VoiceEncoder()
        return _shared
