"""The one error the ELF loader raises, naming the file and the part of it at fault."""
from __future__ import annotations


class ElfLoadError(ValueError):
    """A malformed, truncated or unsupported eBPF object.

    The message names the file and the section, symbol, relocation or BTF type at fault.
    """

    def __init__(self, path: str, message: str, *, section: str | None = None,
                 symbol: str | None = None) -> None:
        where = [path]
        if section:
            where.append(f"section {section}")
        if symbol:
            where.append(f"symbol {symbol}")
        super().__init__(": ".join(where) + ": " + message)
        self.path = path
        self.section = section
        self.symbol = symbol
