"""Run a pipeline's ranks as Ray tasks: the same jobs, the same barriers, the same output as locally.

`RayExecutor` is a drop-in for `LocalExecutor`: `run_pipeline` hands it one job's `RankTask`s at a time
and it runs `run_rank` on each as a Ray task. Nothing about the data moves through Ray: every rank reads
its input shards and writes its outputs (shards, dedup key runs, cluster decisions, completion markers)
under the output folder, which is why that folder must be on a filesystem every node sees at the same
path. Dedup's exchange is the same partitioned on-disk one as locally (sorted runs per rank, merged once
after the barrier under a file lock), so the clusters, keepers and shards do not depend on the executor.

Faults: a task whose worker process or node dies is retried by Ray (`max_retries`). A retried rank starts
over: its half-written temp files are removed, its published shards are rewritten with the same bytes,
and a rank that had already written its completion marker is simply skipped. An exception raised by a
stage is not retried (it would fail the same way); it stops the run and names the rank.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from corpus.core.errors import CorpusError
from corpus.core.executors import RankTask, _stderr, lean_arrow, run_pipeline, run_rank


def _run_on_ray(fn: Callable[[Any], dict[str, Any]], task: Any) -> tuple[dict[str, Any], str, int]:  # pragma: no cover
    """`fn(task)` plus where it ran (node id, pid), so a caller can see how work was spread."""
    import ray

    lean_arrow()
    return fn(task), ray.get_runtime_context().get_node_id(), os.getpid()


def _label(task: Any) -> str:
    """How errors name a task: a curation rank by job, rank and inputs; other tasks by their own label."""
    if isinstance(task, RankTask):
        return f"job {task.job.name!r}, rank {task.rank} ({', '.join(task.inputs) or 'no input'})"
    return getattr(task, "label", f"task {task.rank}")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise CorpusError("--executor ray needs Ray: pip install 'corpus[distributed]' (or pip install ray)") from err
    return ray


class RayExecutor:
    """Runs ranks as Ray tasks on a running cluster (`address`: HOST:PORT of its head, `auto`, or a
    `ray://` client address) or on a Ray started here for this run (`address=None`, `workers` CPUs).

    `workers` also caps how many ranks run at once (default: as many as the cluster has CPUs for,
    `cpus_per_task` each). `runtime_env` is passed to Ray; by default the driver's `PYTHONPATH` is
    forwarded so that stages from your own modules (`stage: mypkg.stages:MyFilter`) import on the workers.
    """

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        strict: bool = False,
        progress: bool = True,
        max_retries: int = 3,
        cpus_per_task: float = 1,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise CorpusError(f"workers must be at least 1, not {workers}")
        self.address = address
        self.workers = workers
        self.strict = strict
        self.progress = progress
        self.max_retries = max_retries
        self.cpus_per_task = cpus_per_task
        self.runtime_env = runtime_env if runtime_env is not None else _default_runtime_env()
        self.placements: list[dict[str, Any]] = []  # (job, rank, node, pid) of every finished task
        self._connected_here = False

    # --- connection ------------------------------------------------------------------------------

    def connect(self) -> Any:
        """Connect to the cluster (or start a local Ray) once; a connection this process already has is reused
        (after checking that an explicit `address` answers at all)."""
        ray = _import_ray()
        if self.address is not None:
            _check_reachable(self.address)
        if ray.is_initialized():
            return ray
        options: dict[str, Any] = {"logging_level": logging.WARNING, "runtime_env": self.runtime_env or None}
        if self.address is None and not os.environ.get("RAY_ADDRESS"):
            # A private single-machine Ray for this run: no dashboard, no usage report.
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            options.update(num_cpus=self.workers or os.cpu_count() or 1, include_dashboard=False)
        else:
            options["address"] = self.address
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = self.address or os.environ.get("RAY_ADDRESS") or "a local Ray"
            raise CorpusError(f"cannot connect to Ray at {where}: {err}") from err
        self._connected_here = True
        return ray

    def close(self) -> None:
        """Disconnect (and stop the local Ray if this executor started one)."""
        if self._connected_here:
            import ray

            ray.shutdown()
            self._connected_here = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the executor interface ------------------------------------------------------------------

    def map(self, tasks: list[Any], description: str,
            fn: Callable[[Any], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Run `fn(task)` (default `run_rank`) for every task, at most `workers` at once; results in rank order,
        like `LocalExecutor.map`."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        fn = fn or run_rank
        ray = self.connect()
        remote = ray.remote(_run_on_ray).options(
            max_retries=self.max_retries, retry_exceptions=False, num_cpus=self.cpus_per_task,
            name=f"corpus:{description.split(' ', 1)[0]}",
        )
        limit = self.workers or len(tasks)
        pending = list(tasks)
        running: dict[Any, Any] = {}
        results: dict[int, dict[str, Any]] = {}
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, disable=not self.progress, transient=False, console=_stderr()) as bar:
                tracker = bar.add_task(f"{description} [ray]", total=len(tasks))
                while pending or running:
                    while pending and len(running) < limit:
                        task = pending.pop(0)
                        running[remote.remote(fn, task)] = task
                    done, _ = ray.wait(list(running), num_returns=1)
                    for ref in done:
                        task = running.pop(ref)
                        result, node, pid = self._get(ray, ref, task)
                        results[task.rank] = result
                        job = task.job.name if isinstance(task, RankTask) else description.split(" ", 1)[0]
                        self.placements.append({"job": job, "rank": task.rank, "node": node, "pid": pid})
                        bar.advance(tracker)
        except BaseException:
            for ref in running:  # a failed or interrupted run leaves no task writing behind it
                ray.cancel(ref, force=True)
            raise
        return [results[rank] for rank in sorted(results)]

    def _get(self, ray: Any, ref: Any, task: Any) -> tuple[dict[str, Any], str, int]:
        from ray.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError

        where = _label(task)
        try:
            return ray.get(ref)
        except RayTaskError as err:
            if isinstance(err.cause, CorpusError):
                raise CorpusError(f"{where}: {_first_line(err.cause)}") from err
            raise CorpusError(f"{where}: {type(err.cause).__name__}: {_first_line(err.cause)}\n{err}") from err
        except (WorkerCrashedError, TaskCancelledError) as err:
            raise CorpusError(f"{where}: the worker died {self.max_retries + 1} times (killed, out of memory, "
                              f"or its node was lost); see the Ray logs. {_first_line(err)}") from err
        except ray.exceptions.RayError as err:
            raise CorpusError(f"{where}: {type(err).__name__}: {_first_line(err)}") from err

    def run(self, config: dict[str, Any], input_path: str | os.PathLike, out_dir: str | os.PathLike,
            **options: Any) -> dict:
        try:
            self.connect()  # before anything is written: a wrong address fails here
            return run_pipeline(config, input_path, out_dir, self, **options)
        finally:
            self.close()


def _check_reachable(address: str | None) -> None:
    """Fail fast on a HOST:PORT nobody listens on (Ray itself would keep retrying for minutes)."""
    if not address or address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise CorpusError(f"--address {address!r}: expected HOST:PORT of the Ray head (e.g. 10.0.0.5:6379), "
                          "auto, or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as err:
        raise CorpusError(f"no Ray cluster answers at {address} ({err.strerror or err}); start one with "
                          f"`ray start --head --port={port}` or check the address") from None


def _first_line(err: BaseException | None) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _default_runtime_env() -> dict[str, Any]:
    path = os.environ.get("PYTHONPATH")
    return {"env_vars": {"PYTHONPATH": path}} if path else {}


__all__ = ["RayExecutor"]
