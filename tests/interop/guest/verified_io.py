"""A verifying workload inside the kernel VM: every acknowledged write is checked at the end.

Runs in the guest with the host's Python (the checkout is shared at its own path):

    verified_io.py block /dev/nvme0n1 --stop-file F --result R [--units N] [--threads T]
    verified_io.py files /mnt/vol --stop-file F --result R [--files N] [--size-kib K]

``block`` writes 4 KiB units at random with O_DIRECT from T threads (no two on one
unit); ``files`` rewrites N files through the file system (write, fsync, rename,
fsync of the directory). Both record in a `WriteLedger` what each unit or file may
hold (exactly the data of an acknowledged write; old or new after a failed one), run
until the stop file exists, then read everything back and write a JSON result:
acknowledged and failed writes, the first errors, the units that hold anything else,
and every gap of over half a second between two acknowledgements (the I/O stalls).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.support.verified_writes import WriteLedger, fingerprint, unit_data

UNIT = 4096
STALL = 0.5
"""Seconds without an acknowledgement that count as a stall."""


class Progress:
    """Acknowledgements counted by time, for the stall and for the host to follow."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acknowledged = 0
        self.failed = 0
        self.errors: list[str] = []
        self.last_ack = time.monotonic()
        self.stalls: list[float] = []

    def ack(self) -> None:
        now = time.monotonic()
        with self.lock:
            self.acknowledged += 1
            gap = now - self.last_ack
            if gap > STALL:
                self.stalls.append(round(gap, 3))
            self.last_ack = now

    def fail(self, error: str) -> None:
        with self.lock:
            self.failed += 1
            if len(self.errors) < 10:
                self.errors.append(error)


def write_progress(path: Path, progress: Progress) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"acknowledged": progress.acknowledged, "failed": progress.failed}))
    tmp.replace(path)


def run_block(args: argparse.Namespace, progress: Progress, stop: threading.Event) -> list[int]:
    fd = os.open(args.target, os.O_RDWR | os.O_DIRECT)
    ledger = WriteLedger(UNIT, 1)
    ledger_lock = threading.Lock()

    def worker(index: int) -> None:
        rng = random.Random(args.seed * 1000 + index)
        buf = mmap.mmap(-1, UNIT)
        seq = 0
        mine = range(index, args.units, args.threads)
        while not stop.is_set():
            unit = rng.choice(mine)
            seq += 1
            data = unit_data(unit, seq, UNIT, rng)
            buf[:] = data
            try:
                os.pwritev(fd, [buf], unit * UNIT)
            except OSError as exc:
                with ledger_lock:
                    ledger.record(unit, data, ok=False)
                progress.fail(f"write of unit {unit}: {exc}")
                time.sleep(0.1)
                continue
            with ledger_lock:
                ledger.record(unit, data, ok=True)
            progress.ack()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    wait_for_stop(args, progress, stop)
    for thread in threads:
        thread.join()
    wrong = []
    buf = mmap.mmap(-1, UNIT)
    for unit in ledger.units():
        os.preadv(fd, [buf], unit * UNIT)
        if fingerprint(bytes(buf)) not in ledger.may_hold[unit]:
            wrong.append(unit)
    os.close(fd)
    return wrong


def run_files(args: argparse.Namespace, progress: Progress, stop: threading.Event) -> list[int]:
    folder = Path(args.target)
    ledger = WriteLedger(UNIT, 1, fresh=False)
    rng = random.Random(args.seed)

    def worker() -> None:
        seq = 0
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        while not stop.is_set():
            index = rng.randrange(args.files)
            seq += 1
            data = unit_data(index, seq, args.size_kib * 1024, rng)
            tmp = folder / f"file-{index}.tmp"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                tmp.replace(folder / f"file-{index}")
                os.fsync(dir_fd)
            except OSError as exc:
                ledger.record(index, data, ok=False)
                progress.fail(f"file-{index}: {exc}")
                time.sleep(0.1)
                continue
            ledger.record(index, data, ok=True)
            progress.ack()
        os.close(dir_fd)

    thread = threading.Thread(target=worker)
    thread.start()
    wait_for_stop(args, progress, stop)
    thread.join()
    wrong = []
    for index in ledger.units():
        try:
            data = (folder / f"file-{index}").read_bytes()
        except OSError:
            wrong.append(index)
            continue
        if fingerprint(data) not in ledger.may_hold[index]:
            wrong.append(index)
    return wrong


def wait_for_stop(args: argparse.Namespace, progress: Progress, stop: threading.Event) -> None:
    stop_file = Path(args.stop_file)
    progress_file = Path(args.result).with_suffix(".progress")
    while not stop_file.exists():
        write_progress(progress_file, progress)
        time.sleep(0.2)
    stop.set()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["block", "files"])
    parser.add_argument("target")
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--units", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--size-kib", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    progress = Progress()
    stop = threading.Event()
    started = time.time()
    run = run_block if args.mode == "block" else run_files
    wrong = run(args, progress, stop)
    result: dict[str, Any] = {
        "acknowledged": progress.acknowledged,
        "failed": progress.failed,
        "errors": progress.errors,
        "wrong": wrong[:20],
        "wrong_count": len(wrong),
        "stalls": progress.stalls,
        "seconds": round(time.time() - started, 1),
    }
    Path(args.result).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
