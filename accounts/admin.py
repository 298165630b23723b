"""Admin for accounts. Hashes, tokens and ciphertexts are never displayed or editable here."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.forms import AdminLoginForm
from accounts.models import ApiKey, BrokerCredential, Invitation, Membership, User, Workspace

# The admin's login shares the dashboard's throttle (same counters per IP and email).
admin.site.login_form = AdminLoginForm


class EmailUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = ("email",)


class EmailUserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = EmailUserChangeForm
    add_form = EmailUserCreationForm
    ordering = ["email"]
    list_display = ["email", "is_active", "is_staff", "date_joined"]
    search_fields = ["email"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups",
                                    "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",),
                             "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "personal", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "workspace", "role", "expires_at", "accepted_at"]
    exclude = ["token_hash"]
    readonly_fields = ["workspace", "email", "role", "invited_by", "created_at", "expires_at",
                       "accepted_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "display_prefix", "workspace", "scopes", "last_used_at", "revoked_at"]
    exclude = ["hashed_secret"]
    readonly_fields = ["workspace", "created_by", "name", "prefix", "scopes", "created_at",
                       "expires_at", "last_used_at", "revoked_at"]

    def has_add_permission(self, request: object) -> bool:
        return False  # keys are made by services.create_api_key, which shows the secret once


@admin.register(BrokerCredential)
class BrokerCredentialAdmin(admin.ModelAdmin):
    list_display = ["label", "platform", "workspace", "key_hint", "validated_at", "created_at"]
    exclude = ["encrypted_payload"]
    readonly_fields = ["workspace", "platform", "label", "key_hint", "options", "validated_at",
                       "account_summary", "health", "health_at", "created_at"]

    def has_add_permission(self, request: object) -> bool:
        return False  # credentials are sealed by services.store_broker_credential
