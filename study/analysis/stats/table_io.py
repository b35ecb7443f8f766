"""Reading an analysis input: a DataFrame passes through, a path is read as CSV with a clear error."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_table(source, what: str = "input file") -> pd.DataFrame:
    """A copy of ``source`` if it is a DataFrame, else the CSV at that path; ValueError saying what is wrong."""
    if isinstance(source, pd.DataFrame):
        return source.copy()
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} does not exist; pass the path of a CSV file.")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"could not read {str(path)!r} as CSV: {exc}") from None
    return _undo_formula_guard(table)


def _undo_formula_guard(table: pd.DataFrame) -> pd.DataFrame:
    """The values as stored: the export puts a ``'`` before a text cell that a spreadsheet would run as a
    formula (``study.outputs.export.csv_safe``); the analysis shows the name the study has, not the guarded one."""
    for col in table.columns:
        if table[col].dtype == object:
            table[col] = table[col].map(lambda v: v[1:] if isinstance(v, str) and v[:1] == "'"
                                        and v[1:2] in ("=", "+", "-", "@", "\t", "\r") else v)
    return table
