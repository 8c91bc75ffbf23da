"""How the board is doing: temperature, power/throttling, disk, load.

Everything is read from files (sysfs, procfs) under `sys_root` so that tests
build a fake tree; `vcgencmd` is not used (it needs /dev/vchiq, which the
sandboxed service does not get). Missing files mean "not a Pi" (a dev box) and
give None rather than an error.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_THERMAL = Path("sys/class/thermal/thermal_zone0/temp")
# Exposed by the raspberrypi firmware driver; same bits as `vcgencmd get_throttled`.
_THROTTLED = Path("sys/devices/platform/soc/soc:firmware/get_throttled")
_LOADAVG = Path("proc/loadavg")

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Throttling:
    """Decoded get_throttled bits: 'now' flags are current, 'since_boot' ones sticky."""

    raw: int

    def _bit(self, n: int) -> bool:
        return bool(self.raw >> n & 1)

    @property
    def under_voltage_now(self) -> bool:
        return self._bit(0)

    @property
    def freq_capped_now(self) -> bool:
        return self._bit(1)

    @property
    def throttled_now(self) -> bool:
        return self._bit(2)

    @property
    def soft_temp_limit_now(self) -> bool:
        return self._bit(3)

    @property
    def under_voltage_since_boot(self) -> bool:
        return self._bit(16)

    @property
    def freq_capped_since_boot(self) -> bool:
        return self._bit(17)

    @property
    def throttled_since_boot(self) -> bool:
        return self._bit(18)

    @property
    def soft_temp_limit_since_boot(self) -> bool:
        return self._bit(19)

    @property
    def ok(self) -> bool:
        """No under-voltage or throttling, now or since boot (a weak PSU shows here)."""
        return self.raw == 0


@dataclass(frozen=True)
class DiskUsage:
    """The filesystem holding the data directory, in bytes.

    `percent` is used / (used + free), as `df` shows it: blocks reserved for root
    are not available to the service, so they count as neither.
    """

    total: int
    used: int
    free: int
    percent: float


@dataclass(frozen=True)
class Health:
    """One reading of the board's health."""

    cpu_temp_c: float | None
    throttling: Throttling | None
    disk: DiskUsage
    load_average: tuple[float, float, float] | None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def read_cpu_temp_c(sys_root: Path = Path("/")) -> float | None:
    """SoC temperature in °C (the kernel reports millidegrees)."""
    text = _read_text(sys_root / _THERMAL)
    try:
        return int(text) / 1000 if text is not None else None
    except ValueError:
        return None


def read_throttling(sys_root: Path = Path("/")) -> Throttling | None:
    """Power and thermal throttling flags, or None when the firmware does not expose them."""
    text = _read_text(sys_root / _THROTTLED)
    if text is None:
        return None
    try:
        return Throttling(int(text.removeprefix("0x"), 16))
    except ValueError:
        return None


def read_load_average(sys_root: Path = Path("/")) -> tuple[float, float, float] | None:
    """1, 5 and 15-minute load averages."""
    text = _read_text(sys_root / _LOADAVG)
    if text is None:
        return None
    fields = text.split()
    try:
        return float(fields[0]), float(fields[1]), float(fields[2])
    except (IndexError, ValueError):
        return None


def read_disk_usage(data_dir: Path) -> DiskUsage:
    """Usage of the filesystem that holds `data_dir` (which must exist)."""
    usage = shutil.disk_usage(data_dir)
    available = usage.used + usage.free
    percent = 100.0 * usage.used / available if available else 100.0
    return DiskUsage(total=usage.total, used=usage.used, free=usage.free, percent=percent)


def read_health(data_dir: Path, sys_root: Path = Path("/")) -> Health:
    """Read everything at once; `sys_root` replaces '/' for /sys and /proc (tests)."""
    return Health(
        cpu_temp_c=read_cpu_temp_c(sys_root),
        throttling=read_throttling(sys_root),
        disk=read_disk_usage(data_dir),
        load_average=read_load_average(sys_root),
    )


@dataclass(frozen=True)
class DiskSample:
    """Bytes used on the data filesystem at a wall-clock time (Unix seconds)."""

    at: float
    used: int


def disk_forecast_days(samples: Sequence[DiskSample], total_bytes: int) -> float | None:
    """Days until the disk is full at the present growth rate, or None if it is not growing.

    The rate is the least-squares slope of used bytes over time, so that one
    large import or one retention run does not swing the forecast; the distance
    left is measured from the newest sample. Needs two samples at distinct times.
    """
    if len(samples) < 2:
        return None
    n = len(samples)
    mean_t = sum(s.at for s in samples) / n
    mean_u = sum(s.used for s in samples) / n
    var_t = sum((s.at - mean_t) ** 2 for s in samples)
    if var_t == 0:
        return None
    slope = sum((s.at - mean_t) * (s.used - mean_u) for s in samples) / var_t  # bytes/s
    if slope <= 0:
        return None
    newest = max(samples, key=lambda s: s.at)
    remaining = max(total_bytes - newest.used, 0)
    return remaining / slope / SECONDS_PER_DAY
