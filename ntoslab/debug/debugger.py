"""A step debugger over one program run: breakpoints on source lines or pcs, step an
instruction, step a source line (into calls), step over calls, finish a function, continue; the
source with the current line, the disassembly around pc, the registers with the region each
pointer falls in, the stack frame and any region's bytes.

Plain Python (the widget in `ntoslab.widgets.debugger` drives the same object):

>>> dbg = ntoslab.debug.debug(hook, event, "DenyPolicy")     # doctest: +SKIP
>>> dbg.break_at("deny_policy.c:79"); dbg.cont(); dbg.registers()   # doctest: +SKIP
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..display import table_html
from ..isa import opcodes as op
from ..isa.disasm import format_insn, jump_target
from ..vm.memory import Region
from .stepper import Stepper

STEP_LIMIT = 1_000_000   # a line step / continue gives up (and says so) after this many steps


@dataclass(frozen=True)
class Stop:
    """Why the debugger stopped where it did."""

    reason: str            # entry | step | line | return | breakpoint | fault | exit | limit
    pc: int
    program: str
    where: str | None      # "file.c:12: text" when the program has line info
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.reason} at {self.program} pc {self.pc}"
        if self.where:
            text += f" ({self.where})"
        return text + (f": {self.detail}" if self.detail else "")


class Debugger:
    """Debug one run. Build it with `ntoslab.debug.debug(hook, event)`, `debug_sandbox(...)`
    or `Debugger.for_code(code, machine, args)`; it starts stopped at the first instruction."""

    def __init__(self, stepper: Stepper, on_done: Callable[[], Any] | None = None,
                 title: str = "") -> None:
        self.stepper = stepper
        self.title = title
        self._on_done = on_done
        self._done_reported = False
        self.breakpoints: dict[tuple[str, int], str] = {}   # (program, pc) -> how it was given
        self.outcome: Any = None          # what the run's caller produced (e.g. the verdict)
        self.stop = self._stop("entry")

    @classmethod
    def for_code(cls, code, machine, args: Iterable[int] = (), budget: int = 1_000_000,
                 title: str = "") -> "Debugger":
        """A debugger over `code` run directly on `machine` (no hook, no sandbox)."""
        return cls(Stepper(code, machine, list(args), budget), title=title)

    # -- where we are --------------------------------------------------------------------------
    @property
    def code(self):
        return self.stepper.code

    @property
    def pc(self) -> int:
        return self.stepper.pc

    @property
    def regs(self) -> tuple[int, ...]:
        return self.stepper.regs

    @property
    def done(self) -> bool:
        return self.stepper.done

    @property
    def fault(self):
        return self.stepper.fault

    @property
    def result(self):
        return self.stepper.result

    @property
    def verdict(self):
        """What the run's caller returned (the hook's Verdict) once the program has ended; None
        before. Asking lets the held run finish (its context is then unmapped)."""
        if self.done:
            self._finished()
        return self.outcome

    @property
    def memory(self):
        return self.stepper.machine.memory

    def line_at(self, pc: int | None = None):
        """The SourceLine in force at `pc` (default: the current pc), or None."""
        fn = getattr(self.code, "source_line", None)
        return fn(self.pc if pc is None else pc) if fn else None

    def _line_key(self, pc: int) -> tuple[str, int] | None:
        line = self.line_at(pc)
        return (line.file, line.line) if line is not None and line.line else None

    def _stop(self, reason: str, detail: str = "") -> Stop:
        line = self.line_at()
        if reason == "exit" and self.result is not None:
            detail = detail or f"r0 = {self.result.r0:#x} ({op.sign32(self.result.r0)}), " \
                               f"{self.result.instructions} instructions"
        if reason == "fault" and self.fault is not None:
            detail = detail or f"{self.fault.kind}: {self.fault.detail}"
        self.stop = Stop(reason, self.pc, self.code.name, str(line) if line else None, detail)
        return self.stop

    # -- breakpoints ---------------------------------------------------------------------------
    def pcs_for_line(self, line: int, file: str | None = None) -> list[int]:
        """The pcs where source line `line` (of `file`: a path, or its end) starts."""
        lines = getattr(self.code, "lines", None) or []
        if not lines:
            raise ValueError(f"{self.code.name}: the program has no line info (compile with -g)")
        mine = [(pc, sl) for pc, sl in lines if file is None or sl.file == file
                or sl.file.endswith("/" + file)]
        if not mine:
            files = sorted({Path(sl.file).name for _, sl in lines})
            raise ValueError(f"{self.code.name}: no code from {file}; its files: {', '.join(files)}")
        pcs = [pc for pc, sl in mine if sl.line == line]
        if not pcs:
            have = sorted({sl.line for _, sl in mine})
            raise ValueError(f"{self.code.name}: no code at line {line}"
                             + (f" of {file}" if file else "")
                             + f"; lines with code: {_ranges(have)}")
        return pcs

    def break_at(self, where: int | str) -> list[int]:
        """Set a breakpoint: `"pc 40"` or an int pc, `"12"` or `"file.c:12"` (a source line).
        Returns the pcs it covers."""
        text = str(where).strip()
        n = len(self.code.insns)
        if isinstance(where, int) or text.lower().startswith("pc"):
            try:
                pc = where if isinstance(where, int) else int(text[2:].strip(" :="), 0)
            except ValueError:
                raise ValueError(f"breakpoint {where!r}: expected 'pc N'") from None
            if not 0 <= pc < n:
                raise ValueError(f"breakpoint pc {pc} is outside {self.code.name} (0..{n - 1})")
            pcs = [pc]
            label = f"pc {pc}"
        else:
            file, _, num = text.rpartition(":")
            try:
                line = int(num)
            except ValueError:
                raise ValueError(f"breakpoint {where!r}: expected a line number, 'file.c:LINE' "
                                 f"or 'pc N'") from None
            pcs = self.pcs_for_line(line, file or None)
            label = text
        for pc in pcs:
            self.breakpoints[(self.code.name, pc)] = label
        return pcs

    def clear(self, where: int | str | None = None) -> None:
        """Remove one breakpoint (as given to break_at), or all of them."""
        if where is None:
            self.breakpoints.clear()
            return
        pcs = set(self.break_at(where))   # resolve it the same way, then drop what it covers
        for pc in pcs:
            self.breakpoints.pop((self.code.name, pc), None)

    def _at_breakpoint(self, prev_pc: int, prev_line, prev_code) -> bool:
        label = self.breakpoints.get((self.code.name, self.pc))
        if label is None:
            return False
        if label.startswith("pc"):
            return True
        # a line breakpoint fires when the line is entered, not on each of its instructions
        return (self.code is not prev_code or prev_line != self._line_key(self.pc)
                or self.pc <= prev_pc)

    # -- moving --------------------------------------------------------------------------------
    def _run(self, until: Callable[[int, Any, Any, int], str | None], breakpoints: bool = True,
             limit: int = STEP_LIMIT) -> Stop:
        if self.done:
            return self._stop("fault" if self.fault else "exit")
        s = self.stepper
        for _ in range(limit):
            prev_pc, prev_code, prev_depth = s.pc, s.code, s.depth
            prev_line = self._line_key(prev_pc)
            s.step()
            if s.done:       # the run is held here (regions still mapped) until `verdict`/close()
                return self._stop("fault" if s.fault else "exit")
            if breakpoints and self._at_breakpoint(prev_pc, prev_line, prev_code):
                return self._stop("breakpoint", self.breakpoints[(self.code.name, self.pc)])
            reason = until(prev_pc, prev_line, prev_code, prev_depth)
            if reason:
                return self._stop(reason)
        return self._stop("limit", f"still running after {limit} instructions")

    def stepi(self, n: int = 1) -> Stop:
        """Execute `n` instructions (stopping early at a fault, the end or a breakpoint)."""
        left = [n]

        def until(*_):
            left[0] -= 1
            return "step" if left[0] <= 0 else None
        return self._run(until)

    def step(self) -> Stop:
        """Run to the next source line, entering calls (instruction steps without line info)."""
        return self._to_next_line(over=False)

    def next(self) -> Stop:
        """Run to the next source line of this function; calls run through (step over)."""
        return self._to_next_line(over=True)

    def _to_next_line(self, over: bool) -> Stop:
        start, depth, code = self._line_key(self.pc), self.stepper.depth, self.code
        if start is None:
            return self._step_over_insn() if over else self.stepi()

        def until(*_):
            now_depth = self.stepper.depth
            if self.code is not code:          # a tail call (or a return into another program)
                return "return" if over else "line"
            if over and now_depth != depth:    # returned from this function, or inside a callee
                return "return" if now_depth < depth else None
            now = self._line_key(self.pc)
            if now is not None and (now != start or now_depth != depth):
                return "line"
            return None
        return self._run(until)

    def _step_over_insn(self) -> Stop:
        insn = self.code.insns[self.pc]
        if insn.opcode == op.OP_CALL and insn.src == op.CALL_LOCAL:
            depth, code = self.stepper.depth, self.code
            return self._run(lambda *_: "step" if self.stepper.depth <= depth or
                             self.code is not code else None)
        return self.stepi()

    def finish(self) -> Stop:
        """Run until the current function returns to its caller (or the program ends)."""
        depth, code = self.stepper.depth, self.code
        return self._run(lambda *_: "return" if self.stepper.depth < depth or
                         self.code is not code else None)

    def cont(self, breakpoints: bool = True) -> Stop:
        """Run to the next breakpoint, a fault or the end."""
        return self._run(lambda *_: None, breakpoints)

    def run_to_fault(self) -> Stop:
        """Run to the end ignoring breakpoints: stops at the faulting instruction if any."""
        return self.cont(breakpoints=False)

    def close(self) -> None:
        """Let the run finish (no breakpoints), so the hook that ran it is left consistent."""
        if not self.done:
            self.cont(breakpoints=False)
        self._finished()

    def _finished(self) -> None:
        if not self._done_reported:
            self._done_reported = True
            if self._on_done is not None:
                self.outcome = self._on_done()

    # -- what there is to see ------------------------------------------------------------------
    def describe_value(self, value: int) -> str:
        """The region a value points into ('stack frame 0 + 504'), or ''."""
        mem = self.memory
        r = mem.region_at(value)
        if r is not None:
            return f"{r.name} + {value - r.base}"
        r = mem.region_at(value - 1) if value else None
        if r is not None and value == r.end:
            return f"end of {r.name}"
        return ""

    def registers(self) -> list[dict[str, Any]]:
        """r0..r10: hex, signed 64-bit, and the region the value points into."""
        rows = []
        for i, v in enumerate(self.regs):
            rows.append({"reg": f"r{i}", "hex": f"{v:#x}",
                         "signed": v - (1 << 64) if v >> 63 else v,
                         "points to": self.describe_value(v)})
        return rows

    def disassembly(self, around: int = 6) -> list[dict[str, Any]]:
        """Instructions around pc: pc, text, jump/call target, source line, markers."""
        insns = self.code.insns
        lo, hi = max(0, self.pc - around), min(len(insns), self.pc + around + 1)
        rows = []
        second = {i + 1 for i, ins in enumerate(insns) if ins.opcode == op.OP_LDDW}
        for pc in range(lo, hi):
            if pc in second:
                continue
            insn = insns[pc]
            helper = insn.opcode == op.OP_CALL and insn.src != op.CALL_LOCAL
            target = None if helper else jump_target(insn, pc)
            line = self.line_at(pc)
            rows.append({"pc": pc, "text": format_insn(insns[pc], pc),
                         "target": target, "line": line.line if line else None,
                         "current": pc == self.pc,
                         "breakpoint": (self.code.name, pc) in self.breakpoints})
        return rows

    def source(self, context: int = 6) -> list[dict[str, Any]]:
        """Source lines around the current one (the file when readable, else the lines the
        object's line info carries): number, text, current, has_code, breakpoint."""
        line = self.line_at()
        if line is None:
            return []
        known = {sl.line: sl.text for _, sl in getattr(self.code, "lines", []) if sl.file == line.file}
        text = _read_lines(line.file)
        bp_lines = {self.line_at(pc).line for (name, pc) in self.breakpoints
                    if name == self.code.name and self.line_at(pc) is not None
                    and self.line_at(pc).file == line.file}
        rows = []
        for n in range(max(1, line.line - context), line.line + context + 1):
            if text is not None:
                if n > len(text):
                    break
                body = text[n - 1]
            elif n in known:
                body = known[n]
            else:
                continue
            rows.append({"line": n, "text": body, "current": n == line.line,
                         "has_code": n in known, "breakpoint": n in bp_lines})
        return rows

    def stack_slots(self) -> list[dict[str, Any]]:
        """The current stack frame as 8-byte slots below r10 that hold anything but zero."""
        stack = self.stepper.stack
        data = bytes(stack.data)
        rows = []
        for off in range(len(data) - 8, -1, -8):
            word = data[off:off + 8]
            if any(word):
                v = int.from_bytes(word, "little")
                rows.append({"slot": f"r10 - {len(data) - off}", "hex": word.hex(" "),
                             "u64": f"{v:#x}", "points to": self.describe_value(v)})
        return rows

    def regions(self) -> list[Region]:
        """Every region the program can touch now (stack frames, context, maps, buffers)."""
        return [r for r in self.memory.regions if len(r)]

    def region(self, which: str | int) -> Region:
        """A region by name or by an address inside it."""
        if isinstance(which, int):
            r = self.memory.region_at(which)
            if r is None:
                raise ValueError(f"{which:#x} is in no region")
            return r
        for r in self.memory.regions:
            if r.name == which:
                return r
        raise ValueError(f"no region {which!r}; regions: "
                         + ", ".join(r.name for r in self.regions()))

    def hexdump(self, which: str | int, size: int = 256, offset: int = 0) -> str:
        """`size` bytes of a region (by name or address) as a hex dump."""
        r = self.region(which)
        if isinstance(which, int):
            offset += which - r.base
        return hexdump(bytes(r.data[offset:offset + size]), r.base + offset)

    # -- display -------------------------------------------------------------------------------
    def __repr__(self) -> str:
        lines = [f"<Debugger {self.title or self.code.name}: {self.stop}>"]
        for row in self.source(2):
            mark = "=>" if row["current"] else "  "
            lines.append(f"  {mark} {row['line']:4d}  {row['text']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return render_panel(self)


# -- helpers shared with the widget ---------------------------------------------------------------

def _ranges(nums: list[int]) -> str:
    out: list[str] = []
    start: int | None = None
    prev: int | None = None
    for n in [*nums, None]:
        if start is not None and prev is not None and (n is None or n != prev + 1):
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return ", ".join(out)


_FILE_CACHE: dict[str, tuple[int, list[str] | None]] = {}


def _read_lines(path: str) -> list[str] | None:
    p = Path(path)
    try:
        mtime = p.stat().st_mtime_ns
    except OSError:
        return None
    hit = _FILE_CACHE.get(path)
    if hit is None or hit[0] != mtime:
        try:
            hit = (mtime, p.read_text(errors="replace").splitlines())
        except OSError:
            hit = (mtime, None)
        _FILE_CACHE[path] = hit
    return hit[1]


def hexdump(data: bytes, base: int = 0, width: int = 16) -> str:
    lines = []
    for i in range(0, len(data), width):
        chunk = data[i:i + width]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{base + i:#014x}  {chunk.hex(' '):<{width * 3}} {text}")
    return "\n".join(lines)


_CSS = ("<style>.ntl-dbg table{border-collapse:collapse;line-height:1.25}"
        ".ntl-dbg td,.ntl-dbg th{padding:1px 6px;text-align:left;font-family:monospace;"
        "font-size:12px;line-height:1.25}.ntl-dbg .cur{background:#ffe58a}.ntl-dbg .bp{color:#c00}"
        ".ntl-dbg pre{margin:0;font-size:12px}.ntl-dbg .flt{color:#b00;font-weight:bold}</style>")


def render_source(dbg: Debugger, context: int = 6) -> str:
    rows = dbg.source(context)
    if not rows:
        return "<i>no line info for this program</i>"
    line = dbg.line_at()
    body = "".join(
        f"<tr class='{'cur' if r['current'] else ''}'><td class='bp'>{'●' if r['breakpoint'] else ''}"
        f"</td><td>{r['line']}</td><td>{'→' if r['current'] else ''}</td>"
        f"<td><pre>{html.escape(r['text'])}</pre></td></tr>" for r in rows)
    return (f"<div class='ntl-src'><b>{html.escape(Path(line.file).name)}</b>"
            f"<table>{body}</table></div>")


def render_disassembly(dbg: Debugger, around: int = 6) -> str:
    body = "".join(
        f"<tr class='{'cur' if r['current'] else ''}'><td class='bp'>{'●' if r['breakpoint'] else ''}"
        f"</td><td>{r['pc']}</td><td>{html.escape(r['text'])}"
        f"{' → ' + str(r['target']) if r['target'] is not None else ''}</td>"
        f"<td>{'' if r['line'] is None else 'line ' + str(r['line'])}</td></tr>"
        for r in dbg.disassembly(around))
    return f"<table class='ntl-dis'>{body}</table>"


def render_registers(dbg: Debugger) -> str:
    return table_html(dbg.registers())


def render_stack(dbg: Debugger) -> str:
    frames = " ← ".join([f"{f.code.name} (returns to pc {f.return_pc})" for f in
                         dbg.stepper.frames][::-1])
    head = f"<div>frame {dbg.stepper.depth}{': called from ' + html.escape(frames) if frames else ''}</div>"
    return head + table_html(dbg.stack_slots(), empty="the stack frame is all zeros")


def render_status(dbg: Debugger) -> str:
    s = dbg.stop
    cls = "flt" if s.reason == "fault" else ""
    text = html.escape(str(s))
    if s.reason == "fault" and dbg.fault is not None:
        text = html.escape(str(dbg.fault))
    return f"<div class='{cls}'><pre>{text}</pre></div>"


def render_panel(dbg: Debugger) -> str:
    """The whole debugger view as static HTML (reports, and the widget's panes)."""
    return (f"{_CSS}<div class='ntl-dbg'><b>Debugger</b> {html.escape(dbg.title or dbg.code.name)}"
            f"{render_status(dbg)}<div style='display:flex;gap:16px;flex-wrap:wrap'>"
            f"<div>{render_source(dbg)}</div><div><b>disassembly</b>{render_disassembly(dbg)}</div>"
            f"<div><b>registers</b>{render_registers(dbg)}</div>"
            f"<div><b>stack</b>{render_stack(dbg)}</div></div></div>")
