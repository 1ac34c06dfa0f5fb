"""The eBPF toolchain: compiler choice, objects with BTF, incremental builds, `ntoslab build`."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from ntoslab import toolchain
from ntoslab.cli import main

EM_BPF = 247

PROGRAM = """\
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"
#include "local.h"

SEC("process") int Prog(process_md_t* ctx) { return LOCAL_VALUE + (int)ctx->process_id; }
"""


def sections(path: Path) -> dict[str, int]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] in ("EM_BPF", EM_BPF)
        assert elf.little_endian
        return {s.name: s["sh_size"] for s in elf.iter_sections()}


def make_tree(root: Path, value: int = 1) -> Path:
    """root/bpf/{prog.c, sub/other.c, include/local.h, include/ignored.c}."""
    bpf = root / "bpf"
    (bpf / "include").mkdir(parents=True)
    (bpf / "sub").mkdir()
    (bpf / "include" / "local.h").write_text(f"#define LOCAL_VALUE {value}\n")
    (bpf / "include" / "ignored.c").write_text("this is not C and must never be compiled\n")
    (bpf / "prog.c").write_text(PROGRAM)
    (bpf / "sub" / "other.c").write_text(
        '#include "bpf_helpers.h"\nSEC("process") int Other(void* ctx) { return 2; }\n')
    return bpf


def age(obj: Path, than: Path) -> None:
    """Make `obj` clearly older than `than`, as if `than` was edited after the build (file-system
    clocks may be coarse, and edits in the same test run fall within one tick)."""
    t = than.stat().st_mtime_ns - 2_000_000_000
    os.utime(obj, ns=(t, t))


def test_compiler_is_found_and_described():
    comp = toolchain.find_compiler()
    assert comp.name in ("clang", "ziglang")
    if comp.name == "clang":
        assert int(comp.version.split(".")[0]) >= toolchain.MIN_CLANG
        assert comp.command[1:] == ("-target", "bpf", "-ffreestanding")
    else:
        assert comp.command[-2:] == ("-target", "bpfel-freestanding-none")
    info = toolchain.compiler_info()
    assert comp.name in info and comp.version in info


def test_compile_gives_btf_and_no_unwind_tables(tmp_path):
    bpf = make_tree(tmp_path)
    out = toolchain.compile_c(bpf / "prog.c", tmp_path / "out" / "prog.o", [bpf / "include"])
    assert out == tmp_path / "out" / "prog.o"
    secs = sections(out)
    assert secs[".BTF"] > 0 and secs[".BTF.ext"] > 0
    assert "process" in secs and secs["process"] % 8 == 0
    assert ".ebpf_for_windows" in secs
    assert ".eh_frame" not in secs
    assert ".debug_line" in secs  # -g keeps line info for the debugger


def test_default_output_is_beside_source(tmp_path):
    bpf = make_tree(tmp_path)
    assert toolchain.compile_c(bpf / "sub" / "other.c") == bpf / "sub" / "other.o"
    assert (bpf / "sub" / "other.o").exists()


def test_compile_error_is_the_compilers_text(tmp_path):
    src = tmp_path / "bad.c"
    src.write_text("int f(void) { return 1 +; }\n")
    with pytest.raises(toolchain.BuildError) as info:
        toolchain.compile_c(src, tmp_path / "bad.o")
    direct = subprocess.run(toolchain.command_line(src, tmp_path / "bad.o"),
                            capture_output=True, text=True)
    assert direct.returncode != 0
    assert str(info.value) == direct.stderr
    assert "expected expression" in str(info.value)
    assert not (tmp_path / "bad.o").exists()


def test_missing_source(tmp_path):
    with pytest.raises(toolchain.BuildError, match="no such file"):
        toolchain.compile_c(tmp_path / "nope.c")


def test_build_tree_is_incremental(tmp_path):
    bpf = make_tree(tmp_path)
    inc = [bpf / "include"]
    first = toolchain.build_tree(bpf, inc)
    names = sorted(p.name for p in first.built)
    assert names == ["other.c", "prog.c"], first
    assert not first.failed and not first.skipped
    assert not (bpf / "include" / "ignored.o").exists()
    assert (bpf / "prog.d").exists()

    again = toolchain.build_tree(bpf, inc)
    assert again.built == [] and len(again.skipped) == 2

    # a header only prog.c includes: only prog.c is rebuilt
    (bpf / "include" / "local.h").write_text("#define LOCAL_VALUE 7\n")
    age(bpf / "prog.o", bpf / "include" / "local.h")
    third = toolchain.build_tree(bpf, inc)
    assert [p.name for p in third.built] == ["prog.c"]
    assert [p.name for p in third.skipped] == ["other.c"]

    # the source itself
    (bpf / "sub" / "other.c").write_text((bpf / "sub" / "other.c").read_text() + "\n")
    age(bpf / "sub" / "other.o", bpf / "sub" / "other.c")
    assert [p.name for p in toolchain.build_tree(bpf, inc).built] == ["other.c"]

    # a different command (another include path) rebuilds everything; force too
    extra = tmp_path / "extra"
    extra.mkdir()
    assert len(toolchain.build_tree(bpf, [*inc, extra]).built) == 2
    assert len(toolchain.build_tree(bpf, [*inc, extra], force=True).built) == 2


def test_build_tree_reports_failures_and_retries(tmp_path):
    bpf = make_tree(tmp_path)
    (bpf / "broken.c").write_text("int x = ;\n")
    report = toolchain.build_tree(bpf, [bpf / "include"])
    assert [p.name for p in report.failed] == ["broken.c"]
    assert "broken.c:1:" in report.failed[bpf / "broken.c"]
    assert not report.ok
    again = toolchain.build_tree(bpf, [bpf / "include"])
    assert [p.name for p in again.failed] == ["broken.c"]  # failures are never "up to date"


# --- the command line ------------------------------------------------------------------------

def test_cli_build_error_reaches_user_verbatim(tmp_path, capsys):
    src = tmp_path / "bad.c"
    src.write_text('#include "bpf_helpers.h"\nSEC("process") int f(void* c) { return undefined_name; }\n')
    rc = main(["build", str(src)])
    err = capsys.readouterr().err
    assert rc != 0
    direct = subprocess.run(toolchain.command_line(src, src.with_suffix(".o")),
                            capture_output=True, text=True)
    assert err == direct.stderr
    assert "undefined_name" in err


def test_cli_build_one_file_and_output(tmp_path, capsys):
    bpf = make_tree(tmp_path)
    assert main(["build", str(bpf / "prog.c"), "-I", str(bpf / "include"),
                 "-o", str(tmp_path / "x.o")]) == 0
    assert ".BTF" in sections(tmp_path / "x.o")
    assert main(["build", str(bpf / "sub" / "other.c")]) == 0
    assert (bpf / "sub" / "other.o").exists()
    assert "other.o" in capsys.readouterr().out


def test_cli_output_needs_one_file(tmp_path, capsys):
    bpf = make_tree(tmp_path)
    rc = main(["build", str(bpf / "prog.c"), str(bpf / "sub" / "other.c"), "-o", "x.o"])
    assert rc == 2
    assert "-o" in capsys.readouterr().err


def test_cli_build_tree_in_current_directory(tmp_path, capsys, monkeypatch):
    bpf = make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["build", "-I", "bpf/include"]) == 0
    out = capsys.readouterr().out
    assert "2 built" in out
    assert (bpf / "prog.o").exists() and (bpf / "sub" / "other.o").exists()
    assert main(["build", "-I", "bpf/include"]) == 0
    assert "0 built, 2 up to date" in capsys.readouterr().out
    (bpf / "bad.c").write_text("int x = ;\n")
    assert main(["build", "-I", "bpf/include"]) == 1
    captured = capsys.readouterr()
    assert "bad.c:1:" in captured.err and "1 failed" in captured.out


def test_cli_show_compiler(capsys):
    assert main(["build", "--show-compiler"]) == 0
    assert toolchain.find_compiler().name in capsys.readouterr().out


def test_project_programs_build(tmp_path):
    """Every program under bpf/ (examples, tests) compiles with our headers."""
    for src in toolchain.sources(toolchain.BPF_DIR):
        out = tmp_path / (src.stem + ".o")
        toolchain.compile_c(src, out)
        assert ".BTF" in sections(out), src
