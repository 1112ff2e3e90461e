"""The built-in sandbox card processor: Stripe's test cards, with no network.

It behaves as a processor would (docs/rules.md, "Payment methods" and "Payments to the processor"):
- It keeps its own record of payments and of every idempotency key in a SQLite file of its own
  (`SANDBOX_DB`), written on its own autocommit connection: a transaction of ours that rolls back
  cannot erase money it took, exactly as with a real processor.
- A repeated idempotency key gets the first answer again; the same key with other parameters is
  refused, as Stripe refuses it.
- `SANDBOX_LATENCY_MS` delays every call, to measure what a processor's latency costs.

Test cards (any future expiry, any 3-digit CVC):

| card                   | when saved                           | when charged                                 |
| 4242…4242, 5555…4444   | saved                                | succeeds                                     |
| 4000 0000 0000 0002    | refused: "Your card was declined."   | -                                            |
| 4000 0000 0000 9995    | refused: "…insufficient funds."      | -                                            |
| 4000 0000 0000 0341    | saved                                | every charge declined                        |
| 4000 0027 6000 3184    | saved                                | needs authentication: off-session it fails;  |
|                        |                                      | on-session the owner confirms on a stand-in  |
|                        |                                      | page (billing.views.payment_confirm)         |

Any other Luhn-valid number saves and succeeds. Only brand, last four and expiry are kept; the
card reference encodes how the card behaves, never its number.
"""

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from django.conf import settings

from payments.gateway import (
    AUTHORIZED,
    CANCELLED,
    FAILED,
    REFUNDED,
    REQUIRES_ACTION,
    SUCCEEDED,
    CardError,
    PaymentOutcome,
    SavedCard,
)

REFUSED_WHEN_SAVED = {
    "4000000000000002": ("card_declined", "Your card was declined."),
    "4000000000009995": ("insufficient_funds", "Your card has insufficient funds."),
}
# How a saved card behaves when charged, by its number.
BEHAVIOURS = {"4000000000000341": "decline", "4000002760003184": "authenticate"}
DECLINED = ("card_declined", "Your card was declined.")
AUTHENTICATION_REQUIRED = ("authentication_required",
                           "Your bank requires authentication for this payment (authentication required).")
# Cards saved before the test-card table was complete were declined when charged; they still are.
OLD_DECLINES = {"declined": DECLINED, "insufficient_funds": ("insufficient_funds", "Your card has insufficient funds.")}

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY,
    attempt_id INTEGER,
    card_ref TEXT NOT NULL,
    amount INTEGER NOT NULL,
    amount_refunded INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    capture TEXT NOT NULL,
    decline_code TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_attempt ON payments (attempt_id);
CREATE TABLE IF NOT EXISTS requests (
    idempotency_key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL
);
"""


_SCHEMA_LOCK = threading.Lock()
_CONNECTIONS = threading.local()
_THREAD_LOCKS: dict[tuple[int, str], threading.Lock] = {}
_LOCK_FILES: dict[tuple[int, str], object] = {}


@contextlib.contextmanager
def _write_lock(path: str):
    """The sandbox's one writer at a time, across threads and processes, woken as soon as it is free.

    SQLite's own busy handler makes a waiting writer sleep and poll (up to 100 ms a try), which a
    processor's books should not cost; so threads of a process queue on a lock of their own, and
    processes on a blocking `flock` of a file beside the books (the kernel wakes the next at once).
    """
    key = (os.getpid(), path)  # a forked process has its own: flock belongs to the open file
    with _SCHEMA_LOCK:
        thread_lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
        lock_file = _LOCK_FILES.get(key)
        if lock_file is None:
            lock_file = _LOCK_FILES[key] = open(f"{path}.lock", "a")  # noqa: SIM115 - kept open for the process
    with thread_lock:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


class IdempotencyKeyInUse(Exception):
    """The same idempotency key was sent with other parameters (Stripe answers 400)."""


def luhn_ok(number: str) -> bool:
    """The Luhn checksum every real card number passes."""
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_brand(number: str) -> str:
    """The brand, from the number's prefix."""
    if number.startswith("4"):
        return "Visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4]) <= 2720:
        return "Mastercard"
    if number[:2] in {"34", "37"}:
        return "Amex"
    if number.startswith(("6011", "65")):
        return "Discover"
    return "Card"


class SandboxGateway:
    """Built-in test processor; what a charge does is decided by the card's test number."""

    name = "sandbox"

    def __init__(self, path: str | Path | None = None):
        self.path = str(path or settings.SANDBOX_DB)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    # --- its own books --------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection to the sandbox's books (autocommit: nothing of ours can roll it back)."""
        key = (os.getpid(), self.path)  # a forked worker opens its own
        connection = getattr(_CONNECTIONS, "by_key", {}).get(key)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            # WAL: readers never wait for the writer. NORMAL: a commit survives any crash of ours
            # (only a power cut could lose the last one), without an fsync per payment.
            connection.execute("PRAGMA synchronous=NORMAL")
            if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'requests'").fetchone() is None:
                with _SCHEMA_LOCK:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.executescript(SCHEMA)
            _CONNECTIONS.__dict__.setdefault("by_key", {})[key] = connection
        return connection

    def _latency(self) -> None:
        # The network round trip a real processor costs; outside the sandbox's own lock.
        delay = settings.SANDBOX_LATENCY_MS
        if delay:
            time.sleep(delay / 1000)

    def _idempotent(self, key: str, params: dict, action) -> PaymentOutcome:
        """Run `action(connection)` once per key; a repeat gets the stored answer."""
        self._latency()
        fingerprint = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        connection = self._connect()
        with _write_lock(self.path):
            return self._idempotent_locked(connection, key, fingerprint, action)

    def _idempotent_locked(self, connection, key, fingerprint, action) -> PaymentOutcome:
        try:
            connection.execute("BEGIN IMMEDIATE")
            row = connection.execute("SELECT fingerprint, response FROM requests WHERE idempotency_key = ?",
                                     (key,)).fetchone()
            if row is not None:
                connection.execute("COMMIT")
                if row["fingerprint"] != fingerprint:
                    raise IdempotencyKeyInUse(key)
                return _outcome_from(json.loads(row["response"]))
            outcome = action(connection)
            connection.execute("INSERT INTO requests VALUES (?, ?, ?)",
                               (key, fingerprint, json.dumps(_outcome_to(outcome))))
            connection.execute("COMMIT")
            return outcome
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    # --- the gateway interface ------------------------------------------------------------------

    def save_card(self, *, number: str, exp_month: int, exp_year: int, cvc: str,
                  today: datetime.date) -> SavedCard:
        number = "".join(number.split()).replace("-", "")
        if not (number.isascii() and number.isdigit()) or not 13 <= len(number) <= 19 or not luhn_ok(number):
            raise CardError("That card number is not valid.", field="number")
        if not 1 <= exp_month <= 12 or (exp_year, exp_month) < (today.year, today.month):
            raise CardError("That card has expired.", field="exp_month")
        if not (cvc.isascii() and cvc.isdigit()) or len(cvc) not in (3, 4):
            raise CardError("The security code must be 3 or 4 digits.", field="cvc")
        self._latency()
        if number in REFUSED_WHEN_SAVED:
            raise CardError(REFUSED_WHEN_SAVED[number][1], field="number")
        behaviour = BEHAVIOURS.get(number, "ok")
        return SavedCard(f"sb_card_{behaviour}_{secrets.token_hex(8)}", card_brand(number), number[-4:],
                         exp_month, exp_year)

    def authorize(self, *, card_ref: str, amount_cents: int, idempotency_key: str, description: str,
                  attempt_id: int, off_session: bool) -> PaymentOutcome:
        return self._create(card_ref, amount_cents, idempotency_key, attempt_id, off_session, capture="manual")

    def charge(self, *, card_ref: str, amount_cents: int, idempotency_key: str, description: str,
               attempt_id: int, off_session: bool) -> PaymentOutcome:
        return self._create(card_ref, amount_cents, idempotency_key, attempt_id, off_session, capture="automatic")

    def capture(self, *, processor_ref: str, idempotency_key: str) -> PaymentOutcome:
        def act(connection):
            payment = _payment(connection, processor_ref)
            if payment["status"] == AUTHORIZED:
                connection.execute("UPDATE payments SET status = ? WHERE id = ?", (SUCCEEDED, processor_ref))
            return _outcome(_payment(connection, processor_ref))

        return self._idempotent(idempotency_key, {"capture": processor_ref}, act)

    def cancel(self, *, processor_ref: str, idempotency_key: str) -> PaymentOutcome:
        def act(connection):
            payment = _payment(connection, processor_ref)
            if payment["status"] in (AUTHORIZED, REQUIRES_ACTION):
                connection.execute("UPDATE payments SET status = ? WHERE id = ?", (CANCELLED, processor_ref))
            return _outcome(_payment(connection, processor_ref))

        return self._idempotent(idempotency_key, {"cancel": processor_ref}, act)

    def refund(self, *, processor_ref: str, amount_cents: int, idempotency_key: str,
               attempt_id: int) -> PaymentOutcome:
        def act(connection):
            payment = _payment(connection, processor_ref)
            left = payment["amount"] - payment["amount_refunded"]
            if payment["status"] not in (SUCCEEDED, REFUNDED) or not 0 < amount_cents <= left:
                return PaymentOutcome(FAILED, processor_ref, amount_cents, decline_code="refund_refused",
                                      message="This payment cannot be refunded by that amount.")
            refunded = payment["amount_refunded"] + amount_cents
            status = REFUNDED if refunded == payment["amount"] else SUCCEEDED
            connection.execute("UPDATE payments SET amount_refunded = ?, status = ? WHERE id = ?",
                               (refunded, status, processor_ref))
            return PaymentOutcome(REFUNDED, f"sb_re_{secrets.token_hex(8)}", amount_cents,
                                  answer={"refund_of": processor_ref, "attempt_id": attempt_id})

        return self._idempotent(idempotency_key, {"refund": processor_ref, "amount": amount_cents}, act)

    def lookup(self, *, processor_ref: str = "", attempt_id: int | None = None) -> PaymentOutcome | None:
        self._latency()
        connection = self._connect()
        if processor_ref:
            row = connection.execute("SELECT * FROM payments WHERE id = ?", (processor_ref,)).fetchone()
        else:
            row = connection.execute("SELECT * FROM payments WHERE attempt_id = ? ORDER BY created DESC",
                                     (attempt_id,)).fetchone()
        return _outcome(row) if row is not None else None

    def authenticate(self, *, processor_ref: str, approve: bool) -> PaymentOutcome:
        """The stand-in for 3-D Secure: the cardholder approves (or fails) the payment in the browser."""
        self._latency()
        connection = self._connect()
        with _write_lock(self.path):
            return self._authenticate_locked(connection, processor_ref, approve)

    def _authenticate_locked(self, connection, processor_ref: str, approve: bool) -> PaymentOutcome:
        connection.execute("BEGIN IMMEDIATE")
        try:
            payment = _payment(connection, processor_ref)
            if payment["status"] == REQUIRES_ACTION:
                if approve:
                    status = AUTHORIZED if payment["capture"] == "manual" else SUCCEEDED
                    connection.execute("UPDATE payments SET status = ? WHERE id = ?", (status, processor_ref))
                else:
                    connection.execute(
                        "UPDATE payments SET status = ?, decline_code = ?, message = ? WHERE id = ?",
                        (FAILED, "authentication_failed", "The payment was not authenticated, so your bank "
                                                          "declined it.", processor_ref))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return _outcome(_payment(connection, processor_ref))

    # --- helpers ---------------------------------------------------------------------------------

    def _create(self, card_ref, amount_cents, key, attempt_id, off_session, *, capture) -> PaymentOutcome:
        if amount_cents <= 0:
            raise ValueError("a payment needs a positive amount")
        params = {"card": card_ref, "amount": amount_cents, "attempt": attempt_id, "off_session": off_session,
                  "capture": capture}

        def act(connection):
            behaviour = _behaviour(card_ref)
            code, message = "", ""
            if behaviour == "decline":
                status, (code, message) = FAILED, DECLINED
            elif behaviour in OLD_DECLINES:
                status, (code, message) = FAILED, OLD_DECLINES[behaviour]
            elif behaviour == "authenticate":
                if off_session:
                    status, (code, message) = FAILED, AUTHENTICATION_REQUIRED
                else:
                    status = REQUIRES_ACTION
            else:
                status = AUTHORIZED if capture == "manual" else SUCCEEDED
            payment_id = f"sb_pi_{secrets.token_hex(10)}"
            connection.execute(
                "INSERT INTO payments (id, attempt_id, card_ref, amount, status, capture, decline_code, message, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (payment_id, attempt_id, card_ref, amount_cents, status, capture, code, message, time.time()))
            return _outcome(_payment(connection, payment_id))

        return self._idempotent(key, params, act)

    def payments(self) -> list[dict]:
        """Every payment the sandbox holds (for tests and the benchmark's books check)."""
        return [dict(row) for row in self._connect().execute("SELECT * FROM payments ORDER BY created")]


def _behaviour(card_ref: str) -> str:
    parts = card_ref.split("_")
    if len(parts) < 4 or parts[:2] != ["sb", "card"]:
        return "ok"
    return "_".join(parts[2:-1])


def _payment(connection, processor_ref: str) -> sqlite3.Row:
    row = connection.execute("SELECT * FROM payments WHERE id = ?", (processor_ref,)).fetchone()
    if row is None:
        raise LookupError(f"the sandbox has no payment {processor_ref}")
    return row


def _outcome(row) -> PaymentOutcome:
    return PaymentOutcome(row["status"], row["id"], row["amount"], row["amount_refunded"], row["decline_code"],
                          row["message"], {"id": row["id"], "status": row["status"], "amount": row["amount"],
                                           "amount_refunded": row["amount_refunded"],
                                           "decline_code": row["decline_code"]})


def _outcome_to(outcome: PaymentOutcome) -> dict:
    return {"status": outcome.status, "processor_ref": outcome.processor_ref, "amount_cents": outcome.amount_cents,
            "amount_refunded_cents": outcome.amount_refunded_cents, "decline_code": outcome.decline_code,
            "message": outcome.message, "answer": outcome.answer}


def _outcome_from(data: dict) -> PaymentOutcome:
    return PaymentOutcome(**data)
