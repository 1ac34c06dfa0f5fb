"""Widgets for the lab (ipywidgets), each usable alone, each with a static HTML face.

>>> from ntoslab.widgets import Injector, LiveTable, MapInspector, DebuggerWidget   # doctest: +SKIP
>>> Injector(hook)                                                                   # doctest: +SKIP
"""
from .debugger import DebuggerWidget
from .injector import Injector
from .live import LiveTable
from .maps import MapInspector

__all__ = ["DebuggerWidget", "Injector", "LiveTable", "MapInspector"]
