"""Users, workspaces (the tenant) and everything a workspace owns in this app.

Every tenant-owned row has a `workspace` foreign key and is read through a QuerySet method that
takes the workspace (`ApiKey.objects.for_workspace(ws)`); `Workspace.objects.for_user(user)` is
the one door from a user to their tenants.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

SCOPE_READ = "read"
SCOPE_TRADE_PAPER = "trade:paper"
SCOPE_TRADE_LIVE = "trade:live"
API_KEY_SCOPES = (SCOPE_READ, SCOPE_TRADE_PAPER, SCOPE_TRADE_LIVE)


def normalize_email(email: str) -> str:
    """Emails are the login, compared case-insensitively: store them lower-cased and trimmed."""
    return email.strip().lower()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        if extra["is_staff"] is not True or extra["is_superuser"] is not True:
            raise ValueError("A superuser needs is_staff=True and is_superuser=True.")
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email=normalize_email(username or ""))


class User(AbstractBaseUser, PermissionsMixin):
    """A person; signs in with email and password. No username field."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def for_user(self, user: object) -> WorkspaceQuerySet:
        """Workspaces `user` is a member of; none for anonymous or inactive users."""
        if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
            return self.none()
        return self.filter(memberships__user=user)


class Workspace(models.Model):
    """The tenant. Every tenant-owned row of every app belongs to exactly one workspace."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    personal = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = WorkspaceQuerySet.as_manager()

    class Meta:
        ordering = ["-personal", "name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


# The one rule of what a role lets a person (and their keys and hosted runs) do: which scopes
# they may grant a key (accounts/services.create_api_key) and which a key or session token may
# use now (ApiKey.allows, the Trading API and its sockets). Viewers read, members trade paper,
# owners trade live too.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({SCOPE_READ}),
    Role.MEMBER: frozenset({SCOPE_READ, SCOPE_TRADE_PAPER}),
    Role.OWNER: frozenset(API_KEY_SCOPES),
}


def role_allows_scope(role: str | None, scope: str) -> bool:
    """Whether `role` (None: not a member) may use or grant `scope`."""
    return role is not None and scope in ROLE_SCOPES.get(role, frozenset())


def scope_refusal(role: str, scope: str, *, who: str) -> str:
    """Why `role` may not use `scope`: "Your role (viewer) may use only: read; not trade:paper." """
    allowed = ", ".join(s for s in API_KEY_SCOPES if role_allows_scope(role, s))
    return f"{who} ({role}) may use only: {allowed}; not {scope}."


def role_of(workspace_ref: str, user_ref: str) -> Subquery:
    """A subquery: the role of the user at `user_ref` in the workspace at `workspace_ref` (paths
    from the outer row), for annotating the role a credential acts with now."""
    return Subquery(Membership.objects.filter(
        workspace=OuterRef(workspace_ref), user=OuterRef(user_ref)).values("role")[:1])


class MembershipQuerySet(models.QuerySet["Membership"]):
    def for_user(self, user: object) -> MembershipQuerySet:
        """Memberships of `user`; none for anonymous or inactive users."""
        if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
            return self.none()
        return self.filter(user=user)

    def for_workspace(self, workspace: Workspace) -> MembershipQuerySet:
        return self.filter(workspace=workspace)


class Membership(models.Model):
    """A user's role in a workspace; the role decides what they (and their API keys) may do."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.workspace_id} as {self.role}"

    def can_edit(self) -> bool:
        """Change workspace state at all (anything but read); viewers only look."""
        return self.role in (Role.OWNER, Role.MEMBER)

    def can_trade(self) -> bool:
        return role_allows_scope(self.role, SCOPE_TRADE_PAPER)

    def can_upload(self) -> bool:
        return self.role in (Role.OWNER, Role.MEMBER)

    def can_manage(self) -> bool:
        """Members, roles, invitations, other people's keys: owners only."""
        return self.role == Role.OWNER


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def for_workspace(self, workspace: Workspace) -> InvitationQuerySet:
        return self.filter(workspace=workspace)

    def pending(self, now: datetime) -> InvitationQuerySet:
        return self.open().filter(expires_at__gt=now)

    def open(self) -> InvitationQuerySet:
        """Neither accepted nor revoked: pending, or expired and still worth resending."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True)


class Invitation(models.Model):
    """An emailed invitation; only a keyed hash of its token is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    # Kept (not deleted) on revocation so that its link can say it was revoked.
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.workspace_id}"

    def is_pending(self, now: datetime) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def for_workspace(self, workspace: Workspace) -> ApiKeyQuerySet:
        return self.filter(workspace=workspace)

    def usable(self, now: datetime) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def with_creator_role(self) -> ApiKeyQuerySet:
        """Annotate `creator_role`: the creator's role in the key's workspace now (None when
        they are no longer a member)."""
        return self.annotate(creator_role=role_of("workspace", "created_by"))


class ApiKey(models.Model):
    """A workspace API key. It acts with the role its creator has *now* in the workspace.

    If the creator leaves the workspace the key stops working; if they are demoted, the key is
    demoted with them. Scopes narrow further: `read`, `trade:paper`, `trade:live`.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True)
    hashed_secret = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()
    creator_role: str | None = None  # set by authenticate_api_key: the creator's role now

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (prt_{self.prefix}_…)"

    @property
    def display_prefix(self) -> str:
        return f"prt_{self.prefix}_"

    def has_scope(self, scope: str) -> bool:
        """Whether the key was granted `scope` (see `allows` for whether it may use it now)."""
        return scope in self.scopes

    def allows(self, scope: str) -> bool:
        """Granted `scope` and its creator's current role allows it (see
        accounts.api_permissions.key_scope_denial for the refusal). Needs `creator_role`, which
        `accounts.services.authenticate_api_key` sets (None: no longer a member)."""
        return self.has_scope(scope) and role_allows_scope(self.creator_role, scope)

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class BrokerCredentialQuerySet(models.QuerySet["BrokerCredential"]):
    def for_workspace(self, workspace: Workspace) -> BrokerCredentialQuerySet:
        return self.filter(workspace=workspace)


class BrokerCredential(models.Model):
    """A workspace's broker connection: its keys, encrypted at rest and bound to workspace and
    row (accounts/crypto.py), beside what may be shown of them and of the connection's health.

    Decrypt only where a provider is built (runtimes/hosting/brokers.py `connection_of`, through
    `accounts.crypto.reveal_credential`); the plaintext must never reach a serializer, the admin,
    a log line or a strategy process.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="broker_credentials"
    )
    # An id of the one platform registry (runtimes/core/platforms.py), which this app cannot
    # import: runtimes checks it where it stores credentials (runtimes/credentials.py).
    platform = models.CharField(max_length=20)
    label = models.CharField(max_length=100)
    encrypted_payload = models.TextField(editable=False)
    # What may be shown of the keys: the last four characters of the key id.
    key_hint = models.CharField(max_length=4, blank=True)
    # Not secret, per broker family: Alpaca {"feed": "iex" | "sip"}.
    options = models.JSONField(default=dict, blank=True)
    # When the broker last accepted the keys, and what its account endpoint said then (account
    # number masked to its last four, status, currency: nothing secret).
    validated_at = models.DateTimeField(null=True, blank=True)
    account_summary = models.JSONField(default=dict, blank=True)
    # ConnectionHealth.as_json() as the last provider on this connection reported it, and when
    # (runtimes/hosting/brokers.py writes it, throttled).
    health = models.JSONField(default=dict, blank=True)
    health_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = BrokerCredentialQuerySet.as_manager()

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return f"{self.label} ({self.platform})"

    def __repr__(self) -> str:
        return f"<BrokerCredential {self.id} {self.platform}>"

    @property
    def shown_key(self) -> str:
        """The key as people may see it: "…WXYZ"."""
        return f"…{self.key_hint}" if self.key_hint else "…"
