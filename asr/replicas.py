"""Model replicas: several decoding processes, each with its own model and threads, one work queue.

On the CPU a Paraformer's small matrices scale poorly across intra-op threads: on 2 cores, two
processes with one thread each decoded the same batches 1.13x faster than one process with two
threads (identical tokens). On a machine with several GPUs, one replica per device uses them all.
Every replica takes whole part groups from one queue and writes its own part files into the store, so
results do not depend on the number of replicas (padding invariance), and a replica that dies loses
only the groups it had not finished: they are decoded on the next run.

This module plans the layout and runs the processes; what a replica does is the asr stage's
``replica_main``, handed in as the process target, so this module imports nothing of the stage.
"""

from __future__ import annotations

import os
import queue
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vadpack.asr.config import AsrConfig
from vadpack.core.faults import fault_point
from vadpack.core.interrupt import workers_start_quiet
from vadpack.core.processes import worker_context

# What one CPU replica needs beyond its weights: torch, FunASR and activations (measured ~0.5 GB for
# Paraformer-large decoding 60 padded seconds).
REPLICA_OVERHEAD_BYTES = 600 * 2**20
# A replica process costs seconds to start (a fresh interpreter importing torch and FunASR) and the
# gain on the CPU is about 13 %, so below half an hour of audio one process is faster.
MIN_AUDIO_S_FOR_CPU_REPLICAS = 1800.0


@dataclass(frozen=True, slots=True)
class Layout:
    """How the asr stage decodes: replicas, torch threads in each, and each replica's device.

    Attributes:
        replicas: decoding processes (1 decodes in the calling process).
        threads: intra-op threads of each replica.
        devices: the ``asr.device`` of each replica (``cpu`` or ``cuda:N``).
    """

    replicas: int
    threads: int
    devices: tuple[str, ...]

    def describe(self) -> str:
        where = sorted(set(self.devices))
        return f"{self.replicas} replica(s) x {self.threads} thread(s) on {', '.join(where)}"


def plan_layout(cfg: AsrConfig, n_groups: int, cuda_devices: int, model_bytes: int, audio_s: float,
                cores: int | None = None, free_bytes: int | None = None) -> Layout:
    """The replicas, threads and devices for ``cfg``: pure, so the rule is tested without hardware.

    Args:
        cfg: the asr config (``replicas``, ``threads``, ``device``).
        n_groups: units of work (batches) to decode; more replicas than units would idle.
        audio_s: the audio to decode; ``auto`` on the CPU uses replicas only from half an hour on.
        cuda_devices: CUDA devices torch sees.
        model_bytes: the size of the model's weights, to bound CPU replicas by memory.
        cores: CPU cores (default: this machine's).
        free_bytes: available memory (default: this machine's).
    """
    cores = cores or os.cpu_count() or 1
    on_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and cuda_devices > 0)
    if on_cuda:
        devices = [cfg.device] if ":" in cfg.device else [f"cuda:{i}" for i in range(max(cuda_devices, 1))]
        wanted = len(devices) if cfg.replicas == "auto" else int(cfg.replicas)
    else:
        devices = ["cpu"]
        threads = cfg.threads or 1
        by_memory = (free_bytes if free_bytes is not None else available_bytes()) // 2 // max(
            2 * model_bytes + REPLICA_OVERHEAD_BYTES, 1)
        wanted = max(1, min(cores // threads, by_memory)) if cfg.replicas == "auto" else int(cfg.replicas)
        if cfg.replicas == "auto" and audio_s < MIN_AUDIO_S_FOR_CPU_REPLICAS:
            wanted = 1
    replicas = max(1, min(wanted, n_groups))
    threads = cfg.threads or max(1, cores // replicas)
    return Layout(replicas, threads, tuple(devices[i % len(devices)] for i in range(replicas)))


def available_bytes() -> int:
    """Memory the system can give without swapping (Linux ``MemAvailable``; elsewhere unlimited)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**62


class ReplicaError(RuntimeError):
    """A replica process died; the part files the others wrote are kept, a rerun decodes the rest."""


def run_replicas(target: Callable, args_of: Callable[[int], tuple], n_replicas: int, n_tasks: int,
                 on_message: Callable[[int, str, object], None]) -> None:
    """Run ``target(index, tasks, messages, *args_of(index))`` in ``n_replicas`` spawned processes.

    Task numbers 0..n_tasks-1 go through one queue; a replica takes the next when it is free.
    Messages ``(replica, kind, payload)`` that replicas put on ``messages`` are handed to
    ``on_message`` as they come.

    Raises:
        ReplicaError: a replica exited with an error (after the others finished their tasks).
    """
    # A fresh interpreter: no inherited torch threads or CUDA state, and no re-run of the caller's script.
    ctx = worker_context("spawn")
    tasks, messages = ctx.Queue(), ctx.Queue()
    for t in range(n_tasks):
        tasks.put(t)
    for _ in range(n_replicas):
        tasks.put(None)  # one stop sign each
    procs = [ctx.Process(target=target, args=(i, tasks, messages, *args_of(i)), daemon=True)
             for i in range(n_replicas)]
    with workers_start_quiet():  # a Ctrl-C while a replica imports torch: no traceback from it
        for p in procs:
            p.start()
        fault_point("asr.replicas_started")
    try:
        _pump(procs, messages, on_message)
    except BaseException:
        for p in procs:  # Ctrl-C or an error here: stop the replicas now; finished parts stay
            p.kill()
        raise
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    dead = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
    if dead:
        i, code = dead[0]
        raise ReplicaError(f"asr replica {i} exited with code {code}; the part files written are kept, and "
                           "rerunning the same command decodes the rest")


def _pump(procs: Sequence, messages, on_message: Callable[[int, str, object], None]) -> None:
    """Hand messages on until every replica has exited and the queue is empty."""
    while True:
        try:
            replica, kind, payload = messages.get(timeout=0.2)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                try:  # a message may have arrived just before the last exit
                    replica, kind, payload = messages.get(timeout=0.5)
                except queue.Empty:
                    return
            else:
                continue
        on_message(replica, kind, payload)


def silence_child_interrupts() -> None:
    """In a replica: Ctrl-C goes to the parent, which stops the run; no worker traceback."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stderr.flush()
