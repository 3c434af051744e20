"""The node-local pull-through registry mirror (``mlnode mirror``)."""
