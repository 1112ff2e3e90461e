"""Django's PostgreSQL backend, with statements that ride on the COMMIT and prepared statements (see `base`)."""
