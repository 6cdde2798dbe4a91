"""Placing the columns of an NHTSA crash-report release by what their headers mean.

NHTSA renames and regroups columns between releases (``Highest Injury Severity`` became
``Highest Injury Severity Alleged``; the 2025 amendment renamed many more), so no header is
looked up verbatim. A header is reduced to a key (case, punctuation and spelling variants
such as "Subject Vehicle" / "SV" or "Pre-Crash" / "Precrash" made equal) and split at
" - " into a base and an option ("Weather - Rain": base ``weather``, option ``rain``).
Single fields match their base with patterns; flag groups (weather, contact areas, ...)
come either as one column per value holding ``Y`` (one-hot, as in 2021-2024) or as one
column of values separated by ``;`` or ``|``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from roadworthy.data.dmv.normalize import clean_text
from roadworthy.data.errors import UsageError

#: Single-value fields: name -> patterns on the header's base (first match wins).
FIELDS: dict[str, tuple[str, ...]] = {
    "report_id": (r"^report id$", r"^report (number|no)$"),
    "report_version": (r"^report version$", r"^version( number)?$"),
    "entity": (r"^reporting entity( name)?$", r"^reporting (company|manufacturer)$"),
    "report_type": (r"^report type$",),
    "submitted": (r"^report submission date$", r"^submission (date|month)$", r"^report (submitted|date)$"),
    "incident_id": (r"^same incident id$", r"^(same )?incident id\b", r"^incident identifier$"),
    "make": (r"^make$", r"^vehicle make$", r"^sv make$"),
    "model": (r"^model$", r"^vehicle model$", r"^sv model$"),
    "model_year": (r"^model year$", r"^vehicle model year$", r"^sv model year$"),
    "driver_type": (r"^driver operator type$", r"^(driver|operator) type$"),
    "ads_equipped": (r"^ads equipped$",),
    "engaged": (r"^automation system engaged$", r"\bengaged\b"),
    "operator": (r"^operating entity( name)?$", r"^operator( name)?$", r"^operating company$"),
    "incident_month": (r"^incident date$", r"^incident month( year)?$", r"^incident month and year$", r"^crash date$"),
    "incident_time": (r"^incident time\b", r"^crash time\b"),
    "city": (r"^(incident )?city$",),
    "state": (r"^(incident )?state$",),
    "roadway_type": (r"^roadway type$",),
    "roadway_surface": (r"^roadway surface$",),
    "roadway_description": (r"^roadway description$",),
    "speed_limit": (r"^posted speed limit\b",),
    "lighting": (r"^lighting\b",),
    "partner": (r"^crash with$", r"^cp (type|vehicle type)$", r"^crash partner( type)?$"),
    "severity": (r"^highest injury severity\b", r"^injury severity\b"),
    "property_damage": (r"^property damage$",),
    "cp_movement": (r"^cp precrash movement$",),
    "sv_movement": (r"^sv precrash movement$",),
    "sv_speed": (r"^sv precrash speed\b",),
    "sv_airbags": (r"^sv any air ?bags deployed$",),
    "cp_airbags": (r"^cp any air ?bags deployed$",),
    "within_odd": (r"^within odd$",),
    "narrative": (r"^narrative$", r"^incident narrative$"),
    "narrative_cbi": (),  # the option column "Narrative - CBI?", placed below
}

#: Flag groups: name -> pattern on the base (one-hot columns) or on the whole header (a list column).
FLAG_GROUPS: dict[str, str] = {
    "weather": r"^weather( conditions?)?$",
    "roadway_conditions": r"^roadway conditions?$",
    "cp_contact": r"^cp contact areas?$",
    "sv_contact": r"^sv contact areas?$",
    "sources": r"^source$",
    "data_availability": r"^data availability$",
}

#: Fields a release must have: without them incidents cannot be told apart or placed.
REQUIRED = ("report_id", "report_version", "entity", "incident_id", "incident_month", "state")

#: Columns read but not kept, on purpose (personal or business data, or nothing to add).
IGNORED = (
    r"^vin$",
    r"^serial number$",
    r"^same vehicle id$",
    r"^mileage$",
    r"^latitude$",
    r"^longitude$",
    r"^address$",
    r"^zip code$",
    r"investigat",
    r"^inv officer",
    r"^report (month|year)$",
    r"^notice received date$",
    r"^adas ads .*version",
    r"^other reporting entities$",
    r"federal reg",
    r"^state or local permit$",
    r"towed$",
    r"belted$",
)

#: Options of companion columns (``City - Unknown``, ``Narrative - CBI?``): not values of their field.
_COMPANIONS = {"unknown", "unk", "cbi", "na", "no", "not applicable"}
_SEPARATOR = re.compile(r"\s+-\s+")


def header_key(text: str) -> str:
    """A header reduced to lower-case words, with spelling variants made equal.

    >>> header_key("SV Pre-crash Speed (MPH)") == header_key("Subject Vehicle Precrash Speed (MPH)")
    True
    """
    s = clean_text(text).casefold()
    s = re.sub(r"\bsubject vehicle\b", "sv", s)
    s = re.sub(r"\bcrash partner\b", "cp", s)
    s = re.sub(r"\bpre[- ]?crash\b", "precrash", s)
    s = re.sub(r"\bmph\b|\(24:00\)", " ", s)
    return " ".join(re.sub(r"[^0-9a-z]+", " ", s).split())


def split_header(text: str) -> tuple[str, str]:
    """(base key, option key) of a header: ``"Weather - Rain"`` is ``("weather", "rain")``."""
    parts = _SEPARATOR.split(clean_text(text), maxsplit=1)
    return header_key(parts[0]), header_key(parts[1]) if len(parts) > 1 else ""


@dataclass
class Placement:
    """Where each field and flag of one file is: column indices, and what was left unplaced."""

    fields: dict[str, int] = field(default_factory=dict)
    #: group -> [(column, value label)] for one-hot columns, or [(column, "")] for a list column.
    flags: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    #: group -> column of the free text of its "Other" value (``Weather - Other Text``).
    other_text: dict[str, int] = field(default_factory=dict)
    unplaced: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_dict(self, header: list[str]) -> dict:
        return {
            "fields": {k: header[i] for k, i in self.fields.items()},
            "flags": {k: [header[i] for i, _ in v] for k, v in self.flags.items()},
            "unplaced_columns": self.unplaced,
            "fields_not_found": self.missing,
        }


def _option_label(raw_header: str) -> str:
    parts = _SEPARATOR.split(clean_text(raw_header), maxsplit=1)
    return parts[1] if len(parts) > 1 else parts[0]


def place_columns(path: Path, header: list[str]) -> Placement:
    """Place every column of ``header``; exit-2 errors for duplicate headers or missing required fields."""
    cleaned = [clean_text(h) for h in header]
    dupes = sorted(h for h, n in Counter(h for h in cleaned if h).items() if n > 1)
    if dupes:
        raise UsageError(
            f"{path}: the header repeats column(s) {', '.join(repr(d) for d in dupes)}, "
            "so their values cannot be told apart",
            "re-export the release from NHTSA's site, or rename the repeated columns",
        )
    out = Placement()
    used: set[int] = set()
    split = [split_header(h) for h in cleaned]
    for name, patterns in FIELDS.items():
        for pattern in patterns:
            hit = next(
                (i for i, (base, opt) in enumerate(split) if not opt and i not in used and re.search(pattern, base)),
                None,
            )
            if hit is not None:
                out.fields[name] = hit
                used.add(hit)
                break
    for i, (base, opt) in enumerate(split):
        if i in used or not cleaned[i]:
            continue
        group = next((g for g, p in FLAG_GROUPS.items() if re.search(p, base)), None)
        if group is not None:
            if opt in ("other text", "other specify", "other description"):
                out.other_text[group] = i
            else:
                out.flags.setdefault(group, []).append((i, _option_label(cleaned[i]) if opt else ""))
            used.add(i)
        elif opt in _COMPANIONS:
            if base == "narrative" and opt == "cbi":
                out.fields["narrative_cbi"] = i
            used.add(i)
        elif any(re.search(p, base) for p in IGNORED):
            used.add(i)
    out.unplaced = [cleaned[i] for i in range(len(cleaned)) if i not in used and cleaned[i]]
    out.missing = [n for n in FIELDS if n not in out.fields and n != "narrative_cbi"]
    absent = [n for n in REQUIRED if n not in out.fields]
    if absent:
        shown = ", ".join(repr(c) for c in out.unplaced[:40])
        hint = f"columns that could not be placed: {shown}" if out.unplaced else ""
        raise UsageError(
            f"{path}: no column for {', '.join(absent)} (is it an NHTSA Standing General Order incident report?)"
            + (f"; {hint}" if hint else ""),
            "pass an SGO-2021-01 incident report CSV; if NHTSA renamed a column, rename it back to the name in "
            "docs/sgo.md (or report the new name so the reader learns it)",
        )
    return out
