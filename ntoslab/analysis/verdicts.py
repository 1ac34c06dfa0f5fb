"""Which rule fires where: replay verdicts joined with the trace, and what a deny would prevent."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .processes import image_names
from .tree import ProcessTree, as_tree

if TYPE_CHECKING:
    import pandas as pd


def verdict_summary(trace: "pd.DataFrame", verdicts: "pd.DataFrame") -> "pd.DataFrame":
    """Denials per deciding program and image (verdict rows align with trace rows)."""
    import pandas as pd
    if isinstance(trace, ProcessTree):
        trace = trace.trace
    if len(trace) != len(verdicts):
        raise ValueError(f"{len(verdicts)} verdicts for {len(trace)} trace rows: replay the same "
                         f"frame")
    denied = verdicts["denied"].fillna(False).astype(bool).to_numpy()
    joined = pd.DataFrame({"decided_by": verdicts["decided_by"].to_numpy()[denied],
                           "image": image_names(trace["image_path"].iloc[np.flatnonzero(denied)])})
    if joined.empty:
        return pd.DataFrame(columns=["decided_by", "image", "denied"])
    return (joined.groupby(["decided_by", "image"]).size().rename("denied").reset_index()
            .sort_values("denied", ascending=False).reset_index(drop=True))


def prevented(trace: "pd.DataFrame | ProcessTree", verdicts: "pd.DataFrame") -> "pd.DataFrame":
    """For each denied creation: how many processes below it would never have started. Takes a
    trace or its `ProcessTree` (whose trace the verdicts align with)."""
    import pandas as pd
    tree = as_tree(trace)
    frame = tree.trace
    mask = verdicts["denied"].fillna(False).astype(bool).to_numpy()
    creates = (frame["operation"] == "create").fillna(False).to_numpy(bool)
    pos = np.flatnonzero(mask[:len(frame)] & creates)
    keys = frame["process_key"].iloc[pos].tolist()
    names = tree.frame["image"].to_numpy(dtype=object)
    rows = []
    for p, key in zip(pos.tolist(), keys):
        i = tree._find_index(key) if isinstance(key, str) else -1
        below = tree.below(i) if i >= 0 else np.zeros(0, np.int64)
        rows.append({"process_key": key, "process_id": frame["process_id"].iat[p],
                     "image": image_names(frame["image_path"].iloc[[p]])[0],
                     "prevented_descendants": len(below),
                     "prevented_images": ", ".join(sorted(set(names[below].tolist())))})
    return pd.DataFrame(rows, columns=["process_key", "process_id", "image",
                                       "prevented_descendants", "prevented_images"])
