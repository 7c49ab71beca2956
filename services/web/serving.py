"""Running an HTTP service: uvicorn, and with several workers one listening socket per worker.

uvicorn's worker processes share one listening socket, and a new connection goes to whichever
worker's event loop takes it first. Clients that open their connections together and keep them
(wrk, vegeta, a district system's connection pool) then often land unevenly, and stay so: 32
keep-alive connections split 32/0, 30/2, 23/9, 17/15 in five runs of one command, and the
single-event rate followed the split (2,470, 2,552, 2,814 and 3,454 events/s, same run). With
``SO_REUSEPORT`` each worker listens on a socket of its own and the kernel spreads connections
over them by address hash, as nginx's ``reuseport`` does.

The supervisor here is uvicorn's ``Multiprocess`` cut down to what that needs: start the workers,
start another when one dies, stop them all on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from typing import Any

import uvicorn

log = logging.getLogger(__name__)

RESTART_PAUSE_SECONDS = 1.0  # between restarts of a worker that keeps dying (e.g. at startup)
STOP_SECONDS = 30.0  # a worker's graceful shutdown, before it is killed


def serve(target: str, host: str, port: int, workers: int) -> None:
    """Serve the app that ``target`` (``module:factory``) makes, until SIGTERM or SIGINT."""
    options: dict[str, Any] = {
        "app": target,
        "factory": True,
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
    }
    if workers == 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(**options, workers=workers)
        return
    _listening_socket(host, port).close()  # fail here, once, if the address is taken
    _supervise(options, workers)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(options: dict[str, Any]) -> None:
    sock = _listening_socket(options["host"], options["port"])
    uvicorn.Server(uvicorn.Config(**options)).run(sockets=[sock])  # it listens, with its backlog


def _supervise(options: dict[str, Any], workers: int) -> None:
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(options,), name="uvicorn-worker")
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    while not stop.wait(0.5):
        for index, process in enumerate(processes):
            if not process.is_alive() and not stop.is_set():
                log.warning(
                    "worker %s exited with %s; starting another", process.pid, process.exitcode
                )
                time.sleep(RESTART_PAUSE_SECONDS)
                processes[index] = start()
    for process in processes:
        process.terminate()  # SIGTERM: uvicorn finishes the requests it has, then exits
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
