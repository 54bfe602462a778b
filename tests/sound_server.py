"""What the audio tests share: a PulseAudio server of the test's own, and a watchdog on calls into the player.

SoundServer: Debian's `pulseaudio` started as a user daemon in a fresh XDG_RUNTIME_DIR (never the user's), with a
null sink (where playback goes), a remap source of the sink's monitor (a capture device Qt lists:
QMediaDevices.audioInputs() shows no monitor source itself) and nothing else. `play` writes a WAV into the sink
in real time with paplay (paplay of FLAC stopped after 2 s here, so WAV), `record` captures the sink's monitor
with parec. stop() ends the daemon: a test never leaves it running. The processes that talk to it get `env`.

guarded(player): the player with every method call timed; a call that takes more than CALL_LIMIT_S fails the
test (saying where it was at the limit), and one that never returns dumps every thread's stack (faulthandler) and ends the test process after
HANG_EXIT_S, so a hang in the audio system fails the run instead of holding it until CI's time limit.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

SINK = "whisper_desk_sink"
MIC = "whisper_desk_mic"  # the remap source of the sink's monitor: a capture device as Qt lists them
START_TIMEOUT_S = 15.0
CALL_LIMIT_S = 1.0
HANG_EXIT_S = 10.0


def pulseaudio_missing() -> str | None:
    """Why no sound server can be started here (None: it can). scripts/install.sh --test installs them."""
    missing = [tool for tool in ("pulseaudio", "pactl", "paplay", "parec") if shutil.which(tool) is None]
    return f"{', '.join(missing)} not installed (scripts/install.sh --test installs pulseaudio)" if missing else None


class SoundServer:
    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.log = runtime_dir / "pulseaudio.log"
        runtime_dir.mkdir(parents=True, exist_ok=True)
        runtime_dir.chmod(0o700)
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir), "PULSE_SERVER": f"unix:{self.socket}",
                    "HOME": str(runtime_dir)}  # pulseaudio keeps its cookie and state under HOME
        self.env.pop("PULSE_SINK", None)
        self.env.pop("PULSE_SOURCE", None)

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "pulse" / "native"

    def start(self) -> "SoundServer":
        problem = pulseaudio_missing()
        assert problem is None, problem
        self.process = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no", "--disable-shm=yes",
             "--load=module-native-protocol-unix auth-anonymous=1",
             f"--load=module-null-sink sink_name={SINK} rate=48000",
             f"--load=module-remap-source source_name={MIC} master={SINK}.monitor"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"pulseaudio exited at start: {self.log.read_text(errors='replace')[-2000:]}")
            if self.socket.exists() and self.pactl("info").returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"pulseaudio did not start in {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def kill(self) -> None:
        """The server dies at once (SIGKILL), as when a sound server crashes."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)

    def unload_sink(self) -> None:
        """The output device goes away (as a USB headset unplugged)."""
        modules = self.pactl("list", "short", "modules").stdout.splitlines()
        for line in modules:
            index, name, *rest = line.split("\t")
            if name in ("module-null-sink", "module-remap-source"):
                self.pactl("unload-module", index)

    def play(self, wav: Path) -> subprocess.Popen[bytes]:
        """`wav` played into the null sink in real time (what the computer plays)."""
        return subprocess.Popen(["paplay", f"--device={SINK}", str(wav)], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def record(self, raw: Path) -> subprocess.Popen[bytes]:
        """The sink's monitor as 16 kHz 16-bit mono PCM into the file `raw` (a pipe left unread drops sound),
        until terminated."""
        with raw.open("wb") as out:
            return subprocess.Popen(["parec", f"--device={SINK}.monitor", "--format=s16le", "--rate=16000",
                                     "--channels=1", "--latency-msec=50"], env=self.env, stdout=out)

    def __enter__(self) -> "SoundServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CallTooSlow(AssertionError):
    pass


class Guarded:
    """`target` with each method call timed (see the module docstring). Attributes that are not methods pass
    through, as do signals (connect them on the target itself)."""

    def __init__(self, target: Any, limit_s: float = CALL_LIMIT_S) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_limit_s", limit_s)
        object.__setattr__(self, "slowest", 0.0)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value) or name[0].isupper() or type(value).__name__ == "SignalInstance":
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            caller = threading.get_ident()
            seen: list[str] = []  # where the call was when it passed the limit
            sampler = threading.Timer(self._limit_s, lambda: seen.extend(
                traceback.format_stack(sys._current_frames()[caller])))
            faulthandler.dump_traceback_later(HANG_EXIT_S, exit=True, file=sys.stderr)
            started = time.monotonic()
            sampler.start()
            try:
                return value(*args, **kwargs)
            finally:
                sampler.cancel()
                faulthandler.cancel_dump_traceback_later()
                took = time.monotonic() - started
                object.__setattr__(self, "slowest", max(self.slowest, took))
                if took > self._limit_s:
                    raise CallTooSlow(f"player.{name}() held the GUI thread for {took:.2f} s (limit {self._limit_s} s)"
                                      + (", at:\n" + "".join(seen[-8:]) if seen else ""))

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)


def guarded(player: Any) -> Any:
    return Guarded(player)


def wav_copy(source: Path, folder: Path) -> Path:
    """`source` as a 16 kHz 16-bit mono WAV (what paplay plays in real time)."""
    import soundfile

    from worker.core.constants import SAMPLE_RATE
    from worker.media.audio import decode_audio

    target = folder / f"{source.stem}.wav"
    soundfile.write(target, decode_audio(source), SAMPLE_RATE, subtype="PCM_16")
    return target
