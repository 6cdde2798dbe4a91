"""Normalising the free-form fields of California DMV disengagement and mileage reports.

Every rule is a small pure function, so each can be tested alone (property tests in
tests/data/test_dmv.py) and listed in docs/dmv.md. None of them knows the 2023 headers or
values: they work on the kind of text these files hold.
"""

from __future__ import annotations

import datetime as dt
import re

#: Legal-form words dropped when comparing manufacturer spellings.
LEGAL_FORMS = {"inc", "llc", "ltd", "corp", "corporation", "co", "company", "limited", "plc", "gmbh", "lp", "l"}

INITIATORS = ("test driver", "av system", "remote operator", "passenger", "other")
LOCATIONS = ("street", "highway", "freeway", "interstate", "rural road", "parking", "other")

_EXCEL_EPOCH = dt.date(1899, 12, 30)
_MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}


def clean_text(value: str | None) -> str:
    """Whitespace collapsed (non-breaking spaces and line breaks included), ends stripped."""
    return " ".join((value or "").replace("\xa0", " ").split())


def manufacturer_key(name: str) -> str:
    """A spelling-independent key: case, punctuation and legal forms (Inc., LLC ...) dropped.

    >>> manufacturer_key("AIMOTIVE INC.") == manufacturer_key("aiMotive Inc.")
    True
    """
    words = re.sub(r"[^0-9a-z]+", " ", clean_text(name).casefold()).split()
    kept = [w for w in words if w not in LEGAL_FORMS]
    return " ".join(kept or words)


def driverless_permit(permit: str | None, file_name: str) -> bool | None:
    """Whether miles were driven under a driverless testing permit (``AVDT...``, or a "driverless" file).

    California numbers driverless testing permits ``AVDT`` and testing with a driver ``AVT``;
    the DMV also publishes the two kinds in separate files. None when neither says.
    """
    p = clean_text(permit).upper()
    if p.startswith("AVDT") or "driverless" in file_name.casefold():
        return True
    if p.startswith("AVT"):
        return False
    return None


def same_company(key_a: str, key_b: str) -> bool:
    """Whether two :func:`manufacturer_key` keys name one company: equal, or one the other's leading words.

    >>> same_company("motional", "motional ad")
    True
    """
    a, b = key_a.split(), key_b.split()
    n = min(len(a), len(b))
    return n > 0 and a[:n] == b[:n]


def parse_date(text: str | None) -> dt.date | None:
    """A report date in any of the forms the files use, or None.

    Accepted: ``2022-12-06``, ``2022-12-06 10:39:23``, ``8/12/2023``, ``8/12/23``,
    ``2021.12.06.`` (with or without a time), ``20230112``, ``12-Jan-2023``, ``Jan 12, 2023``,
    and Excel serial day numbers (``44927``). Month/day order is US (month first).
    """
    s = clean_text(text)
    if not s:
        return None
    s = re.sub(r"[ T]\d{1,2}:\d{2}(:\d{2})?(\.\d+)?$", "", s).strip()
    try:
        m = re.fullmatch(r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})\.?", s)
        if m:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        m = re.fullmatch(r"(\d{1,2})[/-](\d{1,2})[/-](\d{2}|\d{4})", s)
        if m:
            year = int(m[3]) + (2000 if len(m[3]) == 2 else 0)
            return dt.date(year, int(m[1]), int(m[2]))
        m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", s)
        if m:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        m = re.fullmatch(r"(\d{1,2})[- ]([A-Za-z]{3})[A-Za-z]*[- ,]+(\d{2}|\d{4})", s)
        if m and m[2].lower() in _MONTHS:
            year = int(m[3]) + (2000 if len(m[3]) == 2 else 0)
            return dt.date(year, _MONTHS[m[2].lower()], int(m[1]))
        m = re.fullmatch(r"([A-Za-z]{3})[A-Za-z]*\.? (\d{1,2}),? (\d{4})", s)
        if m and m[1].lower() in _MONTHS:
            return dt.date(int(m[3]), _MONTHS[m[1].lower()], int(m[2]))
        if re.fullmatch(r"\d{5}(\.\d+)?", s) and 20000 <= float(s) <= 80000:
            return _EXCEL_EPOCH + dt.timedelta(days=int(float(s)))
    except ValueError:  # a day or month out of range
        return None
    return None


def report_year(day: dt.date) -> int:
    """The DMV report year of a date: December belongs to the next year's report."""
    return day.year + 1 if day.month == 12 else day.year


def parse_number(text: str | None) -> float | None:
    """A number with optional thousands separators (``1,049.54``); None for blank, ``-`` or ``N/A``."""
    s = clean_text(text).replace(",", "").replace("$", "")
    if s in ("", "-", "--") or s.casefold() in ("n/a", "na", "none", "null"):
        return None
    if s.startswith("(") and s.endswith(")"):
        s = "-" + s[1:-1]
    try:
        value = float(s)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def parse_yes_no(text: str | None) -> bool | None:
    """``Yes``/``No`` (and ``Y``, ``N``, ``True``, ``False``), else None."""
    s = clean_text(text).casefold()
    if s in ("yes", "y", "true", "1"):
        return True
    if s in ("no", "n", "false", "0"):
        return False
    return None


def initiator_category(text: str | None) -> str:
    """Who initiated a disengagement, as one of :data:`INITIATORS`.

    A human in the car wins over the system when both are named ("Test driver, AV system"):
    the takeover is the driver's act, whatever prompted it.
    """
    s = clean_text(text).casefold()
    if re.search(r"remote|tele", s):
        return "remote operator"
    if re.search(r"driver|operator|safety|human|specialist", s):
        return "test driver"
    if "passenger" in s:
        return "passenger"
    if re.search(r"\bav\b|system|software|autonom|vehicle|ads\b", s):
        return "av system"
    return "other"


def location_category(text: str | None) -> str:
    """Where a disengagement happened, as one of :data:`LOCATIONS`."""
    s = clean_text(text).casefold()
    if "interstate" in s:
        return "interstate"
    if re.search(r"freeway|express ?way", s):
        return "freeway"
    if re.search(r"highway|hwy", s):
        return "highway"
    if "rural" in s:
        return "rural road"
    if re.search(r"parking|lot\b|garage|depot|facility", s):
        return "parking"
    if re.search(r"street|road|urban|city|avenue|boulevard|intersection|downtown|residential", s):
        return "street"
    return "other"
