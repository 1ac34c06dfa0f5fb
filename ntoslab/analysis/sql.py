"""SQL over traces: DuckDB queries the DataFrames (or Parquet files) in place, without copying
them into a database.

Tables are named by keyword: a DataFrame, a `ProcessTree` (its linked frame, one row per
process: `process_key`, `parent_key`, `parent`, `image`, `start`, `end`, `exit_code`, ...),
or a path to a Parquet trace. `trace=` is the usual one.

>>> sql("SELECT image_path, count(*) AS n FROM trace GROUP BY 1 ORDER BY n DESC", trace=frame)  # doctest: +SKIP
>>> sql("SELECT * FROM processes WHERE image = 'rundll32.exe'", processes=tree)               # doctest: +SKIP
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sql(query: str, **tables: Any) -> "pd.DataFrame":
    """Run `query` (DuckDB SQL) over the given tables; the result as a DataFrame."""
    import duckdb

    from .tree import ProcessTree
    con = duckdb.connect()
    try:
        for name, obj in tables.items():
            if not _NAME.match(name):
                raise ValueError(f"table name {name!r} is not an SQL identifier")
            if isinstance(obj, ProcessTree):
                con.register(name, obj.frame)
            elif isinstance(obj, (str, Path)):
                path = Path(obj)
                if not path.exists():
                    raise FileNotFoundError(f"{path}: no such file (table {name!r})")
                con.read_parquet(str(path)).create_view(name)
            else:
                con.register(name, obj)
        try:
            return con.execute(query).df()
        except duckdb.Error as exc:
            raise ValueError(f"SQL error: {exc}") from None
    finally:
        con.close()
