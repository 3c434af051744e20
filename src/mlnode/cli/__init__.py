"""The ``mlnode`` command line: one module per subcommand, registered in :mod:`mlnode.cli.app`."""
