"""Stack maps (Windows type 12): LIFO of at most max_entries values, no keys.

Same EFW circular map as the queue (queue.py has the facts and the method list), popping and
peeking from the newest end.  When full, a push with BPF_EXIST drops the element at ``begin``,
which for a stack is the **oldest (bottom)** element, not the top: pushing 1, 2, 3 into a stack of
3 and then 4 with BPF_EXIST leaves 4, 3, 2 (pop order).  ``values_in_pop_order()`` is newest
first.
"""
from __future__ import annotations

from .queue import QueueMap


class StackMap(QueueMap):
    """Pop and peek take the newest element (the order lives in ntoslab/native/maps.c)."""
