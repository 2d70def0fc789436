"""The mail loop: submissions read from an IMAP folder (`imap`), each sender answered over SMTP
after the check stage (`replies`), one batch at a time until the deadline (`loop`, `watch`).

Where the mail loop is configured (server addresses, TLS, where passwords come from) is `config`.
docs/MAIL.md describes the whole loop for organizers.
"""
