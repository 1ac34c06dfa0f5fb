"""Living-off-the-land binaries and suspicious command lines.

The LOLBin list and the patterns are public knowledge (the LOLBAS project, common ATT&CK
procedure examples); each pattern has a name and the technique it usually indicates.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .tree import image_name

if TYPE_CHECKING:
    import pandas as pd

LOLBINS = frozenset("""
at.exe bitsadmin.exe certutil.exe cmstp.exe control.exe cscript.exe csc.exe desktopimgdownldr.exe
esentutl.exe expand.exe extrac32.exe findstr.exe forfiles.exe ftp.exe hh.exe ieexec.exe
installutil.exe mavinject.exe msbuild.exe msdt.exe mshta.exe msiexec.exe odbcconf.exe pcalua.exe
powershell.exe pwsh.exe presentationhost.exe reg.exe regasm.exe regini.exe regsvcs.exe
regsvr32.exe rundll32.exe sc.exe schtasks.exe scriptrunner.exe syncappvpublishingserver.exe
vssadmin.exe wevtutil.exe wmic.exe wscript.exe xwizard.exe bcdedit.exe netsh.exe
""".split())

SUSPICIOUS: list[tuple[str, str, str]] = [
    # (name, ATT&CK technique, regular expression over the command line)
    ("encoded PowerShell", "T1059.001", r"\s-e(nc|ncodedcommand)?\s+[A-Za-z0-9+/=]{16,}"),
    ("execution policy bypass", "T1059.001", r"-(ep|executionpolicy)\s+bypass"),
    ("hidden window", "T1564.003", r"-w(indowstyle)?\s+h(idden)?\b"),
    ("download cradle", "T1105", r"downloadstring|downloadfile|invoke-webrequest|iwr\s|net\.webclient|start-bitstransfer"),
    ("certutil download or decode", "T1140", r"certutil(\.exe)?\b.*(-urlcache|-decode|-split)"),
    ("bitsadmin transfer", "T1197", r"bitsadmin(\.exe)?\b.*/transfer"),
    ("LSASS memory dump", "T1003.001", r"comsvcs(\.dll)?\W+#?24\b|comsvcs.*minidump|procdump.*(-ma|lsass)|sekurlsa"),
    ("shadow copy deletion", "T1490", r"vssadmin(\.exe)?\b.*delete\s+shadows|shadowcopy\s+delete|wbadmin.*delete\s+catalog"),
    ("recovery disabled", "T1490", r"bcdedit.*(recoveryenabled\s+no|bootstatuspolicy\s+ignoreallfailures)"),
    ("scheduled task created", "T1053.005", r"schtasks(\.exe)?\b.*/create"),
    ("run key written", "T1547.001", r"reg(\.exe)?\s+add\s+\S*\\currentversion\\run"),
    ("service created", "T1543.003", r"\bsc(\.exe)?\s+(\\\\\S+\s+)?create\b"),
    ("event log cleared", "T1070.001", r"wevtutil(\.exe)?\s+(cl|clear-log)\b"),
    ("regsvr32 scriptlet", "T1218.010", r"regsvr32.*/i:\s*https?:|scrobj\.dll"),
    ("mshta script", "T1218.005", r"mshta(\.exe)?\s+(vbscript|javascript|https?):"),
    ("rundll32 script", "T1218.011", r"rundll32.*javascript:"),
]
_COMPILED = [(n, t, re.compile(p, re.IGNORECASE)) for n, t, p in SUSPICIOUS]


def suspicious_reasons(command_line: str | None) -> list[tuple[str, str]]:
    """(pattern name, technique) for every pattern the command line matches."""
    if not isinstance(command_line, str) or not command_line:
        return []
    return [(n, t) for n, t, rx in _COMPILED if rx.search(command_line)]


def lolbin_table(trace: "pd.DataFrame") -> "pd.DataFrame":
    """Creations of LOLBins: counts and distinct command lines per binary."""
    import pandas as pd
    creates = trace[trace["operation"] == "create"]
    names = creates["image_path"].map(image_name).str.lower()
    hits = creates.assign(image=names)[names.isin(LOLBINS)]
    if hits.empty:
        return pd.DataFrame(columns=["image", "count", "distinct_command_lines"])
    return (hits.groupby("image").agg(count=("image", "size"),
                                      distinct_command_lines=("command_line", "nunique"))
            .reset_index().sort_values(["count", "image"], ascending=[False, True])
            .reset_index(drop=True))


def suspicious_commands(trace: "pd.DataFrame") -> "pd.DataFrame":
    """One row per (creation, matched pattern)."""
    import pandas as pd
    rows = []
    for row in trace[trace["operation"] == "create"].to_dict("records"):
        for name, technique in suspicious_reasons(row.get("command_line")):
            rows.append({"time": row.get("time"), "process_id": row.get("process_id"),
                         "image": image_name(row.get("image_path")), "pattern": name,
                         "technique": technique, "command_line": row.get("command_line"),
                         "process_key": row.get("process_key")})
    return pd.DataFrame(rows, columns=["time", "process_id", "image", "pattern", "technique",
                                       "command_line", "process_key"])
