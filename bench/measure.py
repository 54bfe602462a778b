"""What the benchmarks share: the engines compared, running a command while sampling its process tree (wall
time, CPU time, peak RSS), WER, and the machine a run was on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]



VENV_BIN = Path(sys.executable).parent



PAGE = os.sysconf("SC_PAGE_SIZE")


TICK = os.sysconf("SC_CLK_TCK")
MB = 1_000_000  # bytes; "1 MB per audio minute" is read as 10^6 bytes (the stricter reading)



DEFAULT_AUDIO_DIR = ROOT.parent / "shared" / "audio"



MODEL = "tiny.en"



WER_SLACK = 0.02



FFMPEG_SHIM = '''\
#!{python}
"""Stand-in for the ffmpeg binary that openai-whisper's load_audio() runs (no system ffmpeg here).
Decodes with PyAV (the same FFmpeg libraries) to s16le mono at -ar on stdout."""
import sys

import av

args = sys.argv[1:]
source = args[args.index("-i") + 1]
rate = int(args[args.index("-ar") + 1]) if "-ar" in args else 16000
try:
    out = sys.stdout.buffer
    with av.open(source) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        for frame in container.decode(container.streams.audio[0]):
            for converted in resampler.resample(frame):
                out.write(converted.to_ndarray().tobytes())
        for converted in resampler.resample(None):
            out.write(converted.to_ndarray().tobytes())
except Exception as exc:
    print(f"{{source}}: {{exc}}", file=sys.stderr)
    sys.exit(1)
'''



@dataclass
class EngineConfig:
    label: str  # e.g. "beam 5"
    ours_args: list[str]
    openai_args: list[str]



CONFIGS = [
    EngineConfig("beam 5 (both defaults)", [], ["--beam_size", "5", "--best_of", "5"]),
    EngineConfig("greedy (beam 1 / beam_size None)", ["--beam-size", "1"], ["--beam_size", "None", "--best_of", "5"]),
]



@dataclass
class Measured:
    wall_s: float
    cpu_s: float
    max_rss_mb: float  # largest single process (wait4 ru_maxrss; sampled where that is only this bench's own peak)
    tree_rss_mb: float  # peak of the summed RSS of the process tree (sampled)
    returncode: int
    stdout: str
    stderr: str



def _proc_table() -> dict[int, tuple[int, float, int]]:
    """pid -> (ppid, cpu seconds, rss bytes) for every process we can read."""
    table: dict[int, tuple[int, float, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15, rss 24
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, int(fields[21]) * PAGE)
    return table



class TreeSampler(threading.Thread):
    """Samples the RSS and CPU time of a process and all its descendants until stopped."""

    def __init__(self, root_pid: int, interval_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.peak_rss = 0
        self.peak_single_rss = 0  # the largest one process of the tree was seen holding
        self.cpu_by_pid: dict[int, float] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval_s)

    def sample(self) -> None:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        tree, stack = [], [self.root_pid]
        while stack:
            pid = stack.pop()
            if pid in table:
                tree.append(pid)
                stack.extend(children.get(pid, []))
        self.peak_rss = max(self.peak_rss, sum(table[pid][2] for pid in tree))
        self.peak_single_rss = max([self.peak_single_rss, *(table[pid][2] for pid in tree)])
        for pid in tree:
            self.cpu_by_pid[pid] = max(self.cpu_by_pid.get(pid, 0.0), table[pid][1])

    def stop(self) -> None:
        self._stop_event.set()
        self.join()



def own_peak_rss_bytes() -> int:
    """This process's peak RSS so far (VmHWM)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Measured:
    # Linux keeps ru_maxrss across execve: a child reports at least this process's own peak when it was started.
    # At or below that its figure says nothing, and the largest process's sampled RSS stands in for it.
    floor = own_peak_rss_bytes()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    largest = usage.ru_maxrss * 1024 if usage.ru_maxrss * 1024 > floor else sampler.peak_single_rss
    waited_cpu = usage.ru_utime + usage.ru_stime
    sampled_cpu = sum(sampler.cpu_by_pid.values())
    return Measured(
        wall_s=wall,
        cpu_s=max(waited_cpu, sampled_cpu),
        max_rss_mb=largest / MB,
        tree_rss_mb=max(sampler.peak_rss, largest) / MB,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
    )



def normalize(text: str) -> str:
    """Lowercase, apostrophes dropped, other punctuation turned into spaces, whitespace collapsed."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())



def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))



def jfk_reference(audio_dir: Path) -> str:
    """The quoted transcript of jfk.flac from the shared audio README's table."""
    readme = (audio_dir / "README.md").read_text(encoding="utf-8")
    match = re.search(r'^\|\s*jfk\.flac\s*\|.*?\|\s*"([^"]+)"', readme, re.MULTILINE)
    if not match:
        raise SystemExit(f"core_bench: no jfk.flac reference found in {audio_dir / 'README.md'}")
    return match.group(1)



def audio_seconds(path: Path) -> float:
    from worker.media.audio import probe_duration

    return probe_duration(path)



@dataclass
class SpeechFile:
    name: str
    path: Path
    reference: str
    seconds: float = 0.0



@dataclass
class EngineRow:
    file: SpeechFile
    config: EngineConfig
    engine: str  # "ours" | "openai-whisper"
    runs: list[Measured] = field(default_factory=list)
    text: str = ""

    def median(self, attr: str) -> float:
        return statistics.median(getattr(run, attr) for run in self.runs)

    @property
    def wer(self) -> float:
        return wer(self.file.reference, self.text)



class EngineBench:
    def __init__(self, workdir: Path, repeats: int, log: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.repeats = repeats
        self.log = log
        self.checkpoint = self._openai_checkpoint()
        self.env_openai = dict(os.environ)
        self.ffmpeg = shutil.which("ffmpeg")
        if self.ffmpeg is None:
            shim_dir = workdir / "ffmpeg-shim"
            shim_dir.mkdir()
            shim = shim_dir / "ffmpeg"
            shim.write_text(FFMPEG_SHIM.format(python=sys.executable), encoding="utf-8")
            shim.chmod(0o755)
            self.env_openai["PATH"] = f"{shim_dir}{os.pathsep}{self.env_openai.get('PATH', '')}"
            self.shim: Path | None = shim
        else:
            self.shim = None
        self.shim_seconds: dict[str, float] = {}

    def _openai_checkpoint(self) -> str:
        """The tiny.en checkpoint converted from the bundled CTranslate2 model (built once, cached)."""
        result = subprocess.run(
            [sys.executable, "-c", f"from worker.engines.weights import openai_checkpoint; print(openai_checkpoint({MODEL!r}))"],
            capture_output=True, text=True, cwd=ROOT,
        )
        if result.returncode != 0:
            raise SystemExit(f"core_bench: could not build the openai-whisper checkpoint: {result.stderr.strip()[-500:]}")
        return result.stdout.strip().splitlines()[-1]

    def ours_cmd(self, file: Path, config: EngineConfig) -> list[str]:
        return [str(VENV_BIN / "whisper-desk"), "transcribe", str(file), "--model", MODEL, "--format", "txt", *config.ours_args]

    def openai_cmd(self, file: Path, config: EngineConfig, out_dir: Path) -> list[str]:
        return [
            str(VENV_BIN / "whisper"), str(file), "--model", self.checkpoint, "--language", "en",
            *config.openai_args, "--fp16", "False", "--output_format", "txt", "--output_dir", str(out_dir),
        ]

    def run_once(self, file: SpeechFile, config: EngineConfig, engine: str) -> tuple[Measured, str]:
        if engine == "ours":
            measured = run_measured(self.ours_cmd(file.path, config), cwd=ROOT)
            text = measured.stdout
        else:
            out_dir = Path(tempfile.mkdtemp(dir=self.workdir, prefix="openai-out-"))
            measured = run_measured(self.openai_cmd(file.path, config, out_dir), env=self.env_openai, cwd=ROOT)
            produced = out_dir / f"{file.path.stem}.txt"
            text = produced.read_text(encoding="utf-8") if produced.exists() else ""
            shutil.rmtree(out_dir, ignore_errors=True)
        if measured.returncode != 0:
            raise SystemExit(
                f"core_bench: {engine} failed on {file.name} ({config.label}), exit {measured.returncode}:\n"
                f"{measured.stderr.strip()[-1500:]}"
            )
        return measured, text

    def warm_up(self, file: SpeechFile) -> None:
        """One untimed run of each engine so both start with warm disk caches and compiled bytecode."""
        for engine in ("ours", "openai-whisper"):
            self.log(f"warm-up: {engine} on {file.name}")
            self.run_once(file, CONFIGS[0], engine)

    def measure_shim(self, file: SpeechFile) -> None:
        if self.shim is None:
            return
        cmd = [str(self.shim), "-nostdin", "-threads", "0", "-i", str(file.path), "-f", "s16le", "-ac", "1",
               "-acodec", "pcm_s16le", "-ar", "16000", "-"]
        times = [run_measured(cmd).wall_s for _ in range(max(1, self.repeats))]
        self.shim_seconds[file.name] = statistics.median(times)

    def run(self, files: list[SpeechFile], configs: list[EngineConfig]) -> list[EngineRow]:
        self.warm_up(files[0])
        rows: list[EngineRow] = []
        for file in files:
            self.measure_shim(file)
            for config in configs:
                pair = [EngineRow(file, config, "ours"), EngineRow(file, config, "openai-whisper")]
                for rep in range(self.repeats):
                    for row in pair if rep % 2 == 0 else reversed(pair):  # alternate the order
                        measured, text = self.run_once(file, config, row.engine)
                        row.runs.append(measured)
                        row.text = text
                        self.log(f"{file.name} {config.label} {row.engine} #{rep + 1}: {measured.wall_s:.2f} s wall, "
                                 f"{measured.cpu_s:.2f} s cpu, {measured.tree_rss_mb:.0f} MB")
                rows.extend(pair)
        return rows



def machine_info() -> list[tuple[str, str]]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    versions = []
    for dist in ("whisper-desk", "faster-whisper", "ctranslate2", "openai-whisper", "torch", "av", "numpy", "jiwer", "modal"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    espeak = "not installed"
    if shutil.which("espeak-ng"):
        espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip().split("  ")[0]
    return [
        ("CPU", cpu),
        ("Cores (logical)", str(os.cpu_count())),
        ("RAM", ram),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("Packages", ", ".join(versions)),
        ("Speech synthesis", espeak),
    ]



def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"

