"""Readers and renderers for every file format operators keep image settings in.

Readers turn text into a :class:`~mlnode.formats.base.ParsedDocument` with a file:line
for every value; renderers turn a :class:`~mlnode.knowledge.placement.Placement` into text,
or merge it into an existing file while keeping its comments, order and other content.
"""
