"""The `tenant` command (add, show, list, set, remove): several shops, each with its own TrafficStars account, in
one deployment (README "Tenants"). A tenant is added, changed or removed without a deploy: its configuration
is an item of the table (aws/tenants.py), its TrafficStars key and signing secrets a secret of its own
(ops/tenants.py).

`tenant add` creates the secret first and saves the configuration second. Until the configuration is saved
the relay does not know the tenant, so nothing is ever served without its secret; if the save fails (another
tenant holds a Stripe account or shop, the table cannot be written), the secret just created, which nothing
has read, is deleted without recovery, so a failed add leaves nothing behind. (Saving first would serve the
tenant, briefly, with no secret: its webhooks would be answered 503 until the secret appeared.)

Secrets are read from --secrets-file, never from the command line (shell history, the process list), and are
never printed: `add` and `show` say which keys are set or still placeholders, and where to paste them."""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from postback_relay.ops.cli.command import Command, split_values
from postback_relay.ops.cli.output import print_json, print_text, short_time, table
from postback_relay.ops.deployment import Deployment, OperatorError

if TYPE_CHECKING:
    from postback_relay.core.tenant import TenantConfig

RECOVERY_DAYS = range(7, 31)  # what Secrets Manager allows for a scheduled deletion
STRIPE_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]+")
SHOPIFY_SHOP = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
WAITING_SHOWN = 10  # the waiting conversions a refused purge names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One subcommand per action, each taking the shared target options after it as well."""
    # The target options (--local, --stack, --json…) must parse after the action too (`tenant list --local`),
    # so each action's parser has the package's shared options, with no defaults of their own.
    from postback_relay.ops.cli import _shared_options

    common = _shared_options(argparse.SUPPRESS)
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="action", required=True)

    add = actions.add_parser("add", parents=[common], help="add a tenant and create its secret", description=ADD)
    add.add_argument("name", metavar="NAME")
    add.add_argument("--source", action="append", default=[], required=True, help="a source it sells through")
    _configuration_options(add)
    add.add_argument(
        "--secrets-file",
        metavar="FILE.json",
        help="a JSON object with its secret's values (trafficstars_key, each source's signing secret); "
        "what it lacks starts as a placeholder (the postback token is generated)",
    )
    add.set_defaults(tenant_action=_add)

    show = actions.add_parser("show", parents=[common], help="a tenant's configuration, URLs and secret keys")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(tenant_action=_show)

    listing = actions.add_parser("list", parents=[common], help="every tenant")
    listing.set_defaults(tenant_action=_list)

    change = actions.add_parser("set", parents=[common], help="change a tenant", description=SET)
    change.add_argument("name", metavar="NAME")
    change.add_argument("--source", action="append", default=[], help="a source to add")
    change.add_argument("--remove-source", action="append", default=[], help="a source to remove")
    _configuration_options(change)
    change.add_argument("--unset", action="append", default=[], metavar="VARIABLE", help="a setting to unset")
    change.add_argument("--remove-stripe-account", action="append", default=[], metavar="ACCOUNT")
    change.add_argument("--remove-shopify-shop", action="append", default=[], metavar="DOMAIN")
    switch = change.add_mutually_exclusive_group()
    switch.add_argument("--enable", action="store_true", help="serve it again")
    switch.add_argument("--disable", action="store_true", help="refuse its traffic (as `tenant remove` does)")
    change.set_defaults(tenant_action=_set)

    remove = actions.add_parser("remove", parents=[common], help="disable a tenant, or purge it", description=REMOVE)
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--purge", action="store_true", help="delete its configuration and its secret too")
    remove.add_argument(
        "--recovery-days",
        type=_recovery_days,
        default=7,
        help="with --purge: days its secret can still be restored (7-30, default 7)",
    )
    remove.set_defaults(tenant_action=_remove)


def _configuration_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", action="append", default=[], metavar="VARIABLE=VALUE", help="a tenant setting (settings table)"
    )
    parser.add_argument(
        "--stripe-account", action="append", default=[], metavar="acct_…", help="a Stripe Connect account it owns"
    )
    parser.add_argument(
        "--shopify-shop", action="append", default=[], metavar="DOMAIN", help="a x.myshopify.com shop it owns"
    )


def run(args: argparse.Namespace, deployment: Deployment) -> int:
    """`tenant ACTION`: the action's own function."""
    action: Any = args.tenant_action
    return int(action(args, deployment))


def _add(args: argparse.Namespace, deployment: Deployment) -> int:
    """`tenant add`: validate everything, create the secret, save the configuration (or delete the secret)."""
    from postback_relay.aws.tenants import TenantConflict
    from postback_relay.ops import tenants

    name = _name(args.name)
    secret_id = tenants.secret_name(deployment, name)
    sources = _sources("--source", split_values(args.source))
    settings = _settings(args.set)
    tenants.validate_settings(deployment, settings)
    config = _with_lookups(_new_config(name, sources, settings), args.stripe_account, args.shopify_shop, [], [])
    fields = tenants.secret_fields(sources)
    given = tenants.read_secrets_file(args.secrets_file, fields) if args.secrets_file else {}
    directory = tenants.directory(deployment)
    if directory.get(name, force=True) is not None:
        raise OperatorError(
            f"tenant {name} exists already", f"change it with `postback-relay tenant set {name} --set VARIABLE=VALUE`"
        )
    tenants.create_secret(deployment, name, tenants.initial_values(fields, given))
    try:
        directory.save(config, None)
    except TenantConflict as exc:
        tenants.discard_secret(deployment, name)
        return _conflict(exc, f"tenant {name} was not added (its secret was deleted again)")
    except BaseException:
        tenants.discard_secret(deployment, name)
        raise
    return _describe(deployment, config, secret_id, args.json, f"tenant {name} added to {deployment.label}")


def _show(args: argparse.Namespace, deployment: Deployment) -> int:
    """`tenant show`: its configuration, its URLs, which secret keys are set (never their values)."""
    from postback_relay.ops import tenants

    name = _name(args.name)
    secret_id = tenants.secret_name(deployment, name)
    config = tenants.directory(deployment).get(name, force=True)
    if config is None:
        return _not_found(name, deployment)
    return _describe(deployment, config, secret_id, args.json, f"tenant {name} in {deployment.label}")


def _list(args: argparse.Namespace, deployment: Deployment) -> int:
    """`tenant list`: every tenant, by name."""
    from postback_relay.ops import tenants

    tenants.secret_name(deployment, "-")  # a stack from before tenants has none: say so, not "no tenants"
    every = tenants.directory(deployment).every()
    if args.json:
        print_json({"target": deployment.label, "tenants": [_config_json(config) for config in every]})
        return 0
    if every:
        rows = [
            [c.name, "yes" if c.enabled else "no", ", ".join(sorted(c.sources)), short_time(c.updated_at)]
            for c in every
        ]
        print_text(table(["NAME", "ENABLED", "SOURCES", "UPDATED (UTC)"], rows))
    print(f"{len(every)} tenant(s) in {deployment.label}, besides the default (the deployment's own configuration)")
    return 0


def _set(args: argparse.Namespace, deployment: Deployment) -> int:
    """`tenant set`: the tenant as read, changed, validated, saved only if nobody changed it in between."""
    from postback_relay.aws.tenants import TenantConflict
    from postback_relay.ops import tenants

    name = _name(args.name)
    secret_id = tenants.secret_name(deployment, name)
    directory = tenants.directory(deployment)
    previous = directory.get(name, force=True)
    if previous is None:
        return _not_found(name, deployment)
    added = _sources("--source", split_values(args.source))
    removed = _sources("--remove-source", split_values(args.remove_source))
    sources = (previous.sources | added) - removed
    if not sources:
        raise OperatorError(
            f"tenant {name} would sell through no source",
            f"keep one, or disable it: postback-relay tenant remove {name}",
        )
    settings = dict(previous.settings)
    settings.update(_settings(args.set))
    for variable in args.unset:
        settings.pop(variable, None)
    tenants.validate_settings(deployment, settings)
    enabled = True if args.enable else False if args.disable else previous.enabled
    config = _with_lookups(
        replace(previous, sources=frozenset(sources), settings=settings, enabled=enabled, updated_at=_now()),
        args.stripe_account,
        args.shopify_shop,
        args.remove_stripe_account,
        args.remove_shopify_shop,
    )
    new_fields = [f for f in tenants.secret_fields(sources) if f not in tenants.secret_fields(previous.sources)]
    if new_fields:
        tenants.read_secret(deployment, name)  # its secret must be there to take the new keys: say so before saving
    try:
        directory.save(config, previous)
    except TenantConflict as exc:
        return _conflict(exc, f"tenant {name} was not changed")
    if new_fields:
        tenants.add_missing_fields(deployment, name, new_fields)
    return _describe(deployment, config, secret_id, args.json, f"tenant {name} changed in {deployment.label}")


def _remove(args: argparse.Namespace, deployment: Deployment) -> int:
    """`tenant remove`: disable it; with --purge, also delete it once none of its conversions waits.

    --purge disables the tenant first, so no new conversion of it arrives while its backlog is counted (a warm
    container may serve it for up to the secret's max age more); while any still waits to be sent, its secret
    (the key those need) is kept and the purge refused: run it again once they are sent or have failed."""
    from postback_relay.aws.tenants import TenantConflict, TenantsUnavailable, waiting
    from postback_relay.ops import tenants

    name = _name(args.name)
    tenants.secret_name(deployment, name)
    directory = tenants.directory(deployment)
    config = directory.get(name, force=True)
    if config is None:
        return _not_found(name, deployment)
    if config.enabled:
        disabled = replace(config, enabled=False, updated_at=_now())
        try:
            directory.save(disabled, config)
        except TenantConflict as exc:
            return _conflict(exc, f"tenant {name} was not removed")
        config = disabled
    result: dict[str, Any] = {"tenant": name, "enabled": False, "purged": False, "target": deployment.label}
    lines = [
        f"tenant {name} is disabled: its webhooks are answered 404 unknown_tenant; its waiting conversions "
        "still finish with its key"
    ]
    if args.purge:
        try:
            backlog = waiting(deployment.client("dynamodb"), deployment.table_name, name)
        except TenantsUnavailable as exc:
            fix = "check --stack/--region, and that your credentials may query the table"
            raise OperatorError(str(exc), fix) from None
        if backlog:
            shown = ", ".join(backlog[:WAITING_SHOWN]) + (" …" if len(backlog) > WAITING_SHOWN else "")
            message = (
                f"not purged: {len(backlog)} conversion(s) of tenant {name} still wait to be sent ({shown}), and "
                "need its TrafficStars key"
            )
            if args.json:
                print_json({**result, "waiting": backlog})
            else:
                print_text("\n".join(lines))
            print(
                f"postback-relay: {message}\n  fix: run `postback-relay tenant remove {name} --purge` again once "
                f"they are sent or failed (`postback-relay recent --tenant {name}`)",
                file=sys.stderr,
            )
            return 1
        directory.delete(config)
        scheduled = tenants.schedule_deletion(deployment, name, args.recovery_days)
        secret_id = tenants.secret_name(deployment, name)
        result.update(purged=True, secret=secret_id, secret_deletion_days=args.recovery_days if scheduled else None)
        lines = [f"tenant {name} is purged: its configuration is deleted (its records stay until they expire)"]
        lines.append(
            f"its secret {secret_id} is deleted in {args.recovery_days} days; until then: "
            f"aws secretsmanager restore-secret --secret-id {secret_id}"
            if scheduled
            else f"it had no secret {secret_id}"
        )
    if args.json:
        print_json(result)
    else:
        print_text("\n".join(lines))
    return 0


def _describe(deployment: Deployment, config: TenantConfig, secret_id: str, as_json: bool, title: str) -> int:
    """The tenant as `add`, `show` and `set` print it: configuration, URLs, the secret's keys' states."""
    from postback_relay.ops import tenants

    links = tenants.urls(deployment, config, secret_id)
    fields = tenants.secret_fields(config.sources)
    try:
        states: dict[str, str] = dict(tenants.key_states(tenants.read_secret(deployment, config.name), fields))
        unreadable = ""
    except OperatorError as exc:
        states, unreadable = {}, exc.problem
    to_paste = [field for field, state in states.items() if state != "set"]
    if as_json:
        print_json(
            {
                "target": deployment.label,
                "tenant": _config_json(config),
                "urls": links,
                "secret": {"name": secret_id, "keys": states, "unreadable": unreadable or None},
                "placeholders": to_paste,
            }
        )
        return 0
    lines = [title]
    lines.append(f"  enabled          {'yes' if config.enabled else 'no (its webhooks are answered 404)'}")
    lines.append(f"  sources          {', '.join(sorted(config.sources))}")
    for variable, value in sorted(config.settings.items()):
        lines.append(f"  {variable:<16} {value}")
    if config.stripe_accounts:
        lines.append(f"  stripe accounts  {', '.join(config.stripe_accounts)}")
    if config.shopify_shops:
        lines.append(f"  shopify shops    {', '.join(config.shopify_shops)}")
    lines.append(f"  updated          {short_time(config.updated_at)} UTC")
    lines.append("paste into each platform:")
    width = max(len(link["source"]) for link in links)
    for link in links:
        note = f"  ({link['note']})" if "note" in link else ""
        lines.append(f"  {link['source']:<{width}}  {link['method']:<4} {link['url']}{note}")
    if tenants.POSTBACK_ROUTE in config.sources:
        lines.append(
            f"  the tracker's token is {tenants.TOKEN_FIELD} in the secret: "
            f"aws secretsmanager get-secret-value --secret-id {secret_id}"
        )
    lines.append(f"secret {secret_id}")
    if unreadable:
        lines.append(f"  unreadable: {unreadable}")
    for field, state in states.items():
        lines.append(f"  {field:<28} {state}")
    if to_paste:
        lines.append(
            f"to paste: {', '.join(to_paste)}: Secrets Manager console > {secret_id} > Retrieve secret value > Edit, "
            f"or aws secretsmanager put-secret-value --secret-id {secret_id} --secret-string '{{...}}' (the whole JSON)"
        )
    print_text("\n".join(lines))
    return 0


def _config_json(config: TenantConfig) -> dict[str, Any]:
    return {
        "name": config.name,
        "enabled": config.enabled,
        "sources": sorted(config.sources),
        "settings": dict(config.settings),
        "stripe_accounts": list(config.stripe_accounts),
        "shopify_shops": list(config.shopify_shops),
        "updated_at": config.updated_at,
    }


def _name(text: str) -> str:
    """A tenant's name, checked: a slug, and not the deployment's own configuration."""
    from postback_relay.core.tenant import DEFAULT_TENANT, is_slug

    if text == DEFAULT_TENANT:
        raise OperatorError(
            "the tenant default is the deployment's own configuration (its stack parameters and its secret)",
            "change it with `sam deploy` and the stack's secret; give a tenant another name",
        )
    if not is_slug(text):
        raise OperatorError(
            f"{text!r} cannot name a tenant",
            "use 1-32 lower-case letters, digits and hyphens, starting with a letter or digit (it is in its URLs)",
        )
    return text


def _sources(option: str, given: list[str]) -> frozenset[str]:
    from postback_relay.ops.cli.command import require_known
    from postback_relay.platforms import ROUTED

    require_known(option, given, tuple(ROUTED))
    return frozenset(given)


def _settings(given: list[str]) -> dict[str, str]:
    """``VARIABLE=VALUE`` pairs (validated as a whole by validate_settings)."""
    settings: dict[str, str] = {}
    for pair in given:
        variable, separator, value = pair.partition("=")
        if not separator or not variable.strip():
            raise OperatorError(f"--set {pair!r} is not VARIABLE=VALUE", "e.g. --set ACCOUNT_CURRENCY=EUR")
        settings[variable.strip()] = value
    return settings


def _new_config(name: str, sources: frozenset[str], settings: dict[str, str]) -> TenantConfig:
    from postback_relay.core.tenant import TenantConfig

    return TenantConfig(name=name, sources=sources, settings=settings, updated_at=_now())


def _with_lookups(
    config: TenantConfig, accounts: list[str], shops: list[str], drop_accounts: list[str], drop_shops: list[str]
) -> TenantConfig:
    """The configuration with the Stripe accounts and Shopify shops given added, and those named dropped."""
    accounts, shops = split_values(accounts), [shop.lower() for shop in split_values(shops)]
    for account in accounts:
        if not STRIPE_ACCOUNT.fullmatch(account):
            raise OperatorError(f"--stripe-account {account!r} is not a Stripe account id", "use acct_… (Connect)")
    for shop in shops:
        if not SHOPIFY_SHOP.fullmatch(shop):
            raise OperatorError(f"--shopify-shop {shop!r} is not a shop domain", "use the shop's x.myshopify.com")
    dropped_shops = {shop.lower() for shop in split_values(drop_shops)}
    kept_accounts = [a for a in config.stripe_accounts if a not in set(split_values(drop_accounts))]
    kept_shops = [s for s in config.shopify_shops if s not in dropped_shops]
    return replace(
        config,
        stripe_accounts=tuple(dict.fromkeys([*kept_accounts, *accounts])),
        shopify_shops=tuple(dict.fromkeys([*kept_shops, *shops])),
    )


def _conflict(exc: Exception, outcome: str) -> int:
    """A write TenantDirectory refused: another tenant holds a lookup, or the tenant changed meanwhile."""
    print(
        f"postback-relay: {outcome}: {exc}\n  fix: give another account or shop (`postback-relay tenant list`, "
        "`tenant show NAME` say whose it is), or run the command again if someone changed the tenant meanwhile",
        file=sys.stderr,
    )
    return 1


def _not_found(name: str, deployment: Deployment) -> int:
    print(
        f"postback-relay: no tenant named {name} in {deployment.label}\n  fix: `postback-relay tenant list` "
        f"lists them; `postback-relay tenant add {name} --source …` adds it",
        file=sys.stderr,
    )
    return 1


def _now() -> str:
    from postback_relay.core.record import iso

    return iso(time.time())


def _recovery_days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if days not in RECOVERY_DAYS:
        raise argparse.ArgumentTypeError("must be 7 to 30 (what Secrets Manager allows)")
    return days


ADD = (
    "Add tenant NAME, selling through each --source, with its own settings (--set VARIABLE=VALUE, the "
    "settings table's per-tenant ones), and create its secret: values from --secrets-file, a generated "
    "postback token, placeholders for the rest. Prints the URLs to give each platform and what to paste."
)
SET = (
    "Change tenant NAME: add or remove sources, settings, Stripe accounts and Shopify shops; --enable or "
    "--disable it. Refused (exit 1) if another tenant holds an account or shop given, or if the tenant "
    "changed since it was read. A source added gets a placeholder in the secret."
)
REMOVE = (
    "Disable tenant NAME: its webhooks are answered 404 unknown_tenant, its waiting conversions still finish "
    "with its key. --purge also deletes its configuration and schedules its secret's deletion, refused while "
    "any of its conversions still waits to be sent."
)

COMMAND = Command(
    name="tenant",
    help="add, show, list, change or remove a tenant",
    description="Several shops, each with its own TrafficStars account and settings, in one deployment: "
    "`tenant add|show|list|set|remove` (each has --help). Needs a stack deployed with tenants "
    "(its TenantSecretPrefix output), or --local.",
    add_arguments=add_arguments,
    run=run,
)
