"""The account table that stands in for the LSA behind SecLookupAccountSid.

Upstream fact: ntosebpfext ntos_ebpf_ext_process.c `_ebpf_process_resolve_account` resolves the
create's token SID with SecLookupAccountSid on the first account helper call; any SID the LSA
knows resolves, token_sid_size 0 or an unknown SID gives -ENOENT from
`_ebpf_process_get_account_name`/`_domain`. Expected names are Microsoft's published
well-known SIDs and hand-computed service SIDs.
"""
from __future__ import annotations

import hashlib
import struct

import pandas as pd
import pytest

import ntoslab
from ntoslab.hooks.accounts import AccountTable, hashed_sid, placeholder_sid
from ntoslab.hooks.process import pack_event, sid_from_bytes

HELPERS = r"""
#include "bpf_helpers.h"
#include "ebpf_ntos_hooks.h"
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, uint32_t); __type(value, uint8_t[132]); __uint(max_entries, 64); } who SEC(".maps");
SEC("process") int Who(process_md_t* ctx)
{
    uint8_t buf[132] = {0};
    uint32_t pid = (uint32_t)ctx->process_id;
    long n = bpf_process_get_account_name(ctx, buf + 4, 64);
    long d = bpf_process_get_account_domain(ctx, buf + 68, 64);
    *(int16_t*)buf = (int16_t)n;
    *(int16_t*)(buf + 2) = (int16_t)d;
    if (ctx->operation == PROCESS_OPERATION_CREATE)
        bpf_map_update_elem(&who, &pid, buf, BPF_ANY);
    return 0;
}
"""


def _who(obj) -> dict[int, tuple]:
    out = {}
    for k, v in obj.map("who").items():
        n, d = struct.unpack_from("<hh", v)
        name = v[4:4 + n].decode("utf-16-le") if n >= 0 else n
        dom = v[68:68 + d].decode("utf-16-le") if d >= 0 else d
        out[int.from_bytes(k, "little")] = (name, dom)
    return out


@pytest.mark.parametrize("sid, expected", [
    ("S-1-5-18", ("SYSTEM", "NT AUTHORITY")),
    ("S-1-5-19", ("LOCAL SERVICE", "NT AUTHORITY")),
    ("S-1-5-20", ("NETWORK SERVICE", "NT AUTHORITY")),
    ("S-1-5-32-544", ("Administrators", "BUILTIN")),
    ("S-1-5-32-545", ("Users", "BUILTIN")),
    ("S-1-1-0", ("Everyone", "")),
    ("S-1-16-12288", ("High Mandatory Level", "Mandatory Label")),
    ("S-1-5-90-0-2", ("DWM-2", "Window Manager")),
    ("S-1-5-96-0-1", ("UMFD-1", "Font Driver Host")),
    # NT SERVICE\TrustedInstaller's SID as Windows shows it in every ACL of System32
    ("S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",
     ("TrustedInstaller", "NT SERVICE")),
])
def test_well_known_sids(sid, expected):
    assert AccountTable().resolve(sid) == expected


def test_service_sid_is_the_sha1_of_the_upper_case_name():
    digest = hashlib.sha1("MYSVC".encode("utf-16-le")).digest()
    by_hand = "S-1-5-80-" + "-".join(str(v) for v in struct.unpack("<5I", digest))
    table = AccountTable()
    assert hashed_sid("S-1-5-80", "MySvc") == by_hand
    assert table.resolve(by_hand) is None                      # not seen yet
    assert table.sid_of("MySvc", "NT SERVICE") == by_hand      # a name gives its SID ...
    assert table.resolve(by_hand) == ("MySvc", "NT SERVICE")   # ... and then the way back


def test_domain_relative_rids_need_the_domain_name():
    table = AccountTable()
    assert table.resolve("S-1-5-21-11-22-33-500") is None       # the domain is unknown
    table.learn("S-1-5-21-11-22-33-1104", "bob", "CONTOSO")     # a trace names one account
    assert table.resolve("S-1-5-21-11-22-33-500") == ("Administrator", "CONTOSO")
    assert table.resolve("S-1-5-21-11-22-33-512") == ("Domain Admins", "CONTOSO")
    assert table.resolve("S-1-5-21-11-22-33-1105") is None      # an ordinary RID stays unknown
    assert table.sid_of("Administrator", "contoso") == "S-1-5-21-11-22-33-500"


def test_user_mapping_forms_and_precedence():
    table = AccountTable({"S-1-5-21-1-2-3-1001": "CORP\\alice",
                          "S-1-5-21-1-2-3-1002": ("bob", "CORP"),
                          "S-1-5-21-9-9-9": "LAB",
                          "S-1-5-18": "WEIRD\\override"})
    assert table.resolve("S-1-5-21-1-2-3-1001") == ("alice", "CORP")
    assert table.resolve("s-1-5-21-1-2-3-1002") == ("bob", "CORP")
    assert table.resolve("S-1-5-21-9-9-9-501") == ("Guest", "LAB")
    assert table.resolve("S-1-5-18") == ("override", "WEIRD")   # what the user says wins
    table.learn("S-1-5-21-1-2-3-1001", "mallory", "EVIL")         # and a trace cannot change it
    assert table.resolve("S-1-5-21-1-2-3-1001") == ("alice", "CORP")
    with pytest.raises(ValueError, match="S-1-5-21-1-2-3-7"):
        AccountTable({"S-1-5-21-1-2-3-7": 42})


def test_replay_resolves_from_the_trace_and_reports_the_rest(compile_bpf):
    hook = ntoslab.emulator()
    obj = hook.load(compile_bpf(HELPERS, "accounts_who"))
    hook.attach(obj.program("Who"))
    frame = pd.DataFrame({
        "operation": ["create"] * 5,
        "process_id": [10, 11, 12, 13, 14],
        "image_path": ["x"] * 5, "command_line": ["x"] * 5, "parent_process_id": [1] * 5,
        # 10: Security names its subject; 11: the same SID with no names (a later event);
        # 12: Sysmon's User only (no SID); 13: a SID nobody names; 14: nothing at all
        "token_sid": ["S-1-5-21-5-6-7-1107", "S-1-5-21-5-6-7-1107", None,
                      "S-1-5-21-8-8-8-1200", None],
        "account_name": ["carol", None, "carol", None, None],
        "account_domain": ["LAB", None, "LAB", None, None],
    })
    with pytest.warns(ntoslab.AccountsUnresolved, match=r"S-1-5-21-8-8-8-1200 \(1\)"):
        hook.replay(frame, progress=False)
    who = _who(obj)
    assert who[10] == who[11] == who[12] == ("carol", "LAB")
    assert who[13] == (-2, -2)                                  # -ENOENT
    assert who[14] == ("SYSTEM", "NT AUTHORITY")                # the default SID
    assert hook.accounts.unresolved == {"S-1-5-21-8-8-8-1200": 1}
    assert hook.accounts.defaulted == 1


def test_default_sid_none_and_inject_equal_replay(compile_bpf):
    rows = [dict(operation="create", process_id=20 + i, parent_process_id=1, image_path="x",
                 command_line="x",
                 token_sid=sid, account_name=name, account_domain=dom)
            for i, (sid, name, dom) in enumerate([
                (None, None, None), ("S-1-5-19", None, None), (None, "SYSTEM", "NT AUTHORITY"),
                (None, "TrustedInstaller", "NT SERVICE")])]
    results = []
    for mode in ("replay", "inject"):
        hook = ntoslab.emulator(default_sid=None)
        obj = hook.load(compile_bpf(HELPERS, "accounts_who"))
        hook.attach(obj.program("Who"))
        if mode == "replay":
            hook.replay(pd.DataFrame(rows), progress=False)
        else:
            for r in rows:
                hook.inject(r)
        results.append(_who(obj))
    assert results[0] == results[1]
    who = results[0]
    # default_sid=None: creates keep the SID they carry, none if none (token_sid_size 0 ->
    # -ENOENT), even when they name a well-known account
    assert who[20] == who[22] == who[23] == (-2, -2)
    assert who[21] == ("LOCAL SERVICE", "NT AUTHORITY")


def test_repr_lists_sources():
    table = AccountTable({"S-1-5-21-1-2-3-1001": "CORP\\alice"})
    table.unresolved["S-1-5-21-4-4-4-1"] += 3
    assert "1 given" in repr(table) and "1 SIDs unresolved" in repr(table)
    html = table._repr_html_()
    assert "alice" in html and "S-1-5-21-4-4-4-1 (3 events)" in html


def test_a_logon_session_names_the_sid_of_a_sysmon_row(compile_bpf):
    """Sysmon's User can be written differently from Security's names (an FQDN domain); the
    logon id both carry ties them, when the trace shows that session with one SID only."""
    hook = ntoslab.emulator()
    obj = hook.load(compile_bpf(HELPERS, "accounts_who"))
    hook.attach(obj.program("Who"))
    frame = pd.DataFrame({
        "operation": ["create"] * 3, "process_id": [30, 31, 32], "parent_process_id": [1] * 3,
        "image_path": ["x"] * 3, "command_line": ["x"] * 3,
        "token_sid": ["S-1-5-21-7-7-7-1110", None, None],
        "account_name": ["dave", "dave", "erin"],
        "account_domain": ["LAB", "lab.example.com", "lab.example.com"],
        "logon_id": pd.array([0x3E7A1, 0x3E7A1, 0x999], dtype="Int64"),
    })
    hook.replay(frame, progress=False)
    assert hook.accounts.logons == {0x3E7A1: "S-1-5-21-7-7-7-1110"}
    who = _who(obj)
    assert who[31] == ("dave", "lab.example.com")     # the row's own names, its session's SID
    assert (hook.accounts.placeholders, hook.accounts.defaulted) == (1, 0)
    assert _token_sid(hook, frame.iloc[1]) == "S-1-5-21-7-7-7-1110"
    # erin: neither her name nor her session is known: a placeholder, not SYSTEM
    assert _token_sid(hook, frame.iloc[2]) == placeholder_sid("erin", "lab.example.com")


def _token_sid(hook, row) -> str | None:
    """The SID the packed process_md_t of `row` carries (token_sid_size at 72, bytes at 76)."""
    raw = pack_event(ntoslab.ProcessEvent.from_row(dict(row)), accounts=hook.accounts)[0]
    size = int.from_bytes(raw[72:76], "little")
    return sid_from_bytes(raw[76:76 + size]) if size else None


def test_placeholder_sid_is_derived_from_the_name():
    key = "LAB\\ERIN".encode("utf-16-le")
    rid = 1000 + (int.from_bytes(hashlib.sha1(key).digest()[:4], "little") >> 2)
    assert placeholder_sid("erin", "lab") == f"S-1-5-21-0-0-0-{rid}"
    assert placeholder_sid("Erin", "LAB") == placeholder_sid("erin", "lab")
    assert placeholder_sid("frank", "lab") != placeholder_sid("erin", "lab")
    table = AccountTable()
    sid = table.token_sid(None, "erin", "lab")
    assert sid == placeholder_sid("erin", "lab") and table.resolve(sid) == ("erin", "lab")
    assert table.token_sid(None, None, None) == "S-1-5-18"        # no account at all


def test_inject_and_replay_complete_sids_alike(compile_bpf):
    """The batch packer and pack_event give the same SIDs and account strings."""
    rows = [dict(operation="create", process_id=40 + i, parent_process_id=1, image_path="x",
                 command_line="x", token_sid=sid, account_name=name, account_domain=dom)
            for i, (sid, name, dom) in enumerate([
                (None, None, None), ("S-1-5-19", None, None), (None, "SYSTEM", "NT AUTHORITY"),
                (None, "TrustedInstaller", "NT SERVICE"), (None, "zoe", "HOME"),
                (None, "zoe", "HOME"), ("S-1-5-21-3-3-3-1001", "yan", "HOME"),
                ("S-1-5-21-3-3-3-500", None, None)])]
    seen = []
    for mode in ("replay", "inject"):
        hook = ntoslab.emulator()
        obj = hook.load(compile_bpf(HELPERS, "accounts_who"))
        hook.attach(obj.program("Who"))
        hook.accounts.learn_frame(pd.DataFrame(rows))
        if mode == "replay":
            hook.replay(pd.DataFrame(rows), progress=False)
        else:
            for r in rows:
                hook.inject(r)
        seen.append((_who(obj), hook.accounts.placeholders, hook.accounts.defaulted))
    assert seen[0] == seen[1]
    who = seen[0][0]
    assert who[40] == who[42] == ("SYSTEM", "NT AUTHORITY")
    assert who[43] == ("TrustedInstaller", "NT SERVICE") and who[44] == ("zoe", "HOME")
    assert who[47] == ("Administrator", "HOME")      # the domain learned from yan's SID
    assert seen[0][1:] == (2, 1)                     # zoe twice a placeholder; one default
