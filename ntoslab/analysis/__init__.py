"""Behavioural analysis of process traces: trees, lifetimes, pairs, commands, verdicts.

>>> from ntoslab.analysis import ProcessTree                                # doctest: +SKIP
>>> print(ProcessTree.from_trace(trace).render(max_depth=4))                # doctest: +SKIP

Every analysis takes the trace or its `ProcessTree` (the linked frame, built once and shared):
>>> tree = ProcessTree.from_trace(trace); rare_pairs(tree); lifetimes(tree)  # doctest: +SKIP
>>> sql("SELECT image, count(*) FROM processes GROUP BY 1", processes=tree)  # doctest: +SKIP
"""
from .commands import LOLBINS, lolbin_table, suspicious_commands, suspicious_reasons
from .lifetimes import EXIT_CODE_NAMES, exit_code_name, exit_code_summary, lifetimes
from .pairs import parent_child_pairs, rare_pairs
from .sql import sql
from .tree import ProcessTree, image_name
from .verdicts import prevented, verdict_summary

__all__ = ["EXIT_CODE_NAMES", "LOLBINS", "ProcessTree", "exit_code_name", "exit_code_summary",
           "image_name", "lifetimes", "lolbin_table", "parent_child_pairs", "prevented", "sql",
           "rare_pairs", "suspicious_commands", "suspicious_reasons", "verdict_summary"]
