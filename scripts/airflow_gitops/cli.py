"""`airflow-gitops`: a thin command line over the library. Argument parsing only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pathlib import Path

# Subcommands import what they need when they run: `sync-dags` is on the edit loop's hot path.
from .errors import AirflowGitopsError
from .repo import find_root


def _unwind_on_sigterm() -> None:
    """Stopped with SIGTERM (CI timeouts, editors' task runners), unwind like Ctrl-C so that a
    scratch directory, which may be in memory, is removed."""
    import signal

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _compile(args: argparse.Namespace) -> int:
    from .kapitan_runner import compile_targets

    _unwind_on_sigterm()
    root = find_root()
    summary = compile_targets(root, targets=args.target or None, every=args.all)
    if summary.compiled == []:
        print("compiled/ is up to date: no environment's inputs changed since the last compile")
        return 0
    what = "every environment" if summary.compiled is None else ", ".join(summary.compiled)
    why = "" if args.target or summary.compiled is None else " (their inputs or compiled folders changed since the last compile)"
    print(f"compiled {what}{why} into compiled/ "
          f"({summary.changes} file{'' if summary.changes == 1 else 's'} written or removed)")
    return 0


def _inventory(args: argparse.Namespace) -> int:
    import yaml

    from . import inventory

    params = inventory.airflow_parameters(find_root(), args.target)
    sys.stdout.write(yaml.safe_dump(params, sort_keys=True))
    return 0


def _check_airflow(args: argparse.Namespace) -> int:
    from .validate import airflow_config
    from .validate.runner import context_for

    ctx = context_for(find_root(), args.target)
    failed = False
    for target in ctx.environments:
        outcome = airflow_config.check_environment(ctx, target)
        if outcome.status == "ok":
            print(f"{target}: airflow.cfg and pod template accepted by Apache Airflow {ctx.parameters[target]['version']}")
        else:
            failed = True
            print(f"{target}: " + "\n".join(outcome.reasons), file=sys.stderr)
    return 1 if failed else 0


def _config_options(args: argparse.Namespace) -> int:
    from . import config_options

    root = find_root()
    path = config_options.record(root, args.version)
    sections = config_options.read(root, args.version).sections
    print(f"wrote {path.relative_to(root)}: {sum(len(o) for o in sections.values())} options in {len(sections)} sections")
    return 0


def _sync_dags(args: argparse.Namespace) -> int:
    import json

    from .dags.sync import sync_dags

    root = find_root()
    result = sync_dags(
        root, args.target, source=Path(args.source) if args.source else None, repo=args.repo, branch=args.branch,
        dry_run=args.dry_run, import_check=not args.no_import_check, author=args.author, committer=args.committer,
        allow_promoted=args.allow_promoted,
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, sort_keys=True))
        return 0
    where = f"{result.destination.repo} {result.destination.branch}:{result.destination.sub_path or '/'}"
    checked = f"{result.dag_files} DAG files checked ({result.imported} imported, {result.cached} cached)"
    if result.status == "up-to-date":
        print(f"{where}: up to date; {checked}")
    elif result.status == "dry-run":
        print(f"{where}: would apply {result.plan.summary()}; {checked}")
        for kind, sign in (("added", "+"), ("changed", "~"), ("removed", "-")):
            for path in getattr(result.plan, kind):
                print(f"  {sign} {path}")
    else:
        print(f"{where}: published {result.commit[:12]} ({result.plan.summary()}, attempt {result.attempts}); {checked}")
    return 0


def _promote_dags(args: argparse.Namespace) -> int:
    from .dags.promote import promote

    result = promote(find_root(), args.source_env, args.target_env, repo=args.repo, reset=args.reset)
    if not result.changed:
        print(f"{args.target_env} already runs {result.commit[:12]} ({result.kind} {result.target_ref})")
        return 0
    was = result.previous[:12] if result.previous else "nothing"
    print(f"{args.target_env}: {result.kind} {result.target_ref} {was} -> {result.commit[:12]} "
          f"(what {result.source_env} runs on {result.source_ref})")
    if result.discarded:
        count = len(result.discarded)
        print(f"dropped {count} commit{'' if count == 1 else 's'} {args.target_env} had and {result.source_env} lacks:")
        print("\n".join(f"  {line}" for line in result.discarded))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from .validate import report
    from .validate.runner import validate

    root = find_root()
    changed = None
    if args.changed:
        from .diff.trees import changed_environments

        changed = changed_environments(root, args.base)
        if not args.quiet:
            names = ", ".join(changed[0]) or "none"
            print(f"validate --changed: compiled output differs from {changed[1]} for: {names} "
                  "(inventory, up-to-date and dags cover every environment)", file=sys.stderr)
    result = validate(root, environments=args.target, checks=args.check,
                      progress=None if args.quiet else sys.stderr, changed=changed)
    print(report.as_json(result) if args.json else report.as_table(result))
    return 0 if result.ok else 1


def _up(args: argparse.Namespace) -> int:
    from .up.command import run_up

    run_up(find_root(), args.target, dags=Path(args.dags) if args.dags else None, port=args.port,
           secrets_file=Path(args.secrets_file) if args.secrets_file else None, keep=args.keep,
           run_cronjobs=args.run_cronjobs)
    return 0


def _down(args: argparse.Namespace) -> int:
    from .up.command import print_delete_pod, print_down

    if args.pod:
        return print_delete_pod(find_root(), args.target, args.pod)
    return print_down(find_root(), args.target)


def _diff(args: argparse.Namespace) -> int:
    from .diff import render
    from .diff.compare import run_diff

    result = run_diff(find_root(), base=args.base, head=args.head, targets=args.target)
    formats = {"text": render.as_text, "markdown": render.as_markdown, "json": render.as_json}
    sys.stdout.write(formats[args.format](result))
    return 1 if args.fail_on == "danger" and result.dangers else 0


def _new_env(args: argparse.Namespace) -> int:
    from .lifecycle import commands

    _unwind_on_sigterm()
    commands.new_env(find_root(), args.name, args.source, args.dag_ref, args.set or [], args.dry_run, sys.stdout)
    return 0


def _promote(args: argparse.Namespace) -> int:
    from .lifecycle import commands

    _unwind_on_sigterm()
    commands.promote(find_root(), args.source, args.destination, args.key or [], args.dry_run, sys.stdout)
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from .lifecycle import commands

    _unwind_on_sigterm()
    commands.upgrade(find_root(), args.target, args.to, args.image_tag, args.dry_run, sys.stdout)
    return 0


def _remove_env(args: argparse.Namespace) -> int:
    from .lifecycle import commands

    _unwind_on_sigterm()
    commands.remove_env(find_root(), args.name, args.dry_run, sys.stdout)
    return 0


# Every subcommand, in the order `--help` lists them (a test compares it with the parser).
COMMANDS = ("compile", "inventory", "check-airflow", "sync-dags", "promote-dags", "validate", "diff", "new-env",
            "promote", "upgrade", "remove-env", "up", "down", "config-options")


class _Unused:
    """Stands for the parser of a subcommand not being run: its arguments are not built."""

    def add_argument(self, *args: object, **kwargs: object) -> None:
        pass

    def set_defaults(self, **kwargs: object) -> None:
        pass


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (`only`) the one subcommand being run: building all fifteen
    parsers costs ~7 ms of sync-dags' edit loop."""
    parser = argparse.ArgumentParser(prog="airflow-gitops", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)

    class Sub:
        @staticmethod
        def add_parser(name: str, **kwargs: object):  # type: ignore[no-untyped-def]
            return subparsers.add_parser(name, **kwargs) if only is None or name == only else _Unused()

    sub = Sub()

    p = sub.add_parser("compile", help="compile environments with kapitan; clear errors for a bad inventory")
    p.add_argument("--target", action="append", help="environment to compile (repeatable); default: those whose inputs changed")
    p.add_argument("--all", action="store_true", help="compile every environment, whatever changed since the last compile")
    p.set_defaults(func=_compile)

    p = sub.add_parser("inventory", help="print an environment's merged parameters.airflow")
    p.add_argument("--target", required=True)
    p.set_defaults(func=_inventory)

    p = sub.add_parser("check-airflow", help="check compiled airflow.cfg and pod template with Apache Airflow itself")
    p.add_argument("--target", action="append", help="environment to check (repeatable); default: all")
    p.set_defaults(func=_check_airflow)

    p = sub.add_parser("sync-dags", help="check dags/ and publish it to the Git source an environment's git-sync reads")
    p.add_argument("--target", required=True, help="environment whose DAG repository, branch and sub-path to use")
    p.add_argument("--repo", help="override the DAG repository URL from the inventory")
    p.add_argument("--branch", help="override the branch from the inventory")
    p.add_argument("--source", help="DAG source directory (default: dags/)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; push nothing")
    p.add_argument("--no-import-check", action="store_true", help="skip only the DagBag import check")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--author", help="commit author, 'Name <email>' (default: $AIRFLOW_GITOPS_AUTHOR or airflow-gitops)")
    p.add_argument("--committer", help="commit committer, 'Name <email>' (default: the author)")
    p.add_argument("--allow-promoted", action="store_true",
                   help="publish even to an environment whose DAGs arrive by promote-dags (dags.git_sync.promoted_from); "
                        "its promotions are then refused until promote-dags --reset")
    p.set_defaults(func=_sync_dags)

    p = sub.add_parser("promote-dags", help="point an environment's DAG ref at the exact commit another runs")
    p.add_argument("--from", dest="source_env",
                   help="environment whose DAGs were tested (default: the target's dags.git_sync.promoted_from)")
    p.add_argument("--to", dest="target_env", required=True, help="environment to promote to (e.g. prod)")
    p.add_argument("--repo", help="override the DAG repository URL from the inventory (both environments)")
    p.add_argument("--reset", action="store_true",
                   help="also when the target's ref has commits the source lacks: set it to the source's commit "
                        "(with a lease) and list the commits dropped from it")
    p.set_defaults(func=_promote_dags)

    from .validate.names import CHECK_NAMES

    p = sub.add_parser("validate", help="prove a change is safe to push: every check, for every environment")
    p.add_argument("--target", action="append", help="environment to validate (repeatable); default: all, and the bootstrap")
    p.add_argument("--check", action="append", choices=CHECK_NAMES, help="run only this check (repeatable); default: all")
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--changed", action="store_true",
                   help="only the environments whose compiled output differs from --base (and the bootstrap); "
                        "the inventory, up-to-date and dags checks still cover every environment")
    p.add_argument("--base", help="with --changed: the revision to compare with (default: the merge base with the default branch)")
    p.set_defaults(func=_validate)

    p = sub.add_parser("diff", help="what a change of compiled/ means for Airflow: per environment, object and field, with dangers")
    p.add_argument("--base", help="revision to compare from (default: the merge base of HEAD with the default branch)")
    p.add_argument("--head", help="revision to compare to (default: the working tree, checked up to date first)")
    p.add_argument("--target", action="append", help="environment to compare (repeatable); default: all")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="text (default), markdown (a pull-request comment) or json")
    p.add_argument("--fail-on", choices=("danger",), help="exit 1 when a danger is found")
    p.set_defaults(func=_diff)

    dry_run = "compile and validate the result, show what would change, write nothing"
    p = sub.add_parser("new-env", help="add an environment: a copy of another with what must differ changed, compiled and validated")
    p.add_argument("name", help="the new environment's name (namespace airflow-<name>)")
    p.add_argument("--from", dest="source", required=True, help="environment to copy (its target file, classes and comments)")
    p.add_argument("--dag-ref", help="the DAG branch or tag it tracks (default: the source's, renamed)")
    p.add_argument("--set", action="append", metavar="parameters.airflow.KEY=VALUE",
                   help="set a value in the new target file (repeatable; YAML values)")
    p.add_argument("--dry-run", action="store_true", help=dry_run)
    p.set_defaults(func=_new_env)

    p = sub.add_parser("promote", help="carry a tested release (image, Airflow version, DAG commit) to the next environment, in a commit")
    p.add_argument("--from", dest="source", required=True, help="environment whose release was tested (e.g. staging)")
    p.add_argument("--to", dest="destination", required=True, help="environment receiving it; its promotion.from must name --from")
    p.add_argument("--key", action="append", metavar="KEY",
                   help="also carry parameters.airflow.KEY (repeatable), e.g. config.core.parallelism")
    p.add_argument("--dry-run", action="store_true", help=dry_run)
    p.set_defaults(func=_promote)

    p = sub.add_parser("upgrade", help="move an environment to another Airflow version: options checked, version and image tag together")
    p.add_argument("--target", required=True, help="environment to upgrade")
    p.add_argument("--to", required=True, help="Apache Airflow version, e.g. 3.3.2 (a downgrade is refused)")
    p.add_argument("--image-tag", help="image tag to deploy (default: the current tag with the version replaced)")
    p.add_argument("--dry-run", action="store_true", help=dry_run)
    p.set_defaults(func=_upgrade)

    p = sub.add_parser("remove-env", help="take an environment out of Git; prints what stays in the cluster (data) and how to delete it")
    p.add_argument("name", help="environment to remove")
    p.add_argument("--dry-run", action="store_true", help=dry_run)
    p.set_defaults(func=_remove_env)

    p = sub.add_parser("up", help="run an environment's compiled pods on this machine, as the kubelet would (root; until Ctrl-C)")
    p.add_argument("--target", required=True, help="environment to bring up (compiled/<target>)")
    p.add_argument("--dags", help="DAG directory git-sync delivers (default: dags/)")
    p.add_argument("--port", type=int, default=8080, help="127.0.0.1 port forwarded to the api-server (default 8080; 0: any free one)")
    p.add_argument("--secrets-file", help="YAML of store key: value (an External Secrets environment) and secrets: {name: {key: value}}")
    p.add_argument("--keep", action="store_true", help="keep the pods' volumes and logs under .cache/up/<target>/run")
    p.add_argument("--run-cronjobs", action="store_true",
                   help="once up, run every CronJob once (those needing the Kubernetes API are skipped, with the reason)")
    p.set_defaults(func=_up)

    p = sub.add_parser("down", help="stop what `up` runs for an environment, and remove what a crashed one left")
    p.add_argument("--target", required=True)
    p.add_argument("--pod", help="delete only this pod, as `kubectl delete pod` would (its controller replaces it)")
    p.set_defaults(func=_down)

    p = sub.add_parser("config-options", help="record the airflow.cfg options an Airflow version knows (for the compile-time check)")
    p.add_argument("--version", required=True, help="Apache Airflow version, e.g. 3.3.2")
    p.set_defaults(func=_config_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(given[0] if given and given[0] in COMMANDS else None).parse_args(given)
    try:
        return args.func(args)
    except AirflowGitopsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
