"""Many submissions: the inbox, the batch, the backends that run it, and its status.

The organizers receive tens to a hundred e-mails, each with a ZIP and a PDF report, and score them on
one or more machines that may crash or be requeued. This package turns whatever they saved (ZIPs,
folders, .eml files, mbox files, Maildirs) into arrivals (`inbox`), plans and works the batch on
this host (`run`) or on a cluster (`backends`), and says where it stands (`status`). What happened to
each submission is in the journal (`harness.journal`), and how much runs at once is `harness.slots`.
Each submission goes through the single-submission pipeline (`harness.pipelines.score`).
"""
