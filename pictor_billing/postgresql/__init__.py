"""Django's PostgreSQL backend, with statements that ride on the COMMIT (see `base`)."""
