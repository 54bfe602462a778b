"""`whisper-desk serve`: the real server (a `python -m worker.cli serve --port 0` process on 127.0.0.1, one per
module), asked by the real `openai` client and by a plain HTTP client as Subtitle Edit or Buzz would, transcribing
real recordings with the shipped tiny.en; its jobs land in the library the window reads."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import openai
import pysubs2
import pytest
from media_factory import make_media

from worker.core.options import MODEL_NAMES
from worker.library.job_status import JobStatus
from worker.library.jobs import JobRecord
from worker.library.library import Library
from worker.serve.protocol import ApiError, parse_speech_request
from worker.serve.service import upload_name

ROOT = Path(__file__).resolve().parent.parent
PHRASE = "ask not what your country can do for you"
JFK_SECONDS = 11.0
AMERICANS_AT_S = 1.8  # the word "Americans" spans this time (shared/audio/README.md)
MAX_UPLOAD_MB = 4  # the test server's limit: jfk.flac (1.1 MB) fits, OVERSIZED_BYTES does not
OVERSIZED_BYTES = 5 * 1024**2
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 180.0
TIME_LIMIT_S = 3  # the time-limit test's server: the 3-minute recording takes far longer


def words_of(text: str) -> str:
    """Lowercase words separated by single spaces (punctuation and line breaks dropped), to look for PHRASE."""
    return " ".join(re.findall(r"[a-z']+", text.lower()))


@dataclass
class Served:
    base_url: str
    key: str
    home: Path
    process: subprocess.Popen[str]

    @property
    def library_path(self) -> Path:
        return self.home / "data" / "whisper-desk" / "library.sqlite3"

    @property
    def uploads(self) -> Path:
        return self.home / "data" / "whisper-desk" / "uploads"

    def jobs(self) -> list[JobRecord]:
        """The jobs as the window reads them: from the shared library file."""
        library = Library(self.library_path)
        try:
            return library.jobs.all()
        finally:
            library.close()

    def job_named(self, name: str) -> list[JobRecord]:
        return [record for record in self.jobs() if record.name == name]

    def client(self, api_key: str | None = None, max_retries: int = 0) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=api_key or self.key, timeout=REQUEST_TIMEOUT_S,
                             max_retries=max_retries)


def printed_lines(process: subprocess.Popen[str], count: int, timeout_s: float) -> list[str]:
    """The first `count` lines the process prints to stdout, read in a thread so a silent process fails in time."""
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(process.stdout.readline()) for _ in range(count)],  # type: ignore[union-attr]
                     daemon=True).start()
    try:
        return [lines.get(timeout=timeout_s) for _ in range(count)]
    except queue.Empty:
        raise AssertionError(f"serve printed nothing in {timeout_s:g} s (exit code {process.poll()})") from None


@contextmanager
def serving(home: Path, *options: str) -> Iterator[Served]:
    """`python -m worker.cli serve --port 0 OPTIONS` with its own data, config and cache under `home`, stopped by
    Ctrl-C at the end (which must exit 130, with the key in no log)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "WHISPER_DESK_API_KEY")}
    env.update(XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               MODAL_CONFIG_PATH=str(home / ".modal.toml"),
               WHISPER_DESK_MODEL_CACHE=str(ROOT / ".pytest_cache" / "models"))  # as conftest's isolated_dirs
    with open(home / "serve.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "worker.cli", "serve", "--port", "0", *options],
                                   cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    served: Served | None = None
    try:
        url_line, key_line = printed_lines(process, 2, START_TIMEOUT_S)
        assert url_line.startswith("base URL: http://127.0.0.1:"), url_line
        assert key_line.startswith("API key: "), key_line
        served = Served(url_line.split()[-1], key_line.split()[-1], home, process)
        assert len(served.key) >= 32  # no --api-key: a new random one
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        log_text = (home / "serve.log").read_text()
        assert code == 130, log_text  # Ctrl-C: a clean stop
        assert served is None or served.key not in log_text  # the key is printed once, to stdout, nowhere else


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("serve"), "--max-upload-mb", str(MAX_UPLOAD_MB)) as server:
        yield server


@pytest.fixture(scope="module")
def client(served: Served) -> openai.OpenAI:
    return served.client()


# --- the openai client, each response format --------------------------------------------------------------------

def test_json_is_the_text(client: openai.OpenAI, jfk: Path) -> None:
    with jfk.open("rb") as audio:
        answer = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert PHRASE in words_of(answer.text)


def test_text_is_the_transcript(client: openai.OpenAI, jfk: Path) -> None:
    with jfk.open("rb") as audio:
        answer = client.audio.transcriptions.create(model="tiny.en", file=audio, response_format="text")
    assert isinstance(answer, str)
    assert PHRASE in words_of(answer)


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_read_back_as_the_recording(client: openai.OpenAI, jfk: Path, fmt: str) -> None:
    with jfk.open("rb") as audio:
        answer = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format=fmt)
    assert isinstance(answer, str)
    if fmt == "vtt":
        assert answer.startswith("WEBVTT")
    subtitles = pysubs2.SSAFile.from_string(answer, format_=fmt)
    cues = [event for event in subtitles if event.plaintext.strip()]
    assert PHRASE in words_of(" ".join(event.plaintext for event in cues))
    assert cues[0].start < 1000 and JFK_SECONDS * 1000 - 2000 < cues[-1].end <= JFK_SECONDS * 1000 + 100
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:]))


def test_verbose_json_has_segments_and_words_in_openais_shape(client: openai.OpenAI, jfk: Path) -> None:
    with jfk.open("rb") as audio:
        answer = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json",
                                                    timestamp_granularities=["word", "segment"])
    assert (answer.task, answer.language) == ("transcribe", "en")
    assert answer.duration == pytest.approx(JFK_SECONDS, abs=0.1)
    assert PHRASE in words_of(answer.text)
    segments = answer.model_dump()["segments"]
    assert [segment["id"] for segment in segments] == list(range(len(segments)))
    assert set(segments[0]) == {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                                "compression_ratio", "no_speech_prob"}
    assert " ".join(words_of(segment["text"]) for segment in segments) == words_of(answer.text)
    assert answer.words is not None
    assert words_of(" ".join(word.word for word in answer.words)) == words_of(answer.text)
    americans = next(word for word in answer.words if "americans" in word.word.lower())
    assert americans.start <= AMERICANS_AT_S <= americans.end
    assert all(word.start <= word.end for word in answer.words)


def test_word_timings_as_buzz_asks_for_them(client: openai.OpenAI, jfk: Path) -> None:
    """Buzz with word-level timings: verbose_json, granularities ["word"] alone, no prompt or language. As OpenAI
    answers it, words and no segments (Buzz reads its words as one segment then)."""
    with jfk.open("rb") as audio:
        answer = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json",
                                                    timestamp_granularities=["word"], prompt=None, language=None)
    assert answer.segments is None and answer.words
    assert PHRASE in words_of(" ".join(word.word for word in answer.words))
    assert [word.start for word in answer.words] == sorted(word.start for word in answer.words)


def test_the_jobs_are_in_the_library_the_window_reads(served: Served, client: openai.OpenAI, jfk: Path) -> None:
    name = f"{uuid.uuid4().hex[:8]}.flac"
    client.audio.transcriptions.create(model="whisper-1", file=(name, jfk.read_bytes()))
    [record] = served.job_named(name)
    assert record.status == JobStatus.DONE and record.options.model == "tiny.en"  # whisper-1: the default model
    assert Path(record.path).read_bytes() == jfk.read_bytes()  # the upload stays, so the window can play it
    library = Library(served.library_path)
    try:
        transcript = library.transcripts.get(record.id)
    finally:
        library.close()
    assert transcript is not None and PHRASE in words_of(transcript.text)


def test_removing_an_api_job_in_the_window_removes_its_upload(served: Served, client: openai.OpenAI, jfk: Path) -> None:
    from worker.jobs.events import JobRemoved
    from worker.jobs.preferences import Preferences
    from worker.jobs.queue import JobQueue

    name = f"{uuid.uuid4().hex[:8]}.flac"
    client.audio.transcriptions.create(model="whisper-1", file=(name, jfk.read_bytes()))
    [record] = served.job_named(name)
    upload = Path(record.path)
    assert record.owned_copy and upload.parent.parent == served.uploads
    removed = threading.Event()
    library = Library(served.library_path)
    window = JobQueue(library, Preferences(), lambda event: removed.set() if isinstance(event, JobRemoved) else None)
    try:
        window.remove([record.id])  # as the window's Remove does
        assert removed.wait(10)
    finally:
        window.shutdown()
        library.close()
    assert not served.job_named(name) and not upload.parent.exists() and served.uploads.is_dir()


def test_models_are_listed(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["whisper-1", *MODEL_NAMES]
    assert client.models.retrieve("tiny.en").owned_by == "whisper-desk"


# --- refused requests ---------------------------------------------------------------------------------------------

def test_a_request_without_the_right_key_is_refused(served: Served, jfk: Path) -> None:
    before = len(served.jobs())
    with pytest.raises(openai.AuthenticationError) as refused, jfk.open("rb") as audio:
        served.client(api_key="not-the-key").audio.transcriptions.create(model="whisper-1", file=audio)
    error = refused.value.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")
    assert "not-the-key" not in error["message"] and served.key not in error["message"]
    status, body = post_form(served, [("model", "whisper-1")], ("jfk.flac", jfk.read_bytes()), key=None)
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    assert len(served.jobs()) == before  # nothing was queued


def test_an_undecodable_upload_gets_one_clear_line_naming_the_file(served: Served, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="whisper-1", file=("x.mp3", os.urandom(64 * 1024)))
    error = refused.value.response.json()["error"]
    assert error["message"].startswith("x.mp3: ") and "\n" not in error["message"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "file")
    assert served.job_named("x.mp3") == []  # refused before it became a job
    assert not list(served.uploads.rglob("x.mp3"))  # and its bytes are gone


def test_an_oversized_upload_is_refused_naming_the_file(served: Served, client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        client.audio.transcriptions.create(model="whisper-1", file=("big.wav", bytes(OVERSIZED_BYTES)))
    assert refused.value.status_code == 413
    error = refused.value.response.json()["error"]
    assert error["message"] == f"big.wav is larger than the {MAX_UPLOAD_MB} MB this server accepts"
    assert (error["param"], error["code"]) == ("file", "file_too_large")
    assert not list(served.uploads.rglob("big.wav"))


def test_unknown_model_and_format_are_named(client: openai.OpenAI, jfk: Path) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("jfk.flac", jfk.read_bytes()))
    assert refused.value.response.json()["error"]["param"] == "model"
    assert "gpt-4o-transcribe" in refused.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="whisper-1", file=("jfk.flac", jfk.read_bytes()),
                                           response_format="diarized_json")
    assert refused.value.response.json()["error"]["param"] == "response_format"


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks translations so
def test_translating_with_an_english_only_model_says_what_to_choose(client: openai.OpenAI, jfk: Path) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.translations.create(model="whisper-1", file=("jfk.flac", jfk.read_bytes()))
    assert "tiny.en is an English-only model and cannot translate" in refused.value.message


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks translations so
def test_a_translation_with_a_multilingual_model(client: openai.OpenAI, jfk: Path) -> None:
    answer = client.audio.translations.create(model="base", file=("jfk.flac", jfk.read_bytes()),
                                              response_format="verbose_json")
    assert answer.task == "translate"
    assert PHRASE in words_of(answer.text)


# --- as Subtitle Edit or Buzz send it -------------------------------------------------------------------------------

def post_form(served: Served, fields: list[tuple[str, str]], file: tuple[str, bytes],
              key: str | None) -> tuple[int, str]:
    """A multipart POST written by hand with http.client, as tools without the SDK send it."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file[0]}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + file[1] + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    url = urlsplit(served.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=REQUEST_TIMEOUT_S)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        connection.request("POST", f"{url.path}/audio/transcriptions", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()


def test_a_plain_http_client_gets_subtitles(served: Served, jfk: Path) -> None:
    status, body = post_form(served, [("model", "whisper-1"), ("language", "en"), ("response_format", "srt"),
                                      ("timestamp_granularities[]", "segment")], ("jfk.flac", jfk.read_bytes()),
                             key=served.key)
    assert status == 200, body
    cues = pysubs2.SSAFile.from_string(body, format_="srt")
    assert PHRASE in words_of(" ".join(event.plaintext for event in cues))


# --- several clients at once ------------------------------------------------------------------------------------------

def test_clients_at_once_are_each_answered_and_a_failure_loses_none(served: Served, jfk: Path, tmp_path: Path) -> None:
    """Three requests at the same moment: two good, one whose job fails (a cut FLAC: its header decodes, its
    second half is missing). The good ones are answered, the cut one gets its reason once (OpenAI's client,
    which retries server errors, is told not to: its job ran once), and the jobs ran in turn (the preferences'
    default: one file at a time on this computer). The good ones are jfk in two encodings this module sends
    nowhere else, so each is transcribed: a recording sent before would be answered from its transcript."""
    tag = uuid.uuid4().hex[:8]
    cut = make_media(tmp_path, "truncated_flac").read_bytes()
    first, second = (make_media(tmp_path, kind).read_bytes() for kind in ("wav_48k_float", "ogg"))
    uploads = {f"first-{tag}.wav": first, f"cut-{tag}.flac": cut, f"second-{tag}.ogg": second}
    start = threading.Barrier(len(uploads))
    retrying = served.client(max_retries=2)

    def ask(name: str) -> str | openai.APIStatusError:
        start.wait()
        try:
            return retrying.audio.transcriptions.create(model="whisper-1", file=(name, uploads[name]), response_format="text")
        except openai.APIStatusError as error:
            return error

    with ThreadPoolExecutor(len(uploads)) as pool:
        answers = dict(zip(uploads, pool.map(ask, uploads)))
    for name in (f"first-{tag}.wav", f"second-{tag}.ogg"):
        assert isinstance(answers[name], str) and PHRASE in words_of(answers[name]), answers[name]
    failure = answers[f"cut-{tag}.flac"]
    assert isinstance(failure, openai.InternalServerError)
    assert failure.response.json()["error"]["message"].startswith(f"cut-{tag}.flac: ")
    assert "truncated" in failure.message
    records = [record for record in served.jobs() if tag in record.name]
    assert sorted(record.name for record in records) == sorted(uploads)  # each ran once
    assert {record.name: record.status for record in records} == {
        f"first-{tag}.wav": JobStatus.DONE, f"cut-{tag}.flac": JobStatus.FAILED, f"second-{tag}.ogg": JobStatus.DONE}
    spans = sorted((record.started or 0.0, record.finished or 0.0) for record in records)
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:]))  # in turn


def test_a_client_that_goes_away_cancels_its_job(served: Served, tmp_path: Path) -> None:
    name = f"gone-{uuid.uuid4().hex[:8]}.flac"
    audio = make_media(tmp_path, "long_speech").read_bytes()  # 3 minutes: still running when the client leaves
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n').encode()
    body += audio + f"\r\n--{boundary}--\r\n".encode()
    url = urlsplit(served.base_url)
    head = (f"POST {url.path}/audio/transcriptions HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {served.key}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as connection:
        connection.sendall(head + body)
        assert wait_for_status(served, name, JobStatus.RUNNING, 60.0)
    assert wait_for_status(served, name, JobStatus.CANCELLED, 30.0), served.job_named(name)


def test_a_request_past_its_time_limit_is_answered_and_its_job_cancelled(tmp_path: Path) -> None:
    name = f"slow-{uuid.uuid4().hex[:8]}.flac"
    audio = make_media(tmp_path, "long_speech").read_bytes()
    with serving(tmp_path / "home", "--timeout", str(TIME_LIMIT_S)) as server:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as refused:
            server.client(max_retries=2).audio.transcriptions.create(model="whisper-1", file=(name, audio))
        assert time.monotonic() - started < TIME_LIMIT_S + 30  # answered, not left waiting
        assert refused.value.status_code == 504
        assert refused.value.response.json()["error"]["code"] == "timeout"
        assert wait_for_status(server, name, JobStatus.CANCELLED, 30.0), server.job_named(name)
        assert len(server.job_named(name)) == 1  # not retried


def wait_for_status(served: Served, name: str, status: JobStatus, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(record.status == status for record in served.job_named(name)):
            return True
        time.sleep(0.1)
    return False


# --- the protocol without a server ------------------------------------------------------------------------------------

def test_a_form_is_checked_field_by_field() -> None:
    asked = parse_speech_request({"model": ["whisper-1"], "timestamp_granularities[]": ["word", "segment"]},
                                 "talk.mp3", "transcribe", "small.en")
    assert (asked.model, asked.response_format, asked.granularities) == ("small.en", "json", {"word", "segment"})
    for fields, file_name, param in (({}, None, "file"), ({"model": ["whisper-2"]}, "a.mp3", "model"),
                                     ({"response_format": ["xml"]}, "a.mp3", "response_format"),
                                     ({"timestamp_granularities[]": ["char"]}, "a.mp3", "timestamp_granularities")):
        with pytest.raises(ApiError) as refused:
            parse_speech_request(fields, file_name, "transcribe", "tiny.en")
        assert refused.value.status == 400 and refused.value.body()["error"]["param"] == param


def test_upload_names_stay_in_their_folder_and_fit_the_file_system() -> None:
    assert upload_name("../../etc/passwd") == "passwd"
    assert upload_name("C:\\Users\\me\\talk.m4a") == "talk.m4a"
    assert upload_name("x\x00y.wav") == "xy.wav"
    assert upload_name("..") == upload_name("") == "upload"
    long = upload_name("é" * 300 + ".mp3")
    assert long.endswith(".mp3") and len(long.encode()) <= 255


def test_a_malformed_form_is_a_bad_request(served: Served) -> None:
    url = urlsplit(served.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("POST", f"{url.path}/audio/transcriptions", body=b"no parts here",
                           headers={"Authorization": f"Bearer {served.key}",
                                    "Content-Type": "multipart/form-data; boundary=abc"})
        response = connection.getresponse()
        error = json.loads(response.read())["error"]
    finally:
        connection.close()
    assert response.status == 400 and error["message"].startswith("the multipart form could not be read")
