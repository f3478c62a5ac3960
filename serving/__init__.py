"""Stage: serving."""
