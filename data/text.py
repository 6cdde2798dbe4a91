"""Text from users' files made safe to render: Markdown and console output."""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~])")


def markdown_text(value: object) -> str:
    """``value`` as literal Markdown text: special characters escaped, on one line.

    Names come from policy metadata and file paths, which anyone can write: a name must
    not be able to add a table row, a heading ("PASSED") or HTML to a summary.
    """
    one_line = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", one_line)
