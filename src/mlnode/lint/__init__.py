"""Linting a node's image settings: effective values with provenance, then rules.

:func:`mlnode.lint.engine.lint_documents` is the entry point: parsed documents in,
findings and the effective settings out. Nothing here reads files or prints.
"""
