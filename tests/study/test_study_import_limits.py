"""Import limits from data (issue 11, item 1): ``[import]`` in .streamlit/secrets.toml and ``REVISION_IMPORT_*``
override ``study.domain.cases.LIMITS``, each value checked with a message that says what to write; and the folder
import (``import-cases --folder``) and a manifest beside its photographs get the same caps as a ZIP: entry
count, total bytes, per-image pixel budget, and at most 100 problems listed with the count of the rest."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from study.domain import cases
from study.cli import main
from study.storage.models import Case, Study
from tests.study.test_study_cases import _image, _study
from testsupport.studies import committed

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database behaviour here


# --- the settings ------------------------------------------------------------------------------------------

def test_defaults_without_settings(tmp_path):
    assert cases.configured_limits({}, tmp_path / "absent.toml") == cases.LIMITS
    assert cases.LIMITS.max_problems == 100 and cases.LIMITS.max_pixels == 50_000_000


def test_secrets_then_environment_override_the_defaults(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[database]\nurl = "x"\n\n[import]\nmax_rows = 500\nmax_total_bytes = "2 GiB"\n'
                       'max_ratio = 50\nmax_manifest_bytes = 1000000\n')
    got = cases.configured_limits({"REVISION_IMPORT_MAX_ROWS": "1_000", "REVISION_IMPORT_MAX_PIXELS": "4000000",
                                   "PATH": "/bin"}, secrets)
    assert (got.max_rows, got.max_total_bytes, got.max_ratio, got.max_manifest_bytes, got.max_pixels) == (
        1000, 2 * 1024 ** 3, 50.0, 1_000_000, 4_000_000)
    assert got.max_members == cases.LIMITS.max_members  # the rest keep their defaults


@pytest.mark.parametrize("env, expected", [
    ({"REVISION_IMPORT_MAX_ROWS": "-5"}, "REVISION_IMPORT_MAX_ROWS: '-5' is not a valid max_rows: write a positive "
                                         "whole number, e.g. 20000"),
    ({"REVISION_IMPORT_MAX_ROWS": "lots"}, "'lots' is not a valid max_rows"),
    ({"REVISION_IMPORT_MAX_ROWS": "2.5"}, "'2.5' is not a valid max_rows"),
    ({"REVISION_IMPORT_MAX_ROWS": "10 MB"}, "'10 MB' is not a valid max_rows"),  # units only for byte sizes
    ({"REVISION_IMPORT_MAX_TOTAL_BYTES": "4 parsecs"}, "units B, KB, MB, GB, KiB, MiB, GiB"),
    ({"REVISION_IMPORT_MAX_RATIO": "0.5"}, "a number of at least 1"),
    ({"REVISION_IMPORT_MAX_ROW": "5"}, "REVISION_IMPORT_MAX_ROW is not an import limit; the variables are "
                                       "REVISION_IMPORT_MAX_TOTAL_BYTES"),
])
def test_bad_environment_values_say_what_to_write(tmp_path, env, expected):
    with pytest.raises(cases.ImportSettingError) as err:
        cases.configured_limits(env, tmp_path / "absent.toml")
    assert expected in str(err.value) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("toml, expected", [
    ("[import]\nmax_rows = 0\n", "[import] max_rows in secrets.toml: 0 is not a valid max_rows"),
    ("[import]\nmax_rows = true\n", "True is not a valid max_rows"),
    ("[import]\nmax_rows = 1.5\n", "1.5 is not a valid max_rows"),
    ("[import]\nmax_rowz = 10\n", "[import] max_rowz in secrets.toml is not an import limit; the limits are "
                                  "max_total_bytes, max_members"),
    ("import = 5\n", "must be a table ([import])"),
    ("[import\n", "cannot read [import] from secrets.toml"),
])
def test_bad_secrets_values_say_where_and_what(tmp_path, toml, expected):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(toml)
    with pytest.raises(cases.ImportSettingError) as err:
        cases.configured_limits({}, secrets)
    assert expected in str(err.value)


@sqlite_only
def test_importers_use_the_configured_limits_and_the_cli_reports_a_bad_one(Session, db_url, tmp_path, monkeypatch,
                                                                           capsys):
    for i in range(3):
        _image(tmp_path / f"c{i}.png", i)
    (tmp_path / "m.csv").write_text("case_id,image_path,label\n" + "".join(f"c{i},c{i}.png,amd\n" for i in range(3)))
    with Session() as s:
        sid = _study(s).id
    monkeypatch.setenv("REVISION_IMPORT_MAX_ROWS", "2")
    with Session() as s, pytest.raises(cases.ManifestError, match="more than 2 rows, over the limit"):
        committed(cases.import_manifest, s, sid, tmp_path / "m.csv", store_root=tmp_path / "store")
    monkeypatch.setenv("REVISION_IMPORT_MAX_ROWS", "none")
    assert main(["import-cases", str(tmp_path / "m.csv"), "--db", db_url, "--store", str(tmp_path / "store")]) == 2
    assert "REVISION_IMPORT_MAX_ROWS: 'none' is not a valid max_rows" in capsys.readouterr().err
    monkeypatch.delenv("REVISION_IMPORT_MAX_ROWS")
    assert main(["import-cases", str(tmp_path / "m.csv"), "--db", db_url, "--store", str(tmp_path / "store")]) == 0
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 3


# --- the folder import and a manifest beside its photographs get the same caps ---------------------------------

def _folder(root, n, label="amd"):
    (root / label).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _image(root / label / f"{label}{i}.png", i)
    return root


def _sid(s) -> int:
    return s.scalar(select(func.min(Study.id))) or _study(s).id


def _refused(Session, call):
    with Session() as s, pytest.raises(cases.ManifestError) as err:
        call(s, _sid(s))
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0
    return err.value


@sqlite_only
def test_folder_over_the_entry_count_is_refused_while_scanning(Session, tmp_path, monkeypatch):
    folder = _folder(tmp_path / "f", 6)
    monkeypatch.setattr(cases, "_stage_all", lambda *a: pytest.fail("an image was decoded"))
    err = _refused(Session, lambda s, sid: committed(cases.import_folder, s, sid, folder, store_root=tmp_path / "st",
                                                                limits=cases.ImportLimits(max_members=5)))
    assert err.messages() == [".: more than 5 entries, over the limit: split the cases into several folders and "
                              "import them one after another"]
    assert not (tmp_path / "st").exists()


@sqlite_only
def test_folder_and_manifest_over_the_total_size_are_refused_before_decoding(Session, tmp_path, monkeypatch):
    folder = _folder(tmp_path / "f", 3)
    size = sum(p.stat().st_size for p in (folder / "amd").iterdir())
    small = cases.ImportLimits(max_total_bytes=size - 1)
    monkeypatch.setattr(cases, "_stage_all", lambda *a: pytest.fail("an image was decoded"))
    err = _refused(Session, lambda s, sid: committed(cases.import_folder, s, sid, folder, store_root=tmp_path / "st",
                                                                limits=small))
    assert len(err.problems) == 1 and err.problems[0].path == "."
    assert err.problems[0].reason.startswith("the photographs add up to") and "over the" in err.problems[0].reason
    (folder / "manifest.csv").write_text("case_id,image_path,label\n"
                                         + "".join(f"c{i},amd/amd{i}.png,amd\n" for i in range(3)))
    err = _refused(Session, lambda s, sid: committed(cases.import_manifest, s, sid, folder / "manifest.csv",
                                                                  store_root=tmp_path / "st", limits=small))
    assert [str(p) for p in err.problems][0].startswith("row 1, column image_path: the photographs add up to")
    monkeypatch.undo()
    with Session() as s:  # one byte more and it imports
        sid = _sid(s)
        assert len(committed(cases.import_manifest, s, sid, folder / "manifest.csv", store_root=tmp_path / "st",
                                         limits=cases.ImportLimits(max_total_bytes=size))) == 3


@sqlite_only
def test_folder_images_over_the_pixel_budget_are_refused_from_their_header(Session, tmp_path):
    folder = _folder(tmp_path / "f", 2)  # 40 x 32 = 1280 pixels each
    err = _refused(Session, lambda s, sid: committed(cases.import_folder, s, sid, folder, store_root=tmp_path / "st",
                                                                limits=cases.ImportLimits(max_pixels=1000)))
    assert sorted(p.path for p in err.problems) == ["amd/amd0.png", "amd/amd1.png"]
    assert all("1,280 pixels, more than the limit of 1,000" in p.reason for p in err.problems)
    with Session() as s:  # within the budget the same folder imports
        sid = _sid(s)
        assert len(committed(cases.import_folder, s, sid, folder, store_root=tmp_path / "st",
                                       limits=cases.ImportLimits(max_pixels=1280))) == 2


@sqlite_only
def test_folder_problems_stop_at_the_cap_and_count_the_rest(Session, tmp_path, monkeypatch):
    folder = tmp_path / "f"
    (folder / "amd").mkdir(parents=True)
    for i in range(150):
        (folder / "amd" / f"note{i:03d}.txt").write_text("x")  # 150 layout problems
    (folder / "cancer").mkdir()
    _image(folder / "cancer" / "x.png", 1)  # one row problem more: an unknown label
    monkeypatch.setattr(cases, "_stage_all", lambda *a: pytest.fail("images decoded past the problem cap"))
    err = _refused(Session, lambda s, sid: committed(cases.import_folder, s, sid, folder, store_root=tmp_path / "st"))
    assert len(err.problems) == 100 and err.total == 151 and not err.images_checked
    lines = err.messages()
    assert lines[0] == "amd/note000.txt: not an image file type (allowed: .jpg, .jpeg, .png, .tif, .tiff, .dcm)"
    assert lines[-1].startswith("and 51 more problem(s) not listed: fix these and import again")
