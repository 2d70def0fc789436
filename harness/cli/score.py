"""`aecc score INBOX...`: score submissions with X-ARES (Track A and B), every stage in a container,
resumable, signed when a key is given; on this host, or as Slurm jobs (`--backend slurm`,
`harness.bulk.backends.slurm`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from checker.jobs import DEFAULT_MAX_SECONDS, DEFAULT_MODE, DEFAULT_REPEATS, DEFAULT_SEED, Mode
from harness.bulk.backends import Backend
from harness.cli.common import add_build_flags, build_options, console, default_profile
from harness.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("score", help="score submissions (ZIPs, folders, .eml, mbox, Maildir, IMAP) with X-ARES, "
                                     "resumably")
    add_score_flags(s)
    add_mail_flags(s)
    cluster = s.add_argument_group("cluster (--backend slurm: one Slurm array task per submission; RESULTS and the "
                                   "inbox on the cluster's shared file system)")
    cluster.add_argument("--backend", choices=("local", "slurm"), default="local",
                         help="local: this host works through the batch (default); slurm: submit it to Slurm")
    cluster.add_argument("--partition", help="Slurm partition of the jobs (default: the cluster's)")
    cluster.add_argument("--gres", help="GRES per job (default gpu:1 when the profile has a GPU, none for cpu; "
                                        "'none' for none)")
    cluster.add_argument("--array-limit", type=int, metavar="N",
                         help="at most N jobs of the batch at once (the array's %%N; default 4)")
    cluster.add_argument("--wait", action="store_true",
                         help="wait for every job, printing progress; exit code as the local backend's")
    cluster.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG",
                         help="one more sbatch option, e.g. --sbatch-arg=--time=04:00:00 (repeatable)")
    s.set_defaults(func=run)


def add_score_flags(s: argparse.ArgumentParser) -> None:
    """The inputs and scoring options `aecc score` and `aecc watch` share."""
    s.add_argument("inputs", nargs="+", metavar="INBOX",
                   help="ZIP files, submission folders, folders of ZIPs, .eml files, mbox files, Maildirs, "
                        "IMAP folders (imaps://USER@HOST[:PORT]/FOLDER, or imap:// with STARTTLS)")
    s.add_argument("--data", required=True, help="X-ARES env dir: one folder per task with <split>*.tar shards")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--tasks", nargs="+", help="registry names or X-ARES task modules (*.py)")
    which.add_argument("--task-set", metavar="NAME",
                       help="a task set of the registry (paper, icme2025-final): its tasks that this data, model "
                            "store and profile can score, the rest listed with the reason and the weight missing")
    s.add_argument("--models", metavar="DIR",
                   help="model store of `aecc models fetch` (librispeech's LM, clotho's tokenizer), checked "
                        "against its manifest and mounted read-only into the score container only")
    s.add_argument("--out", required=True, help="RESULTS: <sha256>/result.json per submission, the journal, the inbox")
    s.add_argument("--encoder", help="FILE.py:ClassName, when one submission's encoder cannot be found automatically")
    s.add_argument("--profile", help="sandbox profile (default: t4 with a GPU, else cpu)")
    s.add_argument("--gpu", help="use only this GPU (UUID or index); default: every GPU with enough memory")
    s.add_argument("--jobs", type=int, help="at most this many submissions at once (default: what RAM and cores allow)")
    s.add_argument("--retries", type=int, default=2, help="retries of an infrastructure failure, with backoff (default 2)")
    s.add_argument("--latest-per-sender", action="store_true",
                   help="a later ZIP from the same sender supersedes the earlier one (both kept on disk)")
    s.add_argument("--block-on", nargs="+", default=[], metavar="CHECK|LEVEL",
                   help="more checks that exclude a submission when they fail: check ids, or a whole level "
                        "(scoring, advice); rule checks (X-ARES's own) always do")
    s.add_argument("--rescore", action="store_true",
                   help="rerun scoring on stored embeddings (after a harness or runtime upgrade)")
    s.add_argument("--key", help="Ed25519 private key (PEM) to sign results with (default: $AECC_SIGNING_KEY)")
    s.add_argument("--mode", choices=[m.value for m in Mode], default=DEFAULT_MODE.value,
                   help=f"unique: every crop keyed uniquely; xares: reproduce X-ARES 0.1.3's keys and losses "
                        f"(default {DEFAULT_MODE.value})")
    s.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help=f"Track A runs on this many seeds per task (mean, each value and spread kept; "
                        f"default {DEFAULT_REPEATS})")
    s.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"base seed; per-task seeds derive from it and the task only (default {DEFAULT_SEED})")
    s.add_argument("--no-warm-start", action="store_true",
                   help="start prepare and score only when their inputs are ready (slower; for comparison)")
    s.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help=f"time budget of the in-container checks (default {DEFAULT_MAX_SECONDS:g} s)")
    add_build_flags(s, resolve=True)


def add_mail_flags(s: argparse.ArgumentParser) -> None:
    """IMAP sources and answers to senders (docs/MAIL.md). Passwords never on the command line."""
    mail = s.add_argument_group("mail (IMAP inboxes and answers to senders; docs/MAIL.md)")
    mail.add_argument("--ca-file", metavar="PEM", help="CA certificates the IMAP and SMTP servers' certificates are "
                                                       "checked against (default: the system's)")
    mail.add_argument("--password-file", metavar="FILE",
                      help="the mail password on its first line (default: $AECC_IMAP_PASSWORD / "
                           "$AECC_SMTP_PASSWORD, then ~/.netrc)")
    mail.add_argument("--allow-plaintext", action="store_true",
                      help="allow imap:// and smtp:// without STARTTLS (the password crosses the network readable)")
    mail.add_argument("--imap-done", metavar="FOLDER",
                      help="move processed mail to this IMAP folder (default: flag it $AeccProcessed)")
    mail.add_argument("--reply", metavar="SMTP_URL",
                      help="answer each sender after the check: smtps://USER@HOST[:PORT] (or smtp:// with STARTTLS)")
    mail.add_argument("--reply-from", metavar="ADDRESS", help="the answers' From (default: the SMTP user)")
    mail.add_argument("--reply-dry-run", metavar="DIR", help="write the answers to DIR as .eml instead of sending")
    mail.add_argument("--reply-scores", action="store_true",
                      help="include scores in answers (they then wait for scoring); default: no scores")
    mail.add_argument("--reply-cap", type=int, default=5, metavar="N",
                      help="at most N answers per sender per hour (default 5)")


def mail_options(args: argparse.Namespace, *, until: str | None = None, accept_late: bool = False) -> object | None:
    """The MailOptions of the flags, or None when no mail flag and no IMAP input is given."""
    from harness.mailbox.config import MailOptions, is_mail_url, parse_url

    for source in args.inputs:
        if is_mail_url(source):
            parse_url(source, imap=True)  # a malformed address, or one with a password, before any work
    given = any(getattr(args, n, None) not in (None, False) for n in
                ("ca_file", "password_file", "allow_plaintext", "imap_done", "reply", "reply_from", "reply_dry_run",
                 "reply_scores"))
    if not given and until is None and not any(is_mail_url(p) for p in args.inputs):
        return None
    return MailOptions(ca_file=Path(args.ca_file) if args.ca_file else None,
                       password_file=Path(args.password_file) if args.password_file else None,
                       allow_plaintext=args.allow_plaintext, imap_done=args.imap_done, reply=args.reply,
                       reply_from=args.reply_from,
                       reply_dry_run=Path(args.reply_dry_run) if args.reply_dry_run else None,
                       reply_scores=args.reply_scores, reply_cap=args.reply_cap, until=until, accept_late=accept_late)


#: flags that mean nothing to the local backend (refused there rather than ignored)
SLURM_ONLY = ("partition", "gres", "array_limit", "wait", "sbatch_arg")


def run(args: argparse.Namespace) -> int:
    from harness.bulk.run import describe_plan, run_batch
    from harness.report.live import Board
    from harness.sandbox import engine

    out = console()
    backend = Backend(args.backend)
    if backend is Backend.LOCAL:
        given = [f"--{n.replace('_', '-')}" for n in SLURM_ONLY if getattr(args, n) not in (None, False, [])]
        if given:
            raise UsageError(f"{', '.join(given)} only apply to --backend slurm", expected="--backend slurm with them",
                             found="--backend local", fix="add --backend slurm, or drop them")
    mail = mail_options(args)
    if backend is Backend.SLURM and mail is not None and mail.replying:
        raise UsageError("answers to senders need --backend local", expected="--reply without --backend slurm",
                         found="--backend slurm", fix="answer with `aecc watch` or a local `aecc score` run")
    spec = batch_spec(args, backend, out, mail)
    if backend is Backend.SLURM:
        return _run_slurm(args, spec, out)
    board = Board(out, live=out.is_terminal)

    def on_plan(planned, capacity) -> None:
        for line in describe_plan(planned, capacity):
            out.print(line, highlight=False, markup=False)
        for p in planned:
            board.add(p.submission.sha256, p.arrivals[0].get("sender") or str(p.arrivals[0].get("file_name")))

    with board:
        if mail is None:
            outcome = run_batch(engine.connect(), spec, build_options(args), progress=board.progress,
                                on_plan=on_plan)
        else:
            from harness.cli.common import progress_printer
            from harness.mail.loop import run_mail_batch

            outcome = run_mail_batch(engine.connect(), spec, build_options(args), progress=board.progress,
                                     on_plan=on_plan, say=progress_printer(out))
    from harness.bulk.status import collect
    from harness.report.status import render_status

    render_status(collect(spec.out), out)
    out.print(f"results: {spec.out}  (aecc status {spec.out})", highlight=False)
    return outcome.exit_code


def batch_spec(args: argparse.Namespace, backend: Backend, out, mail) -> object:
    """The BatchSpec of `aecc score`'s (and `aecc watch`'s) flags; the task plan printed first."""
    from harness.attest import resolve_key_path
    from harness.bulk.run import BatchSpec
    from harness.mailbox.config import is_mail_url
    from harness.pipelines.score import ScoreSettings

    key = resolve_key_path(args.key)
    profile = args.profile
    if profile is None and backend is Backend.SLURM:
        # The submit host's own GPUs say nothing about the nodes': a GPU request says t4.
        profile = "t4" if args.gres and args.gres.strip().lower().startswith("gpu") else default_profile()
    tasks = chosen_tasks(args, profile or default_profile(), out)
    settings = ScoreSettings(data=Path(args.data), tasks=tasks, mode=args.mode,
                             repeats=args.repeats, seed=args.seed, warm_start=not args.no_warm_start,
                             block_on=frozenset(args.block_on), rescore=args.rescore, max_seconds=args.max_seconds,
                             models=Path(args.models) if args.models else None)
    spec = BatchSpec(inputs=tuple(p if is_mail_url(p) else Path(p) for p in args.inputs), out=Path(args.out),
                     settings=settings, mail=mail,
                     profile=profile or default_profile(), encoder=args.encoder, gpu=args.gpu, jobs=args.jobs,
                     retries=args.retries, backoff_s=float(os.environ.get("AECC_RETRY_BACKOFF_S", "10")),
                     latest_per_sender=args.latest_per_sender,
                     key=Path(key) if key else None)
    if spec.key is None:
        out.print("[yellow]no signing key (--key or AECC_SIGNING_KEY): results are written unsigned[/]")
    return spec


def chosen_tasks(args: argparse.Namespace, profile: str, out) -> tuple:
    """The tasks to score: `--tasks` as given, each with its data present, or what `--task-set`'s plan
    can run here (the plan is printed first: what runs, what does not and why, the weight missing)."""
    from harness.sandbox.profiles import load_profile
    from harness.report.tasksets import plan_lines
    from harness.tasks import sets
    from harness.tasks.arguments import resolve_tasks

    if args.task_set:
        plan = sets.plan(args.task_set, args.data, args.models, gpu=load_profile(profile).gpu is not None)
        for line in plan_lines(plan):
            out.print(line, highlight=False, markup=False)
        if not plan.run:
            raise UsageError(f"task set {args.task_set}: nothing can be scored here",
                             expected="the data of at least one task under --data", found=str(args.data),
                             fix="supply the task data (one folder per task with its tars and .audio_tar_ready)")
        return plan.task_refs()
    tasks = resolve_tasks(args.tasks)
    missing = sets.check_data(tasks, args.data)
    if missing:
        raise UsageError(f"{len(missing)} task(s) have no data under --data",
                         expected="<data>/<task>/ with its shards and the .audio_tar_ready marker",
                         found="; ".join(why for _, why in missing),
                         fix="supply the data, or leave those tasks out of --tasks")
    return tasks


def _run_slurm(args: argparse.Namespace, spec, out) -> int:
    """Plan here, submit one array task per submission, and return (or wait, with --wait)."""
    from rich.text import Text

    from harness.bulk.backends import slurm
    from harness.bulk.status import collect
    from harness.report.status import render_status

    options = slurm.SlurmOptions(partition=args.partition, gres=args.gres,
                                 array_limit=4 if args.array_limit is None else args.array_limit,
                                 sbatch_args=tuple(args.sbatch_arg), wait=args.wait,
                                 poll_s=slurm.poll_seconds())

    def say(message: str) -> None:
        out.print(Text(message), highlight=False)

    submitted = slurm.submit(spec, build_options(args), options,
                             progress=lambda sha, message: say(f"{sha[:12]} {message}"), say=say)
    if submitted.batch is None:
        queued = sum(why.startswith("still queued") for why in submitted.skipped.values())
        say(f"nothing to submit: {len(submitted.planned)} submission(s), every one final"
            + (f" or still queued ({queued})" if queued else ""))
        code = slurm.wait(submitted, options, say=say) if options.wait or not queued else 0
        render_status(collect(spec.out), out)
        return code
    job = submitted.job_id
    if not options.wait:
        say(f"Slurm job {job}: {len(submitted.batch.submissions)} array task(s). Follow it with "
            f"`aecc status {spec.out}` or `squeue -j {job}`; logs in {submitted.batch.path.parent / 'logs'}")
        return 0
    say(f"waiting for Slurm job {job} (Ctrl-C stops waiting; the jobs go on)")
    code = slurm.wait(submitted, options, say=say)
    render_status(collect(spec.out), out)
    say(f"results: {spec.out}  (aecc status {spec.out})")
    return code
