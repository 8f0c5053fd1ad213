"""The GPU tools' parsers on captured outputs (tests/data/gpu/<tool>/), and on anything at all."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmsnode.resources import Gpu
from dmsnode.resources._gpu_amd import parse_rocm_smi
from dmsnode.resources._gpu_intel import parse_xpu_smi_device, parse_xpu_smi_discovery
from dmsnode.resources._gpu_nvidia import parse_nvidia_smi
from dmsnode.resources._probe import UnexpectedOutput

DATA = Path(__file__).resolve().parents[2] / "data" / "gpu"
MIB = 1024**2


def fixture(tool: str, name: str) -> str:
    return (DATA / tool / name).read_text()


# --- nvidia-smi ----------------------------------------------------------------------------------


def test_nvidia_one_gpu() -> None:
    assert parse_nvidia_smi(fixture("nvidia-smi", "one_rtx3090.csv")) == [
        Gpu(
            vendor="nvidia",
            index=0,
            model="NVIDIA GeForce RTX 3090",
            vram=24576 * MIB,
            uuid="GPU-8f6d0c1e-4b2a-9d3f-7e15-c2a94b6d8e01",
        )
    ]


def test_nvidia_several_gpus_of_different_models() -> None:
    gpus = parse_nvidia_smi(fixture("nvidia-smi", "several_mixed.csv"))
    assert [(g.key, g.model, g.vram // MIB) for g in gpus] == [
        ("nvidia:0", "NVIDIA A100-SXM4-80GB", 81920),
        ("nvidia:1", "NVIDIA A100-SXM4-80GB", 81920),
        ("nvidia:2", "NVIDIA GeForce RTX 3090", 24576),
        ("nvidia:3", "Tesla T4", 15360),
    ]
    assert all(g.uuid.startswith("GPU-") for g in gpus)


def test_nvidia_memory_with_its_unit() -> None:
    gpus = parse_nvidia_smi(fixture("nvidia-smi", "with_units_h100.csv"))
    assert [(g.index, g.model, g.vram) for g in gpus] == [
        (0, "NVIDIA H100 80GB HBM3", 81559 * MIB),
        (1, "NVIDIA H100 80GB HBM3", 81559 * MIB),
    ]


def test_nvidia_memory_not_available_is_zero() -> None:
    (gpu,) = parse_nvidia_smi(fixture("nvidia-smi", "unified_memory_gb10.csv"))
    assert (gpu.model, gpu.vram) == ("NVIDIA GB10", 0)


@pytest.mark.parametrize("text", ["", "\n", "No devices were found\n"])
def test_nvidia_no_gpu(text: str) -> None:
    assert parse_nvidia_smi(text) == []


def test_nvidia_no_devices_fixture() -> None:
    assert parse_nvidia_smi(fixture("nvidia-smi", "no_devices.txt")) == []


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("driver_failed.txt", "line 1"),
        ("version_mismatch.txt", "line 1"),
        ("truncated.csv", "line 2"),
        ("with_header.csv", "index"),
        ("gpu_lost.txt", "line 1"),
    ],
)
def test_nvidia_unexpected_output(name: str, says: str) -> None:
    with pytest.raises(UnexpectedOutput, match=says):
        parse_nvidia_smi(fixture("nvidia-smi", name))


def test_nvidia_refuses_an_index_twice_and_bad_memory() -> None:
    with pytest.raises(UnexpectedOutput, match="twice"):
        parse_nvidia_smi("0, GPU-a, Tesla T4, 15360\n0, GPU-b, Tesla T4, 15360\n")
    with pytest.raises(UnexpectedOutput, match="memory"):
        parse_nvidia_smi("0, GPU-a, Tesla T4, 15 GiB\n")


def test_nvidia_a_name_with_a_comma() -> None:
    (gpu,) = parse_nvidia_smi("0, GPU-a, Some GPU, Rev 2, 1024\n")
    assert (gpu.model, gpu.vram) == ("Some GPU, Rev 2", 1024 * MIB)


# --- rocm-smi ------------------------------------------------------------------------------------


def test_amd_one_gpu() -> None:
    assert parse_rocm_smi(fixture("rocm-smi", "one_rx7900xtx_rocm6.json")) == [
        Gpu(
            vendor="amd",
            index=0,
            model="Navi 31 [Radeon RX 7900 XT/7900 XTX/7900M]",
            vram=25753026560,
            uuid="0x3b5f8c1a9d2e7046",
        )
    ]


def test_amd_several_gpus() -> None:
    gpus = parse_rocm_smi(fixture("rocm-smi", "several_mi250x_rocm6.json"))
    assert [g.key for g in gpus] == ["amd:0", "amd:1", "amd:2", "amd:3"]
    assert {g.model for g in gpus} == {"AMD Instinct MI250X"}
    assert {g.vram for g in gpus} == {68702699520}
    assert len({g.uuid for g in gpus}) == 4


def test_amd_older_rocm_spells_keys_in_lower_case() -> None:
    gpus = parse_rocm_smi(fixture("rocm-smi", "several_mixed_rocm5.json"))
    assert [(g.key, g.model, g.vram, g.uuid) for g in gpus] == [
        ("amd:0", "Aldebaran/MI200 [Instinct MI210]", 68702699520, "0x5d1f0a3e8c2b7964"),
        ("amd:1", "Navi 21 GL-XL [Radeon PRO W6800]", 34342961152, ""),
    ]


def test_amd_a_warning_before_the_json() -> None:
    expected = parse_rocm_smi(fixture("rocm-smi", "one_rx7900xtx_rocm6.json"))
    assert parse_rocm_smi(fixture("rocm-smi", "low_power_warning.json")) == expected


@pytest.mark.parametrize("name", ["no_driver.stdout", "no_gpu_json.json"])
def test_amd_no_gpu(name: str) -> None:
    assert parse_rocm_smi(fixture("rocm-smi", name)) == []


def test_amd_ignores_what_is_not_a_card_and_falls_back_to_the_model() -> None:
    text = json.dumps(
        {
            "card3": {"Card Series": "N/A", "Card Model": "0x738c", "VRAM Total Memory (B)": "5"},
            "system": {"Driver version": "6.7.0"},
        }
    )
    assert parse_rocm_smi(text) == [Gpu(vendor="amd", index=3, model="0x738c", vram=5)]


def test_amd_vram_in_other_units() -> None:
    (gpu,) = parse_rocm_smi('{"card0": {"Card Series": "X", "VRAM Total Memory (MiB)": "16"}}')
    assert gpu.vram == 16 * MIB


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("truncated.json", "malformed JSON"),
        ("missing_library.txt", "no JSON object"),
        ("bad_vram.json", "VRAM total"),
    ],
)
def test_amd_unexpected_output(name: str, says: str) -> None:
    with pytest.raises(UnexpectedOutput, match=says):
        parse_rocm_smi(fixture("rocm-smi", name))


@pytest.mark.parametrize("text", ["[1, 2]", '{"card0": "busy"}'])
def test_amd_json_of_the_wrong_shape(text: str) -> None:
    with pytest.raises(UnexpectedOutput):
        parse_rocm_smi(text)


# --- xpu-smi -------------------------------------------------------------------------------------


def test_intel_discovery_one_gpu() -> None:
    assert parse_xpu_smi_discovery(fixture("xpu-smi", "discovery_one.json")) == [
        Gpu(
            vendor="intel",
            index=0,
            model="Intel(R) Data Center GPU Max 1550",
            vram=0,
            uuid="00000000-0000-0029-0000-002f0bd58086",
        )
    ]


def test_intel_discovery_several_gpus() -> None:
    gpus = parse_xpu_smi_discovery(fixture("xpu-smi", "discovery_several.json"))
    assert [(g.key, g.model) for g in gpus] == [
        ("intel:0", "Intel(R) Data Center GPU Max 1550"),
        ("intel:1", "Intel(R) Data Center GPU Max 1100"),
        ("intel:2", "Intel(R) Data Center GPU Flex 170"),
    ]


@pytest.mark.parametrize("name", ["discovery_none_null.json", "discovery_none_empty.json"])
def test_intel_no_gpu(name: str) -> None:
    assert parse_xpu_smi_discovery(fixture("xpu-smi", name)) == []


@pytest.mark.parametrize(
    ("name", "bytes_"),
    [
        ("device_0_max1550.json", 130535980032),
        ("device_1_max1100.json", 51522830336),
        ("device_2_flex170.json", 14602813440),
        ("device_0_numeric_memory.json", 130535980032),
    ],
)
def test_intel_device_memory(name: str, bytes_: int) -> None:
    gpu = parse_xpu_smi_device(fixture("xpu-smi", name))
    assert gpu.vram == bytes_
    assert gpu.model.startswith("Intel(R) Data Center GPU")
    assert gpu.uuid.endswith("8086")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("discovery_error.json", "Level Zero Initialization Error"),
        ("discovery_truncated.json", "malformed JSON"),
    ],
)
def test_intel_discovery_unexpected_output(name: str, says: str) -> None:
    with pytest.raises(UnexpectedOutput, match=says):
        parse_xpu_smi_discovery(fixture("xpu-smi", name))


def test_intel_device_without_memory() -> None:
    with pytest.raises(UnexpectedOutput, match="memory_physical_size_byte"):
        parse_xpu_smi_device(fixture("xpu-smi", "device_0_no_memory.json"))


@pytest.mark.parametrize(
    "text",
    [
        '{"device_list": {"device_id": 0}}',
        '{"device_list": [{"device_id": -1, "device_name": "X"}]}',
        '{"device_list": [{"device_id": 0}]}',
        '{"device_list": [{"device_id": 0, "device_name": "X"}, {"device_id": 0, "device_name": "Y"}]}',
        '{"device_list": ["gpu"]}',
    ],
)
def test_intel_discovery_of_the_wrong_shape(text: str) -> None:
    with pytest.raises(UnexpectedOutput):
        parse_xpu_smi_discovery(text)


# --- anything at all -----------------------------------------------------------------------------

PARSERS = [parse_nvidia_smi, parse_rocm_smi, parse_xpu_smi_discovery, parse_xpu_smi_device]
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
KEYS = st.sampled_from(
    ["card0", "card12", "device_list", "device_id", "device_name", "memory_physical_size_byte"]
)
SHAPED = st.dictionaries(KEYS, JSONISH, max_size=4).map(json.dumps)


@given(text=st.text(max_size=300) | SHAPED)
def test_parsers_raise_only_unexpected_output(text: str) -> None:
    for parse in PARSERS:
        with contextlib.suppress(UnexpectedOutput):
            parse(text)
