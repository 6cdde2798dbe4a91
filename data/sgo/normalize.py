"""Normalising the values of NHTSA crash reports: small pure functions, tested one by one.

None of them knows one release's exact values: severities are read by their words (so
"Minor W/ Hospitalization" of later releases is still minor), months in any of the forms
public files use, redaction markers wherever they appear.
"""

from __future__ import annotations

import re

from roadworthy.data.dmv.normalize import clean_text

#: The ordered severity categories, least to most severe (``Unknown`` is not among them: null).
SEVERITIES = ("No Injuries Reported", "Minor", "Moderate", "Serious", "Fatality")
#: From this rank on an incident is "severe" (serious or fatal).
SEVERE_RANK = 3

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_REDACTED = re.compile(r"^\[(redacted|may contain)[^\]]*\]$", re.IGNORECASE)

#: Two-letter codes of the states, DC and the territories, by name (for releases that spell them out).
STATE_CODES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA", "colorado": "CO",
    "connecticut": "CT", "delaware": "DE", "district of columbia": "DC", "florida": "FL", "georgia": "GA",
    "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA", "kansas": "KS",
    "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD", "massachusetts": "MA",
    "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT",
    "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM",
    "new york": "NY", "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK",
    "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC", "south dakota": "SD",
    "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA", "washington": "WA",
    "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY", "puerto rico": "PR", "guam": "GU",
}  # fmt: skip


def is_redacted(text: str | None) -> bool:
    """Whether a whole value is a redaction marker (``[REDACTED, MAY CONTAIN ...]``)."""
    return bool(_REDACTED.match(clean_text(text)))


def value(text: str | None) -> str | None:
    """A categorical value cleaned: blanks and redaction markers are None."""
    s = clean_text(text)
    return None if not s or is_redacted(s) else s


def parse_month(text: str | None) -> str | None:
    """An incident month as ``YYYY-MM``, or None.

    Accepted: ``AUG-2023``, ``Aug 2023``, ``August 2023``, ``2023-08``, ``08/2023``, and full
    dates (``2023-08-14``, ``8/14/2023``), whose day is dropped: the releases give months only.
    """
    s = clean_text(text).casefold()
    if not s:
        return None
    m = re.fullmatch(r"([a-z]{3})[a-z]*\.?[-/ ,]+(\d{4})", s)
    if m and m[1] in _MONTHS:
        return f"{int(m[2]):04d}-{_MONTHS.index(m[1]) + 1:02d}"
    m = re.fullmatch(r"(\d{4})[-/.](\d{1,2})(?:[-/.]\d{1,2})?(?:[ t].*)?", s)
    if m and 1 <= int(m[2]) <= 12:
        return f"{int(m[1]):04d}-{int(m[2]):02d}"
    m = re.fullmatch(r"(\d{1,2})/(?:\d{1,2}/)?(\d{4})(?: .*)?", s)
    if m and 1 <= int(m[1]) <= 12:
        return f"{int(m[2]):04d}-{int(m[1]):02d}"
    return None


def report_year_of_month(month: str | None) -> int | None:
    """The California DMV report year (December to November) of a ``YYYY-MM`` month."""
    if not month:
        return None
    year, mon = int(month[:4]), int(month[5:7])
    return year + 1 if mon == 12 else year


def parse_state(text: str | None) -> str | None:
    """A two-letter state code (``"CA "`` and ``"California"`` are ``CA``), or None."""
    s = clean_text(text)
    if not s or is_redacted(s):
        return None
    if re.fullmatch(r"[A-Za-z]{2}", s):
        return s.upper()
    return STATE_CODES.get(s.casefold())


def severity_rank(text: str | None) -> int | None:
    """The rank of an injury severity in :data:`SEVERITIES` (None: unknown or blank).

    Read by its words, so later variants ("Minor W/ Hospitalization", "Fatal") keep their rank.
    """
    s = clean_text(text).casefold()
    if not s or "unknown" in s or is_redacted(s):
        return None
    if "fatal" in s or "death" in s:
        return 4
    if "serious" in s or "severe" in s:
        return 3
    if "moderate" in s:
        return 2
    if "minor" in s:
        return 1
    if re.search(r"\bno\b|none|property damage only", s):
        return 0
    return None


def engaged(text: str | None) -> tuple[bool | None, str | None]:
    """(was an automation system engaged, which: ``ADS``/``ADAS``) from the engagement field.

    2021-2024 releases name the system that was engaged (``ADS``, ``ADAS``) or say
    ``Unknown, see Narrative``; plain ``Yes``/``No`` is read too.
    """
    s = clean_text(text).casefold()
    if not s or "unknown" in s or is_redacted(s):
        return None, None
    if re.fullmatch(r"adas\b.*", s):
        return True, "ADAS"
    if re.fullmatch(r"ads\b.*", s):
        return True, "ADS"
    if s in ("yes", "y", "engaged"):
        return True, None
    if s in ("no", "n", "not engaged", "none"):
        return False, None
    return None, None


def system_of(ads_equipped: str | None, file_name: str, engaged_system: str | None) -> str | None:
    """``ADS`` or ``ADAS``: the report's system, by its ADS-equipped field, else its file, else what was engaged."""
    s = clean_text(ads_equipped).casefold()
    if s in ("yes", "y"):
        return "ADS"
    if s in ("no", "n"):
        return "ADAS"
    name = file_name.upper()
    if re.search(r"(^|[^A-Z])ADAS([^A-Z]|$)", name):
        return "ADAS"
    if re.search(r"(^|[^A-Z])ADS([^A-Z]|$)", name):
        return "ADS"
    return engaged_system


def flag_set(text: str | None) -> bool:
    """Whether a one-hot cell is set (``Y``, ``Yes``, ``X``, ``1``, ``True``)."""
    return clean_text(text).casefold() in ("y", "yes", "x", "1", "true")


def split_list(text: str | None) -> list[str]:
    """Values of a list cell (``Clear; Cloudy`` or ``Clear | Cloudy``), blanks and redactions left out."""
    return [v for v in (value(p) for p in re.split(r"[;|\n]", text or "")) if v]
