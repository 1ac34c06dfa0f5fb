"""matplotlib figures: process trees and timelines.

>>> from ntoslab.viz import plot_tree                                         # doctest: +SKIP
>>> plot_tree(ntoslab.analysis.ProcessTree.from_trace(trace))                 # doctest: +SKIP
"""
from .timeline import plot_timeline
from .tree import plot_tree

__all__ = ["plot_timeline", "plot_tree"]
