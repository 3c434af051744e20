"""Changing a node: safe file writes with backups, service restarts, verification, apply.

Planning is pure (:func:`mlnode.ops.apply.plan_apply` returns file edits and service
actions as values); execution is thin and goes through ports that tests replace: the
filesystem root, a :class:`~mlnode.ops.services.ServiceManager`, and the endpoints and
command runners :mod:`mlnode.ops.verify` polls.
"""
