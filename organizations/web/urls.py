"""URLs of the organization pages: `organization_patterns` under `/o/<org_slug>/`, the rest at
the top level."""

from django.urls import path

from organizations.web import invitations, members, organizations

app_name = "orgs"

urlpatterns = [
    path("", organizations.organization_list, name="list"),
    path("new/", organizations.organization_create, name="create"),
]

settings_patterns = (
    [
        path("", organizations.organization_settings, name="index"),
        path("delete/", organizations.organization_delete, name="delete"),
        path("leave/", organizations.organization_leave, name="leave"),
    ],
    "settings",
)

member_patterns = (
    [
        path("", members.member_list, name="list"),
        path("invite/", members.member_invite, name="invite"),
        path("<int:pk>/role/", members.member_change_role, name="change_role"),
        path("<int:pk>/remove/", members.member_remove, name="remove"),
        path("invitations/<uuid:pk>/revoke/", members.invitation_revoke, name="invitation_revoke"),
    ],
    "members",
)

invitation_patterns = (
    [
        path("accept/", invitations.invitation_accept, name="accept"),
        path("<str:token>/", invitations.invitation_open, name="open"),
    ],
    "invitations",
)
