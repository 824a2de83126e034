"""The vadpack command line: parse arguments, load the config, call the library.

Exit codes: 0 all inputs succeeded, 3 some inputs failed (see failures.parquet), 2 config or usage
error (one line per mistake, found before any stage runs), 1 internal error, 130 interrupted.
A traceback is printed only with ``-v``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from vadpack.pipeline.stages import STAGES

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool that stopped writing to a closed pipe


def _global_flags(default: object) -> argparse.ArgumentParser:
    """-v and -q, accepted before or after the subcommand (``vadpack run c.yaml -v``)."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="also log every batch (DEBUG), and print the traceback of an internal error")
    flags.add_argument("-q", "--quiet", action="store_true", default=default, help="only warnings and errors")
    return flags


def build_parser() -> argparse.ArgumentParser:
    from vadpack.core import __version__

    p = argparse.ArgumentParser(prog="vadpack", parents=[_global_flags(False)],
                                description="Long recordings -> VAD -> packed batches -> "
                                "FunASR Paraformer -> Parquet transcripts.")
    p.add_argument("--version", action="version", version=f"vadpack {__version__}")
    # SUPPRESS: a flag not given after the subcommand leaves the one given before it in place.
    common = _global_flags(argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_subparser_class(common))
    run = sub.add_parser("run", help="run the stages that are not up to date")
    run.add_argument("config", help="YAML config file")
    which = run.add_mutually_exclusive_group()
    which.add_argument("--stage", choices=STAGES, help="rerun only this stage from its saved inputs")
    which.add_argument("--from", dest="start", choices=STAGES, help="rerun this stage and all after it")
    run.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. -o packer.budget_s=600 (repeatable)")
    run.add_argument("--force", nargs="?", const="", default=None, metavar="STAGE",
                     help="redo a stage's work even when it is up to date (asr: decode every segment again); "
                          "with --from S or --stage S and no STAGE: those stages")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    st = sub.add_parser("status", help="print each stage: done / stale / missing, with row counts")
    st.add_argument("config")
    st.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    pr = sub.add_parser("prune", help="remove cache files, results and exports no recording uses any more")
    pr.add_argument("config")
    pr.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    pr.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    tiny = sub.add_parser("tiny-model", help="write a randomly initialised model folder (Paraformer or SenseVoice)")
    tiny.add_argument("dir", help="output folder")
    tiny.add_argument("--size", choices=("tiny", "large"), default="tiny",
                      help="tiny: small and fast (tests, demo); large: the Paraformer-large or SenseVoice-Small "
                      "architecture")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    tiny.add_argument("--family", choices=("paraformer", "sensevoice"), default="paraformer",
                      help="paraformer (CIF, zh) or sensevoice (SenseVoice-Small, CTC, zh/en/yue/ja/ko)")
    return p


def _subparser_class(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    class Sub(argparse.ArgumentParser):
        def __init__(self, **kwargs) -> None:
            super().__init__(parents=[common], **kwargs)

    return Sub


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error argparse has already printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    _setup_logging(args)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("vadpack: interrupted; rerun the same command to resume (completed work is kept)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `vadpack status CONFIG | head`: the reader has gone; quiet, as other tools are
        _drop_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as e:
        return _report_error(e, args.verbose)


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    vp_log = logging.getLogger("vadpack")
    vp_log.handlers[:] = [handler]
    vp_log.setLevel(level)
    vp_log.propagate = False


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "tiny-model":
        return cmd_tiny_model(args)
    from vadpack.pipeline.api import load_config

    try:
        cfg = load_config(args.config, args.override)
    except (ValueError, FileNotFoundError) as e:  # every mistake in the file or an override
        raise UsageError(str(e)) from e
    if args.command == "status":
        return cmd_status(cfg)
    if args.command == "prune":
        return cmd_prune(cfg, args.dry_run)
    return cmd_run(cfg, args)


class UsageError(Exception):
    """A mistake in the command line or the config: exit 2, no traceback, no advice to rerun."""


def _report_error(e: Exception, verbose: bool) -> int:
    """One line (one per problem) on stderr and the exit code; the traceback only with -v."""
    from vadpack.core.configtools import ConfigError
    from vadpack.pipeline.runner import StageOrderError

    if verbose:
        traceback.print_exception(e)
    if isinstance(e, (UsageError, ConfigError, StageOrderError)):
        for line in str(e).splitlines() or [type(e).__name__]:
            print(f"vadpack: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(e, OSError):
        # The disk or the filesystem, not vadpack: once that is fixed, the run resumes where it stopped.
        print(f"vadpack: error: {e}; fix this (e.g. free disk space) and rerun the same command to resume, "
              "completed work is kept", file=sys.stderr)
    else:
        print(f"vadpack: internal error: {type(e).__name__}: {e}; completed work is kept and rerunning the same "
              "command resumes from it; if it fails again, run with -v and report the traceback", file=sys.stderr)
    return EXIT_INTERNAL


def cmd_tiny_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    target = Path(args.dir)
    if target.is_file() or (target.is_dir() and any(target.iterdir()) and not args.force):
        what = "is a file" if target.is_file() else "is not empty"
        raise UsageError(f"{target} {what}; give a new or empty folder, or --force to write into this one")

    if args.family == "sensevoice":
        from vadpack.testkit.tiny_sensevoice import write_tiny_sensevoice as write
    else:
        from vadpack.testkit.tiny import write_tiny_model as write
    path = write(args.dir, size=args.size, seed=args.seed)
    print(f"wrote a random {args.size} {'SenseVoice' if args.family == 'sensevoice' else 'Paraformer'} model "
          f"to {path}")
    return EXIT_OK


def cmd_status(cfg) -> int:
    from vadpack.pipeline.api import status
    from vadpack.pipeline.housekeeping import usage
    from vadpack.pipeline.preflight import PreflightError, preflight

    try:
        preflight(cfg)
    except PreflightError as e:  # status still shows what is there; the next run would stop here
        for line in e.problems:
            print(f"vadpack: warning: the next run would stop: {line}", file=sys.stderr)

    for st in status(cfg):
        rows = "" if st.rows is None else f"{st.rows} rows"
        print(f"{st.stage:7s} {st.state:8s} {rows:>12s}  {st.reason}")
    for name, (files, size) in usage(cfg).items():
        print(f"{name:14s} {_size(size):>10s}  ({files} files)")
    return EXIT_OK


def cmd_prune(cfg, dry_run: bool) -> int:
    from vadpack.pipeline.api import prune

    report = prune(cfg, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    if not report.files:
        print("nothing to prune: every cache file, result and export belongs to the archive")
    for kind, n in report.files.items():
        print(f"{verb} {n} {kind} ({_size(report.bytes.get(kind, 0))})")
    return EXIT_OK


def _forced(args: argparse.Namespace) -> tuple[str, ...]:
    """The stages ``--force`` names: its argument, or the stages of ``--stage`` / ``--from``."""
    if args.force is None:
        return ()
    if args.force:
        if args.force not in STAGES:
            raise UsageError(f"--force {args.force}: not a stage; choose one of {', '.join(STAGES)}")
        return (args.force,)
    if args.stage:
        return (args.stage,)
    if args.start:
        return STAGES[STAGES.index(args.start):]
    raise UsageError("--force needs a stage: --force asr, or --from S --force, or --stage S --force")


def _size(n_bytes: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return ""


def cmd_run(cfg, args: argparse.Namespace) -> int:
    from vadpack.pipeline.api import run
    from vadpack.pipeline.summary import print_summary

    report = run(cfg, stage=args.stage, from_stage=args.start, force=_forced(args),
                 progress=not args.no_progress and sys.stderr.isatty())
    print_summary(report.summary)
    return EXIT_PARTIAL if report.failed else EXIT_OK


def entry() -> None:
    """The ``vadpack`` command: ``main`` with its exit code, then :func:`exit_process`."""
    exit_process(main())


def exit_process(code: int) -> None:
    """Exit with ``code`` once everything is written, without Python's final teardown.

    pyarrow's background threads can abort the interpreter's last clean-up ("terminate called
    without an active exception", SIGABRT; apache/arrow#34314), turning a finished run into a crash
    exit code now and then. The work is done and flushed, and atexit handlers (a local Ray cluster's
    shutdown, temporary files) still run; only the module teardown that can abort is skipped.
    """
    import atexit

    logging.shutdown()
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the last of the output met a closed pipe: quiet, as in main
        _drop_stdout()
        code = code or EXIT_BROKEN_PIPE
    sys.stderr.flush()
    os._exit(code)


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that no later flush of a closed pipe prints an error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    entry()
