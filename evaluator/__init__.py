"""roadworthy's evaluator: conservative off-policy evaluation of driving policies.

Importing this package loads no heavy optional dependency (carla, streamlit,
highway-env, ray); those are imported by the functions that need them.
"""
