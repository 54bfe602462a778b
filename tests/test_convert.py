"""CTranslate2 -> openai-whisper conversion, checked against CTranslate2 itself on real audio."""

from __future__ import annotations

import base64
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from worker.core.errors import TranscriptionError
from worker.engines.checkpoint_convert import (
    alignment_heads_dump,
    apply_alignment_heads,
    convert_ctranslate2_to_openai,
    openai_state_dict,
    read_alignment_heads,
    read_ct2_model,
)
from worker.engines.weights import bundled_tiny_en_dir

TINY_DIMS = {
    "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
    "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4,
}  # fmt: skip
DTYPE_IDS = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3, np.dtype(np.float16): 4}


def write_ct2_model(path: Path, spec: str, variables: dict[str, np.ndarray], aliases: dict[str, str], revision: int = 3) -> None:
    """model.bin as CTranslate2 writes it (ctranslate2/specs/model_spec.py `_serialize`)."""

    def string(text: str) -> bytes:
        data = text.encode("utf-8")
        return struct.pack("<H", len(data) + 1) + data + b"\0"

    with open(path, "wb") as out:
        out.write(struct.pack("<I", 6) + string(spec) + struct.pack("<II", revision, len(variables)))
        for name, value in variables.items():
            value = np.array(value, copy=True, order="C")  # (ascontiguousarray would make scalars 1-d)
            out.write(string(name) + struct.pack("<B", value.ndim) + b"".join(struct.pack("<I", d) for d in value.shape))
            out.write(struct.pack("<BI", DTYPE_IDS[value.dtype], value.nbytes) + value.tobytes())
        out.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            out.write(string(alias) + string(target))


@pytest.fixture(scope="module")
def bundled() -> Path:
    return bundled_tiny_en_dir()


@pytest.fixture(scope="module")
def checkpoint(bundled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_ctranslate2_to_openai(bundled, tmp_path_factory.mktemp("ckpt") / "tiny.en.pt")


@pytest.fixture(scope="module")
def jfk_mel(jfk: Path) -> np.ndarray:
    import whisper

    from worker.media.audio import decode_audio

    return whisper.log_mel_spectrogram(whisper.pad_or_trim(decode_audio(jfk))).numpy()[None]


def load_checkpoint(path: Path):
    import torch
    import whisper

    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = whisper.Whisper(whisper.ModelDimensions(**saved["dims"]))
    model.load_state_dict(saved["model_state_dict"])
    apply_alignment_heads(model, saved.get("alignment_heads"))
    return model.eval()


def ct2_encoder_output(model_dir: Path, mel: np.ndarray) -> np.ndarray:
    import ctranslate2

    model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
    return np.array(model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel))))


def openai_encoder_output(model, mel: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model.encoder(torch.from_numpy(mel)).numpy()


def test_model_bin_is_read_as_a_whisper_spec(bundled: Path) -> None:
    model = read_ct2_model(bundled / "model.bin")
    assert model.spec == "WhisperSpec"
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert model.get("decoder/projection/weight") is model.variables["decoder/embeddings/weight"]
    dims, state = openai_state_dict(model)
    assert dims == TINY_DIMS  # layer counts not fooled by encoder/layer_norm
    # the fused key bias that openai-whisper does not have is really zero
    qkv_bias = model.variables["encoder/layer_0/self_attention/linear_0/bias"].astype(np.float32)
    assert not qkv_bias[384:768].any() and qkv_bias[:384].any()
    assert "encoder.blocks.0.attn.key.bias" not in state and "encoder.blocks.0.attn.value.bias" in state


def test_converted_checkpoint_loads_and_matches_ctranslate2_encoder(checkpoint: Path, bundled: Path, jfk_mel) -> None:
    import whisper

    whisper.load_model(str(checkpoint), device="cpu")  # whisper's own loader takes the file as is
    model = load_checkpoint(checkpoint)
    ours = openai_encoder_output(model, jfk_mel)
    reference = ct2_encoder_output(bundled, jfk_mel)
    assert ours.shape == reference.shape == (1, 1500, 384)
    assert float(np.abs(ours - reference).max()) < 1e-4


def test_alignment_heads_come_from_config_and_match_openais(checkpoint: Path, bundled: Path) -> None:
    import whisper

    heads = read_alignment_heads(bundled)
    assert heads and [1, 0] in heads
    model = load_checkpoint(checkpoint)
    mask = model.alignment_heads.to_dense().numpy()
    assert sorted(map(list, np.argwhere(mask).tolist())) == sorted(heads)
    # the same heads OpenAI publishes for tiny.en (whisper uses them when it loads the model by name)
    official = np.frombuffer(gzip.decompress(base64.b85decode(whisper._ALIGNMENT_HEADS["tiny.en"])), dtype=bool)
    assert np.array_equal(mask, official.reshape(4, 6))
    decoded = np.frombuffer(gzip.decompress(base64.b85decode(alignment_heads_dump(heads, 4, 6))), dtype=bool)
    assert np.array_equal(decoded.reshape(4, 6), mask)


def test_int8_model_is_dequantized_like_ctranslate2_does(bundled: Path, tmp_path: Path, jfk_mel) -> None:
    """An int8 model (per-row scales, as CTranslate2 quantizes) converts to what CTranslate2 computes with it."""
    import shutil

    source = read_ct2_model(bundled / "model.bin")
    variables: dict[str, np.ndarray] = {}
    for name, value in source.variables.items():
        if "/layer_" in name and name.endswith("linear_0/weight"):
            weight = value.astype(np.float32)
            scale = 127.0 / np.maximum(np.abs(weight).max(axis=1), 1e-8)
            variables[name] = np.rint(weight * scale[:, None]).astype(np.int8)
            variables[name + "_scale"] = scale.astype(np.float32)
        else:
            variables[name] = value
    quantized = tmp_path / "int8"
    quantized.mkdir()
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(bundled / extra, quantized / extra)
    write_ct2_model(quantized / "model.bin", source.spec, variables, source.aliases, source.revision)

    model = load_checkpoint(convert_ctranslate2_to_openai(quantized, tmp_path / "int8.pt"))
    ours = openai_encoder_output(model, jfk_mel)
    assert float(np.abs(ours - ct2_encoder_output(quantized, jfk_mel)).max()) < 1e-4
    # and int8 really changed the weights (the test would be hollow otherwise)
    assert float(np.abs(ours - ct2_encoder_output(bundled, jfk_mel)).max()) > 1e-3


def test_bfloat16_and_int16_variables_decode(tmp_path: Path) -> None:
    values = np.array([[1.5, -2.25], [0.0, 3.0]], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)  # exact: these values fit in bfloat16
    int16_scale = np.float32(1000.0)
    path = tmp_path / "model.bin"
    write_ct2_model(
        path,
        "WhisperSpec",
        {"a": bf16.view(np.int16), "b/weight": np.rint(values * int16_scale).astype(np.int16), "b/weight_scale": int16_scale.reshape(())},
        {},
    )
    raw = path.read_bytes()  # retag "a" as bfloat16 (type id 5): int16 and bfloat16 have the same size
    marker = b"a\0" + struct.pack("<B", 2) + struct.pack("<II", 2, 2)
    index = raw.index(marker) + len(marker)
    path.write_bytes(raw[:index] + b"\x05" + raw[index + 1 :])

    model = read_ct2_model(path)
    assert np.array_equal(model.variables["a"], values)
    from worker.engines.checkpoint_convert import _float_weights

    assert np.allclose(_float_weights(model)["b/weight"], values, atol=1e-3)


def test_damaged_model_file_is_one_clear_error(bundled: Path, tmp_path: Path) -> None:
    data = (bundled / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(TranscriptionError, match="truncated"):
        read_ct2_model(tmp_path / "model.bin")
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 99) + data[4:100])
    with pytest.raises(TranscriptionError, match="version 99"):
        read_ct2_model(tmp_path / "model.bin")
