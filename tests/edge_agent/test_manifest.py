"""The manifest schema: exported JSON Schema stays in sync with the pydantic model."""

from __future__ import annotations

import json

from edge_agent.manifest import json_schema
from tests.conftest import REPO_ROOT


def test_committed_json_schema_is_current() -> None:
    """Test that docs/schemas/manifest.schema.json equals what the code exports."""
    committed = json.loads((REPO_ROOT / "docs/schemas/manifest.schema.json").read_text())
    assert committed == json_schema(), (
        "run: python -m edge_agent.manifest > docs/schemas/manifest.schema.json"
    )


def test_schema_forbids_unknown_keys_everywhere() -> None:
    """Test that every object in the exported schema forbids additional properties."""
    schema = json_schema()
    objects = [schema, *schema["$defs"].values()]
    for definition in objects:
        if definition.get("type") == "object" and "properties" in definition:
            assert definition.get("additionalProperties") is False, definition.get("title")


def test_reference_must_cover_exactly_the_model_channels() -> None:
    """Test that a manifest whose training reference names other channels is refused."""
    import pytest
    from pydantic import ValidationError

    from edge_agent.manifest import Manifest

    data = json.loads((REPO_ROOT / "models/vibration-fault/manifest.json").read_text())
    Manifest.model_validate(data)
    data["input"]["reference"]["accel_x"] = data["input"]["reference"].pop("ax")
    with pytest.raises(ValidationError, match="reference channels"):
        Manifest.model_validate(data)
