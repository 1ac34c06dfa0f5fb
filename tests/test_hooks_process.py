"""The emulated process hook: context layout, process helpers, deny semantics, identity, faults."""
from __future__ import annotations

import struct

import pytest

import ntoslab
from ntoslab.hooks.process import (
    EventError,
    ProcessEvent,
    build_context,
    sid_from_bytes,
    sid_to_bytes,
)
from ntoslab.vm.memory import AddressSpace

HEAD = '#include "bpf_helpers.h"\n#include "ebpf_ntos_hooks.h"\n'


def hook_with(compile_bpf, *sources: tuple[str, str], engine: str = "jit"):
    hook = ntoslab.emulator(engine)
    objs = []
    for name, src in sources:
        obj = hook.load(compile_bpf(HEAD + src, name))
        objs.append(obj)
        for p in obj.programs:
            hook.attach(p)
    return hook, objs


# -- SIDs and the context ------------------------------------------------------------------------
@pytest.mark.parametrize("sid, hexbytes", [
    ("S-1-5-18", "010100000000000512000000"),
    ("S-1-5-21-1-2-3-1001", "0105000000000005" "15000000" "01000000" "02000000" "03000000" "e9030000"),
])
def test_sid_binary_form(sid, hexbytes):
    # revision, sub-authority count, 48-bit big-endian authority, little-endian sub-authorities
    assert sid_to_bytes(sid).hex() == hexbytes
    assert sid_from_bytes(bytes.fromhex(hexbytes)) == sid


def test_bad_sid_names_the_field():
    with pytest.raises(EventError, match="token_sid 'S-1-x'"):
        sid_to_bytes("S-1-x")


def test_context_layout_create_and_delete():
    mem = AddressSpace()
    ev = ProcessEvent.create(4242, 1000, r"\??\C:\x.exe", "x.exe -a", creator=900, creator_thread=77,
                             creation_time=133_000_000_000_000_000, token_sid="S-1-5-18")
    ctx = build_context(ev, mem)
    raw = bytes(ctx.context.data)
    assert len(raw) == 144
    start, end, pid, ppid, cpid, ctid, ctime, etime, code, op = struct.unpack_from("<8QIB", raw)
    assert (pid, ppid, cpid, ctid, ctime, etime, code, op) == (4242, 1000, 900, 77,
                                                                 133_000_000_000_000_000, 0, 0, 0)
    assert mem.read(start, end - start) == "x.exe -a".encode("utf-16-le")
    assert struct.unpack_from("<I", raw, 72) == (12,) and raw[76:88] == sid_to_bytes("S-1-5-18")
    ctx.close()
    d = build_context(ProcessEvent.delete(4242, exit_code=-1, creation_time=5, exit_time=9), mem)
    raw = bytes(d.context.data)
    start, end, pid, ppid, cpid, ctid, ctime, etime, code, op = struct.unpack_from("<8QIB", raw)
    assert (start, end, ppid, cpid, ctid) == (0, 0, 0, 0, 0)
    assert (pid, ctime, etime, code, op) == (4242, 5, 9, 0xFFFFFFFF, 1)
    assert struct.unpack_from("<I", raw, 72) == (0,)


FIELDS = r"""
SEC("process") int Fields(process_md_t* ctx) {
    uint64_t len = ctx->command_end - ctx->command_start;
    if (ctx->operation == PROCESS_OPERATION_DELETE)
        return (int)(ctx->process_exit_code + 1000 * ctx->token_sid_size);
    return (int)(len + 1000 * ctx->token_sid_size + ctx->token_sid[8]);
}
"""

LEGACY = r"""
/* The pre-0.7 context: 72 bytes, no SID fields. */
typedef struct { uint8_t *command_start, *command_end; uint64_t process_id, parent_process_id,
    creating_process_id, creating_thread_id, creation_time, exit_time; uint32_t process_exit_code;
    uint32_t operation : 8; } old_md_t;
_Static_assert(sizeof(old_md_t) == 72, "old layout");
SEC("process") int Legacy(old_md_t* ctx) {
    return (int)(ctx->parent_process_id * 10 + ctx->operation);
}
"""


def test_programs_read_the_144_and_the_72_byte_layouts(compile_bpf):
    hook, _ = hook_with(compile_bpf, ("fields", FIELDS), ("legacy", LEGACY))
    v = hook.inject(ProcessEvent.create(7, 33, "a", "abc", token_sid="S-1-5-18"))
    # Fields: 6 bytes of UTF-16 + 1000 * 12 + first sub-authority's low byte (18)
    assert [r.status for r in v.runs] == [6 + 12000 + 18, 330]
    v = hook.inject(ProcessEvent.delete(7, exit_code=5))
    assert [r.status for r in v.runs] == [5, 0 * 10 + 1]


# -- process helpers ---------------------------------------------------------------------------
HELPERS = r"""
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, uint32_t); __type(value, int64_t); __uint(max_entries, 64); } out SEC(".maps");
static __always_inline void put(uint32_t k, int64_t v) { bpf_map_update_elem(&out, &k, &v, BPF_ANY); }
SEC("process") int Helpers(process_md_t* ctx) {
    uint8_t buf[64];
    __builtin_memset(buf, 0xAA, sizeof(buf));
    put(1, bpf_process_get_image_path(ctx, buf, sizeof(buf)));
    put(2, *(uint64_t*)buf);                     /* first 4 UTF-16 code units */
    put(3, buf[20]);                            /* untouched beyond the copied bytes? */
    __builtin_memset(buf, 0xAA, sizeof(buf));
    put(4, bpf_process_get_image_path(ctx, buf, 4));   /* too small */
    put(5, buf[0]);
    put(6, bpf_process_get_account_name(ctx, buf, sizeof(buf)));
    put(7, *(uint64_t*)buf);
    put(8, bpf_process_get_account_domain(ctx, buf, sizeof(buf)));
    return 0;
}
"""


def _out(obj) -> dict[int, int]:
    return {int.from_bytes(k, "little"): int.from_bytes(v, "little", signed=True)
            for k, v in obj.map("out").items()}


def test_process_helpers_copy_utf16_without_terminator(compile_bpf):
    hook, (obj,) = hook_with(compile_bpf, ("helpers", HELPERS))
    hook.inject(ProcessEvent.create(1, 0, r"C:\a.exe", "a", token_sid="S-1-5-18"))
    o = _out(obj)
    assert o[1] == len(r"C:\a.exe") * 2                      # byte length, no terminator
    assert o[2] == int.from_bytes("C:\\a".encode("utf-16-le"), "little")
    assert o[3] == 0xAA                                      # nothing written past 16 bytes
    assert (o[4], o[5]) == (-22, 0xAA)                       # -EINVAL, nothing copied
    assert o[6] == len("SYSTEM") * 2                         # S-1-5-18 is well known
    assert o[7] == int.from_bytes("SYST".encode("utf-16-le"), "little")
    assert o[8] == len("NT AUTHORITY") * 2


def test_account_helpers_without_sid_return_enoent(compile_bpf):
    # ntos_ebpf_ext_process.c `_ebpf_process_resolve_account`: token_sid_size == 0 fails, and
    # `_ebpf_process_get_account_name`/`_domain` then return -ENOENT
    hook, (obj,) = hook_with(compile_bpf, ("helpers", HELPERS))
    hook.accounts.default_sid = None             # creates without a SID keep none
    hook.inject(ProcessEvent.create(1, 0, "x", "x"))
    o = _out(obj)
    assert o[6] == -2 and o[8] == -2
    hook.inject(ProcessEvent.create(2, 0, "x", "x", token_sid="S-1-5-21-9-9-9-1001",
                                    account_name="alice", account_domain="CORP"))
    o = _out(obj)
    assert o[6] == 10 and o[8] == 8
    # a SID no source knows: SecLookupAccountSid would fail, and the hook says so once
    with pytest.warns(ntoslab.AccountsUnresolved, match="S-1-5-21-9-9-9-1002"):
        hook.inject(ProcessEvent.create(3, 0, "x", "x", token_sid="S-1-5-21-9-9-9-1002"))
    assert _out(obj)[6] == -2
    assert hook.accounts.unresolved == {"S-1-5-21-9-9-9-1002": 1}


def test_image_path_is_empty_on_delete(compile_bpf):
    hook, (obj,) = hook_with(compile_bpf, ("helpers", HELPERS))
    hook.inject(ProcessEvent.delete(1))
    o = _out(obj)
    assert o[1] == 0 and o[6] == -2


# -- deny semantics ----------------------------------------------------------------------------
COUNTER = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, uint32_t); __type(value, uint64_t); __uint(max_entries, 2); } seen SEC(".maps");
SEC("process") int Counter(process_md_t* ctx) {
    uint32_t k = ctx->operation;
    uint64_t* n = bpf_map_lookup_elem(&seen, &k);
    if (n) *n += 1;
    return -5;   /* negative, but on delete it is ignored; on create it denies */
}
"""
POSITIVE = 'SEC("process") int Positive(process_md_t* ctx) { return 1; }\n'
DENY = r"""
SEC("process") int Deny(process_md_t* ctx) {
    return ctx->process_id == 666 ? (int)0xC0000022 : 0;
}
"""


def test_first_negative_status_denies_and_stops_later_programs(compile_bpf):
    hook, objs = hook_with(compile_bpf, ("positive", POSITIVE), ("deny", DENY),
                           ("counter", COUNTER))
    v = hook.inject(ProcessEvent.create(666, 1, "x", "x"))
    assert v.denied and v.status == -1073741790 and v.decided_by == "Deny"
    assert [r.program for r in v.runs] == ["Positive", "Deny"]   # Counter never ran
    v = hook.inject(ProcessEvent.create(7, 1, "x", "x"))
    assert v.denied and v.status == -5 and v.decided_by == "Counter"
    # on delete every program runs and return values are ignored
    v = hook.inject(ProcessEvent.delete(666))
    assert not v.denied and v.status == 0 and len(v.runs) == 3
    seen = objs[2].map("seen")
    assert int.from_bytes(seen[0], "little") == 1 and int.from_bytes(seen[1], "little") == 1


def test_positive_status_is_success_and_detach_changes_order(compile_bpf):
    hook, objs = hook_with(compile_bpf, ("positive", POSITIVE), ("deny", DENY))
    assert not hook.inject(ProcessEvent.create(1, 0, "x", "x")).denied
    hook.detach(hook.links[1])
    assert not hook.inject(ProcessEvent.create(666, 0, "x", "x")).denied


PIDTGID = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, uint32_t); __type(value, uint64_t); __uint(max_entries, 4); } ids SEC(".maps");
SEC("process") int Who(process_md_t* ctx) {
    uint32_t k = ctx->operation;
    uint64_t v = bpf_get_current_pid_tgid();
    bpf_map_update_elem(&ids, &k, &v, BPF_ANY);
    k = 2; v = bpf_ktime_get_ns(); bpf_map_update_elem(&ids, &k, &v, BPF_ANY);
    k = 3; v = (uint64_t)(int64_t)bpf_is_current_admin(ctx); bpf_map_update_elem(&ids, &k, &v, BPF_ANY);
    return 0;
}
"""


@pytest.mark.parametrize("engine", ["jit", "interpreter"])
def test_pid_tgid_is_the_creator_on_create_and_the_process_on_delete(compile_bpf, engine):
    # ntosebpfext ntos_ebpf_ext_process.c `_ebpf_process_create_process_notify_routine_ex` runs
    # the programs in the notify callback: on create in the creating thread (PsGetCurrentThreadId
    # = CreatingThreadId), on exit in the process's last exiting thread, never thread 0
    hook, (obj,) = hook_with(compile_bpf, ("who", PIDTGID), engine=engine)
    hook.inject(ProcessEvent.create(50, 40, "x", "x", creator=30, creator_thread=31, time=10**9))
    hook.inject(ProcessEvent.delete(50, time=3 * 10**9))
    ids = obj.map("ids")
    assert int.from_bytes(ids[0], "little") == (30 << 32) | 31
    assert int.from_bytes(ids[1], "little") == (50 << 32) | 54     # no log names it: pid + 4
    # ktime follows event times: the second event is 2 s after the first
    first_boot = hook.boot_time
    assert int.from_bytes(ids[2], "little") == 3 * 10**9 - first_boot
    assert int.from_bytes(ids[3], "little", signed=True) == -1   # EFW core answers -1
    hook.inject(ProcessEvent.delete(50, exit_thread_id=7124, time=4 * 10**9))
    assert int.from_bytes(ids[1], "little") == (50 << 32) | 7124


def test_pid_tgid_on_delete_in_batch_replay(compile_bpf):
    """The same thread on the native batch path, from an `exit_thread_id` column or not."""
    import pandas as pd
    hook, (obj,) = hook_with(compile_bpf, ("who", PIDTGID))
    frame = pd.DataFrame({"operation": ["delete", "delete"], "process_id": [60, 61],
                          "exit_thread_id": pd.array([None, 9000], dtype="Int64")})
    hook.replay(frame.iloc[:1], progress=False)
    assert int.from_bytes(obj.map("ids")[1], "little") == (60 << 32) | 64
    hook.replay(frame.iloc[1:], progress=False)
    assert int.from_bytes(obj.map("ids")[1], "little") == (61 << 32) | 9000


FAULTY = r"""
SEC("process") int Faulty(process_md_t* ctx) {
    volatile uint32_t i = 1000;
    return ctx->command_start[i];              /* reads past the command line */
}
"""


def test_a_faulting_program_allows_and_is_reported(compile_bpf):
    hook, objs = hook_with(compile_bpf, ("faulty", FAULTY), ("deny", DENY))
    v = hook.inject(ProcessEvent.create(666, 1, "x", "short"))
    assert v.runs[0].fault and "command line" in v.runs[0].fault
    assert "return ctx->command_start[i];" in v.runs[0].fault
    assert v.denied and v.decided_by == "Deny"      # later programs still run


def test_replay_reports_bad_rows_instead_of_dropping_them(compile_bpf):
    import pandas as pd
    hook, _ = hook_with(compile_bpf, ("deny", DENY))
    frame = pd.DataFrame([
        {"operation": "create", "process_id": 666, "image_path": "x", "command_line": "x"},
        {"operation": "explode", "process_id": 1},
        {"operation": "delete", "process_id": 666},
    ])
    out = hook.replay(frame)
    assert list(out["denied"]) == [True, None, False]
    assert "operation" in out["error"][1] and out["row"][1] == 1


@pytest.mark.parametrize("call", ["bpf_get_socket_cookie(ctx)", "bpf_redirect_map(&m, 0, 0)"])
def test_helpers_without_meaning_for_process_are_rejected_at_load(compile_bpf, call):
    hook = ntoslab.emulator()
    src = HEAD + ('struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, uint32_t); '
                  '__type(value, uint32_t); __uint(max_entries, 1); } m SEC(".maps");\n'
                  f'SEC("process") int C(process_md_t* ctx) {{ return (int){call}; }}\n')
    with pytest.raises(ntoslab.ProgramError, match=call.split("(")[0]):
        hook.load(compile_bpf(src, "nomeaning"))
