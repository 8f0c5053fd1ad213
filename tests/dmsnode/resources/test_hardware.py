"""Hardware detection on this machine (psutil) and with fake GPU tools put first on PATH."""

from __future__ import annotations

import platform
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import trio

from dmsnode.resources import Hardware, detect_hardware, usage
from dmsnode.resources._hardware import existing_parent, parse_cpuinfo

DATA = Path(__file__).resolve().parents[2] / "data" / "gpu"
Install = Callable[[str, str], Path]


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Install:
    """``install(name, script)`` writes an executable into a directory first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    def install(name: str, script: str) -> Path:
        path = bin_dir / name
        path.write_text(script)
        path.chmod(0o755)
        return path

    return install


def prints(fixture: str, status: int = 0) -> str:
    """A shell script that prints a captured output and exits with ``status``."""
    return f"#!/bin/sh\ncat '{DATA / fixture}'\nexit {status}\n"


def gpu_warnings(hardware: Hardware) -> list[str]:
    return [w for w in hardware.warnings if "GPUs not detected" in w]


# --- this machine --------------------------------------------------------------------------------


async def test_this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no GPU tool, whatever this machine has installed
    hardware = await detect_hardware(tmp_path)
    total = hardware.resources
    assert total.cpu_cores >= 1
    assert total.cpu_cores == psutil.cpu_count(logical=True)
    assert total.ram > 0
    assert total.disk > 0
    assert 0 <= hardware.disk_free <= total.disk
    assert total.gpus == () == hardware.gpus
    assert hardware.os == platform.system().lower()
    assert hardware.arch == platform.machine()
    assert gpu_warnings(hardware) == []
    if total.cpu_hz == 0:
        assert any("CPU clock unknown" in w for w in hardware.warnings)
    assert hardware.to_dict()["resources"]["ram"] == total.ram


async def test_a_work_dir_that_does_not_exist_yet(tmp_path: Path) -> None:
    hardware = await detect_hardware(tmp_path / "not" / "yet", tools=())
    assert hardware.resources.disk == psutil.disk_usage(str(tmp_path)).total
    assert existing_parent(tmp_path / "not" / "yet") == tmp_path


async def test_usage(tmp_path: Path) -> None:
    now = await usage(tmp_path, interval=0.05)
    assert 0.0 <= now.cpu_percent <= 100.0
    assert 0 < now.ram_used <= now.ram_total
    assert 0 < now.disk_used <= now.disk_total
    assert len(now.load_average) == 3
    assert all(load >= 0 for load in now.load_average)
    assert now.to_dict()["load_average"] == list(now.load_average)


@pytest.mark.parametrize(
    ("text", "model"),
    [
        (
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\n"
            "model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n",
            "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz",
        ),
        (
            "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\n"
            "Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n",
            "Raspberry Pi 4 Model B Rev 1.4",
        ),
        (
            "processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\n",
            "POWER9 (architected), altivec supported",
        ),
        ("processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n", ""),
        ("", ""),
    ],
)
def test_parse_cpuinfo(text: str, model: str) -> None:
    assert parse_cpuinfo(text) == model


# --- fake GPU tools ------------------------------------------------------------------------------

XPU_SMI = """#!/bin/sh
case "$*" in
  "discovery --json") cat '{data}/xpu-smi/discovery_several.json' ;;
  "discovery --device 0 --json") cat '{data}/xpu-smi/device_0_max1550.json' ;;
  "discovery --device 1 --json") cat '{data}/xpu-smi/device_1_max1100.json' ;;
  "discovery --device 2 --json") {device_2} ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
"""


def xpu_smi(device_2: str = "cat '{data}/xpu-smi/device_2_flex170.json'") -> str:
    return XPU_SMI.format(data=DATA, device_2=device_2.format(data=DATA))


async def test_every_vendor_at_once(fake_tools: Install, tmp_path: Path) -> None:
    fake_tools("nvidia-smi", prints("nvidia-smi/several_mixed.csv"))
    fake_tools("rocm-smi", prints("rocm-smi/several_mi250x_rocm6.json"))
    fake_tools("xpu-smi", xpu_smi())
    hardware = await detect_hardware(tmp_path, timeout=5.0)
    assert gpu_warnings(hardware) == []
    assert [g.key for g in hardware.gpus] == [
        *(f"nvidia:{i}" for i in range(4)),
        *(f"amd:{i}" for i in range(4)),
        *(f"intel:{i}" for i in range(3)),
    ]
    intel = {g.key: (g.model, g.vram) for g in hardware.gpus if g.vendor == "intel"}
    assert intel == {
        "intel:0": ("Intel(R) Data Center GPU Max 1550", 130535980032),
        "intel:1": ("Intel(R) Data Center GPU Max 1100", 51522830336),
        "intel:2": ("Intel(R) Data Center GPU Flex 170", 14602813440),
    }


async def test_only_the_vendors_asked_for(fake_tools: Install, tmp_path: Path) -> None:
    fake_tools("nvidia-smi", prints("nvidia-smi/one_rtx3090.csv"))
    fake_tools("rocm-smi", prints("rocm-smi/one_rx7900xtx_rocm6.json"))
    hardware = await detect_hardware(tmp_path, tools=("amd",))
    assert [g.key for g in hardware.gpus] == ["amd:0"]
    assert (await detect_hardware(tmp_path, tools=())).gpus == ()


async def test_a_failing_tool_is_skipped_with_a_warning(
    fake_tools: Install, tmp_path: Path
) -> None:
    fake_tools("nvidia-smi", prints("nvidia-smi/driver_failed.txt", status=9))
    fake_tools("rocm-smi", prints("rocm-smi/one_rx7900xtx_rocm6.json"))
    hardware = await detect_hardware(tmp_path)
    assert [g.key for g in hardware.gpus] == ["amd:0"]
    assert gpu_warnings(hardware) == [
        "NVIDIA GPUs not detected: nvidia-smi exited with status 9: NVIDIA-SMI has failed"
        " because it couldn't communicate with the NVIDIA driver. Make sure that the latest"
        " NVIDIA driver is installed and running."
    ]


async def test_no_device_is_not_a_failure(fake_tools: Install, tmp_path: Path) -> None:
    fake_tools("nvidia-smi", prints("nvidia-smi/no_devices.txt", status=6))
    fake_tools(
        "rocm-smi",
        "#!/bin/sh\necho 'ERROR:root:Driver not initialized (amdgpu not found in modules)' >&2\n",
    )
    fake_tools("xpu-smi", prints("xpu-smi/discovery_none_null.json"))
    hardware = await detect_hardware(tmp_path)
    assert hardware.gpus == ()
    assert gpu_warnings(hardware) == []


async def test_unexpected_output_is_skipped_with_a_warning(
    fake_tools: Install, tmp_path: Path
) -> None:
    fake_tools("nvidia-smi", prints("nvidia-smi/truncated.csv"))
    fake_tools("rocm-smi", prints("rocm-smi/missing_library.txt", status=1))
    fake_tools("xpu-smi", prints("xpu-smi/discovery_error.json", status=1))
    hardware = await detect_hardware(tmp_path)
    assert hardware.gpus == ()
    nvidia, amd, intel = gpu_warnings(hardware)
    assert nvidia.startswith("NVIDIA GPUs not detected: nvidia-smi line 2 is not")
    assert (
        amd
        == "AMD GPUs not detected: rocm-smi exited with status 1: Traceback (most recent call last):"
    )
    assert intel == (
        "Intel GPUs not detected: xpu-smi exited with status 1: Level Zero Initialization Error"
    )


async def test_one_intel_device_failing_skips_intel(fake_tools: Install, tmp_path: Path) -> None:
    fake_tools("xpu-smi", xpu_smi(device_2="echo 'Error: device not found' >&2; exit 1"))
    hardware = await detect_hardware(tmp_path, tools=("intel",))
    assert hardware.gpus == ()
    assert gpu_warnings(hardware) == [
        "Intel GPUs not detected: xpu-smi exited with status 1: Error: device not found"
    ]


HANGS = """#!{python}
import pathlib, subprocess, sys, time
# A child that would outlive its parent if only the parent were killed.
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "{marker}"])
pathlib.Path("{started}").write_text("started")
time.sleep(60)
"""


def alive_with(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if marker in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


async def test_a_hanging_tool_is_killed_with_its_children(
    fake_tools: Install, tmp_path: Path
) -> None:
    marker = f"dmsnode-test-{uuid.uuid4()}"
    started = tmp_path / "started"
    fake_tools("nvidia-smi", HANGS.format(python=sys.executable, marker=marker, started=started))
    fake_tools("rocm-smi", prints("rocm-smi/one_rx7900xtx_rocm6.json"))
    begin = trio.current_time()
    hardware = await detect_hardware(tmp_path, timeout=0.5)
    assert trio.current_time() - begin < 3.0
    assert [g.key for g in hardware.gpus] == ["amd:0"]
    assert gpu_warnings(hardware) == [
        "NVIDIA GPUs not detected: nvidia-smi did not finish within 0.5 s and was killed"
    ]
    assert started.exists(), "the fake tool had started its child before the timeout"
    for _ in range(40):  # SIGKILL is delivered at once, but give the kernel a moment
        if not alive_with(marker):
            break
        await trio.sleep(0.05)
    assert alive_with(marker) == []


async def test_hanging_tools_time_out_together(fake_tools: Install, tmp_path: Path) -> None:
    fake_tools("nvidia-smi", "#!/bin/sh\nexec sleep 30\n")
    fake_tools("rocm-smi", "#!/bin/sh\nexec sleep 30\n")
    fake_tools("xpu-smi", "#!/bin/sh\nexec sleep 30\n")
    begin = trio.current_time()
    hardware = await detect_hardware(tmp_path, timeout=0.6)
    assert trio.current_time() - begin < 1.5  # concurrently, not one after the other (1.8 s)
    assert len(gpu_warnings(hardware)) == 3
