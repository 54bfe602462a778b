"""The CLI as a script user runs it: real tiny.en, real audio, exit codes and stderr lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pysubs2
import pytest
from speech_text import JFK_REFERENCE, normalise

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env_extra: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def test_transcribe_writes_srt_per_input_and_reports_bad_files(tmp_path: Path, jfk: Path) -> None:
    bad = tmp_path / "notes.m4a"
    bad.write_text("this is not audio")
    missing = tmp_path / "missing.wav"
    out = tmp_path / "out"

    result = run_cli("transcribe", str(jfk), str(bad), str(missing), "--format", "srt", "--output-dir", str(out))

    assert result.returncode == 1, result.stderr
    subs = pysubs2.load(str(out / "jfk.srt"))
    assert JFK_REFERENCE in normalise(" ".join(e.plaintext for e in subs))
    stderr_lines = result.stderr.splitlines()
    # stage lines ("notes.m4a: decoding …") come first; the reason is one line naming the file
    assert [line for line in stderr_lines if "not an audio or video file" in line] == [
        "notes.m4a: not an audio or video file, or the file is damaged"
    ], result.stderr
    assert [line for line in stderr_lines if "not found" in line] == ["missing.wav: file not found"], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["jfk.srt"]


def test_every_format_a_user_drops_transcribes_offline_and_bad_ones_fail_alone(tmp_path: Path) -> None:
    from jiwer import wer

    from tests.media_factory import BAD_KINDS, GOOD_KINDS, make_media

    media = tmp_path / "media"
    good = [make_media(media, kind) for kind in GOOD_KINDS]
    odd = [make_media(media, kind) for kind in ("silence_wav", "tone_50ms")]
    bad = [make_media(media, kind) for kind in BAD_KINDS]
    out = tmp_path / "out"

    result = run_cli("transcribe", *map(str, good + odd + bad), "--format", "json", "--output-dir", str(out), timeout=600)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for path in good:
        data = json.loads((out / f"{path.stem}.json").read_text(encoding="utf-8"))
        assert wer(JFK_REFERENCE, normalise(data["text"])) <= 0.1, (path.name, data["text"])
        assert abs(data["duration"] - 11.0) < 0.3, (path.name, data["duration"])
    for path in odd:
        data = json.loads((out / f"{path.stem}.json").read_text(encoding="utf-8"))
        assert len(data["text"].split()) <= 3, (path.name, data["text"])
    for path in bad:
        assert not (out / f"{path.stem}.json").exists()
        reasons = [line for line in result.stderr.splitlines()
                   if line.startswith(f"{path.name}: ") and not line.startswith(f"{path.name}: decoding")]
        assert len(reasons) == 1, (path.name, result.stderr)


def test_transcribe_json_to_stdout_has_the_whole_transcript(jfk: Path) -> None:
    result = run_cli("transcribe", str(jfk), "--format", "json", "--word-timestamps", "--language", "en")

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"text", "language", "duration", "model", "backend", "segments", "timings"} <= set(data)
    assert JFK_REFERENCE in normalise(data["text"])
    assert data["language"] == "en" and data["backend"] == "local"
    assert "tiny.en" in data["model"]
    assert abs(data["duration"] - 11.0) < 0.2
    words = [w for s in data["segments"] for w in s["words"]]
    americans = next(w for w in words if "Americans" in w["word"])  # openai-whisper's word key
    assert 1.2 <= americans["start"] <= 2.3
    assert data["timings"]["gpu"] == "cpu" and data["timings"]["rtf"] > 0


def test_output_file_and_vtt(tmp_path: Path, jfk: Path) -> None:
    target = tmp_path / "talk.vtt"
    result = run_cli("transcribe", str(jfk), "--format", "vtt", "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_text(encoding="utf-8").startswith("WEBVTT")
    assert JFK_REFERENCE in normalise(" ".join(e.plaintext for e in pysubs2.load(str(target))))


def test_usage_errors_exit_2(tmp_path: Path, jfk: Path) -> None:
    assert run_cli("transcribe").returncode == 2
    assert run_cli("transcribe", str(jfk), "--model", "enormous").returncode == 2
    two_inputs = run_cli("transcribe", str(jfk), str(jfk), "-o", str(tmp_path / "x.txt"))
    assert two_inputs.returncode == 2 and "--output-dir" in two_inputs.stderr


def test_check_without_token_says_missing_at_once() -> None:
    started = time.monotonic()
    result = run_cli("check")
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("credentials: missing")
    assert lines[1].startswith("worker app: unknown")


def test_check_with_unreachable_server_is_bounded_and_hides_the_secret(tmp_path: Path) -> None:
    secret = "as-0123456789abcdefSECRET"
    started = time.monotonic()
    result = run_cli(
        "check", "--timeout", "3",
        env_extra={"MODAL_TOKEN_ID": "ak-0123456789abcdef", "MODAL_TOKEN_SECRET": secret,
                   "MODAL_SERVER_URL": "http://127.0.0.1:9"},
    )
    elapsed = time.monotonic() - started
    assert elapsed < 12, elapsed
    assert result.returncode == 1
    assert result.stdout.startswith("credentials: unreachable")
    assert secret not in result.stdout + result.stderr


def test_without_a_display_the_app_says_how_to_use_the_terminal(jfk: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "gui.launcher", str(jfk)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "whisper-desk transcribe FILE" in result.stderr and "Traceback" not in result.stderr


def test_transcribe_goes_through_the_library_like_the_window(tmp_path: Path, jfk: Path, isolated_dirs: Path) -> None:
    import shutil

    from worker.jobs.preferences import Preferences
    from worker.library.database import default_library_path
    from worker.library.library import Library

    Preferences(word_timestamps=True, language="en").save()  # the window's preferences are the CLI's defaults
    folder = tmp_path / "talks"
    (folder / "day 1").mkdir(parents=True)
    shutil.copy(jfk, folder / "day 1" / "speech.flac")
    (folder / "notes.txt").write_text("not audio")

    result = run_cli("transcribe", str(folder), "--format", "json")

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert JFK_REFERENCE in normalise(data["text"]) and data["language"] == "en"
    assert all(segment["words"] for segment in data["segments"])
    assert f"{folder}: skipped 1 file(s) that are not audio or video (notes.txt)" in result.stderr.splitlines()
    library = Library(default_library_path())
    try:
        [job] = library.jobs.all()
        assert (job.name, job.status, job.backend, job.options.model) == ("speech.flac", "done", "local", "tiny.en")
        assert job.path == str((folder / "day 1" / "speech.flac").resolve()) and job.elapsed and job.error is None
        assert library.transcripts.get(job.id).text == data["text"]
        assert any("summary wall=" in line for line in library.log.lines(job.id))
    finally:
        library.close()


def test_no_library_keeps_nothing_and_library_picks_the_file(tmp_path: Path, jfk: Path) -> None:
    from worker.library.database import default_library_path
    from worker.library.library import Library

    assert run_cli("transcribe", str(jfk), "--no-library").returncode == 0
    assert not default_library_path().exists()

    chosen = tmp_path / "elsewhere.sqlite3"
    assert run_cli("transcribe", str(jfk), "--library", str(chosen)).returncode == 0
    library = Library(chosen)
    try:
        assert [job.status for job in library.jobs.all()] == ["done"]
    finally:
        library.close()
    assert not default_library_path().exists()


def test_ctrl_c_cancels_through_the_queue_and_exits_130(tmp_path: Path, jfk: Path, shared_audio: Path) -> None:
    import signal

    import numpy as np
    import soundfile as sf

    from worker.library.library import Library
    from worker.media.audio import decode_audio

    long_file = tmp_path / "long.flac"  # 5 minutes: still running when Ctrl-C lands, however fast the engine is
    sf.write(long_file, np.tile(decode_audio(shared_audio / "multilingual.mp3"), 5), 16000)
    chosen = tmp_path / "library.sqlite3"
    app = subprocess.Popen([sys.executable, "-m", "worker.cli", "transcribe", str(long_file), str(jfk),
                            "--library", str(chosen)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    while "long.flac: transcribing" not in seen:  # the first job is under way
        line = app.stderr.readline()
        assert line, seen
        seen += line
    app.send_signal(signal.SIGINT)
    _, rest = app.communicate(timeout=60)

    assert app.returncode == 130, seen + rest
    assert "Traceback" not in rest and "Task was destroyed" not in rest and "long.flac: cancelled" in rest
    library = Library(chosen)
    try:
        assert [job.status for job in library.jobs.all()] == ["cancelled", "cancelled"]  # nothing left to run later
    finally:
        library.close()


def test_the_cli_and_the_window_write_the_same_library_rows(qtbot, tmp_path: Path, jfk: Path) -> None:
    from gui.job_runner import QueueController  # the window's queue, as MainWindow builds it
    from worker.jobs.preferences import Preferences
    from worker.library.job_status import JobStatus
    from worker.library.library import Library

    cli_library = tmp_path / "cli.sqlite3"
    assert run_cli("transcribe", str(jfk), "--library", str(cli_library)).returncode == 0

    window_library = Library(tmp_path / "window.sqlite3")
    controller = QueueController(window_library, Preferences(check_modal_on_start=False))
    with qtbot.waitSignal(controller.jobFinished, timeout=240000):
        controller.add_files([jfk])
    controller.shutdown()

    cli = Library(cli_library)
    try:
        [a], [b] = cli.jobs.all(), window_library.jobs.all()
        assert (a.path, a.backend, a.options, a.status, a.error) == (b.path, b.backend, b.options, b.status, b.error)
        assert a.status == JobStatus.DONE and a.duration == pytest.approx(b.duration, abs=0.01)
        assert cli.transcripts.get(a.id).text == window_library.transcripts.get(b.id).text
        shape = [line.split(" gpu=")[0].split(" wall=")[0] for line in cli.log.lines(a.id)]
        assert shape == [line.split(" gpu=")[0].split(" wall=")[0] for line in window_library.log.lines(b.id)]
    finally:
        cli.close()
        window_library.close()
