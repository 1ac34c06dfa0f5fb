"""Which rule fires where: replay verdicts joined with the trace, and what a deny would prevent."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .tree import ProcessTree, image_name

if TYPE_CHECKING:
    import pandas as pd


def verdict_summary(trace: "pd.DataFrame", verdicts: "pd.DataFrame") -> "pd.DataFrame":
    """Denials per deciding program and image (verdict rows align with trace rows)."""
    import pandas as pd
    if len(trace) != len(verdicts):
        raise ValueError(f"{len(verdicts)} verdicts for {len(trace)} trace rows: replay the same "
                         f"frame")
    joined = trace.reset_index(drop=True).assign(
        image=lambda f: f["image_path"].map(image_name),
        denied=verdicts["denied"].fillna(False).astype(bool).values,
        decided_by=verdicts["decided_by"].values)
    denied = joined[joined["denied"]]
    if denied.empty:
        return pd.DataFrame(columns=["decided_by", "image", "denied"])
    return (denied.groupby(["decided_by", "image"]).size().rename("denied").reset_index()
            .sort_values("denied", ascending=False).reset_index(drop=True))


def prevented(trace: "pd.DataFrame", verdicts: "pd.DataFrame") -> "pd.DataFrame":
    """For each denied creation: how many processes below it would never have started."""
    import pandas as pd
    tree = ProcessTree.from_trace(trace)
    rows = []
    mask = verdicts["denied"].fillna(False).astype(bool).values
    for row, denied in zip(trace.to_dict("records"), mask):
        if not denied or row.get("operation") != "create":
            continue
        key = row.get("process_key")
        below = tree.descendants(key) if key in tree else []
        rows.append({"process_key": key, "process_id": row.get("process_id"),
                     "image": image_name(row.get("image_path")), "prevented_descendants": len(below),
                     "prevented_images": ", ".join(sorted({tree.nodes[k].name for k in below}))})
    return pd.DataFrame(rows, columns=["process_key", "process_id", "image",
                                       "prevented_descendants", "prevented_images"])
