"""Board health read from a fake /sys and /proc tree, and the disk-full forecast."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from strongroom.appliance.health import (
    SECONDS_PER_DAY,
    DiskSample,
    Throttling,
    disk_forecast_days,
    read_health,
)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="ascii")


@pytest.fixture
def pi_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    _write(root, "sys/class/thermal/thermal_zone0/temp", "48312\n")
    _write(root, "sys/devices/platform/soc/soc:firmware/get_throttled", "50005\n")
    _write(root, "proc/loadavg", "0.52 0.31 0.20 1/123 4567\n")
    return root


def test_reads_a_raspberry_pi(pi_root: Path, tmp_path: Path) -> None:
    health = read_health(tmp_path, sys_root=pi_root)
    assert health.cpu_temp_c == pytest.approx(48.312)
    assert health.load_average == (0.52, 0.31, 0.20)
    t = health.throttling
    assert t is not None
    # 0x50005: under-voltage and throttled now, both also since boot.
    assert (t.under_voltage_now, t.throttled_now, t.freq_capped_now) == (True, True, False)
    assert (t.under_voltage_since_boot, t.throttled_since_boot) == (True, True)
    assert not t.soft_temp_limit_since_boot
    assert not t.ok


def test_a_healthy_power_supply_reads_ok(pi_root: Path, tmp_path: Path) -> None:
    _write(pi_root, "sys/devices/platform/soc/soc:firmware/get_throttled", "0\n")
    throttling = read_health(tmp_path, sys_root=pi_root).throttling
    assert throttling == Throttling(0)
    assert throttling.ok


def test_a_dev_box_without_pi_files_gives_none(tmp_path: Path) -> None:
    health = read_health(tmp_path, sys_root=tmp_path / "empty")
    assert health.cpu_temp_c is None
    assert health.throttling is None
    assert health.load_average is None


def test_garbage_in_sysfs_is_not_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _write(root, "sys/class/thermal/thermal_zone0/temp", "hot\n")
    _write(root, "sys/devices/platform/soc/soc:firmware/get_throttled", "zz\n")
    _write(root, "proc/loadavg", "\n")
    health = read_health(tmp_path, sys_root=root)
    assert (health.cpu_temp_c, health.throttling, health.load_average) == (None, None, None)


def test_disk_usage_is_the_data_directorys_filesystem(tmp_path: Path) -> None:
    disk = read_health(tmp_path, sys_root=tmp_path).disk
    real = shutil.disk_usage(tmp_path)
    assert disk.total == real.total
    assert disk.used + disk.free <= disk.total
    assert disk.percent == pytest.approx(100 * real.used / (real.used + real.free), abs=0.5)


GIB = 1 << 30


def test_forecast_of_steady_growth() -> None:
    # 1 GiB a day on a 100 GiB disk holding 40 GiB after the last sample: 60 days.
    samples = [DiskSample(at=d * SECONDS_PER_DAY, used=(37 + d) * GIB) for d in range(4)]
    assert disk_forecast_days(samples, total_bytes=100 * GIB) == pytest.approx(60.0)


def test_forecast_smooths_one_outlier() -> None:
    used = [10, 11, 12, 20, 14, 15]  # one big import, later pruned
    samples = [DiskSample(at=d * SECONDS_PER_DAY, used=u * GIB) for d, u in enumerate(used)]
    days = disk_forecast_days(samples, total_bytes=100 * GIB)
    assert days is not None
    assert 40 < days < 120


def test_order_of_samples_does_not_matter() -> None:
    samples = [DiskSample(at=d * 3600.0, used=(50 + d) * GIB) for d in range(5)]
    forward = disk_forecast_days(samples, total_bytes=80 * GIB)
    assert forward == disk_forecast_days(samples[::-1], total_bytes=80 * GIB)


@pytest.mark.parametrize(
    "samples",
    [
        [],
        [DiskSample(0.0, 5 * GIB)],
        [DiskSample(0.0, 5 * GIB), DiskSample(0.0, 6 * GIB)],  # no time elapsed
        [DiskSample(0.0, 5 * GIB), DiskSample(SECONDS_PER_DAY, 5 * GIB)],  # flat
        [DiskSample(0.0, 6 * GIB), DiskSample(SECONDS_PER_DAY, 5 * GIB)],  # shrinking
    ],
)
def test_no_forecast_when_not_growing(samples: list[DiskSample]) -> None:
    assert disk_forecast_days(samples, total_bytes=100 * GIB) is None


def test_already_full_is_zero_days() -> None:
    samples = [DiskSample(0.0, 99 * GIB), DiskSample(SECONDS_PER_DAY, 100 * GIB)]
    assert disk_forecast_days(samples, total_bytes=100 * GIB) == 0.0
