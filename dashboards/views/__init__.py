"""Streamlit pages: thin layers that call the pure functions of :mod:`roadworthy.dashboards`.

Not in a folder named ``pages/``: Streamlit would list such a folder's files as pages of its own.
"""
