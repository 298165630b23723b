"""Management API of broker connections (/api/v1/workspaces/{ws}/connections...): list, add
(the keys are checked against the broker first; nothing is stored when it refuses them), show,
delete (once nothing runs on it).

Thin, as runtimes/deployment_api.py: WorkspaceScopedMixin scopes rows to the URL's workspace (a
stranger gets 404); every member may look, owners manage. No answer ever carries the secret or
the key id: `key_hint` is its last four characters.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_permissions import WorkspaceScopedMixin, require_scope
from accounts.models import BrokerCredential
from config.api_schema import error_response
from runtimes import credentials
from runtimes.core.platforms import PLATFORMS


class ConnectionSerializer(serializers.ModelSerializer):
    live = serializers.SerializerMethodField(help_text="Whether it trades real money.")
    key_hint = serializers.CharField(read_only=True,
                                     help_text="The last four characters of the key id.")

    class Meta:
        model = BrokerCredential
        fields = ["id", "label", "platform", "live", "key_hint", "options", "validated_at",
                  "account_summary", "health", "health_at", "created_at"]
        read_only_fields = fields

    def get_live(self, credential: BrokerCredential) -> bool:
        spec = PLATFORMS.get(credential.platform)
        return bool(spec and spec.live)


class ConnectionCreateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100)
    platform = serializers.CharField(
        max_length=20, help_text="alpaca-paper, alpaca-live, binance-testnet or binance-live.")
    key_id = serializers.CharField(max_length=credentials.MAX_KEY_LENGTH, write_only=True)
    secret = serializers.CharField(max_length=credentials.MAX_KEY_LENGTH, write_only=True,
                                   style={"input_type": "password"}, trim_whitespace=False)
    options = serializers.DictField(
        required=False, default=dict,
        help_text='Alpaca: {"feed": "iex" | "sip"} (default iex). Binance: {"key_type": "hmac" '
                  '| "ed25519"} (default hmac; ed25519: `secret` is the PEM private key).')


REFUSED = error_response("Invalid fields, or the broker refused the keys, the account cannot "
                         "trade or the broker could not be reached (VALIDATION_ERROR; the "
                         "message says which). Nothing is stored.")
IN_USE = error_response("An active deployment or a live session uses the connection "
                        "(CONNECTION_IN_USE; details.deployments names them).")


class ConnectionListCreate(WorkspaceScopedMixin, generics.ListAPIView):
    """GET: the workspace's broker connections. POST: add one (owners), checked first."""

    scoped_model = BrokerCredential
    serializer_class = ConnectionSerializer
    write_check = "can_manage"

    @extend_schema(operation_id="connections_create", request=ConnectionCreateSerializer,
                   responses={201: ConnectionSerializer, 400: REFUSED})
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = ConnectionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        spec = PLATFORMS.get(data["platform"])
        if spec is not None:
            require_scope(request, spec.scope)  # live keys: a key that may trade live
        credential = credentials.add_broker_credential(
            workspace=self.workspace, by=request.user, platform=data["platform"],
            label=data["label"], key_id=data["key_id"], secret=data["secret"],
            options=data["options"])
        return Response(ConnectionSerializer(credential).data, status=status.HTTP_201_CREATED)


class ConnectionDetail(WorkspaceScopedMixin, generics.RetrieveAPIView):
    """GET: one connection and its health. DELETE: remove it (owners) once nothing runs on it."""

    scoped_model = BrokerCredential
    serializer_class = ConnectionSerializer
    lookup_url_kwarg = "connection_id"
    write_check = "can_manage"

    @extend_schema(operation_id="connections_destroy", responses={204: None, 409: IN_USE})
    def delete(self, request: Request, workspace_id: Any, connection_id: Any) -> Response:
        credentials.delete_broker_credential(credential=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
