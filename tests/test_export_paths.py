"""One export pipeline: a transcript leaves the app as the same bytes whichever way it goes (the CLI, a watch
folder, automatic export on completion, the export dialog, bulk export), words missing from it are aligned the
same way on every path, and the JSON is openai-whisper's. Real tiny.en on the real jfk.flac: the CLI transcribes
it once into a library, and every other path exports that job's transcript."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pysubs2
import pytest

from worker.jobs.preferences import Preferences
from worker.library.library import Library
from worker.transcripts.model import Transcript

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("txt", "srt", "vtt", "json", "docx")
# rules other than the defaults, saved in the preferences every path reads (the CLI's defaults are the window's)
RULES = Preferences(subtitle_max_line_chars=24, subtitle_max_lines=1, subtitle_max_cps=15.0)
# openai-whisper's transcribe() result and WriteJSON, as the installed package makes them
WHISPER_TOP = ["text", "segments", "language"]
WHISPER_SEGMENT = ["id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio",
                   "no_speech_prob", "words"]
WHISPER_WORD = ["word", "start", "end", "probability"]


def run_cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def isolated_env(home: Path) -> dict[str, str]:
    """The CLI's environment: its own data, config and cache folders (as conftest's isolated_dirs), no Modal token."""
    env = dict(os.environ, XDG_DATA_HOME=str(home / ".local/share"), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"), MODAL_CONFIG_PATH=str(home / ".modal.toml"),
               WHISPER_DESK_MODEL_CACHE=str(ROOT / ".pytest_cache" / "models"))
    env.pop("MODAL_TOKEN_ID", None)
    env.pop("MODAL_TOKEN_SECRET", None)
    return env


@dataclass(frozen=True)
class CliRun:
    source: Path  # the recording, alone in its folder (a watch folder in the tests)
    library: Path  # the library the CLI wrote its job into
    out: Path  # what the CLI wrote
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory, jfk: Path) -> CliRun:
    """`whisper-desk transcribe` on jfk.flac with several formats (repeated and comma-separated, DOCX included)."""
    root = tmp_path_factory.mktemp("export_paths")
    env = isolated_env(root / "home")
    RULES.save(root / "home" / ".config" / "whisper-desk" / "preferences.json")
    source = root / "inbox" / "jfk.flac"
    source.parent.mkdir()
    shutil.copy(jfk, source)
    out = root / "cli"
    library = root / "library.sqlite3"
    result = run_cli("transcribe", str(source), "--format", "txt,srt", "--format", "vtt", "--format", "json,docx",
                     "--library", str(library), "--output-dir", str(out), env=env)
    assert result.returncode == 0, result.stderr
    return CliRun(source.resolve(), library, out, result)


def library_copy(run: CliRun, folder: Path) -> Library:
    """The CLI's library, copied so that each test's watcher starts from it as the CLI left it."""
    for part in run.library.parent.glob(f"{run.library.name}*"):
        shutil.copy(part, folder / part.name)
    return Library(folder / run.library.name)


def files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def automatic_export(transcript: Transcript, source: Path, folder: Path) -> list[str]:
    """What the queue runs when a job finishes, with the preferences' automatic export formats and rules."""
    from worker.jobs.queue import auto_export

    return auto_export(transcript, source, replace(Preferences.load(), auto_export_formats=FORMATS,
                                                   auto_export_folder=str(folder)))


def watch_folder(library: Library, source: Path, folder: Path) -> list[str]:
    """A watcher on the recording's folder: the library's finished job for it is written, not transcribed again."""
    from worker.jobs.queue import JobQueue
    from worker.jobs.watch import FolderWatcher
    from worker.jobs.watch_folders import WatchFolder

    lines: list[str] = []
    queue = JobQueue(library, Preferences.load(), only_own_jobs=True)
    try:
        watcher = FolderWatcher(library, queue, [WatchFolder(str(source.parent), formats=FORMATS, output_dir=str(folder))],
                                lines.append, settle_s=0.0)
        watcher.poll()  # seen
        watcher.poll()  # settled: its finished job is taken, and its outputs written
    finally:
        queue.shutdown()
    return lines


def export_dialog(qtbot, library: Library, job_id: int, folder: Path) -> list[str]:
    """The window's export dialog with the choices it opens with (the preferences' rules)."""
    from gui.export_dialog import ExportDialog

    dialog = ExportDialog(library, [job_id], folder=folder, formats=list(FORMATS))
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.exportFinished, timeout=120_000):
        assert dialog.export()
    assert dialog.failures == []
    return dialog.notes


def bulk_export(library: Library, job_id: int, folder: Path) -> list[Path]:
    from worker.jobs.export import exporter

    record = library.jobs.get(job_id)
    assert record is not None
    return exporter(Preferences.load().subtitle_rules()).write_many([(library.transcripts.get(job_id), record.path)],
                                                                    folder, FORMATS)


def test_the_cli_watch_automatic_export_and_the_dialog_write_the_same_bytes(cli_run: CliRun, tmp_path: Path, qtbot) -> None:
    RULES.save()  # the in-process paths read the preferences the CLI read
    library = library_copy(cli_run, tmp_path)
    try:
        [record] = library.jobs.all()
        transcript = library.transcripts.get(record.id)
        expected = files(cli_run.out)
        assert sorted(expected) == sorted(f"jfk.{fmt}" for fmt in FORMATS)
        subs = pysubs2.SSAFile.from_string(expected["jfk.srt"].decode("utf-8"))
        assert len(subs) > 2 and all(len(e.plaintext) <= 24 and "\n" not in e.plaintext for e in subs)  # the rules held
        assert all(s["words"] for s in json.loads(expected["jfk.json"])["segments"])

        automatic_export(transcript, cli_run.source, tmp_path / "auto")
        assert files(tmp_path / "auto") == expected, "automatic export"
        lines = watch_folder(library, cli_run.source, tmp_path / "watch")
        assert files(tmp_path / "watch") == expected, lines
        export_dialog(qtbot, library, record.id, tmp_path / "dialog")
        assert files(tmp_path / "dialog") == expected, "export dialog"
        bulk_export(library, record.id, tmp_path / "bulk")
        assert files(tmp_path / "bulk") == expected, "bulk export"
    finally:
        library.close()


def test_an_edited_transcript_gets_its_words_aligned_the_same_way_on_every_path(cli_run: CliRun, tmp_path: Path,
                                                                                 qtbot) -> None:
    RULES.save()
    library = library_copy(cli_run, tmp_path)
    try:
        [record] = library.jobs.all()
        edited = library.transcripts.get(record.id)
        edited.segments[-1].text = " ask what you can do for your planet"  # its word timestamps no longer match
        library.transcripts.save_edit(record.id, edited)

        notes = automatic_export(library.transcripts.get(record.id), cli_run.source, tmp_path / "auto")
        assert not [note for note in notes if "could not" in note], notes
        expected = files(tmp_path / "auto")
        data = json.loads(expected["jfk.json"])
        words = data["segments"][-1]["words"]
        assert "".join(w["word"] for w in words).split() == "ask what you can do for your planet".split()
        assert words[-1]["probability"] < 0.2  # aligned from the audio: "planet" was never said
        assert "planet" in expected["jfk.srt"].decode("utf-8")
        assert expected["jfk.srt"] != files(cli_run.out)["jfk.srt"]

        lines = watch_folder(library, cli_run.source, tmp_path / "watch")
        assert files(tmp_path / "watch") == expected, lines
        notes = export_dialog(qtbot, library, record.id, tmp_path / "dialog")
        assert not [note for note in notes if "timed by characters" in note], notes
        assert files(tmp_path / "dialog") == expected, "export dialog"
        bulk_export(library, record.id, tmp_path / "bulk")
        assert files(tmp_path / "bulk") == expected, "bulk export"
    finally:
        library.close()


def test_the_json_is_openai_whispers_shape_and_its_own_writers_read_it(cli_run: CliRun, tmp_path: Path) -> None:
    import torch
    import whisper
    from whisper.utils import get_writer

    from worker.engines.weights import load_openai_model
    from worker.media.audio import decode_audio

    ours = json.loads((cli_run.out / "jfk.json").read_text(encoding="utf-8"))
    # openai-whisper's own result for the same recording, through its own JSON writer
    torch.set_num_threads(2)
    model, _label = load_openai_model("tiny.en", device="cpu")
    result = whisper.transcribe(model, decode_audio(cli_run.source), word_timestamps=True, fp16=False, language="en")
    get_writer("json", str(tmp_path))(result, "whisper.flac")
    theirs = json.loads((tmp_path / "whisper.json").read_text(encoding="utf-8"))

    assert list(theirs) == WHISPER_TOP and list(ours)[:3] == WHISPER_TOP
    assert list(theirs["segments"][0]) == WHISPER_SEGMENT
    for segment in ours["segments"]:
        assert list(segment)[:len(WHISPER_SEGMENT)] == WHISPER_SEGMENT  # our own fields come after theirs
        for key in WHISPER_SEGMENT:
            assert type(segment[key]) is type(theirs["segments"][0][key]), key
        assert [list(word) for word in segment["words"]] == [WHISPER_WORD] * len(segment["words"])
        assert all(word["word"].startswith(" ") for word in segment["words"])  # as openai-whisper's keep theirs
    assert all(type(ours["segments"][0]["words"][0][key]) is type(theirs["segments"][0]["words"][0][key])
               for key in WHISPER_WORD)
    ours_words = [w["word"] for s in ours["segments"] for w in s["words"]]
    assert ours_words[:5] == [w["word"] for s in theirs["segments"] for w in s["words"]][:5] == [
        " And", " so", " my", " fellow", " Americans"]

    # openai-whisper's subtitle writer, word options and all, reads our JSON as its own
    get_writer("srt", str(tmp_path))(ours, "ours.flac", {"max_line_width": 24, "max_line_count": 1,
                                                          "highlight_words": True})
    written = pysubs2.load(str(tmp_path / "ours.srt"))
    shown = " ".join(e.plaintext for e in written).replace("<u>", "").replace("</u>", "")
    assert set(shown.split()) == set(ours["text"].split())
    assert Transcript.from_dict(ours).text == ours["text"]  # and we read it back


def test_the_cli_writes_several_formats_in_one_run_docx_included(cli_run: CliRun, tmp_path: Path, jfk: Path) -> None:
    import docx

    written = [line for line in cli_run.result.stderr.splitlines() if ": wrote " in line]
    assert written == [f"jfk.flac: wrote {cli_run.out / f'jfk.{fmt}'}" for fmt in ("txt", "srt", "vtt", "json", "docx")]
    document = docx.Document(str(cli_run.out / "jfk.docx"))
    paragraphs = [p.text for p in document.paragraphs]
    text = (cli_run.out / "jfk.txt").read_text(encoding="utf-8")
    assert paragraphs[0] == "jfk.flac" and " ".join(paragraphs[1:]).split() == text.split()
    assert "ask not what your country can do for you" in " ".join(paragraphs).lower()

    env = isolated_env(tmp_path / "home")  # refused before anything is transcribed: one line, exit 2
    for args, reason in ((["--format", "srt,docx"], "several formats are written to files: use --output-dir"),
                         (["--format", "docx"], "docx is written to a file: use -o or --output-dir"),
                         (["--format", "txt", "--format", "srt", "-o", str(tmp_path / "x.txt")],
                          "-o/--output takes one format; use --output-dir for several"),
                         (["--format", "srt,pdf"], "unknown format 'pdf'")):
        refused = run_cli("transcribe", str(jfk), *args, env=env)
        assert refused.returncode == 2 and reason in refused.stderr.splitlines()[-1], refused.stderr
