"""Emailing an invitation's link, for the team pages and the admin alike.

The link's token exists only in what `invitation_create` returned and in this email: it is
never stored, shown on a page or put in a message. The email is sent once the invitation is
committed (a slow mail server must not hold a transaction open), and a link nobody received is
withdrawn at once, so that it cannot linger as a pending invitation.
"""

import logging
import smtplib

from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from organizations import invitations
from organizations.access import Access
from organizations.models import Invitation

logger = logging.getLogger(__name__)


# Every local here, and in the mail code below it, holds the link: none goes into an error
# report.
@sensitive_variables()
def invitation_send(*, request, invitation: Invitation, raw: str, actor: Access) -> bool:
    """Email `invitation`'s link (token `raw`) to the invited address. False when the mail
    server refused it: the invitation is then withdrawn, audited with the reason."""
    link = request.build_absolute_uri(reverse("invitations:open", args=[raw]))
    context = {"invitation": invitation, "link": link, "inviter": request.user}
    try:
        send_mail(
            subject=f"You are invited to {invitation.organization.name} on Keyvault",
            message=render_to_string("organizations/email/invitation.txt", context),
            from_email=None,
            recipient_list=[invitation.email],
        )
    except (OSError, smtplib.SMTPException):
        logger.exception("Invitation email to %s could not be sent.", invitation.email)
        invitations.invitation_revoke(invitation=invitation, actor=actor, reason="email not sent")
        return False
    return True
