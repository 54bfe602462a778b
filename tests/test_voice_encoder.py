"""The torch-free speaker encoder against the real thing: resemblyzer (with torch and librosa, which only the
test install has) on real recordings."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from worker.media.audio import decode_audio
from worker.speakers.voice_encoder import (
    VoiceEncoder,
    VoiceModelError,
    load_weights,
    mel_frames,
    read_legacy_checkpoint,
    weights_path,
)

AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"


def _resemblyzer():
    with warnings.catch_warnings():  # resemblyzer imports deprecated scipy/librosa names
        warnings.simplefilter("ignore")
        import resemblyzer
    return resemblyzer


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoder:
    return VoiceEncoder()


@pytest.mark.parametrize("name, start_s, stop_s", [("jfk.flac", 0, 11), ("multilingual.mp3", 0, 25), ("hotwords.mp3", 0, 5)])
def test_embeddings_match_resemblyzer_with_torch(encoder, name, start_s, stop_s):
    resemblyzer = _resemblyzer()
    wav = decode_audio(AUDIO / name)[start_s * 16000 : stop_s * 16000]
    prepared = resemblyzer.preprocess_wav(wav)  # already 16 kHz: volume normalisation and silence trimming
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = resemblyzer.VoiceEncoder(device="cpu", verbose=False)
        expected = reference.embed_utterance(prepared)
        expected_mel = resemblyzer.wav_to_mel_spectrogram(prepared)
    mel = mel_frames(prepared)
    assert mel.shape == expected_mel.shape
    assert np.abs(mel - expected_mel).max() <= 1e-5 * np.abs(expected_mel).max()
    ours = encoder.embed_utterance(prepared)
    assert ours.shape == (256,)
    assert np.abs(ours - expected).max() < 1e-4


def test_weights_equal_what_torch_loads():
    import torch

    checkpoint = torch.load(weights_path(), map_location="cpu", weights_only=False)["model_state"]
    ours = load_weights()
    assert set(ours) == {k for k in checkpoint if k.startswith(("lstm.", "linear."))}
    for key, value in ours.items():
        assert np.array_equal(value, checkpoint[key].numpy()), key


def test_a_changed_weights_file_is_refused(tmp_path):
    copy = tmp_path / "pretrained.pt"
    shutil.copy(weights_path(), copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(VoiceModelError, match="not the pinned speaker model"):
        load_weights(copy)
    with pytest.raises(VoiceModelError, match="cannot read"):
        load_weights(tmp_path / "missing.pt")


def test_the_checkpoint_reader_refuses_other_globals():
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo unsafe",))

    header = b"".join(pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, {}))
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        read_legacy_checkpoint(header + pickle.dumps({"model_state": Evil()}, protocol=2))


def test_same_speaker_is_closer_than_another(encoder):
    """The encoder does its job on real speech: two halves of one reading are closer than two readers."""
    reading = decode_audio(AUDIO / "multilingual.mp3")
    first, second = reading[: 12 * 16000], reading[12 * 16000 : 24 * 16000]
    other = decode_audio(AUDIO / "jfk.flac")
    a, b, c = (encoder.embed_utterance(w) for w in (first, second, other))
    assert float(a @ b) > float(a @ c) + 0.1


def test_speaker_labels_need_neither_torch_nor_librosa(jfk):
    """The default install has no torch: labelling imports none of resemblyzer's own dependencies."""
    code = (
        "import sys\n"
        "from worker.media.audio import decode_audio\n"
        "from worker.speakers.labelling import voice_embedding\n"
        f"assert voice_embedding(decode_audio({str(jfk)!r})).shape == (256,)\n"
        "print(sorted(m for m in ('torch', 'librosa', 'resemblyzer', 'scipy', 'webrtcvad') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
