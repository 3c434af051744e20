"""A content-addressed, resumable blob cache on disk (the node mirror's store)."""
