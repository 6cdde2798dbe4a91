"""roadworthy's density models of the logged behaviour."""
