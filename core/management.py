"""A base for provisioning commands: bad input exits non-zero with one readable line.

Django prints argparse's usage block and, for errors raised while handling, a `CommandError:`
line; validation errors from services, an object deleted meanwhile and database errors are
turned into that one line here, and argument errors are shortened to one line too, so scripts
can show the message as it is.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from core.errors import NotFoundError


class OneLineParser(CommandParser):
    def error(self, message):
        if self.called_from_command_line:
            self.exit(2, f"{self.prog}: error: {message}\n")
        raise CommandError(f"Error: {message}")


def validation_message(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)


def database_error_message(error: DatabaseError) -> str:
    """The first line of the database's message: the rest (DETAIL, CONTEXT) can quote row
    values and spans lines."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class ProvisioningCommand(BaseCommand):
    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Same parser, one-line errors: Django builds it, so its class is swapped afterwards.
        parser.__class__ = OneLineParser
        return parser

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        except PermissionDenied as exc:
            raise CommandError(str(exc) or "Permission denied.") from None
        except NotFoundError as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(f"Database error: {database_error_message(exc)}") from None
