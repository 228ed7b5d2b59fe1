"""Who spent what: the per-request usage record, its recorder and its stores."""
