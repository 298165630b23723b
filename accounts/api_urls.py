"""Management API routes under /api/v1/ (other apps append theirs to config/urls.py)."""

from accounts import api_views
from config.api_routes import api_path

urlpatterns = [
    api_path("workspaces/", api_views.WorkspaceListCreate.as_view(), name="api-workspaces"),
    api_path("workspaces/<uuid:workspace_id>/", api_views.WorkspaceDetail.as_view(),
             name="api-workspace"),
    api_path("workspaces/<uuid:workspace_id>/members/", api_views.MemberListInvite.as_view(),
             name="api-members"),
    api_path("workspaces/<uuid:workspace_id>/members/<uuid:member_id>/",
             api_views.MemberDetail.as_view(), name="api-member"),
    api_path("workspaces/<uuid:workspace_id>/invitations/", api_views.InvitationList.as_view(),
             name="api-invitations"),
    api_path("workspaces/<uuid:workspace_id>/invitations/<uuid:invitation_id>/",
             api_views.InvitationDetail.as_view(), name="api-invitation"),
    api_path("workspaces/<uuid:workspace_id>/invitations/<uuid:invitation_id>/resend/",
             api_views.InvitationResend.as_view(), name="api-invitation-resend"),
    api_path("workspaces/<uuid:workspace_id>/keys/", api_views.KeyListCreate.as_view(),
             name="api-keys"),
    api_path("workspaces/<uuid:workspace_id>/keys/<uuid:key_id>/", api_views.KeyDetail.as_view(),
             name="api-key"),
]
