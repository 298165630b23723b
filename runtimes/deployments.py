"""Deployments: a strategy put to trade on a paper or live platform, and its state machine.

    stopped/failed --start--> starting --(session runs)--> running <--pause/resume--> paused
    starting/running/paused --stop--> stopping --(session ended)--> stopped
    starting/running/paused/stopping --(session failed)--> failed (with the session's reason)

Every start opens a new trading session (`runtimes.services` makes sessions; the host runs them);
the deployment's state follows that session (`sync_with_session`, called before every read and
transition). An illegal transition is ApiError INVALID_TRANSITION (409). Pausing keeps the
session streaming and its open orders working; the host's risk guard refuses new orders with
reject_code DEPLOYMENT_PAUSED (runtimes/hosting/risk.py).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch

from accounts.models import BrokerCredential, User, Workspace, role_allows_scope
from config.errors import ApiError
from runtimes import services
from runtimes.core.json_limits import nested_deeper_than
from runtimes.core.platforms import BACKTEST, PLATFORMS, PlatformSpec
from runtimes.core.timeframes import TIMEFRAMES
from runtimes.core.wire import decimal_str
from runtimes.credentials import check_connection
from runtimes.hosting import dispatch, quotas
from runtimes.hosting.bus import get_bus
from runtimes.hosting.risk import RiskLimits
from runtimes.models import (
    ACTIVE_DEPLOYMENT_STATES,
    TERMINAL_STATES,
    Deployment,
    DeploymentState,
    Source,
    State,
    TradingSession,
)
from runtimes.providers import registry
from strategies.models import StrategyVersion

MAX_SYMBOLS: Final = 50
MAX_PARAMS_BYTES: Final = 16_384  # the strategy's parameters, as JSON text
MAX_PARAMS_DEPTH: Final = 8
# A deployment runs for days: its strategy may take long to connect or stay quiet a while.
REMOTE_CONNECT_TIMEOUT_S: Final = 3600
DEPLOYMENT_IDLE_TIMEOUT_S: Final = 86_400

S = DeploymentState
STARTABLE: Final = frozenset({S.STOPPED, S.FAILED})
STOPPABLE: Final = frozenset({S.STARTING, S.RUNNING, S.PAUSED})
PAUSABLE: Final = frozenset({S.RUNNING})
RESUMABLE: Final = frozenset({S.PAUSED})
DELETABLE: Final = frozenset({S.STOPPED, S.FAILED})


# -- checks --------------------------------------------------------------------------------------


def deployable_platform(platform_id: str) -> PlatformSpec:
    """The registry's spec of `platform_id`. Raises ApiError INVALID_VALUE (400) for an unknown
    platform or `backtest`."""
    spec = PLATFORMS.get(platform_id)
    if spec is None or spec.id == BACKTEST:
        known = sorted(p for p in PLATFORMS if p != BACKTEST)
        raise ApiError("INVALID_VALUE", f"Unknown platform {platform_id!r}; deployments run on "
                       f"{', '.join(known)}.", details={"field": "platform", "provided":
                                                        platform_id, "available": known})
    return spec


def check_provider_available(spec: PlatformSpec) -> None:
    """Raise ApiError PLATFORM_UNAVAILABLE (400) when this build has no provider for `spec`."""
    available = [p for p in registry.available() if p != BACKTEST]
    if spec.id not in available:
        raise ApiError("PLATFORM_UNAVAILABLE", f"{spec.label} is not available in this build "
                       f"yet; available: {', '.join(available)}.",
                       details={"field": "platform", "provided": spec.id})


def check_may_trade_on(*, spec: PlatformSpec, role: str | None) -> None:
    """Raise ApiError FORBIDDEN (403) when `role` may not use the platform's scope (a live
    platform needs `trade:live`, which only owners have; accounts.models ROLE_SCOPES)."""
    if not role_allows_scope(role, spec.scope):
        raise ApiError("FORBIDDEN", f"{spec.label} trades real money: it needs the "
                       f"{spec.scope!r} scope, which a {role or 'non-member'} does not have.",
                       status_code=403, details={"required_scope": spec.scope, "role": role})


# What a live platform's deployment must limit (RiskLimits fields): how much it may hold of a
# symbol and how much it may lose in a day. The others stay optional.
LIVE_REQUIRED_LIMITS: Final = ("max_position_quantity", "daily_loss_limit")


def check_live_limits(*, spec: PlatformSpec, limits: RiskLimits) -> None:
    """A live platform's deployment needs LIVE_REQUIRED_LIMITS set: VALIDATION_ERROR (400)
    naming each missing one otherwise."""
    if not spec.live:
        return
    missing = [name for name in LIVE_REQUIRED_LIMITS if getattr(limits, name) is None]
    if missing:
        raise ApiError("VALIDATION_ERROR", f"{spec.label} trades real money: set a maximum "
                       "position size and a daily loss limit.",
                       details={name: ["Required on a live platform."] for name in missing})


def _invalid(field: str, message: str) -> ApiError:
    return ApiError("VALIDATION_ERROR", "The request has invalid fields; see details.",
                    details={field: [message]})


def _checked_symbols(symbols: list[str]) -> list[str]:
    chosen = list(dict.fromkeys(s.strip() for s in symbols if s.strip()))
    if not chosen:
        raise _invalid("symbols", "At least one symbol.")
    if len(chosen) > MAX_SYMBOLS or any(len(s) > 32 for s in chosen):
        raise _invalid("symbols", f"At most {MAX_SYMBOLS} symbols of at most 32 characters.")
    return chosen


def _checked_timeframes(timeframes: list[str]) -> list[str]:
    chosen = list(dict.fromkeys(timeframes))
    unknown = [t for t in chosen if t not in TIMEFRAMES]
    if not chosen or unknown:
        raise _invalid("timeframes", f"One or more of {', '.join(TIMEFRAMES)}"
                       + (f"; unknown: {', '.join(unknown)}." if unknown else "."))
    return chosen


def _checked_params(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise _invalid("params", "A JSON object, like {\"fast\": 10}.")
    if nested_deeper_than(params, MAX_PARAMS_DEPTH):
        raise _invalid("params", f"Nested at most {MAX_PARAMS_DEPTH} levels deep.")
    if len(json.dumps(params, default=str)) > MAX_PARAMS_BYTES:
        raise _invalid("params", f"At most {MAX_PARAMS_BYTES} bytes as JSON.")
    return params


def risk_limits_of(deployment: Deployment) -> RiskLimits:
    """The deployment's stored limits (RiskLimits.as_json form) as the value the host checks."""
    stored = deployment.risk_limits or {}
    values: dict[str, Any] = {}
    for field in fields(RiskLimits):
        value = stored.get(field.name)
        if value is not None and field.name == "allowed_symbols":
            value = tuple(value)
        elif value is not None and isinstance(value, str):
            value = Decimal(value)
        values[field.name] = value
    return RiskLimits(**values)


# -- create, delete ------------------------------------------------------------------------------


def create_deployment(
    *,
    workspace: Workspace,
    created_by: User,
    role: str | None,
    name: str,
    platform: str,
    version: StrategyVersion | None,
    symbols: list[str],
    timeframes: list[str],
    params: dict[str, Any] | None = None,
    risk_limits: RiskLimits | None = None,
    initial_cash: Decimal = Decimal(100_000),
    connection: BrokerCredential | None = None,
) -> Deployment:
    """Record a deployment (stopped: `start_deployment` runs it). `version` None deploys a
    remote strategy (it connects with an API key); else the version runs in the sandbox.

    Raises ApiError INVALID_VALUE (400) for an unknown platform (or `backtest`); FORBIDDEN (403)
    for a live platform and a role without `trade:live`; NOT_FOUND (404) for a version of
    another workspace or a connection of another workspace; PLATFORM_UNAVAILABLE (400) when
    this build has no provider for the platform; VALIDATION_ERROR (400) naming the field for a
    taken name, bad symbols, timeframes, parameters, cash, allowed symbols outside the symbols,
    a missing or mismatched connection (`check_connection`), or a live platform's missing risk
    limits (`check_live_limits`).
    """
    spec = deployable_platform(platform)
    check_may_trade_on(spec=spec, role=role)
    check_provider_available(spec)
    if version is not None and version.strategy.workspace_id != workspace.pk:
        raise ApiError("NOT_FOUND", "No such strategy version.", status_code=404)
    check_connection(spec=spec, workspace=workspace, connection=connection)
    check_live_limits(spec=spec, limits=risk_limits or RiskLimits())
    name = name.strip()
    if not name:
        raise _invalid("name", "A name.")
    chosen = _checked_symbols(symbols)
    limits = risk_limits or RiskLimits()
    services._limits_for(limits, chosen)  # raises for allowed symbols outside the symbols
    if initial_cash <= 0:
        raise _invalid("initial_cash", "Must be a positive number.")
    with transaction.atomic():
        quotas.lock_workspace(workspace)  # two creations with one name: one wins, one is told
        if Deployment.objects.for_workspace(workspace).filter(name=name).exists():
            raise _invalid("name", "A deployment of this workspace already has this name.")
        return Deployment.objects.create(
            workspace=workspace, created_by=created_by, name=name,
            source=Source.REMOTE if version is None else Source.HOSTED,
            strategy_version=version, platform=spec.id, connection=connection, symbols=chosen,
            timeframes=_checked_timeframes(timeframes), params=_checked_params(params or {}),
            risk_limits=limits.as_json(),
            initial_cash=initial_cash, state=S.STOPPED)


def delete_deployment(*, deployment: Deployment) -> None:
    """Delete a stopped (or failed) deployment; its sessions stay, as sessions. Raises ApiError
    INVALID_TRANSITION (409) while it is active."""
    sync_with_session(deployment)
    if deployment.state not in DELETABLE:
        raise _conflict(deployment, "delete", DELETABLE)
    deleted, _ = Deployment.objects.filter(pk=deployment.pk, state__in=DELETABLE).delete()
    if not deleted:  # it moved between the read and the delete
        deployment.refresh_from_db(fields=["state"])
        raise _conflict(deployment, "delete", DELETABLE)


# -- transitions ---------------------------------------------------------------------------------


def _conflict(deployment: Deployment, action: str, allowed: frozenset[str]) -> ApiError:
    state = DeploymentState(deployment.state)
    return ApiError(
        "INVALID_TRANSITION",
        f"Cannot {action} the deployment {deployment.name!r}: it is {state.label.lower()}; "
        f"{action} needs it {' or '.join(sorted(allowed))}.", status_code=409,
        details={"action": action, "state": deployment.state, "allowed_from": sorted(allowed)})


def _move(deployment: Deployment, *, action: str, to: str, allowed: frozenset[str],
          **fields: Any) -> None:
    if not deployment.transition(to=to, allowed_from=allowed, **fields):
        deployment.refresh_from_db(fields=["state"])
        raise _conflict(deployment, action, allowed)


def start_deployment(*, deployment: Deployment, started_by: User, role: str | None,
                     now: datetime) -> TradingSession:
    """Open a new session for a stopped or failed deployment and queue it; the deployment is
    `starting` until the session runs; the session trades through the deployment's connection.
    Raises ApiError INVALID_TRANSITION (409) from another state; PLATFORM_UNAVAILABLE (400),
    FORBIDDEN (403), VALIDATION_ERROR (400: no connection any more, live limits missing) as
    `create_deployment`; SANDBOX_UNAVAILABLE (400) for a hosted deployment where hosted runs
    are refused."""
    sync_with_session(deployment)
    if deployment.state not in STARTABLE:
        raise _conflict(deployment, "start", STARTABLE)
    spec = deployable_platform(deployment.platform)
    check_may_trade_on(spec=spec, role=role)
    check_provider_available(spec)
    check_live_limits(spec=spec, limits=risk_limits_of(deployment))
    if deployment.source == Source.HOSTED:
        support = services.hosted_runs_support()
        if not support.available and not settings.SANDBOX_ALLOW_UNSANDBOXED:
            raise ApiError("SANDBOX_UNAVAILABLE", f"Hosted runs are refused here: "
                           f"{support.reason}.", details={"reason": support.reason})
    with transaction.atomic():  # the session and the move stand or fall together
        _lock_connection(deployment, spec)
        session = _open_session(deployment, created_by=started_by, now=now)
        _move(deployment, action="start", to=S.STARTING, allowed=STARTABLE,
              current_session=session, failure_reason="")
        deployment.sessions.add(session)
    return session


def _lock_connection(deployment: Deployment, spec: PlatformSpec) -> None:
    """Lock the deployment's connection row (its deletion takes the same lock:
    runtimes/credentials.py) and check it is still there and still fits."""
    connection = None
    if deployment.connection_id is not None:
        connection = (BrokerCredential.objects.select_for_update()
                      .for_workspace(deployment.workspace)
                      .filter(pk=deployment.connection_id).first())
    check_connection(spec=spec, workspace=deployment.workspace, connection=connection)


def _open_session(deployment: Deployment, *, created_by: User, now: datetime) -> TradingSession:
    """The deployment's next session, queued for a worker if hosted (a remote one asks for a
    worker at its strategy's first request, as every remote session does), within the
    workspace's quota of sessions of its platform and source (runtimes/hosting/quotas.py)."""
    hosted = deployment.source == Source.HOSTED
    limits = services._limits_for(risk_limits_of(deployment), list(deployment.symbols))
    quotas.lock_workspace(deployment.workspace)
    quotas.check_quota(workspace=deployment.workspace,
                       kind=quotas.kind_of(platform=deployment.platform, source=deployment.source))
    session = TradingSession.objects.create(
        workspace_id=deployment.workspace_id, created_by=created_by,
        platform=deployment.platform, connection_id=deployment.connection_id,
        source=deployment.source, state=State.QUEUED if hosted else State.CREATED, created_at=now,
        queued_at=now if hosted else None, symbols=list(deployment.symbols),
        timeframe=deployment.timeframes[0], timeframes=list(deployment.timeframes),
        initial_cash=deployment.initial_cash,
        connect_timeout_s=(services.HOSTED_CONNECT_TIMEOUT_S if hosted
                           else REMOTE_CONNECT_TIMEOUT_S),
        idle_timeout_s=DEPLOYMENT_IDLE_TIMEOUT_S,
        **limits.as_columns(),
        strategy_version=deployment.strategy_version, params=dict(deployment.params or {}))
    if hosted:
        dispatch.enqueue_dispatch()
    return session


def stop_deployment(*, deployment: Deployment, now: datetime) -> None:
    """Stop a deployment: its session is cancelled (at once when no worker has it yet, else by
    its host within a poll interval); `stopping` until the session has ended, then `stopped`.
    Raises ApiError INVALID_TRANSITION (409) when it is not starting, running or paused."""
    sync_with_session(deployment)
    _move(deployment, action="stop", to=S.STOPPING, allowed=STOPPABLE)
    session = deployment.current_session
    if session is not None:
        services.cancel_session(session=session, now=now, reason="deployment stopped")
    sync_with_session(deployment)


def pause_deployment(*, deployment: Deployment) -> None:
    """Pause a running deployment: its session keeps streaming and its open orders keep
    working, new orders are refused (DEPLOYMENT_PAUSED). Raises ApiError INVALID_TRANSITION
    (409) unless it is running."""
    sync_with_session(deployment)
    _move(deployment, action="pause", to=S.PAUSED, allowed=PAUSABLE)
    _tell_host_risk_changed(deployment)


def resume_deployment(*, deployment: Deployment, role: str | None) -> None:
    """Let a paused deployment's session take orders again. Raises ApiError INVALID_TRANSITION
    (409) unless it is paused; FORBIDDEN (403) on a live platform without `trade:live`."""
    sync_with_session(deployment)
    check_may_trade_on(spec=PLATFORMS[deployment.platform], role=role)
    _move(deployment, action="resume", to=S.RUNNING, allowed=RESUMABLE)
    _tell_host_risk_changed(deployment)


def _tell_host_risk_changed(deployment: Deployment) -> None:
    # The guard re-reads the pause flag within a second anyway (KILL_SWITCH_TTL_S); this makes
    # it at once. Nobody waits for the reply.
    session_id = deployment.current_session_id
    if session_id is None:
        return
    command = {"kind": "command", "request": f"risk-{uuid.uuid4().hex}", "op": "risk_changed",
               "path": {}, "query": {}, "body": None}
    transaction.on_commit(lambda: get_bus().post(str(session_id), command))


def sync_with_session(deployment: Deployment) -> Deployment:
    """Make an active deployment's state say what its session does: `running` once the session
    runs; `failed` (with the session's reason) when it failed; `stopped` when it ended otherwise
    (with why, unless the deployment was being stopped). Returns the deployment."""
    if deployment.state not in ACTIVE_DEPLOYMENT_STATES or deployment.current_session_id is None:
        return deployment
    session = TradingSession.objects.filter(pk=deployment.current_session_id).only(
        "state", "failure_reason").first()
    active = ACTIVE_DEPLOYMENT_STATES
    if session is None:  # deleted under it (its workspace's admin): nothing runs any more
        deployment.transition(to=S.FAILED, allowed_from=active,
                              failure_reason="its session no longer exists")
    elif session.state == State.FAILED:
        deployment.transition(to=S.FAILED, allowed_from=active,
                              failure_reason=session.failure_reason or "the session failed")
    elif session.state in TERMINAL_STATES:
        why = ("" if deployment.state == S.STOPPING else
               f"its session ended ({session.state}"
               + (f": {session.failure_reason}" if session.failure_reason else "") + ")")
        deployment.transition(to=S.STOPPED, allowed_from=active, failure_reason=why[:300])
    elif session.state == State.RUNNING:
        deployment.transition(to=S.RUNNING, allowed_from={S.STARTING})
    return deployment


# -- what the management API shows ---------------------------------------------------------------


def listed(deployments: Any) -> Any:
    """`deployments` (a queryset) with what `deployment_json` reads, in a fixed number of
    queries: the version, the current session, the ids of every session."""
    sessions = TradingSession.objects.only("pk", "created_at")
    return deployments.select_related("strategy_version", "current_session").prefetch_related(
        Prefetch("sessions", queryset=sessions))


def deployment_json(deployment: Deployment, *, origin: str) -> dict[str, Any]:
    """The management API's view of a deployment: its settings, state and current session
    (`session`: as the sessions endpoint shows it, with `base_url` where a remote strategy
    connects), and the ids of every session it ran, newest first."""
    version = deployment.strategy_version
    spec = PLATFORMS.get(deployment.platform)
    session = deployment.current_session
    return {
        "id": str(deployment.id),
        "workspace": str(deployment.workspace_id),
        "name": deployment.name,
        "source": deployment.source,
        "strategy": None if version is None else str(version.strategy_id),
        "version": None if version is None else version.number,
        "version_id": None if version is None else str(version.pk),
        "platform": deployment.platform,
        "live": bool(spec and spec.live),
        "connection": None if deployment.connection_id is None else str(deployment.connection_id),
        "symbols": deployment.symbols,
        "timeframes": deployment.timeframes,
        "params": deployment.params,
        "risk_limits": risk_limits_of(deployment).as_json(),
        "initial_cash": decimal_str(Decimal(deployment.initial_cash)),
        "state": deployment.state,
        "failure_reason": deployment.failure_reason,
        "created_by": None if deployment.created_by_id is None else str(deployment.created_by_id),
        "created_at": _stamp(deployment.created_at),
        "state_changed_at": _stamp(deployment.state_changed_at),
        "session": None if session is None else services.session_json(session, origin=origin),
        # TradingSession's default order is newest first; a list prefetches them (`listed`).
        "sessions": [str(past.pk) for past in deployment.sessions.all()],
    }


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
