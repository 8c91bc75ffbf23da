"""`make fuzz`: a bounded-time random and mutation fuzzer over every parser that reads input
from outside the box.

    python scripts/fuzz.py --seconds 60 [--seed N]

Each target takes bytes (text parsers get them decoded as UTF-8 with
replacement) and may only ever raise its documented exception type; anything
else is a crash: the input is saved under var/fuzz/ and the exit code is 1.
Inputs are either random bytes or mutations (bit flips, byte changes,
insertions, deletions, truncations, splices) of valid seeds, so the fuzzer
also gets past the first checks of each parser.

Targets: record parser, 24-word parser, box.toml parser, Noise handshake
read_message and transport decrypt, and, when those modules exist, the peer
frame decoder and the export bundle verifier (which must never raise and
must flag every mutated bundle; mutations it does not flag are counted).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "app"))

from nacl.signing import SigningKey  # noqa: E402

from strongroom.archive.errors import RecordRejected  # noqa: E402
from strongroom.archive.record import parse_record, sign_record  # noqa: E402
from strongroom.config import ConfigError, parse_config  # noqa: E402
from strongroom.identity.words import WordsError, entropy_to_words, words_to_entropy  # noqa: E402
from strongroom.noise import (  # noqa: E402
    HandshakeState,
    NoiseError,
    TransportSession,
    generate_keypair,
)

XX = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
IK = "Noise_IK_25519_ChaChaPoly_BLAKE2b"


@dataclass
class Target:
    """A parser under fuzz: `run` raises only `allowed` on bad input."""

    name: str
    seeds: list[bytes]
    run: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    inputs: int = 0
    rejected: int = 0
    accepted: int = 0
    crashes: list[str] = field(default_factory=list)


# -- mutations --------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip one bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # an interesting byte
            buf[rng.randrange(len(buf))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0x18, 0x1B, 0x9F))
        elif op == 2:  # insert random bytes
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and buf:  # delete a run
            del buf[pos : pos + rng.randint(1, 16)]
        elif op == 4:  # truncate
            del buf[pos:]
        elif op == 5 and seeds:  # splice with another seed
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            buf[pos:] = other[cut:]
        elif op == 6 and buf:  # duplicate a run
            chunk = buf[pos : pos + rng.randint(1, 32)]
            buf[pos:pos] = chunk
    return bytes(buf)


def next_input(rng: random.Random, target: Target) -> bytes:
    if not target.seeds or rng.random() < 0.2:
        return rng.randbytes(rng.choice((0, 1, 2, 8, 32, 64, 200, 1000, 5000)))
    return mutate(rng, rng.choice(target.seeds), target.seeds)


def as_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


# -- targets ----------------------------------------------------------------------------


def record_target() -> Target:
    key = SigningKey(hashlib.sha256(b"fuzz phone").digest())
    base = {"v": 1, "id": "m-1", "conv": "client-martin", "from": "Maître Durand", "at": 1}
    seeds = [
        sign_record(key, {**base, "kind": "message", "dir": "out", "text": "Réunion à 9h"})[0],
        sign_record(key, {**base, "kind": "edit", "dir": "in", "text": "x", "ref": "m-0"})[0],
        sign_record(key, {**base, "kind": "receipt", "ref": "m-0", "receipt": "read"})[0],
        sign_record(key, {**base, "kind": "deletion", "dir": "out", "ref": "m-0"})[0],
        sign_record(
            key,
            {
                **base,
                "kind": "attachment",
                "dir": "out",
                "ref": "m-0",
                "blob": {
                    "sha256": bytes(32),
                    "size": 3,
                    "name": "a.pdf",
                    "mime": "application/pdf",
                },
            },
        )[0],
    ]

    def run(data: bytes) -> object:
        return parse_record(data, data[:64].ljust(64, b"\0"), max_blob_size=1 << 30)

    return Target("record parser (parse_record)", seeds, run, (RecordRejected,))


def words_target() -> Target:
    seeds = [
        " ".join(entropy_to_words(hashlib.sha256(bytes([i])).digest(), lang)).encode()
        for i, lang in ((1, "english"), (2, "french"), (3, "french"))
    ]
    seeds.append(b"1. " + seeds[0].replace(b" ", b"\n2) ", 3))
    return Target(
        "24-word parser (words_to_entropy)",
        seeds,
        lambda data: words_to_entropy(as_text(data)),
        (WordsError,),
    )


def config_target() -> Target:
    seeds = [
        b'host = "0.0.0.0"\nport = 443\ntls = true\nbox_name = "cabinet"\n',
        b'unlock_mode = "unattended"\nunlock_keyfile = "/media/usb/key"\n'
        b'mdns_interfaces = ["192.168.1.2"]\n[limits]\nmax_frame_bytes = 262144\n'
        b"idle_timeout_s = 120.5\n",
        b'pairing_window_s = 120\nbackup_target = "/mnt/backup"\nadvertise_mdns = false\n',
    ]
    data_dir = Path("/nonexistent/fuzz")
    return Target(
        "box.toml parser (parse_config)",
        seeds,
        lambda data: parse_config(as_text(data), data_dir),
        (ConfigError,),
    )


def noise_targets() -> list[Target]:
    initiator_static, responder_static = generate_keypair(), generate_keypair()

    def responder(name: str) -> HandshakeState:
        return HandshakeState.initialize(name, False, b"strongroom", s=responder_static.private)

    def initiator(name: str) -> HandshakeState:
        rs = responder_static.public if name == IK else None
        return HandshakeState.initialize(
            name, True, b"strongroom", s=initiator_static.private, rs=rs
        )

    seeds = [initiator(XX).write_message(b"hello"), initiator(IK).write_message(b"\xa1")]

    def read_first(data: bytes) -> object:
        name = XX if data[:1] < b"\x80" else IK  # both patterns from the same inputs
        return responder(name).read_message(data)

    # A finished session: random transport input must fail cleanly and keep it usable.
    a, b = initiator(XX), responder(XX)
    b.read_message(a.write_message())
    a.read_message(b.write_message())
    b.read_message(a.write_message())
    sender, receiver = TransportSession.from_handshake(a), TransportSession.from_handshake(b)
    transport_seeds = [sender.encrypt(os.urandom(n)) for n in (0, 16, 300)]

    def decrypt(data: bytes) -> object:
        return receiver.decrypt(data)

    return [
        Target("Noise handshake read_message (XX, IK)", seeds, read_first, (NoiseError,)),
        Target("Noise transport decrypt", transport_seeds, decrypt, (NoiseError,)),
    ]


def frame_target() -> Target | None:
    try:
        from strongroom.peer.frames import (
            FRAME_TYPES,
            Direction,
            Frame,
            FrameError,
            decode_frame,
            encode_frame,
        )
    except ImportError:
        return None
    seeds = [encode_frame(Frame(t, 7, {})) for t in sorted(FRAME_TYPES)]
    seeds.append(encode_frame(Frame("hello", 1, {"name": "Pixel", "app": "1.0", "caps": ["mail"]})))

    def run(data: bytes) -> object:
        direction = Direction.TO_BOX if len(data) % 2 else Direction.TO_PHONE
        return decode_frame(data, direction, max_bytes=256 * 1024)

    return Target("peer frame decoder (decode_frame)", seeds, run, (FrameError,))


@dataclass
class BundleTarget:
    target: Target
    undetected: int = 0
    undetected_inputs: list[bytes] = field(default_factory=list)
    metadata_only: int = 0


def _members(path: Path) -> dict[str, bytes] | None:
    """What `unzip` would give: member names and contents; None if it cannot extract them."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return {info.filename: zf.read(info) for info in zf.infolist()}
    except Exception:  # a bundle unzip cannot read must not pass the verifier either
        return None


def bundle_target(work: Path) -> BundleTarget | None:
    """verify_bundle must never raise, and must flag every mutated bundle."""
    try:
        from strongroom.office.export import ExportRequest, ExportScope, export_bundle
        from strongroom.office.verify_export import verify_bundle
    except ImportError:
        return None
    from strongroom.archive import writes
    from strongroom.archive.store import Archive

    box = Archive.open(work / "data", os.urandom(32), os.urandom(32), SigningKey.generate())
    phone = SigningKey.generate()
    device = box.write(
        writes.add_device(
            writes.NewDevice(bytes(phone.verify_key), os.urandom(32), "Pixel", "me", "staff", "t")
        )
    )
    for n in range(3):
        fields = {
            "v": 1,
            "kind": "message",
            "id": f"m-{n}",
            "conv": "c",
            "dir": "out",
            "from": "Me",
            "at": n,
            "text": f"message {n} é",
        }
        raw, sig = sign_record(phone, fields)
        box.write(writes.store_record(parse_record(raw, sig, max_blob_size=1), device, "me"))
    (conv,) = box.conn.execute("SELECT id FROM conversations").fetchone()
    bundle = work / "seed.zip"
    request = ExportRequest(
        ExportScope("conversation", conversation_id=int(conv)), "fuzz", "f", "f"
    )
    export_bundle(box, request, bundle)
    box.close()
    seed = bundle.read_bytes()
    seed_members = _members(bundle)
    target_path = work / "mutated.zip"
    holder = BundleTarget(
        Target("export bundle verifier (verify_bundle)", [seed], lambda d: None, ())
    )

    def run(data: bytes) -> object:
        target_path.write_bytes(data)
        report = verify_bundle(target_path)
        if report.ok and data != seed:
            if _members(target_path) == seed_members:
                holder.metadata_only += 1  # zip header bytes: every extracted file is intact
            else:
                holder.undetected += 1
                holder.undetected_inputs.append(data)
        return report

    holder.target.run = run
    return holder


# -- the loop ---------------------------------------------------------------------------


def fuzz_one(rng: random.Random, target: Target, crash_dir: Path) -> None:
    data = next_input(rng, target)
    target.inputs += 1
    try:
        target.run(data)
        target.accepted += 1
    except target.allowed:
        target.rejected += 1
    except Exception as exc:
        crash_dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(data).hexdigest()[:16]
        (crash_dir / f"{target.name.split()[0]}-{name}.bin").write_bytes(data)
        target.crashes.append(f"{type(exc).__name__}: {exc}"[:200])
        if len(target.crashes) == 1:
            traceback.print_exc()


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bounded-time fuzzer over every outside parser")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--crash-dir", type=Path, default=REPO / "var" / "fuzz")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="strongroom-fuzz-") as tmp:
        targets = [record_target(), words_target(), config_target(), *noise_targets()]
        frames = frame_target()
        missing = []
        if frames is not None:
            targets.append(frames)
        else:
            missing.append("peer frame decoder: strongroom.peer.frames not available")
        bundles = bundle_target(Path(tmp))
        if bundles is not None:
            targets.append(bundles.target)
        else:
            missing.append("export bundle verifier: strongroom.office.verify_export not available")
        rss_start = rss_mib()
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            for target in targets:
                fuzz_one(rng, target, args.crash_dir)
        rss_end = rss_mib()
    print(f"fuzz: seed {seed}, {args.seconds:.0f} s, RSS {rss_start:.1f} -> {rss_end:.1f} MiB")
    print(f"{'target':<42} {'inputs':>8} {'rejected':>9} {'accepted':>9} {'crashes':>8}")
    for t in targets:
        print(f"{t.name:<42} {t.inputs:>8} {t.rejected:>9} {t.accepted:>9} {len(t.crashes):>8}")
        for crash in sorted(set(t.crashes))[:5]:
            print(f"    crash: {crash}")
    for line in missing:
        print(f"skipped target: {line}")
    failed = any(t.crashes for t in targets)
    if bundles is not None and bundles.metadata_only:
        print(
            f"export verifier: {bundles.metadata_only} mutations of zip header fields only"
            " (flags, times, attributes; every extracted file intact) were not flagged"
        )
    if bundles is not None and bundles.undetected:
        print(f"export verifier: {bundles.undetected} mutated bundles were NOT flagged")
        args.crash_dir.mkdir(parents=True, exist_ok=True)
        (args.crash_dir / "bundle-seed.zip").write_bytes(bundles.target.seeds[0])
        for data in bundles.undetected_inputs[:20]:
            name = hashlib.sha256(data).hexdigest()[:16]
            (args.crash_dir / f"unflagged-bundle-{name}.zip").write_bytes(data)
        failed = True
    if failed:
        print(f"fuzz: FAILED (inputs saved under {args.crash_dir}; rerun with --seed {seed})")
        return 1
    print("fuzz: OK, only documented exceptions escaped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
