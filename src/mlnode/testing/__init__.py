"""In-memory fakes of mlnode's ports (:mod:`mlnode.ports`), for tests that need no real runtime."""
