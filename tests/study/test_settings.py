"""study.storage.settings: the one reader of the server's configuration (environment, then secrets.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

from study.storage import settings

REPO = Path(__file__).resolve().parents[2]


def test_the_real_folder_setting_env_then_secrets_then_none(tmp_path):
    secrets = tmp_path / "secrets.toml"
    assert settings.real_samples_folder({}, secrets) is None  # no file
    secrets.write_text(f'[demo]\nreal_samples = "{tmp_path}"\n')
    assert settings.real_samples_folder({}, secrets) == tmp_path
    other = tmp_path / "other"
    other.mkdir()
    assert settings.real_samples_folder({"REVISION_REAL_SAMPLES": str(other)}, secrets) == other  # env first
    assert settings.real_samples_folder({"REVISION_REAL_SAMPLES": ""}, secrets) is None  # empty: switched off
    assert settings.real_samples_folder({"REVISION_REAL_SAMPLES": str(tmp_path / "absent")}, secrets) is None
    secrets.write_text('[demo]\nreal_samples = "../shared/real"\n')  # relative: from the repository root
    expected = (settings.REPO_ROOT / "../shared/real")
    assert settings.real_samples_folder({}, secrets) == (expected if expected.is_dir() else None)




def test_lookup_env_first_then_secrets_and_where_it_came_from(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[app]\ntimezone = "Europe/Berlin"\n')
    found = settings.lookup("X_TZ", "app", "timezone", environ={}, secrets_path=secrets)
    assert (found.value, found.where) == ("Europe/Berlin", "[app] timezone in .streamlit/secrets.toml")
    found = settings.lookup("X_TZ", "app", "timezone", environ={"X_TZ": "UTC"}, secrets_path=secrets)
    assert (found.value, found.where) == ("UTC", "the environment variable X_TZ")
    assert settings.lookup("X_TZ", "app", "nothing", environ={"X_TZ": "  "}, secrets_path=secrets) is None
    secrets.write_text("[app\n")
    try:
        settings.lookup("X_TZ", "app", "timezone", environ={}, secrets_path=secrets)
    except settings.SecretsUnreadable as exc:
        assert exc.name == "secrets.toml" and exc.reason
    else:
        raise AssertionError("an unreadable secrets.toml must say so")


def test_only_the_settings_module_reads_the_configuration():
    """No other module of study/, pages/ or the server opens secrets.toml or reads a REVISION_* variable."""
    offenders = []
    files = [*(REPO / "study").rglob("*.py"), *(REPO / "pages").glob("*.py"), REPO / "app.py", REPO / "server.py"]
    for path in files:
        if path == REPO / "study" / "storage" / "settings.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                    isinstance(node.value, ast.Name) and node.value.id == "os":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} os.{node.attr}")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("loads", "load") and \
                    getattr(node.func.value, "id", None) == "tomllib" and "secrets" in ast.unparse(node):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} reads secrets.toml")
    assert not offenders, f"read configuration through study.storage.settings: {offenders}"
