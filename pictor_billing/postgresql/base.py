"""Django's PostgreSQL backend, plus statements that ride on their transaction's COMMIT, and a cursor
whose statements the server plans once per connection.

Taking a gap-free invoice number locks the year's sequence row until the transaction commits.
Sent as the last statement before COMMIT, that lock is held while this process gets the answer
back and then sends COMMIT: under load (other threads holding the interpreter lock) that is many
milliseconds, and every other invoice of the year waits. `commit_rider` queues such statements
instead; the commit sends them and COMMIT in one round trip, so the lock is held only for the
server's own work and the WAL flush. A rollback drops them, as it would have undone them.

`prepared_cursor`: Django binds parameters on the client, so PostgreSQL parses and plans every query
anew. For a query every page runs whose planning costs more than its execution (the Billing header's:
0.35 ms to plan, 0.15 ms to run), this cursor binds on the server and psycopg prepares the statement
from its fifth run on; the server replans it by itself when a table it reads is altered or
analyzed, and a connection's prepared statements go with it (DB_CONN_MAX_AGE).
"""

from collections.abc import Callable, Sequence

from django.db.backends.postgresql import base
from django.db.backends.utils import debug_transaction

PREPARE_THRESHOLD = 5  # psycopg's default


class DatabaseWrapper(base.DatabaseWrapper):
    """PostgreSQL as Django runs it, plus `commit_rider` and `prepared_cursor`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commit_riders: list[tuple[Sequence[str], list, Callable[[list[tuple]], None]]] = []

    def commit_rider(self, statements: Sequence[str], params: list, done: Callable[[list[tuple]], None]) -> bool:
        """Send `statements` (each with its %s parameters, all in `params`) with this transaction's
        COMMIT, in one round trip, and call `done(rows of the last statement)` once it has committed.

        Only when the current block's end is that COMMIT (the outermost atomic block, no savepoint
        open); otherwise it returns False and the caller runs them itself.
        """
        if not self.in_atomic_block or self.savepoint_ids or self.get_autocommit():
            return False
        self.commit_riders.append((tuple(statements), list(params), done))
        return True

    def _commit(self):
        riders, self.commit_riders = self.commit_riders, []
        if not riders or self.connection is None:
            return super()._commit()
        sql = "; ".join(statement for statements, _, _ in riders for statement in statements) + "; COMMIT"
        params = [param for _, rider_params, _ in riders for param in rider_params]
        with debug_transaction(self, sql), self.wrap_database_errors, self.connection.cursor() as cursor:
            cursor.execute(sql, params)  # psycopg returns the first statement's result; nextset() the others
            results = []
            for statements, _, _ in riders:
                for index in range(len(statements)):
                    if index:
                        cursor.nextset()
                    rows = cursor.fetchall() if cursor.description else []
                results.append(rows)
                cursor.nextset()
        for (_, _, done), rows in zip(riders, results, strict=True):
            done(rows)

    def get_connection_params(self):
        params = super().get_connection_params()
        # Django turns psycopg's prepared statements off; only `prepared_cursor`'s statements are ever
        # prepared (the ordinary cursor binds on the client, which never prepares), from their fifth run.
        if self.settings_dict["OPTIONS"].get("prepare_threshold") is None:
            params["prepare_threshold"] = PREPARE_THRESHOLD
        return params

    def prepared_cursor(self):
        """A cursor whose statements PostgreSQL plans once per connection (server-side binding: psycopg
        prepares a statement from its fifth run on), for the few heavy queries every page runs.

        Otherwise as `cursor()`: the same wrappers (debug logging, execute_wrapper, query counts).
        """
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            return self._prepare_cursor(base.ServerBindingCursor(self.connection))

    def _rollback(self):
        self.commit_riders = []
        return super()._rollback()

    def _close(self):
        self.commit_riders = []
        return super()._close()
