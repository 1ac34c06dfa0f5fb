"""Shared fixtures: compile small eBPF C programs on the fly."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ntoslab import toolchain

ROOT = Path(__file__).resolve().parent.parent
BPF_INCLUDE = ROOT / "bpf" / "include"
SHARED = ROOT.parent / "shared"
CONFORMANCE_DIR = SHARED / "conformance" / "tests"


@pytest.fixture(scope="session")
def bpf_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bpfobj")


@pytest.fixture(scope="session")
def compile_bpf(bpf_cache):
    """compile_bpf(c_source_text, name="prog") -> Path of the compiled .o (cached per source)."""

    def _compile(source: str, name: str = "prog", include: bool = True) -> Path:
        digest = hashlib.sha1(source.encode()).hexdigest()[:12]
        src = bpf_cache / f"{name}-{digest}.c"
        out = src.with_suffix(".o")
        if not out.exists():
            src.write_text(source)
            toolchain.compile_c(src, out, [BPF_INCLUDE] if include else [])
        return out

    return _compile
