"""Preferences shared by the window and the command line: one dataclass, validated, stored as JSON under the
platform's config folder (platformdirs user_config_dir("whisper-desk")/preferences.json)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from worker.backends.base import BACKEND_LABELS
from worker.core.constants import APP_DIRS_NAME
from worker.core.options import DEFAULT_MODEL, MODEL_NAMES, TranscriptionOptions
from worker.engines.base import ENGINE_NAMES
from worker.jobs.watch_folders import WatchFolder, parse_watch_folders
from worker.modal.cost import DEFAULT_T4_DOLLARS_PER_HOUR, PLANS
from worker.transcripts.formats import word_timestamps_needed
from worker.transcripts.subtitles import SubtitleRules

PREFERENCES_FILE = "preferences.json"
TASKS = ("transcribe", "translate")


def preferences_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_DIRS_NAME, appauthor=False)) / PREFERENCES_FILE


@dataclass(frozen=True)
class Preferences:
    backend: str = "local"  # the backend new jobs use
    local_engine: str = "faster"  # "faster" (faster-whisper) or "openai" (openai-whisper)
    model: str = DEFAULT_MODEL
    language: str = ""  # "" detects
    task: str = "transcribe"
    word_timestamps: bool = False
    local_parallel: int = 1  # files at once on this computer
    local_threads: int = 0  # CPU threads for the local engine (0: automatic)
    modal_parallel: int = 3  # files at once on Modal (each fanned out)
    max_containers: int = 8  # GPU containers per Modal file
    chunk_s: float = 30.0  # Modal chunk length
    dollars_per_gpu_hour: float = DEFAULT_T4_DOLLARS_PER_HOUR
    modal_plan: str = "fastest"  # Modal fan-out: "fastest" or "cheapest" (worker.modal.cost.plan_fan_out)
    auto_export_formats: tuple[str, ...] = ()
    auto_export_folder: str = ""  # "" writes next to the source file
    check_modal_on_start: bool = True
    watch_folders: tuple[WatchFolder, ...] = ()  # folders whose new media files are transcribed (worker.jobs.watch)
    # subtitle rules (worker.transcripts.subtitles): the export dialog's and the editor's defaults
    subtitle_max_line_chars: int = SubtitleRules.max_line_chars
    subtitle_max_lines: int = SubtitleRules.max_lines
    subtitle_max_cps: float = SubtitleRules.max_cps
    subtitle_min_duration_ms: int = SubtitleRules.min_duration_ms
    subtitle_min_gap_ms: int = SubtitleRules.min_gap_ms
    mark_low_confidence: bool = False  # the editor marks words below the threshold
    low_confidence_threshold: float = 0.5  # a word's probability (0..1)
    speakers_default: str = ""  # label speakers in new jobs: "" off, "auto", or a count ("2".."8")

    def options(self) -> TranscriptionOptions:
        return TranscriptionOptions(
            model=self.model,
            language=self.language.strip() or None,
            task=self.task,  # type: ignore[arg-type]
            # subtitles and JSON exported on completion are made from words
            word_timestamps=self.word_timestamps or word_timestamps_needed(self.auto_export_formats),
            speakers=self.speakers_default or None,
        )

    def backend_settings(self, name: str) -> dict[str, object]:
        """Keyword arguments for worker.jobs.backend_pool.create_backend(name, ...)."""
        if name == "local":
            settings: dict[str, object] = {"engine": self.local_engine}
            if self.local_threads > 0:
                settings["threads"] = self.local_threads
            return settings
        return {"max_containers": self.max_containers, "chunk_s": self.chunk_s, "dollars_per_hour": self.dollars_per_gpu_hour,
                "plan": self.modal_plan}

    def subtitle_rules(self, karaoke: bool = False) -> SubtitleRules:
        return SubtitleRules(max_line_chars=self.subtitle_max_line_chars, max_lines=self.subtitle_max_lines,
                             max_cps=self.subtitle_max_cps, min_duration_ms=self.subtitle_min_duration_ms,
                             min_gap_ms=self.subtitle_min_gap_ms, karaoke=karaoke)

    def parallel(self, backend: str) -> int:
        return max(1, self.local_parallel if backend == "local" else self.modal_parallel)

    def validated(self) -> "Preferences":
        """Unknown choices fall back to their defaults (a hand-edited or older file never stops the app)."""
        defaults = Preferences()
        fixes: dict[str, Any] = {}
        if self.backend not in BACKEND_LABELS:
            fixes["backend"] = defaults.backend
        if self.model not in MODEL_NAMES:
            fixes["model"] = defaults.model
        if self.task not in TASKS:
            fixes["task"] = defaults.task
        if self.local_engine not in ENGINE_NAMES:
            fixes["local_engine"] = defaults.local_engine
        for name in ("local_parallel", "modal_parallel", "max_containers"):
            if getattr(self, name) < 1:
                fixes[name] = getattr(defaults, name)
        if self.local_threads < 0:
            fixes["local_threads"] = defaults.local_threads
        if self.chunk_s <= 0:
            fixes["chunk_s"] = defaults.chunk_s
        if self.dollars_per_gpu_hour < 0:
            fixes["dollars_per_gpu_hour"] = defaults.dollars_per_gpu_hour
        if self.modal_plan not in PLANS:
            fixes["modal_plan"] = defaults.modal_plan
        try:
            self.subtitle_rules()
        except ValueError:
            fixes.update({f.name: getattr(defaults, f.name) for f in fields(self) if f.name.startswith("subtitle_")})
        if not 0.0 <= self.low_confidence_threshold <= 1.0:
            fixes["low_confidence_threshold"] = defaults.low_confidence_threshold
        try:
            TranscriptionOptions(speakers=self.speakers_default or None)
        except ValueError:
            fixes["speakers_default"] = defaults.speakers_default
        return replace(self, **fixes) if fixes else self

    # storage
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preferences":
        """Known fields with the right type; a damaged value falls back to its default."""
        defaults = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            try:
                if f.name == "watch_folders":
                    values[f.name] = parse_watch_folders(data[f.name])
                else:
                    values[f.name] = _coerce(data[f.name], getattr(defaults, f.name))
            except (TypeError, ValueError):
                continue
        return replace(defaults, **values).validated()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {name: list(value) if isinstance(value, tuple) else value for name, value in data.items()}

    @classmethod
    def load(cls, path: Path | None = None) -> "Preferences":
        """The stored preferences; defaults when there are none or the file cannot be read."""
        path = path or preferences_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        return cls.from_dict(data) if isinstance(data, dict) else cls()

    def save(self, path: Path | None = None) -> None:
        """Written atomically (a temporary file renamed over the old one)."""
        path = path or preferences_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".preferences-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.to_dict(), handle, indent=2, sort_keys=True)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _coerce(raw: Any, default: Any) -> Any:
    if isinstance(default, bool):
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, tuple):
        items = raw if isinstance(raw, (list, tuple)) else str(raw or "").split(",")
        return tuple(str(s).strip() for s in items if str(s).strip())
    return "" if raw is None else str(raw)
