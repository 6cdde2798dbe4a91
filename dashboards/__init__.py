"""roadworthy's Streamlit dashboards (filled in by issue 7)."""
