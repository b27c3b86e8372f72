"""Shared fixtures. Every test gets its own LDMPICK_HOME so the real user folder is never touched, and a pinned
device identity so that no test depends on the CPU model or core count of the machine it runs on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def ldmpick_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("ldmpick_home")
    monkeypatch.setenv("LDMPICK_HOME", str(home))
    monkeypatch.delenv("LDMPICK_PROFILE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(autouse=True)
def fresh_processes_in_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile of a model with weights times the first call of five fresh Python processes (about 10 s each on
    the 2-core machine): in tests they run in this process, through the same code, unless a test is marked
    ``real_fresh_process`` (then one real subprocess is the point)."""
    if request.node.get_closest_marker("real_fresh_process") is not None:
        return
    import json

    from ldmpick.measurement import pipeline_call

    done: dict[str, dict] = {}

    def stand_in(child: dict) -> dict:  # one in-process run per model and request; the others repeat its answer
        key = json.dumps(child, sort_keys=True, default=str)
        if key not in done:
            done[key] = pipeline_call.fresh_first_calls(child)
        return done[key]

    monkeypatch.setattr(pipeline_call, "spawn_fresh_process", stand_in)


# The device identity is the CPU name and the core count (profiles.device.device_key). The shipped reference
# profiles were measured on one machine; a test that relies on "the shipped profile is this device's" would pass
# there and fail anywhere else, so every test runs as that machine unless it asks for another identity.
FOREIGN_CPU = ("Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz", 8)


def shipped_identity() -> tuple[str, int]:
    """The CPU name and core count the shipped CPU reference profiles were measured on (read from them)."""
    devices = {(d["name"], d["cpu_cores"]) for d in
               (json.loads(p.read_text())["device"] for p in (Path(__file__).parent.parent / "profiles").glob("*.json"))
               if d.get("kind") == "cpu"}
    assert len(devices) == 1, f"the shipped CPU profiles come from several machines: {devices}"
    return devices.pop()


def pin_device_identity(monkeypatch: pytest.MonkeyPatch, cpu: str, cores: int) -> None:
    """Make this process look like a machine with ``cpu`` and ``cores`` (no GPU) to everything ldmpick reads."""
    from ldmpick.hardware import fingerprint

    monkeypatch.setattr(fingerprint, "cpu_model", lambda: cpu)
    monkeypatch.setattr(fingerprint, "cpu_cores", lambda: cores)
    monkeypatch.setattr(fingerprint, "_nvml_gpu", lambda index: None)


@pytest.fixture(autouse=True)
def device_identity(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int] | None:
    """Every test runs as the machine the shipped profiles were measured on; ``@pytest.mark.host_device`` keeps the
    real host's identity (the first-run tests, which CI runs again under a foreign identity)."""
    if request.node.get_closest_marker("host_device") is not None:
        return None
    ident = shipped_identity()
    pin_device_identity(monkeypatch, *ident)
    return ident


@pytest.fixture
def foreign_device(monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    """A machine of another CPU model and core count than the shipped profiles': what a new user elsewhere is."""
    pin_device_identity(monkeypatch, *FOREIGN_CPU)
    return FOREIGN_CPU


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two cores shared by several processes: one torch thread is both faster and steadier here (the module's
    tests then run at one thread; the count before is restored)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_unet_config(c: int = 8, levels: int = 2, cross_attention_dim: int = 16) -> dict:
    """A tiny config of the paper family's shape (only the base channel count c changes)."""
    return dict(
        block_out_channels=[c * m for m in (1, 2, 4, 4)[:levels]],
        down_block_types=(["CrossAttnDownBlock2D"] * (levels - 1)) + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + (["CrossAttnUpBlock2D"] * (levels - 1)),
        layers_per_block=1,
        attention_head_dim=2,
        cross_attention_dim=cross_attention_dim,
        in_channels=4,
        out_channels=4,
        norm_num_groups=4,
        sample_size=8,
    )


TINY_TEXT_ENCODER = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=77, vocab_size=1000, hidden_act="quick_gelu")
TINY_VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], layers_per_block=1,
                latent_channels=4, norm_num_groups=4, sample_size=32)


def write_config_folder(root: Path, name: str, c: int = 8) -> Path:
    """A diffusers-style model folder holding configs only (enough for profiling, not for generation)."""
    folder = root / name
    for comp, cfg in (("unet", tiny_unet_config(c, cross_attention_dim=16)), ("text_encoder", TINY_TEXT_ENCODER),
                      ("vae", TINY_VAE)):
        (folder / comp).mkdir(parents=True)
        (folder / comp / "config.json").write_text(json.dumps(cfg))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return folder


@pytest.fixture
def tiny_models(tmp_path: Path) -> tuple[Path, Path]:
    """Two config-only model folders of the same shape: a small one (c=4) and one with much more work (c=48)."""
    return write_config_folder(tmp_path, "tiny-small", c=4), write_config_folder(tmp_path, "tiny-large", c=48)
