"""roadworthy's Streamlit dashboards: risk maps, disengagements, policy comparison, replay, data health.

The modules here other than ``app`` and ``views`` (the pages) are pure functions (DataFrames and
plotly figures) and do not import Streamlit. Needs the ``dashboard`` extra.
"""
