"""The mail loop, above the batch: one batch of mail at a time, each sender answered when its check
has ended (`loop`), until the deadline (`watch`).

What it reads and sends through is below the batch, in `harness.mailbox` (configuration, the IMAP
folder, the answers); the IMAP side of the inbox is `harness.bulk.mail_source`. docs/MAIL.md
describes the whole loop for organizers.
"""
