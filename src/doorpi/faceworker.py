"""The face models in a worker process of their own, supervised by the gate.

Why (issue #18, "Load and soak"): with the face models in the gate's interpreter,
every card and PIN decision waits for the CPU and the GIL behind the models' Python
and numpy work (docs/reliability.md: card grant p99 42.8 ms against a 0.42 ms bench).
Here everything that runs a model, `FacePipeline` (detection, face mesh, alignment,
quality gates, embedding) and `LivenessMeter`'s detector and mesh, lives in a child
process; the gate keeps the engines above them (fusion, matching against the vault
gallery, liveness rules, channel check, enrolment) unchanged and calls the child
through `RemoteObject`, a proxy with the same methods.

The boundary:

* The child is started with ``subprocess`` (fork and exec at once: a threaded gate is
  never forked into running Python) as ``python -c "...faceworker.serve()"``; it
  imports the vision modules and numpy, nothing of the hardware (no GPIO, no reader).
* Requests and results travel over a socket pair as small pickles
  (`multiprocessing.connection.Connection` framing): method name, small arguments,
  the result (`FaceResult` with its 128-float embedding, `Detection`...). Embeddings
  cross in memory only, never a file or a log.
* Frames (about 1 MB each) do not go through pickle: arrays of 4 KiB or more are
  copied into one shared-memory slot, an anonymous ``memfd`` (memfd_create(2))
  mapped by both processes. Unlike ``multiprocessing.shared_memory`` it has no name
  under /dev/shm, so a crash cannot leave a face frame behind there, and it needs no
  resource-tracker process. The worker zeroes the slot after each call.
* The child lowers its own priority before loading anything: ``SCHED_BATCH`` (the
  scheduler treats it as CPU-bound: it never preempts a task on its own wakeup) and
  nice 10 (a weight of 110 against the gate's 1024: under contention the gate gets about
  90 % of a core). A gate thread waking for a card preempts it: with a thread at this
  priority spinning on the same CPU, 2 ms sleeps overslept p99 0.09-0.78 ms, max
  0.13-2.1 ms, no worse than with that CPU otherwise idle (p99 0.19-1.16 ms, max 2.5-3.7
  ms, other jobs on the 2-core test machine; docs/reliability.md, soak). Not
  ``SCHED_IDLE``: that starves the models whenever anything else runs, and the call
  deadline below would then kill a healthy worker on a busy machine.

Supervision (`FaceWorker`): a thread waits on the child (in waitpid: no CPU, no GIL)
and restarts it whenever it dies, after a back-off that doubles with each death in a
row (`restart_delay`); a call that gets no answer within its deadline kills the child
(SIGKILL: a hung model does not recover by itself) and raises `FaceWorkerTimeout`,
which the face path turns into ``FaceRejected("face_error: ...")``. `problem()` is
the device watch's probe (doorpi.devicewatch, the ``camera`` fault): a dead or
restarting worker is shown as a fault, cleared once a new one has loaded; a worker
that cannot load its models is the ``face models`` fault (`model_problem`), as when
the models fail to load in the gate's own process.
The gate does not wait for the models at start: the child loads them while the gate
serves cards and PINs.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from doorpi.vision.liveness import LivenessMeter

log = logging.getLogger("doorpi.face")

# One call (a frame through every model) must answer within this; the camera loop
# calls itself hung at CAMERA_STALL_SECONDS (3 s, doorpi.facebuild), so the worker is
# killed and restarted first. A frame takes ~0.3 s on a Pi 4 (docs/face.md).
CALL_DEADLINE_SECONDS = 2.5
# Loading and checking the three models (hashes, SFace's known answers): 1-2 s here,
# a few seconds on a Pi; a worker not ready after this is killed and started again.
LOAD_SECONDS = 60.0
# Restart back-off: the first restart after 0.5 s, then 1, 2, 4 ... up to 60 s while
# the worker keeps dying without answering a single call in between.
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 60.0
# The worker's niceness (see the module docstring).
WORKER_NICE = 10
# Arrays this large or larger go through the shared slot, smaller ones in the pickle.
SLOT_MIN_BYTES = 4096
# The slot's size: a 1920x1080 RGB frame and its luma plane with room to spare. Only
# the pages a frame touches are ever backed by memory.
SLOT_BYTES = 16 * 1024 * 1024
_ALIGN = 64
_SLOT = "__doorpi_slot__"  # marks an array argument that waits in the slot


class FaceWorkerError(RuntimeError):
    """The face worker could not answer a call (base class)."""


class FaceWorkerTimeout(FaceWorkerError):
    """A call got no answer within its deadline; the worker was killed."""


class FaceWorkerUnavailable(FaceWorkerError):
    """No worker ready: loading, restarting after a death, or its models failed."""


def restart_delay(deaths: int) -> float:
    """Seconds to wait before starting a worker after ``deaths`` deaths in a row."""
    if deaths <= 0:
        return 0.0
    return min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (deaths - 1))


@dataclass(frozen=True)
class WorkerSpec:
    """What the worker loads: the ``[face]`` and ``[camera]`` settings it needs."""

    models_dir: str | None = None
    num_threads: int | None = None
    orientation: Any = None  # doorpi.vision.orient.Orientation, None: upright


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with status {rc}"


class FaceWorker:
    """The gate's side: starts, supervises and calls the face worker process.

    ``call`` is for one thread at a time (the camera thread; a lock keeps it so);
    ``problem`` only reads fields and never blocks (the gate's heartbeat polls it).
    """

    def __init__(
        self,
        spec: WorkerSpec,
        deadline: float = CALL_DEADLINE_SECONDS,
        load_seconds: float = LOAD_SECONDS,
    ) -> None:
        self.spec = spec
        self.deadline = deadline
        self.load_seconds = load_seconds
        self.starts = 0  # processes started
        self.deaths = 0  # deaths in a row (reset by an answered call)
        self.kills = 0  # calls past their deadline
        self.calls = 0  # calls answered
        self.call_seconds = 0.0  # their total and slowest wall time, as the gate waited
        self.call_max = 0.0
        self.load_times: list[float] = []  # seconds from start to ready, per process
        self.info: dict[str, Any] = {}  # the ready worker's pid, nice, policy
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._state = threading.Lock()  # deaths and readiness, changed together
        self._why = ""  # why the last worker ended
        self._ending = ""  # why this side is ending the current one (a deadline, no load)
        self._load_error = ""
        self._loading_since: float | None = None
        self._hang = 0.0
        self._fd = os.memfd_create("doorpi-face-slot", os.MFD_CLOEXEC)
        os.ftruncate(self._fd, SLOT_BYTES)
        self._mm = mmap.mmap(self._fd, SLOT_BYTES)
        self._thread = threading.Thread(target=self._supervise, name="face-worker", daemon=True)

    @property
    def pid(self) -> int | None:
        """The current worker process's id (None while none runs)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        """Start the worker; returns at once (the models load in the background)."""
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """True once a worker has loaded its models (for tests and measurements)."""
        return self._ready.wait(timeout)

    # ------------------------------------------------------------ supervision

    def _supervise(self) -> None:
        while not self._stop.is_set():
            if self._stop.wait(restart_delay(self.deaths)):
                break
            proc, conn = self._spawn()
            if proc is None or conn is None:
                self.deaths += 1
                continue
            self._await_ready(proc, conn)
            rc = proc.wait()
            with self._state:
                self._ready.clear()
                self._conn = None  # the caller's reference, if any, closes it when done
                if self._stop.is_set():
                    break
                self._why = self._ending or _describe_exit(rc)
                self._ending = ""
                self.deaths += 1
            log.error("face worker %s (%d in a row); restarting", self._why, self.deaths)

    def _spawn(self) -> tuple[subprocess.Popen[bytes] | None, Connection | None]:
        mine, theirs = socket.socketpair()
        code = "import sys; from doorpi.faceworker import serve; sys.exit(serve())"
        args = [sys.executable, "-c", code, str(theirs.fileno()), str(self._fd), str(os.getpid())]
        try:
            proc = subprocess.Popen(
                args, pass_fds=(theirs.fileno(), self._fd), stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            self._why = f"could not start: {exc}"
            log.error("face worker %s", self._why)
            mine.close()
            return None, None
        finally:
            theirs.close()
        conn = Connection(mine.detach())
        self._loading_since = time.monotonic()
        self._proc = proc
        self.starts += 1
        return proc, conn

    def _await_ready(self, proc: subprocess.Popen[bytes], conn: Connection) -> None:
        """Read the worker's first message: loaded, or why not (then it is ended)."""
        t0 = self._loading_since or time.monotonic()
        try:
            conn.send(self.spec)
            msg = conn.recv() if conn.poll(self.load_seconds) else ("failed", "")
        except (EOFError, OSError):
            msg = ("failed", "")
        if msg[0] == "ready":
            self.load_times.append(time.monotonic() - t0)
            self.info = msg[1]
            self._load_error = ""
            self._loading_since = None
            self._conn = conn
            self._ready.set()
            return
        if msg[1]:
            self._load_error = msg[1]
            self._ending = f"could not load the face models: {msg[1]}"
        else:
            self._load_error = ""  # this one failed otherwise: the camera fault says how
            self._ending = f"not ready after {self.load_seconds:g} s"
        proc.kill()

    def problem(self) -> str:
        """The ``camera`` fault's line (doorpi.devicewatch): "" while a worker is ready,
        loading for the first time, or failing to load its models (`model_problem`)."""
        if self._stop.is_set() or self._ready.is_set() or self._load_error:
            return ""
        if self.deaths:
            return (
                f"face worker {self._why} ({self.deaths} in a row); restarting, "
                "face off meanwhile; card and PIN unaffected"
            )
        since = self._loading_since
        if since is not None and time.monotonic() - since > self.load_seconds:
            return f"face worker still loading its models after {self.load_seconds:g} s"
        return ""

    def model_problem(self) -> str:
        """The ``face models`` fault's line, as the inline path raises it at start
        (doorpi.facebuild.build_face_path): the last worker could not load its models
        (the worker keeps retrying with back-off). "" otherwise."""
        if self._stop.is_set() or self._ready.is_set() or not self._load_error:
            return ""
        return f"face stays off: {self._load_error}; retrying, card and PIN unaffected"

    # ------------------------------------------------------------ calls

    def call(self, target: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``target.method(*args, **kwargs)`` in the worker; its result or its exception.

        Waits up to ``deadline`` for a worker to be ready (raises
        FaceWorkerUnavailable), then up to ``deadline`` for the answer (past it the
        worker is killed, the supervisor restarts it, and FaceWorkerTimeout is raised).
        """
        with self._lock:
            if not self._ready.wait(self.deadline):
                why = self.problem() or self.model_problem()
                raise FaceWorkerUnavailable(why or "face worker not ready")
            conn = self._conn
            if conn is None:
                raise FaceWorkerUnavailable("face worker not ready")
            end = 0
            packed = []
            for value in (*args, *kwargs.values()):
                value, end = self._pack(value, end)
                packed.append(value)
            n = len(args)
            request = (
                "call",
                target,
                method,
                tuple(packed[:n]),
                dict(zip(kwargs, packed[n:], strict=True)),
            )
            try:
                if self._hang:
                    conn.send(("hang", self._hang))
                    self._hang = 0.0
                t0 = time.monotonic()
                conn.send(request)
                answered = conn.poll(self.deadline)
                reply = conn.recv() if answered else None
            except (EOFError, OSError) as exc:
                raise FaceWorkerUnavailable(f"face worker gone ({type(exc).__name__})") from None
            if reply is None:
                self.kills += 1
                self._ending = f"killed: no answer within {self.deadline:g} s (model hung?)"
                self._ready.clear()
                proc = self._proc
                if proc is not None:
                    proc.kill()
                raise FaceWorkerTimeout(f"face worker: no answer within {self.deadline:g} s")
            took = time.monotonic() - t0
        kind, value = reply
        if kind == "error":
            raise value
        self.calls += 1
        self.call_seconds += took
        self.call_max = max(self.call_max, took)
        with self._state:
            if self._ready.is_set():  # not a late answer from a worker that just died
                self.deaths = 0
        return value

    def _pack(self, value: Any, end: int) -> tuple[Any, int]:
        """A large array copied into the slot at ``end`` and replaced by its place."""
        if not isinstance(value, np.ndarray) or value.nbytes < SLOT_MIN_BYTES:
            return value, end
        off = -(-end // _ALIGN) * _ALIGN
        if off + value.nbytes > SLOT_BYTES:
            raise FaceWorkerError(f"frame of {value.nbytes} bytes too large for the face slot")
        view: np.ndarray = np.ndarray(value.shape, value.dtype, buffer=self._mm, offset=off)
        view[...] = value
        return (_SLOT, off, value.shape, value.dtype.str), off + value.nbytes

    def info_now(self) -> dict[str, Any]:
        """The worker's own view of itself (pid, nice, policy, modules loaded)."""
        return self.call("", "__info__", (), {})  # type: ignore[no-any-return]

    def hang_next_call(self, seconds: float) -> None:
        """Test hook: the worker sleeps ``seconds`` before its next call (a hung model)."""
        self._hang = seconds

    def close(self) -> None:
        """Stop supervising and end the worker; the slot is unmapped."""
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.kill()
            proc.wait()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        proc = self._proc  # one started while this was stopping the supervisor
        if proc is not None and proc.returncode is None:
            proc.kill()
            proc.wait()
        with self._lock:
            self._conn = None
            if not self._mm.closed:
                # An array still viewing the slot: it is unmapped when that goes.
                with contextlib.suppress(BufferError):
                    self._mm.close()
                os.close(self._fd)


class RemoteObject:
    """A proxy whose methods run on the worker's object ``target`` ("pipeline",
    "meter.detector", ...), with the same arguments and results as the real one."""

    def __init__(self, worker: FaceWorker, target: str) -> None:
        self._worker = worker
        self._target = target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        worker, target = self._worker, self._target

        def method(*args: Any, **kwargs: Any) -> Any:
            return worker.call(target, name, args, kwargs)

        method.__name__ = name
        return method


def remote_liveness_meter(worker: FaceWorker) -> LivenessMeter:
    """A ``LivenessMeter`` whose detector and face mesh run in the worker.

    ``measure`` with the pipeline's own mesh of the frame (as the gate's engine calls
    it) runs no model: yaw and eye ratio are computed here from that mesh; without
    one, detection and mesh go to the worker's meter (not mirrored, minimum mesh
    score 0.5: the worker's own meter is built with the same defaults).
    """
    from doorpi.vision.liveness import LivenessMeter

    detector = RemoteObject(worker, "meter.detector")
    refiner = RemoteObject(worker, "meter.refiner")
    return LivenessMeter(detector, refiner=refiner)


# ---------------------------------------------------------------- worker side


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the gate dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the gate died before the prctl
        os._exit(0)


def lower_priority() -> tuple[int, int]:
    """SCHED_BATCH and nice WORKER_NICE for this process; returns (policy, nice) as the
    kernel then reports them. A refusal (a seccomp filter without setpriority or
    sched_setscheduler: systemd/doorpi.service allows both again) is one warning line,
    and the worker runs at the gate's priority."""
    # Linux keeps both per thread, and new threads inherit them: every thread already
    # running (numpy's BLAS pool, started at import) is set, the models' come later.
    tids = [int(t) for t in os.listdir("/proc/self/task")]
    try:
        for tid in tids:
            os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
    except OSError as exc:
        log.warning("face worker: SCHED_BATCH refused (%s); normal scheduling", exc)
    try:
        for tid in tids:
            if os.getpriority(os.PRIO_PROCESS, tid) < WORKER_NICE:
                os.setpriority(os.PRIO_PROCESS, tid, WORKER_NICE)
    except OSError as exc:
        log.warning("face worker: nice %d refused (%s); the gate's priority", WORKER_NICE, exc)
    return os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)


def _load(spec: WorkerSpec) -> dict[str, Any]:
    from doorpi.vision.liveness import LivenessMeter
    from doorpi.vision.pipeline import FacePipeline

    pipeline = FacePipeline.load(spec.models_dir, spec.num_threads)
    if spec.orientation is not None:
        pipeline.orientation = spec.orientation
    meter = LivenessMeter(pipeline.detector, pipeline.models.mesh)
    return {"pipeline": pipeline, "meter": meter}


def _resolve(objects: dict[str, Any], target: str) -> Any:
    head, *rest = target.split(".")
    obj = objects[head]
    for part in rest:
        obj = getattr(obj, part)
    return obj


def _info(policy: int, nice: int) -> dict[str, Any]:
    return {"pid": os.getpid(), "policy": policy, "nice": nice, "modules": sorted(sys.modules)}


def serve(argv: list[str] | None = None) -> int:
    """The worker's main: load the models, then answer calls until the gate hangs up.
    Anything unforeseen is one line on stderr (the journal) and exit status 1; the
    gate's supervisor then restarts it."""
    try:
        return _serve(sys.argv[1:] if argv is None else argv)
    except Exception as exc:
        print(f"doorpi face worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _serve(argv: list[str]) -> int:
    conn_fd, slot_fd, parent = (int(a) for a in argv[:3])
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is the gate's
    policy, nice = lower_priority()
    conn = Connection(conn_fd)
    mm = mmap.mmap(slot_fd, 0)
    try:
        spec = conn.recv()
    except (EOFError, OSError):
        return 0
    t0 = time.monotonic()
    try:
        objects = _load(spec)
    except Exception as exc:  # ModelError, no runtime: one line for the gate
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return 2
    info = _info(policy, nice)
    info["load_seconds"] = round(time.monotonic() - t0, 3)
    conn.send(("ready", {k: v for k, v in info.items() if k != "modules"}))
    hang = 0.0
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return 0
        if msg[0] == "hang":
            hang = float(msg[1])
            continue
        _, target, method, args, kwargs = msg
        if hang:
            time.sleep(hang)
            hang = 0.0
        end = 0

        def unpack(v: Any) -> Any:
            nonlocal end
            if isinstance(v, tuple) and len(v) == 4 and v[0] == _SLOT:
                _, off, shape, dtype = v
                arr = np.ndarray(shape, np.dtype(dtype), buffer=mm, offset=off)
                end = max(end, off + arr.nbytes)
                return arr
            return v

        try:
            if method == "__info__":
                result: Any = _info(policy, nice)
            else:
                fn = getattr(_resolve(objects, target), method)
                result = fn(*(unpack(a) for a in args), **{k: unpack(v) for k, v in kwargs.items()})
            data = pickle.dumps(("ok", result), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            try:
                data = pickle.dumps(("error", exc), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                data = pickle.dumps(("error", FaceWorkerError(f"{type(exc).__name__}: {exc}")))
        finally:
            mm[:end] = bytes(end)  # the frame leaves no trace in the slot
            result = None
        conn.send_bytes(data)


__all__ = [
    "CALL_DEADLINE_SECONDS",
    "FaceWorker",
    "FaceWorkerError",
    "FaceWorkerTimeout",
    "FaceWorkerUnavailable",
    "RemoteObject",
    "WorkerSpec",
    "remote_liveness_meter",
    "restart_delay",
    "serve",
]
