"""How fast the NVMe/TCP codec decodes and encodes, in nanoseconds per PDU.

Measures, with digests off and on:

* decode of a 72-byte CapsuleCmd (no data), fed one PDU at a time and in batches of
  64 PDUs per `feed` (as when a socket read returns many);
* decode of a CapsuleCmd with 4 KiB of in-capsule data (the data digest is a CRC32C
  over the 4 KiB);
* encode of a CapsuleResp;
* encode of a C2HData header for 128 KiB of data (with data digests on this includes
  the CRC32C of the 128 KiB).

For the command set on top of it, also the decode of a 64-byte SQE into a `Command`
and the encode of a CQE (`mayastor.nvmf.spec`).

Usage: ``.venv/bin/python benchmarks/pdu_codec.py [--rounds N] [--output FILE.json]``.
Prints a table and writes the figures as JSON (default
``benchmarks/results/pdu_codec.json``). The best of five runs is reported, to keep
scheduler noise out.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mayastor.nvmf.pdu import PduReader, PduWriter, Role
from mayastor.nvmf.spec import Command, Read, SglDescriptor, encode_completion

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "pdu_codec.json"

SQE = bytes(range(64))
CQE = bytes(16)
DATA_4K = bytes(4096)
DATA_128K = memoryview(bytes(128 * 1024))
BATCH = 64


def best_ns_per_op(run: Callable[[int], None], rounds: int, repeat: int = 5) -> float:
    """Best (lowest) ns per operation over `repeat` runs of `rounds` operations."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        run(rounds)
        best = min(best, (time.perf_counter_ns() - start) / rounds)
    return best


def make_pair(digests: bool) -> tuple[PduWriter, PduReader]:
    host = PduWriter(Role.HOST, header_digest=digests, data_digest=digests)
    target = PduReader(
        Role.CONTROLLER, header_digest=digests, data_digest=digests, max_data_length=1 << 17
    )
    target.feed(b"".join(PduWriter(Role.HOST).encode_ic_req()))
    target.next_pdu()
    return host, target


def decode_one_at_a_time(wire: bytes, digests: bool) -> Callable[[int], None]:
    _, reader = make_pair(digests)
    feed, next_pdu = reader.feed, reader.next_pdu

    def run(rounds: int) -> None:
        for _ in range(rounds):
            feed(wire)
            next_pdu()

    return run


def decode_batched(wire: bytes, digests: bool) -> Callable[[int], None]:
    _, reader = make_pair(digests)
    batch = wire * BATCH
    feed, next_pdu = reader.feed, reader.next_pdu

    def run(rounds: int) -> None:
        for _ in range(rounds // BATCH):
            feed(batch)
            for _ in range(BATCH):
                next_pdu()

    return run


def encode_capsule_resp(digests: bool) -> Callable[[int], None]:
    writer = PduWriter(Role.CONTROLLER, header_digest=digests, data_digest=digests)
    encode = writer.encode_capsule_resp

    def run(rounds: int) -> None:
        for _ in range(rounds):
            encode(CQE)

    return run


def encode_c2h_128k(digests: bool) -> Callable[[int], None]:
    writer = PduWriter(Role.CONTROLLER, header_digest=digests, data_digest=digests)
    encode = writer.encode_c2h_data

    def run(rounds: int) -> None:
        for i in range(rounds):
            encode(i & 0xFFFF, 0, DATA_128K, last=True, success=True)

    return run


def decode_sqe() -> Callable[[int], None]:
    sqe = Read(2048, 7).to_command(1, 1, SglDescriptor.transport(4096)).encode()
    decode = Command.decode

    def run(rounds: int) -> None:
        for _ in range(rounds):
            decode(sqe)

    return run


def encode_cqe() -> Callable[[int], None]:
    def run(rounds: int) -> None:
        for i in range(rounds):
            encode_completion(i & 0xFFFF, 0, sqhd=i & 0x7F)

    return run


def measure(rounds: int) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {
        "command set": {
            "decode 64-byte SQE into a Command": best_ns_per_op(decode_sqe(), rounds),
            "encode a 16-byte CQE": best_ns_per_op(encode_cqe(), rounds),
        }
    }
    for digests in (False, True):
        host, _ = make_pair(digests)
        cmd = b"".join(host.encode_capsule_cmd(SQE))
        cmd_4k = b"".join(bytes(p) for p in host.encode_capsule_cmd(SQE, DATA_4K))
        label = "digests on" if digests else "digests off"
        figures[label] = {
            "decode CapsuleCmd 72 B, one PDU per feed": best_ns_per_op(
                decode_one_at_a_time(cmd, digests), rounds
            ),
            f"decode CapsuleCmd 72 B, {BATCH} PDUs per feed": best_ns_per_op(
                decode_batched(cmd, digests), rounds
            ),
            "decode CapsuleCmd + 4 KiB in-capsule data": best_ns_per_op(
                decode_one_at_a_time(cmd_4k, digests), rounds // 4
            ),
            "encode CapsuleResp": best_ns_per_op(encode_capsule_resp(digests), rounds),
            "encode C2HData header for 128 KiB": best_ns_per_op(
                encode_c2h_128k(digests), rounds // 16
            ),
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=64_000, help="operations per run")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON file for the figures")
    args = parser.parse_args(argv)
    figures = measure(args.rounds)
    width = max(len(name) for table in figures.values() for name in table)
    for label, table in figures.items():
        print(f"{label}:")
        for name, ns in table.items():
            print(f"  {name:<{width}}  {ns:10.0f} ns")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        record = {
            "benchmark": "pdu_codec",
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "rounds": args.rounds,
            "ns_per_op": figures,
        }
        with open(args.output, "w") as fh:
            json.dump(record, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
