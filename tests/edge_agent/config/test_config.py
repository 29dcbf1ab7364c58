"""Agent configuration: the shipped example is valid; mistakes name their key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import load_agent_config
from edge_agent.config.base import Secret
from edge_agent.errors import ConfigError
from tests.conftest import REPO_ROOT

MINIMAL = """
device_id = "dev1"
[[sources]]
kind = "simulator"
id = "m1"
[[models]]
bundle = "b"
source = "m1"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_example_config_is_valid() -> None:
    """Test that examples/agent.toml validates and its bundle paths resolve to the repo models."""
    config = load_agent_config(REPO_ROOT / "examples/agent.toml")
    assert config.device_id == "demo-press-01"
    assert all(m.bundle.resolve().parent == (REPO_ROOT / "models").resolve() for m in config.models)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "colour = 1\n", "colour: Extra inputs are not permitted"),
        (lambda t: t.replace('device_id = "dev1"', 'device_id = "dev/1"'), "device_id: String"),
        (lambda t: t.replace('device_id = "dev1"', 'device_id = "dev+#"'), "device_id: String"),
        (lambda t: t.replace('source = "m1"', 'source = "m2"'), "models.0.source 'm2'"),
        (lambda t: t.replace('id = "m1"', 'id = "m1"\nblock_samples = 0'), "sources.0.simulator"),
        (lambda t: t + '[mqtt]\nhost = "x"\nusername = "u"\n', "username and password"),
        (lambda t: t + "[[models]]\n", "models.1.bundle: Field required"),
        (
            lambda t: t.replace('kind = "simulator"', 'kind = "mqtt"\ntopic = "a/b"'),
            "an mqtt source needs an [mqtt] section",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, edit, message: str) -> None:
    """Test that unknown keys, unsafe ids, dangling references and bad values are named."""
    with pytest.raises(ConfigError) as caught:
        load_agent_config(_write(tmp_path, edit(MINIMAL)))
    assert message in str(caught.value) and "agent.toml" in str(caught.value)


def test_secrets_from_env_and_file_and_never_printed(tmp_path: Path, monkeypatch) -> None:
    """Test that secrets resolve from env or file and their repr/str never shows the value."""
    monkeypatch.setenv("PDM_PASS", "hunter2")
    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret\n")
    assert Secret(env="PDM_PASS").reveal() == "hunter2"
    assert Secret(file=secret_file).reveal() == "s3cret"
    inline = Secret(value="topsecret")
    assert "topsecret" not in repr(inline) and "topsecret" not in str(inline)
    with pytest.raises(ValueError, match="PDM_MISSING is not set"):
        Secret(env="PDM_MISSING").reveal()
    with pytest.raises(ValueError, match="exactly one"):
        Secret(env="A", value="b")


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    """Test that a missing file and broken TOML each give one line naming the file."""
    with pytest.raises(ConfigError, match="config file not found"):
        load_agent_config(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_agent_config(_write(tmp_path, "device_id = "))


def test_full_scale_for_a_channel_the_model_lacks_is_one_line(tmp_path: Path) -> None:
    """Test that `check-config` refuses an input_health.full_scale naming no model channel,
    with one line naming the model and the channels it has (exit 2)."""
    from tests.conftest import agent_config, run_cli

    config = agent_config(
        tmp_path,
        "dev1",
        '[[sources]]\nkind = "simulator"\nid = "m1"',
        [("vibration-fault", "m1")],
        extra="",
    )
    config.write_text(
        config.read_text().replace(
            'source = "m1"', 'source = "m1"\ninput_health.full_scale = { accel_x = [-2, 2] }'
        )
    )
    result = run_cli("check-config", str(config))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "vibration-fault" in lines[0] and "accel_x" in lines[0], lines


def test_an_mqtt_sink_without_spool_dir_takes_the_state_directory(tmp_path: Path) -> None:
    """Test that an MQTT sink with no spool_dir (the template's form) loads, keeps spool_dir
    unset for the state-directory default, and resolves a relative spool_dir against the file."""
    text = MINIMAL + '[mqtt]\nhost = "127.0.0.1"\n[[sinks]]\nkind = "mqtt"\n'
    config = load_agent_config(_write(tmp_path, text))
    assert config.sinks[0].spool_dir is None  # type: ignore[union-attr]
    relative = load_agent_config(_write(tmp_path, text + 'spool_dir = "spool"\n'))
    assert relative.sinks[0].spool_dir == tmp_path / "spool"  # type: ignore[union-attr]
