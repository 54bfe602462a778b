"""The Modal T4 worker: what `whisper-desk deploy` puts on Modal, and what the app calls by name.

Deployed API (keep it stable; bump WORKER_API_VERSION when it changes):

    Transcriber(model="tiny.en").transcribe(audio: bytes, options: dict) -> dict

`audio` is one chunk as compact audio bytes (worker.media.chunking.encode_chunk: FLAC, or Ogg Opus, 16 kHz mono);
`options` holds TranscriptionOptions fields (language, task, word_timestamps, initial_prompt, beam_size; a
"model" key is ignored: the class parameter decides). The answer is
{"api_version", "segments": [{id, start, end, text, words: [{start, end, text, probability}]}], "language",
"duration", "model", "timings": {gpu, cold_start, model_load_s, inference_s, audio_s, rtf, decode_s,
cuda_mem_mb, container_id, engine}} with times relative to the chunk.

The work itself is TranscriberBody, a plain class: the Modal class only delegates to it, and the stand-in
remote used by the tests and benchmarks (tests/modal_standin.py) runs the very same body in-process.
On Modal, weights live in the Volume mounted at MODELS_DIR (downloaded once, atomically). Where that path
is absent (a local `.local()` run) the body uses this computer's model cache (worker.engines.weights).

Deploy-time settings (GPU, limits, retries) are worker.modal.settings.DeploySettings, read from the
environment when `modal deploy` imports this module.

Failures: our own errors (bad audio, bad options, an unknown model, weights that do not load) come back at
once as an answer, {"api_version", "error": one line}, so modal.Retries never re-runs them on a T4; Retries
are for the infrastructure (an exception that is not ours). A model that fails to load in @modal.enter does
not crash the container (a crash loop the client would only see at its timeout): each input tries the load
again and, if it still fails, gets the error as its answer.
"""

# no `from __future__ import annotations`: Modal reads the class parameter's annotation as a real type
import io
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import modal

from worker.core.constants import SAMPLE_RATE
from worker.core.options import DEFAULT_MODEL
from worker.modal.settings import APP_NAME, VERSION_TAG, VOLUME_NAME, WEIGHTS_FOLDER, WORKER_API_VERSION, DeploySettings

MODELS_DIR = "/models"  # where the Volume is mounted in the container
MODELS_DIR_ENV = "WHISPER_DESK_VOLUME_DIR"  # overrides MODELS_DIR (tests point it at a temporary folder)

# pinned so every container runs the same thing; torch from PyPI on Linux is a CUDA build
WHISPER_VERSION = "20250625"
TORCH_VERSION = "2.13.0"
SOUNDFILE_VERSION = "0.14.0"
NUMPY_VERSION = "2.4.6"


SETTINGS = DeploySettings.from_env()


# ---------------------------------------------------------------- the body (plain Python; no Modal here)


def models_dir() -> Path | None:
    """The weights Volume's mount point when it is there (in a Modal container), else None."""
    path = Path(os.environ.get(MODELS_DIR_ENV) or MODELS_DIR)
    return path if path.is_dir() else None


def container_id() -> str:
    return os.environ.get("MODAL_TASK_ID") or socket.gethostname()


DOWNLOAD_WAIT_S = 2.0  # how often a container waiting for another's download looks again
DOWNLOAD_STALE_S = 900.0  # a download claimed this long ago and not finished was abandoned: take it over


def ensure_volume_checkpoint(
    name: str, root: Path, commit: Callable[[], None] | None = None, volume: Any = None
) -> tuple[Path, bool]:
    """The official openai-whisper checkpoint for `name` inside the Volume mounted at `root`, downloading it
    first if needed: (path, downloaded). Nothing half-written ever reaches the Volume: the file is downloaded
    to the container's own disk and its SHA-256 checked (whisper._download), then

    - `volume` (the mounted modal.Volume): one container downloads: it claims the download with a marker put
      in with batch_upload (which refuses a file that exists: the others wait, reloading, for the weights),
      puts the file in whole with batch_upload, removes the marker and reloads;
    - else (a plain folder, `commit` given): copied in under a hidden name, moved into place with os.replace
      and committed.

    Before downloading, a reload shows what other containers committed since this one started."""
    import whisper

    from worker.core.errors import TranscriptionError

    url = whisper._MODELS.get(name)  # noqa: SLF001 - the download URL names the file
    if url is None:
        raise TranscriptionError(f"unknown model {name!r}")
    folder = root / WEIGHTS_FOLDER
    target = folder / os.path.basename(url)
    if target.is_file():
        return target, False
    claimed = False
    if volume is not None:
        _reload(volume)
        if target.is_file():
            return target, False
        claim = _claim_download(volume, target)
        if claim is False and _wait_for(volume, target):
            return target, False
        claimed = bool(claim)
    folder.mkdir(parents=True, exist_ok=True)
    local = Path(tempfile.mkdtemp(prefix="whisper-desk-weights-"))  # the container's disk, not the Volume
    try:
        downloaded = Path(whisper._download(url, str(local), False))  # noqa: SLF001 - checks the SHA-256
        if volume is not None:
            try:
                with volume.batch_upload() as batch:
                    batch.put_file(str(downloaded), f"/{WEIGHTS_FOLDER}/{target.name}")
            except FileExistsError:  # another container put it there first: the same file (same SHA-256)
                pass
            _unclaim_download(volume, target)
            _reload(volume)
            if not target.is_file():  # the upload failed: this container uses its own copy
                keep = Path(tempfile.mkdtemp(prefix="whisper-desk-weights-kept-")) / target.name
                os.replace(downloaded, keep)
                return keep, True
        else:
            staging = folder / f".{target.name}.{container_id()}.partial"
            shutil.copyfile(downloaded, staging)
            os.replace(staging, target)
            if commit is not None:
                commit()
    except BaseException:
        if claimed:  # the others stop waiting and try themselves
            _unclaim_download(volume, target)
        raise
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return target, True


def _marker(target: Path) -> str:
    return f"/{WEIGHTS_FOLDER}/.downloading-{target.name}"


def _claim_download(volume: Any, target: Path) -> bool | None:
    """True: this container downloads; False: another one claimed it (wait for it); None: the claim could not
    be made (download anyway)."""
    claim = Path(tempfile.mkdtemp(prefix="whisper-desk-claim-")) / "claim"
    claim.write_text(json.dumps({"container": container_id(), "at": time.time()}), encoding="utf-8")
    try:
        with volume.batch_upload() as batch:  # refuses a file that exists: one container wins the claim
            batch.put_file(str(claim), _marker(target))
        print(f"whisper-desk: downloading {target.name} into the model volume")
        return True
    except FileExistsError:
        return False
    except Exception as exc:  # no claim: this container downloads on its own (as before claims existed)
        print(f"whisper-desk: could not claim the download of {target.name} ({type(exc).__name__}: {exc})")
        return None
    finally:
        shutil.rmtree(claim.parent, ignore_errors=True)


def _claimed_at(root: Path, target: Path) -> float | None:
    marker = root / _marker(target).lstrip("/")
    try:
        return float(json.loads(marker.read_text(encoding="utf-8"))["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _wait_for(volume: Any, target: Path) -> bool:
    """Another container is downloading: wait, reloading, until the weights are in (True), or its claim is
    gone or stale without them (False: download them here)."""
    root = target.parent.parent
    print(f"whisper-desk: waiting for another container's download of {target.name}")
    while True:
        time.sleep(DOWNLOAD_WAIT_S)
        _reload(volume)
        if target.is_file():
            return True
        claimed = _claimed_at(root, target)
        if claimed is None or time.time() - claimed > DOWNLOAD_STALE_S:
            return False


def _unclaim_download(volume: Any, target: Path) -> None:
    try:
        volume.remove_file(_marker(target))
    except Exception as exc:  # a claim left behind goes stale; waiting containers then look for the file
        print(f"whisper-desk: could not remove the download claim ({type(exc).__name__}: {exc})")


def _reload(volume: Any) -> None:
    """See what other containers committed; a reload that fails leaves this container's view as it was."""
    try:
        volume.reload()
    except Exception as exc:  # e.g. open files in the Volume: the download then goes ahead
        print(f"whisper-desk: could not reload the model volume ({type(exc).__name__}: {exc})")


def _decode(audio: bytes) -> tuple[Any, float]:
    """Chunk bytes -> (16 kHz mono float32, seconds it took). FLAC/Opus/WAV at 16 kHz decode in memory with
    soundfile; anything else goes through a temporary file and whisper's ffmpeg loader (the file is always
    removed), or PyAV where there is no ffmpeg (a local run)."""
    import numpy as np
    import soundfile as sf

    from worker.core.errors import TranscriptionError

    started = time.perf_counter()
    if not audio:
        raise TranscriptionError("the audio chunk is empty")
    rate = 0
    samples = None
    try:
        data, rate = sf.read(io.BytesIO(audio), dtype="float32", always_2d=True)
        samples = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    except Exception:  # not something libsndfile reads: let ffmpeg try
        samples = None
    if samples is None or rate != SAMPLE_RATE:
        samples = _decode_with_ffmpeg(audio)
    return np.ascontiguousarray(samples, dtype=np.float32), time.perf_counter() - started


def _decode_with_ffmpeg(audio: bytes) -> Any:
    from worker.core.errors import TranscriptionError

    if shutil.which("ffmpeg") is None:  # a local run without ffmpeg: PyAV resamples in memory
        from worker.core.errors import MediaError
        from worker.media.chunking import decode_chunk

        try:
            return decode_chunk(audio)
        except MediaError as exc:
            raise TranscriptionError(f"the audio chunk is not readable audio ({exc.reason})") from None
    import whisper

    handle, name = tempfile.mkstemp(prefix="whisper-desk-chunk-", suffix=".audio")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(audio)
        return whisper.load_audio(name, sr=SAMPLE_RATE)
    except RuntimeError as exc:  # whisper wraps ffmpeg's failure
        last = (str(exc).strip().splitlines() or ["ffmpeg failed"])[-1]
        raise TranscriptionError(f"the audio chunk is not readable audio ({last[:160]})") from None
    finally:
        os.unlink(name)


class TranscriberBody:
    """Loads one Whisper model (openai-whisper) and transcribes chunks with it. One call at a time per body
    (openai-whisper's decoder keeps per-call state on the model), which is what a Modal container runs."""

    def __init__(
        self, model: str = DEFAULT_MODEL, commit_volume: Callable[[], None] | None = None, volume: Any = None
    ) -> None:
        from worker.core.options import MODEL_NAMES

        if model not in MODEL_NAMES:
            from worker.core.errors import TranscriptionError

            raise TranscriptionError(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
        self.model = model
        self._commit_volume = commit_volume
        self._volume = volume  # the mounted modal.Volume (in a container), for reload and batch_upload
        self._engine: Any = None
        self._lock = threading.Lock()
        self.model_load_s = 0.0
        self.downloaded = False
        self.created_at = time.time()  # wall clock, for the client's cost: this container is up since then

    def load(self) -> float:
        """Load the model (once); returns the seconds it took."""
        with self._lock:
            if self._engine is None:
                engine = _make_engine(self)
                self.model_load_s = engine.load()
                self._engine = engine
        return self.model_load_s

    @property
    def label(self) -> str:
        return self._engine.label if self._engine is not None else self.model

    def transcribe(self, audio: bytes, options: dict[str, Any], cancel: Any = None) -> dict[str, Any]:
        """One chunk -> the worker API's answer (see the module docstring). `cancel` (a CancelToken) stops
        the work between Whisper's 30 s windows; the Modal class never passes one."""
        from worker.core.errors import TranscriptionError
        from worker.core.options import TranscriptionOptions

        try:
            opts = _checked_types(TranscriptionOptions.from_dict({**dict(options or {}), "model": self.model}))
        except (TypeError, ValueError) as exc:
            raise TranscriptionError(f"bad options for the worker: {exc}") from None
        started_at = time.time()
        samples, decode_s = _decode(audio)
        self.load()
        with self._lock:
            transcript = self._engine.transcribe(samples, opts, cancel=cancel)
        timings = dict(transcript.timings)
        timings.update(
            decode_s=round(decode_s, 3),
            cuda_mem_mb=_cuda_memory_mb(),
            container_id=container_id(),
            # wall clock (time.time()) in the container: what Modal bills is read off these (worker.modal.cost)
            container_up_at=round(self.created_at, 3),
            input_started_at=round(started_at, 3),
            input_finished_at=round(time.time(), 3),
            downloaded=self.downloaded,
        )
        return {
            "api_version": WORKER_API_VERSION,
            "segments": [
                {
                    "id": s.id,
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "words": [{"start": w.start, "end": w.end, "text": w.text, "probability": w.probability} for w in s.words],
                }
                for s in transcript.segments
            ],
            "language": transcript.language,
            "duration": round(len(samples) / SAMPLE_RATE, 3),
            "model": transcript.model,
            "timings": timings,
        }


_OPTION_TYPES = {"language": (str, type(None)), "word_timestamps": (bool,), "initial_prompt": (str, type(None)),
                 "beam_size": (int,)}
MAX_BEAM_SIZE = 20


def _checked_types(opts: Any) -> Any:
    """The options as the engine needs them, or ValueError naming the first one that is not (a value of the
    wrong type would fail deep inside Whisper instead, as an error that is not ours)."""
    for name, types in _OPTION_TYPES.items():
        value = getattr(opts, name)
        if not isinstance(value, types) or (name == "beam_size" and isinstance(value, bool)):
            raise ValueError(f"{name} cannot be {value!r}")
    if not 1 <= opts.beam_size <= MAX_BEAM_SIZE:
        raise ValueError(f"beam_size must be from 1 to {MAX_BEAM_SIZE}, not {opts.beam_size}")
    return opts


def _make_engine(body: TranscriberBody) -> Any:
    """openai-whisper (worker.engines.openai_engine), with weights from the Volume when it is mounted."""
    from worker.engines.openai_engine import OpenAIWhisperEngine

    class VolumeEngine(OpenAIWhisperEngine):
        def _load(self) -> tuple[Any, str]:
            root = models_dir()
            if root is None:  # a local run: this computer's model cache (bundled tiny.en offline)
                return super()._load()
            import whisper

            torch = self._torch()
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            path, body.downloaded = ensure_volume_checkpoint(self.model_name, root, body._commit_volume, body._volume)
            model = whisper.load_model(str(path), device=device)
            model.set_alignment_heads(whisper._ALIGNMENT_HEADS[self.model_name])  # noqa: SLF001
            self.device = device
            self.gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
            return model, f"{self.model_name} ({'downloaded to' if body.downloaded else 'cached in'} the Modal volume)"

    return VolumeEngine(body.model, threads=container_threads())


def container_threads() -> int:
    """torch's CPU threads in a container: the cores it reserves (SETTINGS.cpu, at least one). More threads than
    that contend with each other for what Modal guarantees (and, in the loopback plane, with the other
    containers on the same computer); on a T4 the model runs on the GPU either way."""
    return max(1, int(SETTINGS.cpu))


def error_answer(message: str) -> dict[str, Any]:
    """The answer for an input that failed for a reason of ours (the client raises it without a retry)."""
    return {"api_version": WORKER_API_VERSION, "error": message}


def _one_line(exc: BaseException) -> str:
    from worker.core.errors import exception_line

    return exception_line(exc)[:300]


def _cuda_memory_mb() -> float:
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return 0.0
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


# ---------------------------------------------------------------- the Modal app

# include_source=False: the code reaches the container once, through the image's add_local_python_source
app = modal.App(APP_NAME, tags={VERSION_TAG: WORKER_API_VERSION}, include_source=False)

image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("ffmpeg")
    .pip_install(
        f"openai-whisper=={WHISPER_VERSION}",
        f"torch=={TORCH_VERSION}",
        f"soundfile=={SOUNDFILE_VERSION}",
        f"numpy=={NUMPY_VERSION}",
    )
    .add_local_python_source("worker")  # the body and the small shared helpers it imports
)

volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)


@app.cls(
    gpu=SETTINGS.gpu,
    cpu=SETTINGS.cpu,
    memory=SETTINGS.memory_mib,
    image=image,
    volumes={MODELS_DIR: volume},
    timeout=SETTINGS.timeout_s,
    startup_timeout=SETTINGS.startup_timeout_s,
    scaledown_window=SETTINGS.scaledown_s,
    max_containers=SETTINGS.max_containers,
    retries=modal.Retries(max_retries=SETTINGS.retries, backoff_coefficient=2.0, initial_delay=1.0),
)
class Transcriber:
    model: str = modal.parameter(default=DEFAULT_MODEL)

    @modal.enter()
    def load(self) -> None:
        """Once per container: load the model (downloading it into the Volume the first time). A failure is
        kept and answered, never raised: a raise here is a crash loop."""
        self.body: TranscriberBody | None = None
        self.load_error: str | None = None
        self._load_body()

    def _load_body(self) -> None:
        try:
            root = models_dir()
            mounted = volume if root is not None and not modal.is_local() else None
            if mounted is not None and self.load_error is not None:
                _reload(mounted)  # it failed before: the Volume may hold good weights now
            body = TranscriberBody(self.model, volume=mounted)  # reloads before it would download
            body.load()
            self.body, self.load_error = body, None
        except Exception as exc:
            self.load_error = f"the {self.model} model did not load on Modal ({_one_line(exc)})"

    @modal.method()
    def transcribe(self, audio: bytes, options: dict) -> dict:
        from worker.core.errors import WhisperDeskError

        if self.body is None:  # loading failed: try again (a download may work now), else answer why not
            self._load_body()
        if self.body is None:
            return error_answer(self.load_error or f"the {self.model} model is not loaded")
        try:
            return self.body.transcribe(audio, options)
        except WhisperDeskError as exc:  # deterministic: an answer, never a retry
            return error_answer(_one_line(exc))
