"""The embedded simulator (highway-env): fleet logs, closed-loop rollouts, example policies.

Needs the ``sim`` extra (``pip install 'roadworthy[sim]'``).
"""
