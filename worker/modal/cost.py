"""What a Modal job costs, as Modal bills it: Modal's prices, the estimate before a job (a range), the cost after
it, and the fan-out plan that trades speed for money. Timing log lines and per-job summaries, shared by the CLI
and the window.

Modal bills each container from its start until it stops: the image boot, the model load, every input, and
every idle second until its scale-down window runs out, at the GPU's rate plus its CPU and memory reservation
(max(reservation, use); worker/modal/app.py reserves what the worker uses). So a job's bill is

    containers × (boot + load, if cold) + the inputs' busy time + containers × scale-down window

and the idle tail is most of it for a short job (docs/modal.md, "Where the money goes").

A chunk's timings dict (from the T4 worker or the local engine) has at least:
gpu (device name, "cpu" off-GPU), cold_start (bool), model_load_s, inference_s, audio_s, rtf; from the Modal
worker also container_id, container_up_at, input_started_at, input_finished_at (wall clock in the container), and
from the fan-out sent_at, job_started_at, scaledown_s, cpu, memory_mib (what the bill is read off).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

# Modal's published list prices (modal.com/pricing), per second; see docs/modal.md for the source and date
T4_USD_PER_S = 0.000164  # $0.5904 an hour
GPU_USD_PER_S = {"T4": T4_USD_PER_S, "L4": 0.000222, "L40S": 0.000542, "A100-80GB": 0.000694, "H100": 0.001097}
CPU_USD_PER_CORE_S = 0.0000131
MEMORY_USD_PER_GIB_S = 0.00000222
DEFAULT_T4_DOLLARS_PER_HOUR = round(T4_USD_PER_S * 3600, 4)


@dataclass(frozen=True)
class Prices:
    """Modal's prices: the GPU's (by type), a CPU core's and a GiB of memory's, each per second."""

    gpu_usd_per_s: dict[str, float] = field(default_factory=lambda: dict(GPU_USD_PER_S))
    cpu_usd_per_core_s: float = CPU_USD_PER_CORE_S
    memory_usd_per_gib_s: float = MEMORY_USD_PER_GIB_S

    def container_usd_per_s(self, gpu: str, cpu_cores: float, memory_gib: float, gpu_usd_per_s: float | None = None) -> float:
        """One container's rate: its GPU (none for "" or "cpu"), CPU cores and memory."""
        if gpu_usd_per_s is None:
            kind = gpu.split(":")[0].upper() if gpu else ""
            gpu_usd_per_s = 0.0 if kind in ("", "CPU") else self.gpu_usd_per_s.get(kind, T4_USD_PER_S)
        return gpu_usd_per_s + cpu_cores * self.cpu_usd_per_core_s + memory_gib * self.memory_usd_per_gib_s


PRICES = Prices()

# Paper figures for one T4 running openai-whisper in fp16, not measured here (see docs/benchmarks.md, Modal):
# model -> (seconds to load the weights from the Volume onto the GPU, inference seconds per audio second).
T4_MODEL_FIGURES: dict[str, tuple[float, float]] = {
    "tiny": (2.0, 0.02), "tiny.en": (2.0, 0.02),
    "base": (3.0, 0.03), "base.en": (3.0, 0.03),
    "small": (6.0, 0.06), "small.en": (6.0, 0.06),
    "medium": (14.0, 0.12), "medium.en": (14.0, 0.12),
    "large-v3": (25.0, 0.20), "turbo": (14.0, 0.07),
}
T4_CONTAINER_START_S = 15.0  # a cold container's start (image, CUDA) before its model loads
PAPER_SPREAD = (0.5, 2.0)  # how far the real figures may lie from the paper ones, either way
# ... and from what earlier jobs measured: a file sent alone to a warm container runs faster than one whose
# chunks share a busy region (measured on the plane: a warm single chunk at 0.6x a fan-out's rate), a cold start
# may be slower than any measured yet
MEASURED_SPREAD = (0.5, 2.0)
FIGURES_KEPT = 8  # jobs remembered per model
FIGURES_FILE = "modal-figures.json"
SECONDS_PER_CHUNK_OVERHEAD = 0.2  # per chunk: its decode, the call's dispatch in the container
# how long a job's containers stay warm after their last chunk, by default: long enough that a container is
# never let go between two chunks of the same file (the next one is on its way), short enough that no GPU idles
# for a file that is not coming (the deployed 120 s would bill 8 T4s for 16 minutes after every job)
LET_GO_S = 10
PLANS = ("fastest", "cheapest")  # how a file fans out (plan_fan_out): the user's choice, in Preferences


@dataclass(frozen=True)
class Figures:
    """How one container runs a model: its start before the model loads, the load, and busy seconds per audio
    second (decode and inference). lo/hi bound each (what the estimate's range is made of)."""

    boot_s: tuple[float, float]
    load_s: tuple[float, float]
    busy_per_audio_s: tuple[float, float]
    measured: bool = False


def paper_figures(model: str) -> Figures:
    load_s, rtf = T4_MODEL_FIGURES.get(model, T4_MODEL_FIGURES["large-v3"])
    low, high = PAPER_SPREAD
    return Figures((T4_CONTAINER_START_S * low, T4_CONTAINER_START_S * high), (load_s * low, load_s * high),
                   (rtf * low, rtf * high))


def figures_path() -> Path:
    from platformdirs import user_data_dir

    from worker.core.constants import APP_DIRS_NAME

    return Path(user_data_dir(APP_DIRS_NAME, appauthor=False)) / FIGURES_FILE


_figures_lock = threading.Lock()
_figures_read: dict[Path, dict[str, list[dict[str, float]]]] = {}  # read once per process, then kept up to date


def _read_figures(path: Path) -> dict[str, list[dict[str, float]]]:
    """The figures file (read once per process: an estimate is made while the window paints a queued row)."""
    if path in _figures_read:
        return _figures_read[path]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError):  # unreadable or damaged: the paper figures serve until the next job writes it
        data = {}
    _figures_read[path] = data if isinstance(data, dict) else {}
    return _figures_read[path]


def preload_figures(path: Path | None = None) -> None:
    """Read the figures file now. The window calls it on a worker thread at its start, so that the estimate
    made while a queued Modal row is painted finds the figures in memory instead of reading the disk."""
    with _figures_lock:
        _read_figures(path or figures_path())


def measured_figures(model: str, path: Path | None = None) -> Figures:
    """The figures earlier Modal jobs measured for `model` (each job's, widened by MEASURED_SPREAD), or the
    paper ones where nothing was measured yet."""
    paper = paper_figures(model)
    with _figures_lock:
        runs = _read_figures(path or figures_path()).get(model, [])
    if not runs:
        return paper
    low, high = MEASURED_SPREAD

    def bounds(key: str, fallback: tuple[float, float]) -> tuple[float, float]:
        values = [float(run[key]) for run in runs if isinstance(run.get(key), (int, float)) and run[key] >= 0]
        return (min(values) * low, max(values) * high) if values else fallback

    return Figures(bounds("boot_s", paper.boot_s), bounds("load_s", paper.load_s),
                   bounds("busy_per_audio_s", paper.busy_per_audio_s), measured=True)


def remember_figures(model: str, chunk_timings: list[dict[str, Any]], path: Path | None = None) -> None:
    """Keep what this job measured (its containers' boot and load, busy seconds per audio second), so the
    next estimate for `model` is made of figures from this Modal deployment, not from paper."""
    busy = sum(_busy_s(t) for t in chunk_timings)
    audio = sum(float(t.get("audio_s", 0.0)) for t in chunk_timings)
    if audio <= 0 or busy <= 0:
        return
    run: dict[str, float] = {"busy_per_audio_s": round(busy / audio, 4)}
    cold = [t for t in chunk_timings if t.get("cold_start")]
    loads = [float(t.get("model_load_s", 0.0)) for t in cold]
    boots = [float(t["container_up_at"]) - float(t["sent_at"]) for t in cold if "container_up_at" in t and "sent_at" in t]
    if loads:
        run["load_s"] = round(max(loads), 3)
    if boots:
        run["boot_s"] = round(max(0.0, max(boots)), 3)
    path = path or figures_path()
    with _figures_lock:
        data = dict(_read_figures(path))
        data[model] = (data.get(model, []) + [run])[-FIGURES_KEPT:]
        _figures_read[path] = data
        try:
            from worker.modal.credentials import atomic_write_private

            atomic_write_private(path, json.dumps(data, indent=1))
        except OSError:  # a read-only data folder: the next estimate uses what was there
            return


# ---------------------------------------------------------------- the bill of a job


def _busy_s(timings: dict[str, Any]) -> float:
    """Seconds the container spent on this input (in the container's clock), else load + inference."""
    if "input_started_at" in timings and "input_finished_at" in timings:
        return max(0.0, float(timings["input_finished_at"]) - float(timings["input_started_at"]))
    return float(timings.get("model_load_s", 0.0)) + float(timings.get("inference_s", 0.0))


@dataclass(frozen=True)
class ContainerCost:
    container_id: str
    seconds: float  # billed: from its start (or the job's, if it was warm) to its last input + the window
    busy_s: float
    starting_s: float  # a cold container's start (boot, model load) before its first input ran
    idle_s: float  # the scale-down tail (and any gap between inputs)
    cold: bool
    usd: float


@dataclass(frozen=True)
class Bill:
    """A job's cost as Modal bills it: every container the job started or kept alive, from its start (the job's
    start, for one that was already warm) until its scale-down window ran out after its last input."""

    containers: list[ContainerCost]

    @property
    def usd(self) -> float:
        return sum(c.usd for c in self.containers)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.containers)

    @property
    def idle_s(self) -> float:
        return sum(c.idle_s for c in self.containers)

    @property
    def starting_s(self) -> float:
        return sum(c.starting_s for c in self.containers)


def job_bill(chunk_timings: Iterable[dict[str, Any]], dollars_per_hour: float = DEFAULT_T4_DOLLARS_PER_HOUR,
             prices: Prices = PRICES) -> Bill | None:
    """The bill of a Modal job from its chunks' timings (None when they do not name their containers: a
    local job, or an answer from an older worker)."""
    chunks = [t for t in chunk_timings if t.get("container_id") and "input_finished_at" in t and "scaledown_s" in t]
    if not chunks:
        return None
    by_container: dict[str, list[dict[str, Any]]] = {}
    for timings in chunks:
        by_container.setdefault(str(timings["container_id"]), []).append(timings)
    costs = []
    for container, inputs in by_container.items():
        first = min(inputs, key=lambda t: float(t["input_started_at"]))
        cold = [t for t in inputs if t.get("cold_start")]
        if cold:  # it started for this job: billed from the moment its first input was sent (before it booted)
            starts = [float(t["sent_at"]) for t in cold if "sent_at" in t] or [float(first.get("container_up_at", first["input_started_at"]))]
            start = min(starts + [float(first.get("container_up_at", starts[0]))])
        else:  # warm from before: this job pays from its own start
            start = float(first.get("job_started_at", first["input_started_at"]))
        last = max(float(t["input_finished_at"]) for t in inputs)
        window = float(first.get("scaledown_s", 0.0))
        seconds = max(0.0, last + window - start)
        busy = sum(_busy_s(t) for t in inputs)
        starting = max(0.0, float(first["input_started_at"]) - start) if cold else 0.0
        gpu = str(first.get("gpu_type") or "T4")
        rate = prices.container_usd_per_s(gpu, float(first.get("cpu", 0.125)), float(first.get("memory_mib", 128)) / 1024,
                                          gpu_usd_per_s=dollars_per_hour / 3600.0)
        costs.append(ContainerCost(container, seconds, busy, starting, max(0.0, seconds - busy - starting), bool(cold),
                                   seconds * rate))
    return Bill(costs)


# ---------------------------------------------------------------- the estimate before a job, and the plan


@dataclass(frozen=True)
class Plan:
    """How a job fans out: how many containers, and how long they stay warm after their last chunk."""

    name: str  # "fastest" | "cheapest"
    containers: int
    scaledown_s: int
    wall_s: tuple[float, float]  # (all warm, all cold)
    usd: tuple[float, float]  # (low, high)
    seconds: tuple[float, float]  # container-seconds billed, (low, high)
    idle_s: float  # of which the scale-down tails

    def line(self) -> str:
        return (f"{self.name}: {self.containers} container{'s' if self.containers != 1 else ''}, warm "
                f"{self.scaledown_s} s after, ${self.usd[0]:.4f}–${self.usd[1]:.4f}, about "
                f"{_duration(self.wall_s[0])}–{_duration(self.wall_s[1])}")


@dataclass(frozen=True)
class CostEstimate:
    """What a Modal job should cost before it runs, as Modal bills it: from every container already warm
    (low) to every container it uses starting cold (high), each paying its scale-down window after its last
    chunk. Both plans are carried, so the user can pick one."""

    gpu_s_low: float  # container-seconds billed, low and high
    gpu_s_high: float
    usd_low: float
    usd_high: float
    cold_containers: int
    idle_s: float = 0.0  # of which the scale-down tails
    plans: tuple[Plan, ...] = ()
    measured: bool = False  # made of figures earlier jobs on this deployment measured

    def short(self) -> str:
        return f"est. ${self.usd_low:.4f}–${self.usd_high:.4f}"

    def line(self) -> str:
        source = "figures measured on earlier jobs" if self.measured else "T4 paper figures"
        text = (
            f"estimate {self.gpu_s_low:.0f}–{self.gpu_s_high:.0f} container-s, ${self.usd_low:.4f}–${self.usd_high:.4f} "
            f"(up to {self.cold_containers} cold start{'s' if self.cold_containers != 1 else ''}; "
            f"{self.idle_s:.0f} s of it idle until scale-down; {source})"
        )
        if len(self.plans) > 1:
            text += "; " + "; ".join(plan.line() for plan in self.plans)
        return text


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _bounds(duration_s: float, chunks: int, containers: int, scaledown_s: float, figures: Figures,
            rate: float) -> tuple[float, float, float, float, float]:
    """(seconds low, seconds high, usd low, usd high, idle s) of `containers` containers over `chunks` chunks."""
    busy = (max(0.0, duration_s) * figures.busy_per_audio_s[0], max(0.0, duration_s) * figures.busy_per_audio_s[1])
    overhead = chunks * SECONDS_PER_CHUNK_OVERHEAD
    idle = containers * scaledown_s
    low = busy[0] + idle
    high = busy[1] + overhead + idle + containers * (figures.boot_s[1] + figures.load_s[1])
    return low, high, low * rate, high * rate, idle


def _wall(duration_s: float, chunks: int, containers: int, figures: Figures, chunk_s: float) -> tuple[float, float]:
    rounds = math.ceil(chunks / max(1, containers))
    per_chunk = (min(chunk_s, duration_s) * figures.busy_per_audio_s[0], min(chunk_s, duration_s) * figures.busy_per_audio_s[1])
    return rounds * per_chunk[0], figures.boot_s[1] + figures.load_s[1] + rounds * (per_chunk[1] + SECONDS_PER_CHUNK_OVERHEAD)


def plan_fan_out(
    duration_s: float,
    model: str,
    dollars_per_hour: float = DEFAULT_T4_DOLLARS_PER_HOUR,
    chunk_s: float = 30.0,
    max_containers: int = 8,
    scaledown_s: float | None = None,
    mode: str = "fastest",
    figures: Figures | None = None,
    cpu: float | None = None,
    memory_mib: int | None = None,
) -> Plan:
    """The fan-out for one file: "fastest" uses up to `max_containers` containers (one per chunk); "cheapest"
    uses as few as keep the job within about twice the fastest one's time (fewer cold starts, fewer idle
    tails). Either way the containers stay warm `scaledown_s` after their last chunk (LET_GO_S by default, so
    no GPU idles for a file that is not coming; longer keeps them warm for a queue of files)."""
    from worker.media.chunking import estimate_chunk_count
    from worker.modal.settings import DeploySettings

    settings = DeploySettings()
    figures = figures or measured_figures(model)
    chunks = estimate_chunk_count(duration_s, chunk_s)
    rate = PRICES.container_usd_per_s("T4", settings.cpu if cpu is None else cpu,
                                      (settings.memory_mib if memory_mib is None else memory_mib) / 1024,
                                      gpu_usd_per_s=dollars_per_hour / 3600.0)
    fastest_n = max(1, min(chunks, int(max_containers)))
    window = int(LET_GO_S if scaledown_s is None else scaledown_s)
    if mode == "fastest":
        n = fastest_n
    elif mode == "cheapest":
        fastest_wall = _wall(duration_s, chunks, fastest_n, figures, chunk_s)[1]
        n = fastest_n
        for candidate in range(1, fastest_n + 1):  # the fewest containers that keep it within twice the time
            if _wall(duration_s, chunks, candidate, figures, chunk_s)[1] <= 2 * fastest_wall:
                n = candidate
                break
    else:
        raise ValueError(f"the fan-out plan is one of {', '.join(PLANS)}, not {mode!r}")
    low, high, usd_low, usd_high, idle = _bounds(duration_s, chunks, n, window, figures, rate)
    return Plan(mode, n, window, _wall(duration_s, chunks, n, figures, chunk_s), (usd_low, usd_high), (low, high), idle)


def estimate_modal_cost(
    duration_s: float,
    model: str,
    dollars_per_hour: float = DEFAULT_T4_DOLLARS_PER_HOUR,
    chunk_s: float = 30.0,
    max_containers: int = 8,
    scaledown_s: float | None = None,
    plan: str = "fastest",
    figures: Figures | None = None,
) -> CostEstimate:
    """The cost of transcribing `duration_s` of audio with `model` on the Modal app, as Modal bills it, for
    `plan` (the other plan rides along for the choice)."""
    figures = figures or measured_figures(model)
    plans = tuple(plan_fan_out(duration_s, model, dollars_per_hour, chunk_s, max_containers, scaledown_s, name, figures)
                  for name in PLANS)
    chosen = next((each for each in plans if each.name == plan), plans[0])
    return CostEstimate(chosen.seconds[0], chosen.seconds[1], chosen.usd[0], chosen.usd[1], chosen.containers,
                        chosen.idle_s, plans, figures.measured)


# ---------------------------------------------------------------- the summary after a job


@dataclass(frozen=True)
class JobSummary:
    wall_s: float
    audio_s: float
    compute_s: float  # GPU- (or CPU-) seconds of model load and inference, summed over chunks
    cost_usd: float  # on Modal: the bill (every container from its start until it scaled down)
    speed_x: float  # audio seconds per wall second
    on_gpu: bool
    billed_s: float = 0.0  # container-seconds Modal bills (0 when the chunks do not name their containers)
    containers: int = 0
    idle_s: float = 0.0  # of which idle until scale-down (and between inputs)
    starting_s: float = 0.0  # of which cold containers starting (boot, model load)

    def line(self) -> str:
        unit = "GPU-s" if self.on_gpu else "CPU-s"
        cost = ""
        if self.billed_s:
            cost = (f" billed={self.billed_s:.0f} container-s on {self.containers} container"
                    f"{'s' if self.containers != 1 else ''} ({self.idle_s:.0f} s idle"
                    f"{f', {self.starting_s:.0f} s starting' if self.starting_s >= 0.5 else ''}) cost≈${self.cost_usd:.4f}")
        elif self.on_gpu:
            cost = f" cost≈${self.cost_usd:.4f}"
        return (
            f"summary wall={self.wall_s:.2f}s audio={self.audio_s:.1f}s "
            f"{unit}={self.compute_s:.2f}{cost} speed={self.speed_x:.1f}x real time"
        )


def summarize(chunk_timings: Iterable[dict[str, Any]], wall_s: float, dollars_per_hour: float = DEFAULT_T4_DOLLARS_PER_HOUR) -> JobSummary:
    chunks = list(chunk_timings)
    audio_s = sum(float(t.get("audio_s", 0.0)) for t in chunks)
    compute_s = sum(float(t.get("model_load_s", 0.0)) + float(t.get("inference_s", 0.0)) for t in chunks)
    on_gpu = any(str(t.get("gpu", "cpu")).lower() != "cpu" for t in chunks)
    speed = audio_s / wall_s if wall_s > 0 else 0.0
    bill = job_bill(chunks, dollars_per_hour)
    if bill is not None:
        return JobSummary(wall_s, audio_s, compute_s, bill.usd, speed, on_gpu, bill.seconds, len(bill.containers), bill.idle_s,
                          bill.starting_s)
    cost = compute_s / 3600.0 * dollars_per_hour if on_gpu else 0.0
    return JobSummary(wall_s=wall_s, audio_s=audio_s, compute_s=compute_s, cost_usd=cost, speed_x=speed, on_gpu=on_gpu)

