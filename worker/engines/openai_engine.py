"""openai-whisper (PyTorch): what the T4 app runs; locally an optional engine. Its transcribe() returns all
segments at the end, so they are passed to on_segment then; cancel is checked before each 30 s window."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.core.cancel import CancelToken
from worker.core.errors import TranscriptionError
from worker.core.options import TranscriptionOptions
from worker.engines.base import OnSegment, WhisperEngine, check_options, has_words, make_segment
from worker.transcripts.model import Segment

if TYPE_CHECKING:
    import numpy as np


NOT_INSTALLED = (
    "the openai-whisper engine is not installed here (pip install 'whisper-desk[openai]' and then "
    "pip install --no-deps openai-whisper==20250625); or use the default faster-whisper engine"
)


def _require_openai_whisper() -> None:
    """One clear line instead of a ModuleNotFoundError when the optional engine is missing."""
    try:
        import torch  # noqa: F401
        import whisper  # noqa: F401
    except ImportError:
        raise TranscriptionError(NOT_INSTALLED) from None


class OpenAIWhisperEngine(WhisperEngine):
    engine_name = "openai-whisper"

    def __init__(self, model_name: str, device: str | None = None, threads: int | None = None) -> None:
        super().__init__(model_name)
        self.device = device
        self.threads = threads

    def _check_options(self, options: TranscriptionOptions) -> str | None:
        _require_openai_whisper()
        from whisper.tokenizer import LANGUAGES

        return check_options(self.model_name, options, frozenset(LANGUAGES))

    def _torch(self) -> Any:
        """torch, with this engine's CPU thread count applied (process-wide: torch has one thread pool)."""
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        return torch

    def _load(self) -> tuple[Any, str]:
        _require_openai_whisper()
        from worker.engines.weights import load_openai_model

        torch = self._torch()
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, label = load_openai_model(self.model_name, device=device)
        self.device = device
        self.gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
        return model, label

    def _run(
        self,
        audio: "np.ndarray",
        options: TranscriptionOptions,
        language: str | None,
        on_segment: OnSegment | None,
        cancel: CancelToken | None,
    ) -> tuple[list[Segment], str | None]:
        import numpy as np
        import torch
        import whisper

        model = self._model
        if cancel is not None:
            # whisper.transcribe decodes window by window through model.decode: check cancel before each one
            def decode(mel: Any, decode_options: Any) -> Any:
                cancel.raise_if_cancelled()
                return type(model).decode(model, mel, decode_options)

            model.decode = decode
        try:
            with torch.inference_mode():
                result = whisper.transcribe(
                    model,
                    np.ascontiguousarray(audio, dtype=np.float32),
                    verbose=None,
                    language=language,
                    task=options.task,
                    word_timestamps=options.word_timestamps,
                    initial_prompt=options.initial_prompt or None,
                    beam_size=options.beam_size if options.beam_size > 1 else None,
                    best_of=5,
                    fp16=self.device != "cpu",
                )
        finally:
            if cancel is not None:
                del model.decode
        segments: list[Segment] = []
        for produced in result["segments"]:
            if not has_words(produced["text"]):
                continue
            words = [(w["start"], w["end"], w["word"], w["probability"]) for w in produced.get("words") or []]
            segment = make_segment(len(segments), produced["start"], produced["end"], produced["text"], words)
            segments.append(segment)
            if on_segment is not None:
                on_segment(segment)
        return segments, result.get("language")
