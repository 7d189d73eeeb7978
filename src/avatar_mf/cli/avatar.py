"""``avatar-mf avatar ...``: manage the stored base avatars and their grants.

::

    avatar-mf avatar import FILE --owner sip:alice@ims.example [--name N] [--content-type T]
                                 [--meta KEY=VALUE ...] [--json]
    avatar-mf avatar list [--owner IDENTITY] [--json]
    avatar-mf avatar show AVATAR_ID [--json]
    avatar-mf avatar grant AVATAR_ID --to IDENTITY --by IDENTITY
                           (--expires 2026-12-31T00:00:00Z | --for 3600|90m|12h|7d)
                           [--not-before TIME] [--allow-party IDENTITY ...] [--delegate]
    avatar-mf avatar revoke GRANT_ID
    avatar-mf avatar delete AVATAR_ID
    avatar-mf avatar prune [--retention SECONDS]
    avatar-mf avatar generate --owner IDENTITY [--name N] [--photo FILE [--depth FILE] ...]
                              [--generator G] [--seed N] [--json]
    avatar-mf avatar export AVATAR_ID -o FILE.glb
    avatar-mf avatar check FILE [--json]         (cli/check.py: common format conformance)

Every command takes ``--config FILE``; the store lives in ``<storage.path>/avatars``
(:func:`~avatar_mf.storage.store.avatar_root`), shared safely with a running server.
``import`` prints the new avatar id and ``grant`` the new grant id, alone on a line, for
scripts. Exit codes: 0 done; 1 the operation failed (unknown id, refused, invalid file);
2 the configuration is invalid (or a usage error, from argparse).

:func:`build_commands` returns the ``avatar`` :class:`~avatar_mf.cli.base.Command` group; the format
check of imported files is plugged in through its ``validator`` argument.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avatar_mf.cli.base import CliContext, Command, Runner
from avatar_mf.cli.check import check_command
from avatar_mf.cli.render import build_command as build_render_command
from avatar_mf.config import ConfigError, load_config
from avatar_mf.storage.auth import Authorizer, grant_problem, grant_state
from avatar_mf.storage.errors import AvatarTooLargeError, StorageError
from avatar_mf.storage.model import (
    DEFAULT_CONTENT_TYPE,
    DEFAULT_MAX_AVATAR_SIZE,
    AvatarRecord,
    Grant,
    SystemWallClock,
    Validator,
)
from avatar_mf.storage.store import FilesystemStore, avatar_root

__all__ = ["build_commands", "format_time", "parse_duration", "parse_time"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG_INVALID = 2

Action = Callable[[argparse.Namespace, "CliContext", FilesystemStore], Awaitable[int]]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


# --------------------------------------------------------------------------- value parsing


def parse_time(text: str) -> float:
    """An ISO 8601 date-time with a time zone (``2026-12-31T00:00:00Z``) as UNIX seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date-time such as 2026-12-31T00:00:00Z: {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. Z for UTC): {text!r}")
    return moment.timestamp()


def parse_duration(text: str) -> float:
    """Seconds, or a number with a unit: ``3600``, ``90m``, ``12h``, ``7d``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a positive duration such as 3600, 90m, 7d: {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_time(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _key_value(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not key or not eq:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE: {text!r}")
    return key, value


# --------------------------------------------------------------------------- JSON views


def _record_json(record: AvatarRecord) -> dict[str, Any]:
    return {
        "avatar_id": record.avatar_id,
        "owner": record.owner,
        "name": record.name,
        "content_type": record.content_type,
        "size": record.size,
        "digest": record.digest,
        "created": format_time(record.created),
        "updated": format_time(record.updated),
        "metadata": record.metadata,
    }


def _grant_json(grant: Grant, now: float) -> dict[str, Any]:
    return {
        "grant_id": grant.grant_id,
        "avatar_id": grant.avatar_id,
        "grantee": grant.grantee,
        "granted_by": grant.granted_by,
        "not_before": format_time(grant.not_before),
        "expires": format_time(grant.expires),
        "allow_parties": None if grant.allow_parties is None else sorted(grant.allow_parties),
        "may_delegate": grant.may_delegate,
        "parent_grant_id": grant.parent_grant_id,
        "created": format_time(grant.created),
        "revoked": None if grant.revoked is None else format_time(grant.revoked),
        "state": grant_state(grant, now),
    }


def _dump(value: object, context: CliContext) -> None:
    context.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- actions


def _import_action(validator: Validator | None, max_size: int) -> Action:
    async def run(args: argparse.Namespace, context: CliContext, store: FilesystemStore) -> int:
        path: Path = args.file
        size = await asyncio.to_thread(lambda: path.stat().st_size)
        if size > max_size:  # refuse before reading a huge file into memory
            raise AvatarTooLargeError(size, max_size)
        data = await asyncio.to_thread(path.read_bytes)
        content_type = args.content_type or mimetypes.guess_type(path.name)[0]
        record = await store.put(
            data,
            owner=args.owner,
            name=path.name if args.name is None else args.name,
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            metadata=dict(args.meta),
        )
        if args.json:
            _dump(_record_json(record), context)
        else:
            print(record.avatar_id, file=context.stdout)
        return EXIT_OK

    return run


async def _generate(args: argparse.Namespace, context: CliContext, store: FilesystemStore) -> int:
    """Build a base avatar with the configured generator stage (or ``photo`` when photos are
    given) and store it for the owner. The same photos, owner and name again give the stored
    avatar's id without building it anew (metadata ``photos_sha256``)."""
    from avatar_mf.pipeline import registry
    from avatar_mf.stages.base_avatar import AvatarRequest, BaseAvatarGenerator

    photos: list[bytes] = [await asyncio.to_thread(path.read_bytes) for path in args.photo]
    depths: list[bytes | None] = [
        None if path is None else await asyncio.to_thread(path.read_bytes)
        for path in args.depth
    ]
    if not any(depth is not None for depth in depths):
        depths = []
    # --generator names another implementation, with its own defaults; else the configured
    # one, or the photo generator when there are photos and the configured one is not it.
    stage = args.app_config.pipeline.base_avatar
    options: Mapping[str, Any]
    if args.generator is not None:
        name, options = args.generator, {}
    elif photos and stage.name != "photo":
        name, options = "photo", {}
    else:
        name, options = stage.name, stage.options
    if not name:
        print(
            "avatar-mf avatar generate: [pipeline.base_avatar] is off: pass --generator",
            file=context.stderr,
        )
        return EXIT_FAILED
    metadata = {"generator": name, "seed": str(args.seed)}
    if photos:
        from avatar_mf.stages.base_avatar.photo.generator import photos_key

        metadata = {"generator": name, "photos": str(len(photos)),
                    "photos_sha256": photos_key(photos, args.name, depths)}
        for record in await store.list(owner=args.owner):
            if record.metadata.get("photos_sha256") == metadata["photos_sha256"]:
                return _print_record(record, args, context)  # the cache: built before
    generator = registry.create("base_avatar", name, options)
    if not isinstance(generator, BaseAvatarGenerator):
        print(f"base_avatar stage {name!r} cannot generate from the CLI", file=context.stderr)
        return EXIT_FAILED
    request = AvatarRequest(
        participant="cli", identity=args.owner, name=args.name, seed=args.seed,
        images=tuple(photos), depths=tuple(depths),
    )
    try:
        avatar = await asyncio.to_thread(generator.generate, request)
    except ValueError as exc:  # the photo generator's refusals carry a code (no-face, ...)
        code = getattr(exc, "code", "bad-input")
        print(f"avatar-mf avatar generate: {code}: {exc}", file=context.stderr)
        return EXIT_FAILED
    finally:
        close = getattr(generator, "close", None)  # the photo generator's worker process
        if callable(close):
            await asyncio.to_thread(close)
    record = await store.put(
        avatar.container,
        owner=args.owner,
        name=args.name,
        content_type=avatar.content_type,
        metadata=metadata,
    )
    return _print_record(record, args, context)


def _print_record(record: AvatarRecord, args: argparse.Namespace, context: CliContext) -> int:
    if args.json:
        _dump(_record_json(record), context)
    else:
        print(record.avatar_id, file=context.stdout)
    return EXIT_OK


class _PhotoAction(argparse.Action):
    """``--photo FILE``: appended to ``photo``, with no depth yet (``depth`` kept parallel)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        namespace.photo = [*namespace.photo, values]
        namespace.depth = [*namespace.depth, None]


class _DepthAction(argparse.Action):
    """``--depth FILE``: the depth image of the ``--photo`` just before it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if not namespace.depth or namespace.depth[-1] is not None:
            parser.error("--depth FILE follows the --photo FILE it belongs to (one each)")
        namespace.depth = [*namespace.depth[:-1], values]


def _generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--owner", required=True, metavar="IDENTITY", help="owner: sip:user@host or tel:+number"
    )
    parser.add_argument("--name", default="avatar", help="name for people")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--photo",
        type=Path,
        action=_PhotoAction,
        default=[],
        metavar="FILE",
        help="a JPEG or PNG photo of the owner's face (repeat for front, left, right): the "
        "avatar is built from them by the 'photo' generator",
    )
    parser.add_argument(
        "--depth",
        type=Path,
        action=_DepthAction,
        default=[],
        metavar="FILE",
        help="the depth image of the --photo just before it: 16-bit greyscale PNG of the "
        "photo's size, millimetres, 0 unknown (docs/avatars.md)",
    )
    parser.add_argument(
        "--generator",
        help="base-avatar stage by name (entry point group avatar_mf.stages.base_avatar); "
        "default: [pipeline.base_avatar] of the config, with its options ('photo' with --photo)",
    )
    _json_option(parser)
    _config_option(parser)


async def _export(args: argparse.Namespace, context: CliContext, store: FilesystemStore) -> int:
    """Write a stored avatar's GLB (the ``data/avatar.glb`` of an ARF container, or the stored
    GLB itself) so a glTF viewer opens it."""
    from avatar_mf.avatar.container import read_arf
    from avatar_mf.avatar.errors import AvatarFormatError

    data = await store.get_blob(args.avatar_id)
    if data[:4] == b"glTF":
        glb = data
    else:
        try:
            glb = (await asyncio.to_thread(read_arf, data)).glb
        except AvatarFormatError as exc:
            print(f"avatar-mf avatar export: not an ARF container: {exc}", file=context.stderr)
            return EXIT_FAILED
    await asyncio.to_thread(args.output.write_bytes, glb)
    print(f"{args.output}: {len(glb)} bytes", file=context.stdout)
    return EXIT_OK


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("avatar_id", metavar="ID", help="avatar id")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE.glb", help="where to write"
    )
    _config_option(parser)


async def _list(args: argparse.Namespace, context: CliContext, store: FilesystemStore) -> int:
    records = await store.list(owner=args.owner)
    if args.json:
        _dump([_record_json(r) for r in records], context)
        return EXIT_OK
    rows = [("AVATAR ID", "OWNER", "SIZE", "CREATED", "NAME")]
    rows += [(r.avatar_id, r.owner, str(r.size), format_time(r.created), r.name) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [
            cell.rjust(w) if i == 2 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        print("  ".join([*cells, row[4]]).rstrip(), file=context.stdout)
    return EXIT_OK


async def _show(args: argparse.Namespace, context: CliContext, store: FilesystemStore) -> int:
    record = await store.get_record(args.avatar_id)
    grants = await store.list_grants(record.avatar_id)
    now = time.time()
    if args.json:
        views = [
            {**_grant_json(g, now), "usable": grant_problem(g, record, grants, now) is None}
            for g in grants
        ]
        _dump({**_record_json(record), "grants": views}, context)
        return EXIT_OK
    out = context.stdout
    for key, value in _record_json(record).items():
        if key != "metadata":
            print(f"{key + ':':14}{value}", file=out)
    for key, value in sorted(record.metadata.items()):
        print(f"{'metadata:':14}{key}={value}", file=out)
    print(f"grants:       {len(grants) or 'none'}", file=out)
    for grant in grants:
        view = _grant_json(grant, now)
        parties = "any" if grant.allow_parties is None else ", ".join(view["allow_parties"])
        problem = grant_problem(grant, record, grants, now)
        state = view["state"] if problem is None or view["state"] != "active" else problem
        print(f"  {grant.grant_id}  {state}", file=out)
        print(f"    to {grant.grantee}  by {grant.granted_by}", file=out)
        print(f"    from {view['not_before']} until {view['expires']}", file=out)
        print(f"    parties: {parties}" + ("  (may delegate)" * grant.may_delegate), file=out)
        if grant.parent_grant_id is not None:
            print(f"    delegated under {grant.parent_grant_id}", file=out)
    return EXIT_OK


async def _grant(args: argparse.Namespace, context: CliContext, store: FilesystemStore) -> int:
    authorizer = Authorizer(store, SystemWallClock())
    start: float | None = args.not_before
    if args.expires is not None:
        expires: float = args.expires
    else:
        expires = (time.time() if start is None else start) + args.duration
    grant = await authorizer.grant(
        args.avatar_id,
        grantee=args.to,
        granted_by=args.by,
        expires=expires,
        not_before=start,
        allow_parties=args.allow_party,
        may_delegate=args.delegate,
    )
    if args.json:
        _dump(_grant_json(grant, time.time()), context)
    else:
        print(grant.grant_id, file=context.stdout)
    return EXIT_OK


async def _revoke(args: argparse.Namespace, context: CliContext, store: FilesystemStore) -> int:
    grant = await Authorizer(store, SystemWallClock()).revoke(args.grant_id)
    print(f"revoked {grant.grant_id}", file=context.stdout)
    return EXIT_OK


async def _delete(args: argparse.Namespace, context: CliContext, store: FilesystemStore) -> int:
    await store.delete(args.avatar_id)
    print(f"deleted {args.avatar_id}", file=context.stdout)
    return EXIT_OK


async def _prune(args: argparse.Namespace, context: CliContext, store: FilesystemStore) -> int:
    pruned = await Authorizer(store, SystemWallClock()).prune(retention=args.retention)
    print(f"pruned {len(pruned)} grant{'s' * (len(pruned) != 1)}", file=context.stdout)
    return EXIT_OK


# --------------------------------------------------------------------------- plumbing


def _runner(
    name: str, action: Action, *, validator: Validator | None, max_size: int, recover: bool
) -> Runner:
    def run(args: argparse.Namespace, context: CliContext) -> int:
        try:
            config = load_config(args.config, context.environ)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=context.stderr)
            return EXIT_CONFIG_INVALID
        root = avatar_root(config.storage.path)
        args.app_config = config  # for the actions that use other settings (generate)

        async def main() -> int:
            if recover:
                store = await FilesystemStore.open(
                    root, max_avatar_size=max_size, validator=validator
                )
            else:
                store = FilesystemStore(root, max_avatar_size=max_size, validator=validator)
            return await action(args, context, store)

        try:
            return asyncio.run(main())
        except StorageError as exc:
            print(f"avatar-mf avatar {name}: {exc.message}", file=context.stderr)
            return EXIT_FAILED
        except OSError as exc:  # the imported file
            print(f"avatar-mf avatar {name}: {exc}", file=context.stderr)
            return EXIT_FAILED

    return run


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML configuration file (default: the built-in defaults); the store is "
        "<storage.path>/avatars; AVATAR_MF_STORAGE__PATH overrides storage.path",
    )


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="base avatar container")
    parser.add_argument(
        "--owner", required=True, metavar="IDENTITY", help="owner: sip:user@host or tel:+number"
    )
    parser.add_argument("--name", help="name for people (default: the file name)")
    parser.add_argument(
        "--content-type", metavar="TYPE", help="media type (default: guessed from the file name)"
    )
    parser.add_argument(
        "--meta",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata entry (repeatable)",
    )
    _json_option(parser)
    _config_option(parser)


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--owner", metavar="IDENTITY", help="only the avatars of this owner")
    _json_option(parser)
    _config_option(parser)


def _id_arguments(what: str, *, json: bool = False) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(f"{what}_id", metavar=f"{what.upper()}_ID")
        if json:
            _json_option(parser)
        _config_option(parser)

    return add


def _grant_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("avatar_id", metavar="AVATAR_ID")
    parser.add_argument("--to", required=True, metavar="IDENTITY", help="grantee")
    parser.add_argument(
        "--by",
        required=True,
        metavar="IDENTITY",
        help="who gives the grant: the owner, or a grantee allowed to delegate",
    )
    until = parser.add_mutually_exclusive_group(required=True)
    until.add_argument(
        "--expires", type=parse_time, metavar="TIME", help="end, e.g. 2026-12-31T00:00:00Z"
    )
    until.add_argument(
        "--for",
        dest="duration",
        type=parse_duration,
        metavar="DURATION",
        help="length from --not-before (default now): seconds, or 90m, 12h, 7d",
    )
    parser.add_argument(
        "--not-before", type=parse_time, metavar="TIME", help="start (default: now)"
    )
    parser.add_argument(
        "--allow-party",
        action="append",
        metavar="IDENTITY",
        help="allow use only in calls whose other participants are all listed (repeatable)",
    )
    parser.add_argument(
        "--delegate", action="store_true", help="the grantee may give grants within this one"
    )
    _json_option(parser)
    _config_option(parser)


def _prune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retention",
        type=parse_duration,
        default=0.0,
        metavar="DURATION",
        help="keep grants expired or revoked less than this long ago (default: 0)",
    )
    _config_option(parser)


def build_commands(
    *, validator: Validator | None = None, max_avatar_size: int = DEFAULT_MAX_AVATAR_SIZE
) -> Command:
    """The ``avatar`` command group.

    Args:
        validator: checks an imported (or replaced) container's format, e.g. the ARF reader;
            raising refuses it. Default: no format check.
        max_avatar_size: largest container imported, in bytes.
    """

    def leaf(
        name: str,
        help: str,
        action: Action,
        add_arguments: Callable[[argparse.ArgumentParser], None],
        *,
        recover: bool = True,
        description: str | None = None,
    ) -> Command:
        return Command(
            name=name,
            help=help,
            description=description,
            run=_runner(
                name, action, validator=validator, max_size=max_avatar_size, recover=recover
            ),
            add_arguments=add_arguments,
        )

    return Command(
        name="avatar",
        help="manage stored base avatars and their grants",
        description="Manage the base avatar repository in <storage.path>/avatars: import, "
        "list, show and delete avatars; give, revoke and prune grants (TS 22.156).",
        children=(
            leaf(
                "import",
                "store a base avatar container; prints its id",
                _import_action(validator, max_avatar_size),
                _import_arguments,
            ),
            leaf(
                "generate",
                "generate a base avatar (the procedural head by default, or from photos) "
                "and store it",
                _generate,
                _generate_arguments,
            ),
            leaf(
                "export",
                "write a stored avatar's GLB (for any glTF viewer)",
                _export,
                _export_arguments,
                recover=False,
            ),
            leaf("list", "list stored avatars", _list, _list_arguments, recover=False),
            leaf(
                "show",
                "show an avatar and its grants",
                _show,
                _id_arguments("avatar", json=True),
                recover=False,
            ),
            leaf(
                "grant",
                "let another subscriber use an avatar, for a limited time; prints the grant id",
                _grant,
                _grant_arguments,
            ),
            leaf("revoke", "revoke a grant", _revoke, _id_arguments("grant")),
            leaf("delete", "delete an avatar and its grants", _delete, _id_arguments("avatar")),
            leaf("prune", "delete expired and revoked grants", _prune, _prune_arguments),
            check_command(),
            build_render_command(),
        ),
    )
