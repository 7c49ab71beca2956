#!/usr/bin/env python3
"""Wait until a Kafka broker answers a real metadata request.

Usage: wait_ready.py HOST:PORT [--timeout SECONDS] [--pid PID] [--log FILE ...]
                     [--brokers N] [--node-id ID]

Exit 0 once a metadata request (DescribeCluster via kafka-python's admin client) returns at
least one broker (at least N with --brokers; one of them node ID with --node-id: a restarted
node of a cluster is ready once the cluster lists it again). Exit 1 on timeout, or at once if
--pid is given and that process has died; either way the tail of each --log file is printed to
stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import deque


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited already


def probe(admin_cls: type, bootstrap: str, timeout_s: float) -> dict:
    ms = max(1000, int(timeout_s * 1000))
    admin = admin_cls(
        bootstrap_servers=bootstrap,
        client_id="district-ledger-wait-ready",
        bootstrap_timeout_ms=ms,
        request_timeout_ms=ms,
        reconnect_backoff_max_ms=500,
    )
    try:
        return admin.describe_cluster()
    finally:
        admin.close()


def print_tails(paths: list[str], lines: int = 40) -> None:
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                tail = deque(f, maxlen=lines)
        except OSError as e:
            print(f"--- {path}: {e}", file=sys.stderr)
            continue
        print(f"--- last {len(tail)} lines of {path}:", file=sys.stderr)
        sys.stderr.writelines(tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bootstrap", help="host:port of the broker")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds in all (default 90)")
    ap.add_argument("--pid", type=int, help="fail fast once this process has exited")
    ap.add_argument("--log", action="append", default=[], help="log to show on failure")
    ap.add_argument("--quiet", action="store_true", help="print nothing on success")
    ap.add_argument("--brokers", type=int, default=1, help="how many brokers must be listed")
    ap.add_argument("--node-id", type=int, help="a node that must be among the brokers listed")
    args = ap.parse_args()

    try:
        from kafka import KafkaAdminClient  # here, so that --help works without kafka-python
    except ImportError as e:  # fail now, not after the whole timeout
        print(f"wait_ready: {e} (run it with a python that has kafka-python)", file=sys.stderr)
        return 2

    # kafka-python logs every refused connection at ERROR/WARNING while the broker starts.
    logging.basicConfig(level=logging.CRITICAL)

    start = time.monotonic()
    deadline = start + args.timeout
    last_error: BaseException | None = None
    while True:
        if args.pid is not None and not pid_alive(args.pid):
            print(f"wait_ready: broker process {args.pid} exited", file=sys.stderr)
            print_tails(args.log)
            return 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            meta = probe(KafkaAdminClient, args.bootstrap, min(5.0, remaining))
            # A fenced broker (e.g. restarted before its old session expired) serves nothing yet.
            listed = {b["broker_id"] for b in meta.get("brokers") or () if not b.get("is_fenced")}
            if len(listed) >= args.brokers and args.node_id in (None, *listed):
                if not args.quiet:
                    print(
                        f"kafka ready at {args.bootstrap} (cluster {meta.get('cluster_id')}, "
                        f"{time.monotonic() - start:.1f}s)"
                    )
                return 0
            last_error = RuntimeError(f"metadata lists too few brokers: {meta}")
        except Exception as e:  # not up yet: refused, timed out, still loading
            last_error = e
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    print(
        f"wait_ready: no metadata answer from {args.bootstrap} within {args.timeout:.0f}s "
        f"(last error: {last_error!r})",
        file=sys.stderr,
    )
    print_tails(args.log)
    return 1


if __name__ == "__main__":
    sys.exit(main())
