"""docs/operations.md is generated where it lists settings and metrics, and kept up to date;
admin.token, the one setting that is a secret, is validated without being echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatar_mf.cli import config_docs
from avatar_mf.config import ConfigError, iter_settings, load_config

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = REPO / "docs" / "operations.md"


def test_operations_doc_tables_match_the_code() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    assert config_docs.update_document(text) == text, (
        "docs/operations.md is out of date: run "
        "python -m avatar_mf.cli.config_docs --write docs/operations.md"
    )
    assert config_docs.main(["--check", str(OPERATIONS)]) == 0


def test_every_setting_and_metric_has_a_row() -> None:
    from avatar_mf.node.metrics import METRICS

    text = OPERATIONS.read_text(encoding="utf-8")
    for info in iter_settings():
        assert f"| `{info.key_path}` | `{info.env_var}` |" in text
    for spec in METRICS:
        assert f"| `{spec.name}` | {spec.kind} |" in text


def test_write_and_check_a_stale_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "ops.md"
    doc.write_text(
        "intro\n<!-- BEGIN GENERATED: settings -->\nold\n<!-- END GENERATED: settings -->\n"
        "middle\n<!-- BEGIN GENERATED: metrics -->\n<!-- END GENERATED: metrics -->\nend\n"
    )
    assert config_docs.main(["--check", str(doc)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert config_docs.main(["--write", str(doc)]) == 0
    assert config_docs.main(["--check", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("\nend\n")
    assert "| `sip.port` | `AVATAR_MF_SIP__PORT` | integer, 1..65535 | `5060` |" in text
    assert '`"avatar-mf/<version>"`' in text  # the default User-Agent, not this release's
    assert "| `admin.token` | `AVATAR_MF_ADMIN__TOKEN` | string (optional) | unset |" in text
    doc.write_text("no markers\n")
    assert config_docs.main(["--check", str(doc)]) == 1


def test_admin_token_is_validated_and_not_echoed() -> None:
    assert load_config(None, env={}).admin.token is None
    good = "Zm9vYmFy-._~+/=0123456789"
    assert load_config(None, env={"AVATAR_MF_ADMIN__TOKEN": good}).admin.token == good
    for bad in ("short", "has space in it", 'quote"in-it-xx', "x" * 513):
        with pytest.raises(ConfigError) as caught:
            load_config(None, env={"AVATAR_MF_ADMIN__TOKEN": bad})
        [problem] = caught.value.problems
        assert problem.key_path == "admin.token"
        assert bad not in str(problem)
