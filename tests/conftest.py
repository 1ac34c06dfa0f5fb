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


# -- the fake EbpfApi.dll (tests/fakes): the Windows hook's ctypes layer against a real C ABI --

@pytest.fixture(scope="session")
def ebpfapi_library(tmp_path_factory):
    """ebpfapi_library(variant="1.x", exports=None) -> the fake EbpfApi.dll built with gcc (one
    build per export set)."""
    import shutil

    from fakes.ebpfapi import build
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the fake EbpfApi.dll (tests/fakes/ebpfapi_fake.c) "
                    "is compiled by the tests")
    where = tmp_path_factory.mktemp("ebpfapi")
    built: dict = {}

    def get(variant: str = "1.x", exports: frozenset | None = None) -> Path:
        key = (variant, exports)
        if key not in built:
            out = where / f"{len(built)}"
            out.mkdir()
            built[key] = build(out, variant=variant,
                               exports=set(exports) if exports is not None else None)
        return built[key]
    return get


@pytest.fixture
def windows_on_fake(ebpfapi_library, tmp_path, monkeypatch):
    """windows_on_fake(variant="1.x", exports=None, check=False, monitor=None, **fake_options)
    -> (WindowsHook, FakeEbpfApi): the real connector on a fresh fake DLL. At the end every hook
    is closed, and the fake must have seen no misuse and hold no live object, link or ring."""
    from fakes.ebpfapi import FakeEbpfApi

    from ntoslab.connectors.windows import hook as windows_hook
    monkeypatch.setattr(windows_hook, "_is_windows", lambda: True)
    made = []

    def make(variant: str = "1.x", exports: frozenset | None = None, check: bool = False,
             monitor=None, **options):
        fake = FakeEbpfApi(ebpfapi_library(variant, exports), workdir=tmp_path, **options)
        made.append([fake, None])
        hook = windows_hook.WindowsHook(fake.path, check=check, monitor=monitor)
        made[-1][1] = hook
        return hook, fake
    yield make
    problems = []
    for fake, hook in made:
        if hook is not None:
            hook.close()
            problems += [f"left behind: {leak}" for leak in fake.leaks()]
        problems += [f"misuse: {e}" for e in fake.errors]
        fake.close()
    assert not problems, problems
