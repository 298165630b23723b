"""Dashboard routes of the accounts app (mounted at the site root)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.landing, name="landing"),
    path("signup/", views.signup, name="signup"),
    path("signup/confirm/<str:uid>/<str:token>/", views.signup_confirm, name="signup_confirm"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("app/workspaces/new/", views.workspace_create, name="workspace_create"),
    path("app/workspaces/switch/", views.workspace_switch, name="workspace_switch"),
    path("app/members/", views.members, name="workspace_members"),
    path("app/members/<uuid:member_id>/remove/", views.member_remove, name="member_remove"),
    path("app/members/invitations/<uuid:invitation_id>/<str:action>/", views.invitation_action,
         name="invitation_action"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("app/keys/", views.api_keys, name="api_keys"),
    path("app/keys/new/", views.api_key_create, name="api_key_create"),
    path("app/keys/<uuid:key_id>/created/", views.api_key_created, name="api_key_created"),
    path("app/keys/<uuid:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
]
