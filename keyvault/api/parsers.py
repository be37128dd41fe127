"""Request body parsing for the API."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, answering 400 to a body nested too deep for Python's parser.

    `json.load` raises `RecursionError`, not `ValueError`, for `[[[[…]]]]` a few thousand levels
    deep; DRF lets that through as a server error. Bad input is a client error.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
