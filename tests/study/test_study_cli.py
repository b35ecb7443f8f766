"""The command line drives a study end to end: init, import-cases, add-readers, design, status."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from study.storage import db
from study.domain import readers
from study.cli import main

DEMO = Path(__file__).resolve().parents[2] / "studies" / "demo.toml"


def test_cli_end_to_end(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    lines = ["case_id,image_path,label"]
    for i in range(4):
        Image.fromarray(np.full((16, 16, 3), i * 40, dtype=np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"c{i},{i}.png,{'amd' if i % 2 else 'normal'}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "r.csv").write_text("display_name,years_experience,specialty,site\nDr A,3,retina,X\nDr B,12,,\n")

    assert main(["init", str(DEMO), "--db", url]) == 0
    assert "created study 'ReVision demo crossover'" in capsys.readouterr().out
    assert main(["init", str(DEMO), "--db", url]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["import-cases", str(tmp_path / "m.csv"), "--db", url, "--store", str(tmp_path / "store")]) == 0
    assert "imported 4 case(s)" in capsys.readouterr().out
    assert main(["add-readers", str(tmp_path / "r.csv"), "--db", url]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["pseudonym"], r["level"]) for r in rows] == [("R001", "junior"), ("R002", "senior")]
    assert main(["design", "--db", url]) == 0
    assert "built 16 assignments" in capsys.readouterr().out
    assert main(["design", "--verify", "--db", url]) == 0
    capsys.readouterr()
    assert main(["status", "--json", "--db", url]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["cases"], info["assignments"], info["answers"], info["design_check"]) == (4, 16, 0, 0)
    assert [r["total"] for r in info["readers"]] == [8, 8]
    _engine, Session = db.open_database(url)
    with Session() as s:
        assert readers.authenticate(s, rows[1]["access_code"]).pseudonym == "R002"
    _engine.dispose()


def test_cli_bad_config_reports_every_problem(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = ""\n[design]\ntype = "nope"\n')
    assert main(["init", str(bad), "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"]) == 2
    err = capsys.readouterr().err
    assert "[study] name" in err and "[design] type" in err
