"""OpenAI's speech-to-text API as Whisper Desk speaks it, without HTTP: the form fields of a request checked into a
SpeechRequest, the error shape ({"error": {"message", "type", "param", "code"}}), the model list, and a finished
transcript as each response_format. Every format is rendered by the one export pipeline (worker.jobs.export):
text is its TXT, srt and vtt its subtitles (cut by the preferences' subtitle rules), json the transcript's text and
verbose_json its openai-whisper JSON in OpenAI's shape."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from worker.core.errors import TranscriptionError
from worker.core.options import MODEL_NAMES, Task, TranscriptionOptions
from worker.transcripts.formats import Exporter
from worker.transcripts.model import Transcript

OPENAI_MODEL = "whisper-1"  # what most clients send: the preferences' model
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
# each response format as the export pipeline makes it (json is the transcript's text: no pipeline file needed)
PIPELINE_FORMATS = {"text": "txt", "srt": "srt", "vtt": "vtt", "verbose_json": "json"}
VERBOSE_SEGMENT_KEYS = ("id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                        "compression_ratio", "no_speech_prob")
MODEL_OWNER = "whisper-desk"


class ApiError(Exception):
    """A request answered with OpenAI's error shape: the HTTP status and one clear line."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class SpeechRequest:
    """One POST /v1/audio/transcriptions or /v1/audio/translations, checked."""

    file_name: str
    task: Task
    model: str  # one of MODEL_NAMES
    language: str | None
    prompt: str | None
    response_format: str
    granularities: frozenset[str]

    def options(self, base: TranscriptionOptions) -> TranscriptionOptions:
        """`base` (the preferences' options) as this request asks: its model, task, language and prompt; words
        when the format is made from them; no speaker labels (OpenAI's formats have no speakers)."""
        words = "word" in self.granularities or self.response_format in ("srt", "vtt", "verbose_json")
        return replace(base, model=self.model, task=self.task, language=self.language or base.language,
                       initial_prompt=self.prompt, word_timestamps=base.word_timestamps or words, speakers=None)


def parse_speech_request(fields: Mapping[str, Sequence[str]], file_name: str | None, task: Task,
                         default_model: str) -> SpeechRequest:
    """The form's fields (each name with its values, in order) as a SpeechRequest; ApiError (400) naming the
    field for a missing file or an unknown model, format or granularity."""
    if not file_name:
        raise ApiError(400, "no file: send the audio as the multipart field 'file'", param="file")

    def one(name: str) -> str | None:
        values = [value.strip() for value in fields.get(name, ()) if value.strip()]
        return values[-1] if values else None

    model = one("model") or OPENAI_MODEL
    if model == OPENAI_MODEL:
        model = default_model
    if model not in MODEL_NAMES:
        raise ApiError(400, f"unknown model {model!r}; choose {OPENAI_MODEL} (the default model) or one of "
                       f"{', '.join(MODEL_NAMES)}", param="model", code="model_not_found")
    response_format = (one("response_format") or "json").lower()
    if response_format not in RESPONSE_FORMATS:
        raise ApiError(400, f"unknown response_format {response_format!r}; choose one of {', '.join(RESPONSE_FORMATS)}",
                       param="response_format")
    granularities = frozenset(value.strip().lower() for name in ("timestamp_granularities[]", "timestamp_granularities")
                              for value in fields.get(name, ()) if value.strip())
    if unknown := sorted(granularities - set(GRANULARITIES)):
        raise ApiError(400, f"unknown timestamp_granularities {', '.join(unknown)}; choose segment or word",
                       param="timestamp_granularities")
    if (one("stream") or "false").lower() == "true":
        raise ApiError(400, "streaming is not supported: send the request without stream", param="stream")
    return SpeechRequest(file_name=file_name, task=task, model=model, language=one("language"), prompt=one("prompt"),
                         response_format=response_format, granularities=granularities)


def check_request_options(options: TranscriptionOptions) -> None:
    """ApiError (400) for what the model cannot do (an English-only model asked to translate, or another
    language), before any work is queued."""
    from worker.engines.base import check_options

    try:
        check_options(options.model, options)
    except TranscriptionError as exc:
        raise ApiError(400, str(exc), param="model") from None


def model_list(created: int) -> dict[str, Any]:
    """GET /v1/models: whisper-1 (the default model) and each of ours."""
    return {"object": "list", "data": [model_entry(name, created) for name in (OPENAI_MODEL, *MODEL_NAMES)]}


def model_entry(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": MODEL_OWNER}


@dataclass(frozen=True)
class Response:
    body: str
    content_type: str  # without the charset (always UTF-8)


def render_response(transcript: Transcript, request: SpeechRequest, pipeline: Exporter, audio: str) -> Response:
    """The finished transcript as the request's response_format, through the export pipeline."""
    if request.response_format == "json":
        return Response(json.dumps({"text": transcript.text}, ensure_ascii=False), "application/json")
    rendered = pipeline.render(transcript, PIPELINE_FORMATS[request.response_format], audio=audio).data
    text = rendered if isinstance(rendered, str) else rendered.decode("utf-8")
    if request.response_format != "verbose_json":
        return Response(text, "text/plain")
    return Response(json.dumps(verbose_json(json.loads(text), request), ensure_ascii=False), "application/json")


def verbose_json(whisper: dict[str, Any], request: SpeechRequest) -> dict[str, Any]:
    """openai-whisper's JSON (the pipeline's) in OpenAI's verbose_json shape: task, language, duration, text, then
    segments and words as timestamp_granularities ask, as OpenAI answers: segments when none is given, words only
    when asked for, and no segments for ["word"] alone (Buzz reads its words from such an answer)."""
    answer: dict[str, Any] = {"task": request.task, "language": whisper.get("language") or "",
                              "duration": float(whisper.get("duration") or 0.0), "text": whisper.get("text", "")}
    if not request.granularities or "segment" in request.granularities:
        answer["segments"] = [{key: segment[key] for key in VERBOSE_SEGMENT_KEYS} for segment in whisper["segments"]]
    if "word" in request.granularities:
        answer["words"] = [{"word": word["word"].strip(), "start": word["start"], "end": word["end"]}
                           for segment in whisper["segments"] for word in segment.get("words") or []]
    return answer


__all__ = ["ApiError", "GRANULARITIES", "OPENAI_MODEL", "RESPONSE_FORMATS", "Response", "SpeechRequest",
           "check_request_options", "model_entry", "model_list", "parse_speech_request", "render_response",
           "verbose_json"]
