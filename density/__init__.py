"""roadworthy's density models of the logged behaviour (filled in by issue 4)."""
