"""Stage: serving/routes."""
