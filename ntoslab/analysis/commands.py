"""Living-off-the-land binaries and suspicious command lines.

The LOLBin list and the patterns are public knowledge (the LOLBAS project, common ATT&CK
procedure examples); each pattern has a name and the technique it usually indicates.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .processes import image_names, map_unique

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


# the names a binary goes by: its file name, and (Sysmon) the PE's own OriginalFileName and
# Description, which survive a rename (certutil copied to Temptcm.tmp is still CertUtil.exe)
NAME_COLUMNS = ("original_file_name", "description")


def _lolbin_of(creates):
    """The LOLBin each creation is (lower-case name), or None: by image name, else by
    OriginalFileName, else by Description."""
    import numpy as np
    found = np.array([n if n in LOLBINS else None for n in
                      (x.lower() for x in image_names(creates["image_path"]))], dtype=object) \
        if len(creates) else np.empty(0, object)
    for c in NAME_COLUMNS:
        if c in creates.columns and len(creates):
            alias = map_unique(creates[c], lambda v: v.strip().lower()
                               if isinstance(v, str) and v.strip().lower() in LOLBINS else None)
            found = np.where(np.equal(found, None), alias, found)
    return found


def lolbin_table(trace: "pd.DataFrame") -> "pd.DataFrame":
    """Creations of LOLBins: counts, distinct command lines per binary, and how many ran under
    another name (`renamed`: the image name is not the binary's, as OriginalFileName or
    Description tell)."""
    import numpy as np
    import pandas as pd
    creates = trace[(trace["operation"] == "create").fillna(False).to_numpy(bool)]
    which = _lolbin_of(creates)
    hit = ~np.equal(which, None)
    if not hit.any():
        return pd.DataFrame(columns=["image", "count", "distinct_command_lines", "renamed"])
    names = np.array([n.lower() for n in image_names(creates["image_path"])], dtype=object)
    hits = pd.DataFrame({"image": which[hit], "command_line": creates["command_line"].to_numpy(object)[hit],
                         "renamed": names[hit] != which[hit]})
    return (hits.groupby("image").agg(count=("image", "size"),
                                      distinct_command_lines=("command_line", "nunique"),
                                      renamed=("renamed", "sum"))
            .reset_index().sort_values(["count", "image"], ascending=[False, True])
            .reset_index(drop=True))


def suspicious_commands(trace: "pd.DataFrame") -> "pd.DataFrame":
    """One row per (creation, matched pattern). Each distinct command line is matched once; a
    renamed LOLBin is matched under its real name too (the Temptcm.tmp that is CertUtil.exe
    matches "certutil download or decode" on `Temptcm.tmp -decode ...`)."""
    import numpy as np
    import pandas as pd
    creates = trace[(trace["operation"] == "create").fillna(False).to_numpy(bool)]
    cmd = creates["command_line"] if "command_line" in creates.columns else \
        pd.Series([None] * len(creates), dtype=object)
    images = image_names(creates["image_path"]) if len(creates) else np.empty(0, object)
    real = _lolbin_of(creates)
    # a renamed binary: its command line as if it ran under its own name
    alias = np.array([_as_named(c, im, r) for c, im, r in
                      zip(cmd.to_numpy(object), images, real)], dtype=object) \
        if (~np.equal(real, None)).any() else cmd.to_numpy(object)
    found = map_unique(pd.Series(alias, dtype=object),
                       lambda c: tuple(suspicious_reasons(c)) if isinstance(c, str) else ())
    rows = []
    cols = {c: creates[c].to_numpy(object) if c in creates.columns else [None] * len(creates)
            for c in ("time", "process_id", "process_key")}
    times = creates["time"] if "time" in creates.columns else None
    for i in np.flatnonzero(np.array([bool(f) for f in found], bool)).tolist():
        for name, technique in found[i]:
            rows.append({"time": times.iloc[i] if times is not None else None,
                         "process_id": cols["process_id"][i], "image": images[i],
                         "pattern": name, "technique": technique,
                         "command_line": cmd.iloc[i], "process_key": cols["process_key"][i]})
    return pd.DataFrame(rows, columns=["time", "process_id", "image", "pattern", "technique",
                                       "command_line", "process_key"])


def _as_named(command_line, image, real):
    """The command line with a renamed binary's first word replaced by its real name."""
    if not isinstance(command_line, str) or real is None or image.lower() == real:
        return command_line
    text = command_line.lstrip()
    head, sep, rest = text.partition(" ")
    if image.lower() in head.strip('"').lower():
        return real + sep + rest
    return real + " " + command_line
