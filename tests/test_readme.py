"""The README starts with exactly two commands, and they are the ones the Makefile defines and
CI runs: a newcomer's first step is the maintainers' step."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT


def _commands(block: str) -> list[str]:
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_readme_opens_with_the_two_commands_ci_and_make_use() -> None:
    """Test that the README's first block is `make demo` and `make test` with nothing before it
    but the title, that both are Makefile targets, and that .ci/run runs `make test`."""
    readme = (REPO_ROOT / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert first is not None
    before = readme[: first.start()].strip().splitlines()
    assert len(before) == 1 and before[0].startswith("# "), before
    assert _commands(first.group(1)) == ["make demo", "make test"]

    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"no '{target}' target"
    ci = _commands((REPO_ROOT / ".ci" / "run").read_text())
    assert ci[-1] == "make test", ci
    tests_section = readme[readme.index("## Tests") :]
    block = re.search(r"```bash\n(.*?)```", tests_section, re.S)
    assert block is not None and _commands(block.group(1)) == ["make test"]
