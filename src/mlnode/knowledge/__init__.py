"""What mlnode knows about kubelet and runtime image settings, version by version.

The facts live in :mod:`mlnode.knowledge.table` as data; :mod:`placement` decides where a
setting goes for given versions and :mod:`validation` reproduces the kubelet's own checks.
"""
