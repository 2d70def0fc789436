"""The mailbox, below the batch: where the mail loop is configured (`config`: server addresses,
TLS, where passwords come from), an IMAP folder read as an inbox (`imap`), and the answers to
senders over SMTP (`replies`).

The batch (`harness.bulk`) reads IMAP folders and answers through these; the loop that runs batches
until the deadline (`harness.mail`: `loop`, `watch`) sits above the batch. docs/MAIL.md describes
the whole loop for organizers.
"""
