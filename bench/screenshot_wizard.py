"""Screenshots of each page of the Modal setup wizard, for the docs.

    xvfb-run -a -s "-screen 0 1400x900x24" env QT_QPA_PLATFORM=xcb .venv/bin/python -m bench.screenshot_wizard [OUT_DIR]   # default: docs/

Every page is a real run against the loopback Modal control plane (tests/modal_control_plane.py) with a made-up
token, in a temporary home and Modal config: no real account or network is used, and no real secret exists to
end up in a picture. The token is checked by the real client; the deploy page runs the real `modal deploy`
(as `whisper-desk deploy` does) and warms tiny.en with a real call; the "Try it" page sends the bundled sample
through the real Modal backend. The plane's containers run the deployed class on this computer's CPU, so the
timing lines say gpu=cpu.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
PAGE_FILES = ("wizard-1-intro.png", "wizard-2-token.png", "wizard-3-verify.png", "wizard-4-deploy.png",
              "wizard-5-try.png")
DEMO_ID = "ak-DemoT0kenId4Docs0000"
DEMO_SECRET = "as-DemoSecretNotReal000"


def save_wizard_screenshots(out_dir: Path, make_backend: Callable[[], Any] | None = None) -> list[Path]:
    """Drive the wizard through its five pages and save one PNG per page into `out_dir`."""
    sys.path.insert(0, str(ROOT / "tests"))
    from modal_control_plane import ControlPlane
    from PySide6.QtWidgets import QApplication

    from bench.qt_wait import wait_until
    from gui.wizard import ModalSetupWizard

    out_dir.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([])
    saved: list[Path] = []
    old_env = {key: os.environ.get(key)
               for key in ("HOME", "MODAL_CONFIG_PATH", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_SERVER_URL")}
    with tempfile.TemporaryDirectory() as tmp, ControlPlane(token_id=DEMO_ID, token_secret=DEMO_SECRET) as server:
        os.environ["HOME"] = tmp  # the page then shows ~/.modal.toml, as for a user
        os.environ["MODAL_CONFIG_PATH"] = str(Path(tmp) / ".modal.toml")
        os.environ.pop("MODAL_TOKEN_ID", None)
        os.environ.pop("MODAL_TOKEN_SECRET", None)
        os.environ["MODAL_SERVER_URL"] = server.url  # the Modal backend of the "Try it" page goes there too
        wizard = ModalSetupWizard(server_url=server.url, **({"make_backend": make_backend} if make_backend else {}))
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
            wait_until(lambda: not wizard.deploy_page.busy, 15, "the deploy page's app check", settle_ms=100)
            wizard.deploy_page.deploy_button.click()
            wait_until(lambda: wizard.deploy_page.warmed or (not wizard.deploy_page.busy and
                                                               "did not work" in wizard.deploy_page.status.text()), 300,
                       "the deploy", settle_ms=100)
            shot(3)
            wizard.next()
            wizard.try_page.run_button.click()
            wait_until(lambda: not wizard.try_page.busy, 120, "the sample transcription", settle_ms=100)
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
