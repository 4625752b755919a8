"""What a failed call raises: ``ImError``, carrying the Volcengine ``ResponseMetadata.Error``."""

from __future__ import annotations

from typing import Any

__all__ = ["FLOW_LIMIT_EXCEEDED", "ImError", "UnexpectedResponseError"]

FLOW_LIMIT_EXCEEDED = "FlowLimitExceeded"


class ImError(Exception):
    """An action refused: ``code`` (e.g. ``"InvalidParam"``) and ``code_n`` as the server sent
    them, its ``message``, the ``request_id`` to quote in a report, and the HTTP ``status``."""

    def __init__(
        self, *, code: str, code_n: int, message: str, request_id: str, status: int
    ) -> None:
        super().__init__(
            f"{code}: {message}" + (f" (RequestId {request_id})" if request_id else "")
        )
        self.code = code
        self.code_n = code_n
        self.message = message
        self.request_id = request_id
        self.status = status

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, code_n={self.code_n}, "
            f"message={self.message!r}, request_id={self.request_id!r}, status={self.status})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds an exception from ``args``, which the keyword-only
        # constructors do not take: without this, an ImError cannot cross a process pool.
        return _rebuild, (type(self), self.args, self.__dict__)


class UnexpectedResponseError(ImError):
    """An answer that is not a Volcengine envelope (not JSON, no ``ResponseMetadata``, a failure
    status without ``Error``, no ``Result`` object): a proxy's error page, a wrong endpoint.
    ``code`` is ``"UnexpectedResponse"`` and ``code_n`` 0; ``message`` quotes the start of it."""

    CODE = "UnexpectedResponse"

    def __init__(self, message: str, *, status: int, request_id: str = "") -> None:
        super().__init__(
            code=self.CODE, code_n=0, message=message, request_id=request_id, status=status
        )


def _rebuild(cls: type[ImError], args: tuple[Any, ...], state: dict[str, Any]) -> ImError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error
