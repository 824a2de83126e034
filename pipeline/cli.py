"""The vadpack command line: parse arguments, load the config, call the library.

Exit codes: 0 all inputs succeeded, 3 some inputs failed (see failures.parquet), 2 config or usage
error, 1 internal error.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline.stages import STAGES

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vadpack", description="Long recordings -> VAD -> packed batches -> "
                                "FunASR Paraformer -> Parquet transcripts.")
    p.add_argument("-v", "--verbose", action="store_true", help="also log every batch (DEBUG)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", required=True)
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
    tiny.add_argument("--family", choices=("paraformer", "sensevoice"), default="paraformer",
                      help="paraformer (CIF, zh) or sensevoice (SenseVoice-Small, CTC, zh/en/yue/ja/ko)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    vp_log = logging.getLogger("vadpack")
    vp_log.handlers[:] = [handler]
    vp_log.setLevel(level)
    vp_log.propagate = False
    try:
        if args.command == "tiny-model":
            return cmd_tiny_model(args)
        from pipeline.api import load_config

        cfg = load_config(args.config, args.override)
        if args.command == "status":
            return cmd_status(cfg)
        if args.command == "prune":
            return cmd_prune(cfg, args.dry_run)
        return cmd_run(cfg, args)
    except (ValueError, FileNotFoundError) as e:
        print(f"vadpack: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("vadpack: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def cmd_tiny_model(args: argparse.Namespace) -> int:
    if args.family == "sensevoice":
        from asr.tiny_sensevoice import write_tiny_sensevoice as write
    else:
        from asr.tiny import write_tiny_model as write
    path = write(args.dir, size=args.size, seed=args.seed)
    print(f"wrote a random {args.size} {'SenseVoice' if args.family == 'sensevoice' else 'Paraformer'} model "
          f"to {path}")
    return EXIT_OK


def cmd_status(cfg) -> int:
    from pipeline.api import status
    from pipeline.housekeeping import usage

    for st in status(cfg):
        rows = "" if st.rows is None else f"{st.rows} rows"
        print(f"{st.stage:7s} {st.state:8s} {rows:>12s}  {st.reason}")
    for name, (files, size) in usage(cfg).items():
        print(f"{name:14s} {_size(size):>10s}  ({files} files)")
    return EXIT_OK


def cmd_prune(cfg, dry_run: bool) -> int:
    from pipeline.api import prune

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
            raise ValueError(f"--force {args.force}: not a stage; choose one of {', '.join(STAGES)}")
        return (args.force,)
    if args.stage:
        return (args.stage,)
    if args.start:
        return STAGES[STAGES.index(args.start):]
    raise ValueError("--force needs a stage: --force asr, or --from S --force, or --stage S --force")


def _size(n_bytes: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return ""


def cmd_run(cfg, args: argparse.Namespace) -> int:
    from core.configtools import ConfigError
    from pipeline.api import run
    from pipeline.runner import StageOrderError
    from pipeline.summary import print_summary

    try:
        report = run(cfg, stage=args.stage, from_stage=args.start, force=_forced(args),
                     progress=not args.no_progress and sys.stderr.isatty())
    except (StageOrderError, ConfigError) as e:
        print(f"vadpack: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        logging.getLogger("vadpack").debug("internal error", exc_info=True)
        print(f"vadpack: internal error: {type(e).__name__}: {e}\n"
              "Rerun the same command to resume; completed work is kept.", file=sys.stderr)
        if args.verbose:
            raise
        return EXIT_INTERNAL
    print_summary(report.summary)
    return EXIT_PARTIAL if report.failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
