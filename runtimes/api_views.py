"""Management API (/api/v1/workspaces/{ws}/sessions...): create, list, show, cancel and kill
sessions, read their results, share them by a URL that carries its own credential; the
workspace's kill switch; hosted backtests (/backtests: a strategy version run by the platform
in the sandbox; listed, filtered, sorted, renamed and deleted through `runtimes.backtests`) and
finished ones side by side (/backtests/compare, read by `runtimes.comparison`).

Thin: WorkspaceScopedMixin scopes every row to the URL's workspace (a stranger gets 404), the
serializer validates, `runtimes.services` decides.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_permissions import WorkspaceScopedMixin, request_api_key, require_role
from accounts.models import SCOPE_TRADE_PAPER
from config.api_schema import OBJECT_LIST
from config.decimal_fields import DecimalField
from config.errors import ApiError
from runtimes import backtests, comparison, services, trade_pages, what_was_run
from runtimes.core.platforms import PLATFORMS
from runtimes.core.provider import Pacing
from runtimes.core.timeframes import TIMEFRAMES
from runtimes.credentials import connection_in
from runtimes.hosting import dispatch
from runtimes.hosting.risk import RiskLimits
from runtimes.models import (
    NAME_MAX_LENGTH,
    KillSwitch,
    Platform,
    ShareLink,
    Source,
    State,
    TradingSession,
)
from runtimes.transport import share_links
from strategies.models import Dataset, StrategyVersion


class CommissionSerializer(serializers.Serializer):
    percent = DecimalField(max_digits=12, decimal_places=6, min_value=Decimal(0),
                                       required=False)
    per_share = DecimalField(max_digits=12, decimal_places=6, min_value=Decimal(0),
                                         required=False)
    fixed = DecimalField(max_digits=16, decimal_places=6, min_value=Decimal(0),
                                     required=False)
    minimum = DecimalField(max_digits=16, decimal_places=6, min_value=Decimal(0),
                                       required=False)


def _positive(value: Decimal) -> None:
    if value <= 0:
        raise serializers.ValidationError("Must be a positive number.")


def _limit_field() -> serializers.DecimalField:
    return DecimalField(max_digits=30, decimal_places=12, required=False,
                                    allow_null=True, validators=[_positive])


def _count_field() -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=1_000_000, required=False,
                                    allow_null=True)


class BacktestRunSerializer(serializers.Serializer):
    """What every backtest is made of: data, period, money and costs (`from`/`to` on the wire)."""

    dataset = serializers.UUIDField()
    symbols = serializers.ListField(child=serializers.CharField(max_length=32), required=False,
                                    allow_empty=False)
    timeframe = serializers.CharField(max_length=8, required=False)
    start = serializers.DateTimeField(required=False, allow_null=True)
    end = serializers.DateTimeField(required=False, allow_null=True)
    initial_cash = DecimalField(max_digits=24, decimal_places=8,
                                            min_value=Decimal(0), default=Decimal(100_000))
    commission = CommissionSerializer(required=False)
    slippage_bps = DecimalField(max_digits=12, decimal_places=4,
                                            min_value=Decimal(0), default=Decimal(0))

    def to_internal_value(self, data: Any) -> Any:
        return super().to_internal_value(_with_period_names(data))


class RiskLimitsSerializer(serializers.Serializer):
    """Risk limits (trading-api.md section 5), of a session or a deployment; absent or null: no
    limit."""

    max_order_quantity = _limit_field()
    max_order_notional = _limit_field()
    max_position_quantity = _limit_field()
    max_open_orders = _count_field()
    max_orders_per_minute = _count_field()
    daily_loss_limit = _limit_field()
    allowed_symbols = serializers.ListField(child=serializers.CharField(max_length=32),
                                            required=False, allow_empty=False)

    def risk_limits(self) -> RiskLimits:
        data = self.validated_data
        allowed = data.get("allowed_symbols")
        return RiskLimits(
            max_order_quantity=data.get("max_order_quantity"),
            max_order_notional=data.get("max_order_notional"),
            max_position_quantity=data.get("max_position_quantity"),
            max_open_orders=data.get("max_open_orders"),
            max_orders_per_minute=data.get("max_orders_per_minute"),
            daily_loss_limit=data.get("daily_loss_limit"),
            allowed_symbols=None if allowed is None else tuple(allowed),
        )


class SessionLimitsSerializer(RiskLimitsSerializer):
    """Timeouts and risk limits, common to every session created through the API."""

    connect_timeout_s = serializers.IntegerField(min_value=1, max_value=3600, default=60)
    idle_timeout_s = serializers.IntegerField(min_value=1, max_value=86400, default=300)


class BacktestSessionCreateSerializer(BacktestRunSerializer, SessionLimitsSerializer):
    """A remote strategy's backtest over one of the workspace's datasets."""


MAX_OPTIONS_BYTES = 4096  # a session's `options` as JSON: settings, not data


def _bounded_options(value: Any) -> None:
    if len(json.dumps(value, separators=(",", ":"))) > MAX_OPTIONS_BYTES:
        raise serializers.ValidationError(f"At most {MAX_OPTIONS_BYTES} bytes as JSON.")


def _timeframe_field(**kwargs: Any) -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=list(TIMEFRAMES), **kwargs)


class LiveSessionCreateSerializer(SessionLimitsSerializer):
    """A remote strategy's session on a wall-clock platform (mock, a broker's paper platform):
    symbols, the stream's timeframes, the starting balance and the platform's options, the
    workspace's broker `connection` where the platform needs one; no dataset."""

    platform = serializers.CharField(max_length=20)
    dataset = serializers.JSONField(required=False)
    symbols = serializers.ListField(
        child=serializers.RegexField(r"^[A-Za-z0-9._/-]{1,32}$", error_messages={
            "invalid": "A symbol has 1 to 32 letters, digits or . _ / -."}),
        allow_empty=False, max_length=50)
    timeframe = _timeframe_field()
    timeframes = serializers.ListField(child=_timeframe_field(), required=False, max_length=10)
    initial_cash = DecimalField(max_digits=24, decimal_places=8, default=Decimal(100_000),
                                validators=[_positive])
    options = serializers.DictField(required=False, default=dict, validators=[_bounded_options])
    connection = serializers.UUIDField(required=False, allow_null=True, default=None)

    def validate_dataset(self, value: Any) -> Any:
        if value is not None:
            raise serializers.ValidationError("A session on this platform takes no dataset.")
        return value


def _origin(request: Request) -> str:
    return f"{request.scheme}://{request.get_host()}"


class SessionListCreate(WorkspaceScopedMixin, generics.GenericAPIView):
    """GET: the workspace's sessions, newest first. POST: create a session: a backtest (the
    default platform) over a dataset, or a session on a wall-clock platform (mock)."""

    scoped_model = TradingSession
    write_check = "can_trade"
    serializer_class = BacktestSessionCreateSerializer

    @extend_schema(operation_id="sessions_list", responses={200: OBJECT_LIST})
    def get(self, request: Request, workspace_id: Any) -> Response:
        sessions = self.get_queryset()[:100]
        positions = dispatch.queue_positions()
        return Response([services.session_json(s, origin=_origin(request), positions=positions)
                         for s in sessions])

    @extend_schema(operation_id="sessions_create", responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any) -> Response:
        platform = _platform_of(request.data)
        services.check_platform(platform)
        if PLATFORMS[platform].pacing == Pacing.WALL_CLOCK:
            return self._create_live(request, platform)
        serializer = BacktestSessionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        dataset = get_object_or_404(Dataset.objects.for_workspace(self.workspace),
                                    pk=data.pop("dataset"))
        session = services.create_backtest_session(
            workspace=self.workspace, created_by=request.user, dataset=dataset,
            symbols=data.get("symbols"), timeframe=data.get("timeframe"),
            start=data.get("start"), end=data.get("end"), initial_cash=data["initial_cash"],
            commission=dict(data.get("commission") or {}), slippage_bps=data["slippage_bps"],
            connect_timeout_s=data["connect_timeout_s"], idle_timeout_s=data["idle_timeout_s"],
            risk_limits=serializer.risk_limits(),
        )
        body = services.session_json(session, origin=_origin(request))
        return Response(body, status=status.HTTP_201_CREATED)

    def _create_live(self, request: Request, platform: str) -> Response:
        serializer = LiveSessionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        session = services.create_live_session(
            workspace=self.workspace, created_by=request.user, platform=platform,
            symbols=data["symbols"], timeframe=data["timeframe"],
            timeframes=data.get("timeframes") or [], initial_cash=data["initial_cash"],
            options=data["options"], connect_timeout_s=data["connect_timeout_s"],
            risk_limits=serializer.risk_limits(),
            connection=connection_in(self.workspace, data["connection"]),
        )
        body = services.session_json(session, origin=_origin(request))
        return Response(body, status=status.HTTP_201_CREATED)


def _platform_of(data: Any) -> str:
    """The `platform` of a creation body (a backtest when absent). Raises ApiError
    INVALID_VALUE for one that is not a string."""
    if not hasattr(data, "get"):
        return Platform.BACKTEST  # not an object: the serializer says so
    platform = data.get("platform", Platform.BACKTEST)
    if not isinstance(platform, str):
        raise ApiError("INVALID_VALUE", "platform must be a string.",
                       details={"field": "platform", "provided": platform})
    return platform


class SessionDetail(WorkspaceScopedMixin, generics.GenericAPIView):
    scoped_model = TradingSession

    @extend_schema(operation_id="sessions_retrieve", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        session = get_object_or_404(self.get_queryset(), pk=session_id)
        return Response(services.session_json(session, origin=_origin(request)))


class SessionCancel(WorkspaceScopedMixin, generics.GenericAPIView):
    scoped_model = TradingSession
    write_check = "can_trade"

    @extend_schema(operation_id="sessions_cancel", request=None,
                   responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        session = get_object_or_404(self.get_queryset(), pk=session_id)
        services.cancel_session(session=session, now=timezone.now())
        session.refresh_from_db()
        return Response(services.session_json(session, origin=_origin(request)))


class KillRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class SessionKill(WorkspaceScopedMixin, generics.GenericAPIView):
    """POST: set the session's kill switch (one-way): no new orders, open ones cancelled."""

    scoped_model = TradingSession
    write_check = "can_trade"
    serializer_class = KillRequestSerializer

    @extend_schema(operation_id="sessions_kill", responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        session = get_object_or_404(self.get_queryset(), pk=session_id)
        serializer = KillRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.kill_session(session=session, set_by=request.user,
                              reason=serializer.validated_data["reason"], now=timezone.now())
        session.refresh_from_db()
        return Response(services.session_json(session, origin=_origin(request)))


class WorkspaceKillSwitchSerializer(serializers.Serializer):
    active = serializers.BooleanField()
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class WorkspaceKillSwitchView(WorkspaceScopedMixin, generics.GenericAPIView):
    """GET: the workspace's kill switch. POST {active, reason}: set or release it."""

    scoped_model = KillSwitch
    write_check = "can_trade"
    serializer_class = WorkspaceKillSwitchSerializer

    @extend_schema(operation_id="kill_switch_retrieve", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any) -> Response:
        return Response(services.kill_switch_json(self.get_queryset().first()))

    @extend_schema(operation_id="kill_switch_set", responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = WorkspaceKillSwitchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        switch = services.set_workspace_kill_switch(
            workspace=self.workspace, set_by=request.user, now=timezone.now(),
            active=serializer.validated_data["active"],
            reason=serializer.validated_data["reason"])
        return Response(services.kill_switch_json(switch))


class SessionResults(WorkspaceScopedMixin, generics.GenericAPIView):
    """GET: metrics, execution contract and equity summary of a finished session."""

    scoped_model = TradingSession

    @extend_schema(operation_id="sessions_results", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        session = get_object_or_404(self.get_queryset(), pk=session_id)
        return Response(services.session_results_json(session=session))


class ResultPages(PageNumberPagination):
    page_size = 100


class SessionResultRows(WorkspaceScopedMixin, generics.GenericAPIView):
    """GET ?page=N: the orders (or trades) of a finished session, 100 a page, with `next`."""

    scoped_model = TradingSession
    pagination_class = ResultPages
    rows = "orders"  # or "trades"

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        session = get_object_or_404(self.get_queryset(), pk=session_id)
        result = services.session_result(session=session)
        page = self.paginate_queryset(getattr(result, self.rows))
        return self.get_paginated_response(page)


class SessionRoundTrips(WorkspaceScopedMixin, generics.GenericAPIView):
    """GET ?sort=[-]field&page=N: the round trips of a completed backtest, 100 a page, sorted by
    any of their fields (default: the order they closed, a trip open at the end last)."""

    scoped_model = TradingSession
    pagination_class = ResultPages

    @extend_schema(operation_id="sessions_round_trips", responses={200: OpenApiTypes.OBJECT},
                   parameters=[OpenApiParameter("sort", str, description=(
                       "A round trip field, '-' first for descending: "
                       + ", ".join(trade_pages.ROUND_TRIP_FIELDS)))])
    def get(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        session = get_object_or_404(self.get_queryset(), pk=session_id)
        rows = trade_pages.stored_round_trips(session)
        if rows is None:
            services.session_result(session=session)  # raises the same NOT_FOUND as /results
        sort = request.query_params.get("sort", "")
        try:
            ordered = trade_pages.sorted_trip_rows(rows or [], sort[:40])
        except trade_pages.SortError as exc:
            raise ApiError("INVALID_VALUE", f"Round trips cannot be sorted by {exc}.",
                           details={"sort": sort[:40],
                                    "fields": list(trade_pages.ROUND_TRIP_FIELDS)}) from exc
        page = self.paginate_queryset(list(ordered)) or []
        return self.get_paginated_response(trade_pages.trip_dicts(page))


class HostedBacktestCreateSerializer(BacktestRunSerializer):
    version = serializers.UUIDField(help_text="The strategy version to run in the sandbox.")
    name = serializers.CharField(max_length=NAME_MAX_LENGTH, required=False, allow_blank=True,
                                 default="", help_text="Default: the strategy, its version "
                                                       "and the range.")
    params = serializers.DictField(required=False, default=dict,
                                   help_text="Passed to the strategy as PARITY_STRATEGY_PARAMS.")


def _with_period_names(data: Any) -> Any:
    # The contract names the period `from`/`to`, which Python cannot name as fields.
    if isinstance(data, dict):
        data = {**data}
        for wire, field in (("from", "start"), ("to", "end")):
            if wire in data:
                data[field] = data.pop(wire)
    return data


BACKTEST_LIST_PARAMETERS = [
    OpenApiParameter("strategy", OpenApiTypes.UUID, description="Only runs of this strategy."),
    OpenApiParameter("version", OpenApiTypes.UUID,
                     description="Only runs of this strategy version."),
    OpenApiParameter("dataset", OpenApiTypes.UUID, description="Only runs over this dataset."),
    OpenApiParameter("state", str, enum=State.values, description="Only runs in this state."),
    OpenApiParameter("sort", str, enum=[f"{sign}{key}" for key in backtests.SORT_KEYS
                                        for sign in ("", "-")],
                     description="Order (default -created); metrics sort as numbers, runs that "
                                 "did not complete last."),
    OpenApiParameter("page", int, description=(
        f"Page, from 1, of {backtests.API_PAGE_SIZE} runs; the response's X-Total-Count header "
        "counts every run that matches, its Link header (rel=\"next\") gives the next page.")),
]


def version_and_dataset(workspace: Any, data: dict[str, Any]
                        ) -> tuple[StrategyVersion, Dataset]:
    """The strategy version and dataset a validated hosted-run body names (popped from `data`),
    of this workspace only: another workspace's id is the same 404 as an unknown one."""
    version = get_object_or_404(
        StrategyVersion.objects.for_workspace(workspace).select_related("strategy"),
        pk=data.pop("version"))
    dataset = get_object_or_404(Dataset.objects.for_workspace(workspace), pk=data.pop("dataset"))
    return version, dataset


class BacktestListCreate(WorkspaceScopedMixin, generics.GenericAPIView):
    """GET: the workspace's hosted backtests, a page of 100 at a time, filtered and sorted as the
    dashboard's list, each with its headline metrics once completed. POST: run a strategy
    version on a dataset in the sandbox (400 SANDBOX_UNAVAILABLE when hosted runs are refused
    here)."""

    scoped_model = TradingSession
    write_check = "can_trade"
    serializer_class = HostedBacktestCreateSerializer

    def get_queryset(self) -> Any:
        return (super().get_queryset().filter(source=Source.HOSTED)
                .select_related("strategy_version"))

    @extend_schema(operation_id="backtests_list", parameters=BACKTEST_LIST_PARAMETERS,
                   responses={200: OBJECT_LIST})
    def get(self, request: Request, workspace_id: Any) -> Response:
        query = backtests.parse_list_query(request.query_params, workspace=self.workspace)
        page = backtests.parse_page(request.query_params)
        matching = backtests.listed(self.get_queryset(), query)
        total = matching.count()
        size = backtests.API_PAGE_SIZE
        positions = dispatch.queue_positions()
        response = Response([{**services.backtest_json(s, origin=_origin(request),
                                                       with_output=False, positions=positions),
                              "metrics": backtests.headline(s)}
                             for s in matching[(page - 1) * size:page * size]])
        response["X-Total-Count"] = str(total)
        if page * size < total:
            following = request.query_params.copy()
            following["page"] = str(page + 1)
            response["Link"] = (f'<{request.build_absolute_uri(request.path)}?'
                                f'{following.urlencode()}>; rel="next"')
        return response

    @extend_schema(operation_id="backtests_create", responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = HostedBacktestCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version, dataset = version_and_dataset(self.workspace, data)
        session = services.create_hosted_backtest(
            workspace=self.workspace, created_by=request.user, version=version, dataset=dataset,
            symbols=data.get("symbols"), timeframe=data.get("timeframe"),
            start=data.get("start"), end=data.get("end"), initial_cash=data["initial_cash"],
            commission=dict(data.get("commission") or {}), slippage_bps=data["slippage_bps"],
            params=data["params"])
        if data["name"].strip():
            backtests.rename_backtest(session=session, name=data["name"])
        body = services.backtest_json(session, origin=_origin(request), with_output=False)
        return Response(body, status=status.HTTP_201_CREATED)


class BacktestRenameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=NAME_MAX_LENGTH,
                                 help_text="What the run is called in lists and on its page.")


class BacktestDetail(WorkspaceScopedMixin, generics.GenericAPIView):
    """GET: one hosted backtest with its progress, captured output and headline metrics (cancel:
    the session's cancel endpoint; results: the session's results endpoints). PATCH {name}:
    rename it. DELETE: delete an ended one with its results and journal (409 while it runs)."""

    scoped_model = TradingSession
    write_check = "can_trade"
    serializer_class = BacktestRenameSerializer

    def _backtest(self, session_id: Any) -> TradingSession:
        # Not through the list's query: a sweep's points, kept out of the list, are backtests
        # to read, rename and delete by id like any other.
        return get_object_or_404(
            backtests.with_headline(self.get_queryset().filter(source=Source.HOSTED)
                                    .select_related("strategy_version")),
            pk=session_id)

    def _body(self, request: Request, session: TradingSession) -> dict[str, Any]:
        return {**services.backtest_json(session, origin=_origin(request), with_output=True),
                "metrics": backtests.headline(session)}

    @extend_schema(operation_id="backtests_retrieve", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        return Response(self._body(request, self._backtest(session_id)))

    @extend_schema(operation_id="backtests_rename", responses={200: OpenApiTypes.OBJECT})
    def patch(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        session = self._backtest(session_id)
        serializer = BacktestRenameSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        backtests.rename_backtest(session=session, name=serializer.validated_data["name"])
        return Response(self._body(request, session))

    @extend_schema(operation_id="backtests_delete", request=None, responses={204: None})
    def delete(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        backtests.delete_backtest(session=self._backtest(session_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# -- comparing backtests -------------------------------------------------------------------------


class BacktestCompare(WorkspaceScopedMixin, generics.GenericAPIView):
    """`?ids=a,b,c` (2 to 8 finished backtests of the workspace): per run its id, label, metrics
    and equity curve normalised to 1 at its start, at most 1,000 points; and the inputs that
    differ between the runs (`differing_inputs`: [{label, values}], empty when all are equal)."""

    @extend_schema(parameters=[OpenApiParameter("ids", str, required=True)],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any) -> Response:
        ids = comparison.parse_ids(request.query_params.getlist("ids"))
        sessions = comparison.compared_sessions(workspace=self.workspace, ids=ids)
        return Response({"backtests": comparison.compare_json(sessions),
                         "differing_inputs": what_was_run.differing_inputs(sessions)})
# -- share links: a session URL that carries its own credential (runtimes/transport/share_links) --


class ShareLinkCreateSerializer(serializers.Serializer):
    expires_in_s = serializers.IntegerField(
        min_value=int(share_links.SHARE_LINK_MIN_LIFETIME.total_seconds()),
        max_value=int(share_links.SHARE_LINK_MAX_LIFETIME.total_seconds()),
        default=int(share_links.SHARE_LINK_DEFAULT_LIFETIME.total_seconds()),
        help_text="How long the link works (default 24 h, at most 7 days).")
    label = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class ShareLinkListCreate(WorkspaceScopedMixin, generics.GenericAPIView):
    """GET: the session's share links (never their URLs). POST: a new link to a `mock` or paper
    session, acting with this key's (or member's) access; its URL is in this answer only."""

    scoped_model = TradingSession
    read_scope = write_scope = SCOPE_TRADE_PAPER
    write_check = "can_trade"
    serializer_class = ShareLinkCreateSerializer

    @extend_schema(operation_id="sessions_share_links_list", responses={200: OBJECT_LIST})
    def get(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        require_role(self.membership, "can_trade")
        session = get_object_or_404(self.get_queryset(), pk=session_id)
        links = ShareLink.objects.for_workspace(self.workspace).filter(session=session)
        return Response([share_links.share_link_json(link, origin=_origin(request))
                         for link in links])

    @extend_schema(operation_id="sessions_share_links_create",
                   responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        session = get_object_or_404(self.get_queryset(), pk=session_id)
        serializer = ShareLinkCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        link, raw = share_links.create_share_link(
            session=session, created_by=request.user, api_key=request_api_key(request),
            lifetime=timedelta(seconds=serializer.validated_data["expires_in_s"]),
            label=serializer.validated_data["label"], now=timezone.now())
        return Response(share_links.share_link_json(link, origin=_origin(request), raw=raw),
                        status=status.HTTP_201_CREATED)


class ShareLinkRevoke(WorkspaceScopedMixin, generics.GenericAPIView):
    """DELETE: revoke a share link at once (its open sockets close within a second)."""

    scoped_model = ShareLink
    read_scope = write_scope = SCOPE_TRADE_PAPER
    write_check = "can_trade"

    @extend_schema(operation_id="sessions_share_links_revoke", request=None,
                   responses={200: OpenApiTypes.OBJECT})
    def delete(self, request: Request, workspace_id: Any, session_id: Any,
               link_id: Any) -> Response:
        link = get_object_or_404(self.get_queryset(), pk=link_id, session_id=session_id)
        share_links.revoke_share_link(link=link, now=timezone.now())
        return Response(share_links.share_link_json(link, origin=_origin(request)))
