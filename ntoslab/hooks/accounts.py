"""Accounts: what `SecLookupAccountSid` answers for a process's token SID (helpers 65537/65538).

ntosebpfext resolves the SID of every create lazily, on the first account helper call
(`_ebpf_process_resolve_account` in ntos_ebpf_ext_process.c): any SID the machine's LSA knows
gives its name and domain, a create without a SID gives -ENOENT. The emulator has no LSA, so an
`AccountTable` stands in for it, from three sources, in this order:

1. what the user gives: ``emulator(accounts={"S-1-5-21-1-2-3-1104": "CONTOSO\\\\bob"})``, with
   values ``"DOMAIN\\\\name"`` or ``(name, domain)``; a domain SID (``S-1-5-21-x-y-z``) mapped
   to ``"CONTOSO"`` names the domain of every account under it;
2. the accounts the trace itself shows (rows carrying a SID with its name and domain: Security's
   subject or target user, the Linux capture's uid) — learned when a replay starts;
3. Windows' well-known SIDs: NT AUTHORITY (S-1-5-18/19/20, S-1-5-7, -11 ...), the BUILTIN
   aliases (S-1-5-32-544 ...), Everyone, the mandatory labels, ``NT SERVICE\\\\<name>`` and
   ``IIS APPPOOL\\\\<name>`` (the SID is the SHA-1 of the upper-cased name, so a name seen in a
   trace gives its SID), DWM-n and UMFD-n, and the domain-relative RIDs (-500 Administrator,
   -512 Domain Admins ...) under any domain whose name is known from (1) or (2).

A SID none of these knows resolves to nothing: the helpers return -2 (-ENOENT) and the table
counts it in `unresolved`, which the hook reports.

A create whose event has no SID gets one, as every Windows create does (the extension copies the
primary token's user SID): the SID of its account name when the table knows it (or of its logon
session, when the trace shows that session with one SID); for a named account no source
knows (Sysmon logs `DOMAIN\\name` only), a placeholder under the made-up domain
S-1-5-21-0-0-0 whose RID is derived from the name (`placeholder_sid`: distinct accounts stay
distinct, the same name gets the same SID in every run); with no account at all,
`default_sid` (S-1-5-18, LocalSystem; `default_sid=None` leaves such creates without a SID).

>>> table = AccountTable({"S-1-5-21-1-2-3": "CONTOSO"})
>>> table.resolve("S-1-5-21-1-2-3-500"), table.resolve("S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464")
(('Administrator', 'CONTOSO'), ('TrustedInstaller', 'NT SERVICE'))
"""
from __future__ import annotations

import hashlib
import html
import struct
from collections import Counter
from typing import Any, Mapping

DEFAULT_SID = "S-1-5-18"
PLACEHOLDER_DOMAIN = "S-1-5-21-0-0-0"
NT = "NT AUTHORITY"
BUILTIN = "BUILTIN"

# Well-known SIDs (Microsoft Learn, "Well-known SIDs"; names as SecLookupAccountSid gives them
# on an English system).
WELL_KNOWN: dict[str, tuple[str, str]] = {
    "S-1-0-0": ("NULL SID", ""), "S-1-1-0": ("Everyone", ""), "S-1-2-0": ("LOCAL", ""),
    "S-1-2-1": ("CONSOLE LOGON", ""), "S-1-3-0": ("CREATOR OWNER", ""),
    "S-1-3-1": ("CREATOR GROUP", ""), "S-1-3-4": ("OWNER RIGHTS", ""),
    "S-1-5-1": ("DIALUP", NT), "S-1-5-2": ("NETWORK", NT), "S-1-5-3": ("BATCH", NT),
    "S-1-5-4": ("INTERACTIVE", NT), "S-1-5-6": ("SERVICE", NT),
    "S-1-5-7": ("ANONYMOUS LOGON", NT), "S-1-5-8": ("PROXY", NT),
    "S-1-5-9": ("ENTERPRISE DOMAIN CONTROLLERS", NT), "S-1-5-10": ("SELF", NT),
    "S-1-5-11": ("Authenticated Users", NT), "S-1-5-12": ("RESTRICTED", NT),
    "S-1-5-13": ("TERMINAL SERVER USER", NT), "S-1-5-14": ("REMOTE INTERACTIVE LOGON", NT),
    "S-1-5-15": ("This Organization", NT), "S-1-5-17": ("IUSR", NT),
    "S-1-5-18": ("SYSTEM", NT), "S-1-5-19": ("LOCAL SERVICE", NT),
    "S-1-5-20": ("NETWORK SERVICE", NT), "S-1-5-113": ("Local account", NT),
    "S-1-5-114": ("Local account and member of Administrators group", NT),
    "S-1-5-80-0": ("ALL SERVICES", "NT SERVICE"),
    "S-1-16-0": ("Untrusted Mandatory Level", "Mandatory Label"),
    "S-1-16-4096": ("Low Mandatory Level", "Mandatory Label"),
    "S-1-16-8192": ("Medium Mandatory Level", "Mandatory Label"),
    "S-1-16-8448": ("Medium Plus Mandatory Level", "Mandatory Label"),
    "S-1-16-12288": ("High Mandatory Level", "Mandatory Label"),
    "S-1-16-16384": ("System Mandatory Level", "Mandatory Label"),
    "S-1-16-20480": ("Protected Process Mandatory Level", "Mandatory Label"),
}
BUILTIN_ALIASES = {
    544: "Administrators", 545: "Users", 546: "Guests", 547: "Power Users",
    548: "Account Operators", 549: "Server Operators", 550: "Print Operators",
    551: "Backup Operators", 552: "Replicator", 554: "Pre-Windows 2000 Compatible Access",
    555: "Remote Desktop Users", 556: "Network Configuration Operators",
    558: "Performance Monitor Users", 559: "Performance Log Users",
    560: "Windows Authorization Access Group", 561: "Terminal Server License Servers",
    562: "Distributed COM Users", 568: "IIS_IUSRS", 569: "Cryptographic Operators",
    573: "Event Log Readers", 574: "Certificate Service DCOM Access",
    575: "RDS Remote Access Servers", 576: "RDS Endpoint Servers", 577: "RDS Management Servers",
    578: "Hyper-V Administrators", 579: "Access Control Assistance Operators",
    580: "Remote Management Users", 582: "Storage Replica Administrators",
}
WELL_KNOWN.update({f"S-1-5-32-{rid}": (name, BUILTIN) for rid, name in BUILTIN_ALIASES.items()})
# Accounts and groups every domain (or machine) has, by relative id.
DOMAIN_RIDS = {
    500: "Administrator", 501: "Guest", 502: "krbtgt", 503: "DefaultAccount",
    504: "WDAGUtilityAccount", 512: "Domain Admins", 513: "Domain Users", 514: "Domain Guests",
    515: "Domain Computers", 516: "Domain Controllers", 517: "Cert Publishers",
    518: "Schema Admins", 519: "Enterprise Admins", 520: "Group Policy Creator Owners",
    521: "Read-only Domain Controllers", 525: "Protected Users", 526: "Key Admins",
    527: "Enterprise Key Admins", 553: "RAS and IAS Servers",
}
# Virtual accounts whose SID is the SHA-1 of the upper-cased name (UTF-16LE) as 5 sub-authorities.
HASHED_AUTHORITIES = {"S-1-5-80": "NT SERVICE", "S-1-5-82": "IIS APPPOOL"}
# Session accounts: S-1-5-90-0-<session> is Window Manager\DWM-<session>, -96-0- UMFD.
SESSION_ACCOUNTS = {"S-1-5-90-0": ("DWM", "Window Manager"),
                    "S-1-5-96-0": ("UMFD", "Font Driver Host")}
COMMON_SERVICES = ("TrustedInstaller", "WinDefend", "MSSQLSERVER", "SQLSERVERAGENT", "Sense",
                   "WdiServiceHost", "EventLog", "Schedule", "BITS", "wuauserv")


def hashed_sid(authority: str, name: str) -> str:
    """The SID of a virtual account (`NT SERVICE\\\\name` under S-1-5-80, `IIS APPPOOL\\\\name`
    under S-1-5-82): SHA-1 of the upper-cased name in UTF-16LE, read as five 32-bit values."""
    digest = hashlib.sha1(name.upper().encode("utf-16-le")).digest()
    return authority + "".join(f"-{v}" for v in struct.unpack("<5I", digest))


def placeholder_sid(name: str, domain: str | None) -> str:
    """The stand-in SID of a named account whose SID no source knows: S-1-5-21-0-0-0-<RID>,
    the RID 1000 + a 30-bit SHA-1 of "DOMAIN\\NAME" (upper-cased), so it does not depend on
    the order events arrive in."""
    key = f"{(domain or '').upper()}\\{name.upper()}".encode("utf-16-le")
    return f"{PLACEHOLDER_DOMAIN}-{1000 + (int.from_bytes(hashlib.sha1(key).digest()[:4], 'little') >> 2)}"


def _parse_account(value: Any, sid: str) -> tuple[str, str]:
    if isinstance(value, str):
        domain, sep, name = value.rpartition("\\")
        return (name, domain) if sep else (value, "")
    try:
        name, domain = value
    except (TypeError, ValueError):
        raise ValueError(f"accounts[{sid!r}]: {value!r} is neither 'DOMAIN\\\\name' nor "
                         f"(name, domain)") from None
    return str(name), str(domain)


def _domain_prefix(sid: str) -> tuple[str, int] | None:
    """(domain SID, RID) of an account under S-1-5-21-x-y-z, else None."""
    parts = sid.split("-")
    if len(parts) == 8 and parts[:4] == ["S", "1", "5", "21"] and parts[7].isdigit():
        return "-".join(parts[:7]), int(parts[7])
    return None


def _is_domain_sid(sid: str) -> bool:
    parts = sid.split("-")
    return len(parts) == 7 and parts[:4] == ["S", "1", "5", "21"]


class AccountTable:
    """SID -> (account name, domain) for the account helpers, and the way back for creates
    that name an account without a SID. See the module docstring for the sources."""

    def __init__(self, accounts: Mapping[str, Any] | "AccountTable" | None = None, *,
                 default_sid: str | None = DEFAULT_SID, counting: bool = True) -> None:
        self.default_sid = default_sid
        self.counting = counting
        # give SID-less creates a SID; default_sid=None keeps them as they are, named or not
        self.complete = default_sid is not None
        self.given: dict[str, tuple[str, str]] = {}
        self.learned: dict[str, tuple[str, str]] = {}
        self.domains: dict[str, str] = {}          # domain SID -> domain name
        self._given_domains: set[str] = set()
        self._by_name: dict[tuple[str, str], str] = {}
        self.unresolved: Counter = Counter()
        self.defaulted = 0                        # creates given default_sid
        self.placeholders = 0                     # creates given a placeholder SID
        self.virtual: dict[str, tuple[str, str]] = {}   # NT SERVICE / IIS APPPOOL seen so far
        self.logons: dict[int, str] = {}          # logon id -> the one SID a trace shows for it
        for service in COMMON_SERVICES:
            self._virtual(service, "NT SERVICE")
        for sid, (name, domain) in WELL_KNOWN.items():
            self._by_name.setdefault((domain.upper(), name.upper()), sid)
        if isinstance(accounts, AccountTable):
            self.given.update(accounts.given)
            self.domains.update({d: accounts.domains[d] for d in accounts._given_domains})
            self._given_domains |= accounts._given_domains
        elif accounts:
            for sid, value in accounts.items():
                sid = str(sid).strip().upper()
                if _is_domain_sid(sid):
                    self.domains[sid] = str(value)
                    self._given_domains.add(sid)
                    continue
                self.given[sid] = _parse_account(value, sid)
        for sid, (name, domain) in self.given.items():
            self._index(sid, name, domain)

    # -- building ---------------------------------------------------------------------------------
    def _virtual(self, name: str, domain: str) -> str:
        authority = next(a for a, d in HASHED_AUTHORITIES.items() if d == domain)
        sid = hashed_sid(authority, name)
        self.virtual.setdefault(sid, (name, domain))
        self._by_name.setdefault((domain, name.upper()), sid)
        return sid

    def _index(self, sid: str, name: str, domain: str) -> None:
        self._by_name[(domain.upper(), name.upper())] = sid
        prefix = _domain_prefix(sid)
        if prefix and domain and prefix[0] not in self._given_domains:
            self.domains.setdefault(prefix[0], domain)

    def learn(self, sid: str, name: str | None, domain: str | None) -> None:
        """An account a trace shows (its SID with its name and domain)."""
        if not sid or name is None:
            return
        sid = sid.strip().upper()
        if sid in self.given or sid in self.learned:
            return
        self.learned[sid] = (name, domain or "")
        self._index(sid, name, domain or "")

    def learn_frame(self, frame: Any) -> int:
        """Learn every distinct (token_sid, account_name, account_domain) a trace DataFrame
        carries in full; returns how many accounts were new."""
        cols = ["token_sid", "account_name", "account_domain"]
        if not all(c in frame.columns for c in cols[:2]) or not len(frame):
            return 0
        import pyarrow as pa
        import pyarrow.compute as pc
        present = [c for c in cols if c in frame.columns]
        sid = pa.array(frame["token_sid"].array, from_pandas=True)
        name = pa.array(frame["account_name"].array, from_pandas=True)
        has_sid, has_name = pc.is_valid(sid), pc.is_valid(name)
        # nothing to resolve when every row with a SID names it and no named row lacks one
        if not (pc.any(pc.and_(has_sid, pc.invert(has_name))).as_py() or
                pc.any(pc.and_(has_name, pc.invert(has_sid))).as_py()):
            return 0
        arrays = [sid, name] + ([pa.array(frame["account_domain"].array, from_pandas=True)]
                                if "account_domain" in present else [])
        table = pa.table([pc.dictionary_encode(a) for a in arrays], names=present)
        keys = table.filter(pc.and_(has_sid, has_name)).group_by(present).aggregate([])
        before = len(self.learned)
        for k in keys.to_pylist():
            self.learn(k["token_sid"], k["account_name"], k.get("account_domain"))
        if "logon_id" in frame.columns:   # a logon session seen with exactly one SID names it
            pairs = frame.loc[frame["token_sid"].notna() & frame["logon_id"].notna(),
                              ["logon_id", "token_sid"]].drop_duplicates()
            counts = pairs["logon_id"].value_counts()
            for logon, sid in pairs[pairs["logon_id"].map(counts) == 1].itertuples(index=False):
                self.logons.setdefault(int(logon), str(sid))
        return len(self.learned) - before

    # -- answers ----------------------------------------------------------------------------------
    def resolve(self, sid: str | None) -> tuple[str, str] | None:
        """(name, domain) as SecLookupAccountSid would give it, or None (the helpers' -ENOENT)."""
        if not sid:
            return None
        sid = sid.strip().upper()
        found = self.given.get(sid) or self.learned.get(sid) or WELL_KNOWN.get(sid)
        if found:
            return found
        prefix = _domain_prefix(sid)
        if prefix and prefix[1] in DOMAIN_RIDS and prefix[0] in self.domains:
            return DOMAIN_RIDS[prefix[1]], self.domains[prefix[0]]
        head, _, last = sid.rpartition("-")
        if head in SESSION_ACCOUNTS and last.isdigit():
            name, domain = SESSION_ACCOUNTS[head]
            return f"{name}-{last}", domain
        return self.virtual.get(sid)

    def sid_of(self, name: str | None, domain: str | None) -> str | None:
        """The SID of a named account, when some source knows it (a virtual account's SID is
        computed from its name)."""
        if name is None:
            return None
        key = ((domain or "").upper(), name.upper())
        sid = self._by_name.get(key)
        if sid is None and key[0] in HASHED_AUTHORITIES.values():
            sid = self._virtual(name, key[0])
        if sid is None and key[0] and not key[0] == BUILTIN:
            for dsid, dname in self.domains.items():
                if dname.upper() == key[0]:
                    for rid, rname in DOMAIN_RIDS.items():
                        if rname.upper() == key[1]:
                            return f"{dsid}-{rid}"
        return sid

    def token_sid(self, sid: str | None, name: str | None, domain: str | None,
                  logon_id: int | None = None, count: int = 1) -> str | None:
        """The SID a create carries: its own, else its account's (by name, or by its logon
        session when the trace ties that session to one SID), else `default_sid`; `count`
        creates share the answer (what `placeholders`/`defaulted` count)."""
        if sid or not self.complete:
            return sid or None
        found = self.sid_of(name, domain) if name is not None else None
        if found is None and logon_id:
            found = self.logons.get(logon_id)
        if found is None and name is not None:
            found = placeholder_sid(name, domain)
            self.learned.setdefault(found, (name, domain or ""))
            self._by_name.setdefault(((domain or "").upper(), name.upper()), found)
        if found is not None and found.startswith(PLACEHOLDER_DOMAIN + "-"):
            if self.counting:
                self.placeholders += count
            return found
        if found is None:
            found = self.default_sid
            if found is not None and self.counting:
                self.defaulted += count
        return found

    def strings(self, sid: str | None, name: str | None, domain: str | None,
                count: int = 1) -> tuple[bytes | None, bytes | None]:
        """The UTF-16LE name and domain the helpers return for a create, or (None, None): the
        event's own names when it carries them, else what the table resolves its SID to."""
        if not sid:
            return None, None
        if name is None and domain is None:
            found = self.resolve(sid)
            if found is None:
                if self.counting:
                    self.unresolved[sid] += count
                return None, None
            name, domain = found
        return (name or "").encode("utf-16-le"), (domain or "").encode("utf-16-le")

    # -- reporting --------------------------------------------------------------------------------
    def describe_unresolved(self, top: int = 5) -> str:
        items = self.unresolved.most_common(top)
        more = len(self.unresolved) - len(items)
        text = ", ".join(f"{sid} ({n:,} event{'s' if n != 1 else ''})" for sid, n in items)
        return text + (f" and {more} more" if more > 0 else "")

    def __len__(self) -> int:
        return len(self.given) + len(self.learned) + len(WELL_KNOWN)

    def __repr__(self) -> str:
        return (f"<AccountTable {len(self.given)} given, {len(self.learned)} from traces, "
                f"{len(self.domains)} domains, {len(WELL_KNOWN)} well-known; "
                f"{len(self.unresolved)} SIDs unresolved; creates given a SID: "
                f"{self.placeholders} placeholder, {self.defaulted} default>")

    def _repr_html_(self) -> str:
        rows = [(s, *a, "given") for s, a in self.given.items()] + \
            [(s, *a, "trace") for s, a in self.learned.items()]
        body = "".join(f"<tr><td><code>{html.escape(s)}</code></td><td>{html.escape(n)}</td>"
                       f"<td>{html.escape(d)}</td><td>{src}</td></tr>" for s, n, d, src in rows[:50])
        unresolved = (f"<p>Unresolved (helpers return -2): "
                      f"{html.escape(self.describe_unresolved())}</p>" if self.unresolved else "")
        return (f"<div><b>Accounts</b>: {len(self.given)} given, {len(self.learned)} from "
                f"traces, {len(WELL_KNOWN)} well-known SIDs, domains "
                f"{html.escape(', '.join(sorted(set(self.domains.values()))) or '-')}"
                f"<table><tr><th>SID</th><th>name</th><th>domain</th><th>from</th></tr>{body}"
                f"</table>{unresolved}</div>")
