"""What a behaviour produced, and how it travels back in a reply body.

A reply body is ``{"ok": value}`` or ``{"error": {"type", "message"[, "retry_after"]}}``. The
caller turns an error back into :class:`~nuactor.errors.Unauthorized`,
:class:`~nuactor.errors.Busy` or :class:`~nuactor.errors.RemoteError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, final

from .errors import Busy, RemoteError, Unauthorized


@final
@dataclass(slots=True)
class Outcome:
    """Success with a value, or failure with an error type, a message and a retry hint."""

    ok: bool
    value: Any = None
    error_type: str = ""
    message: str = ""
    retry_after: float | None = None

    @classmethod
    def success(cls, value: Any) -> Outcome:
        return cls(True, value)

    @classmethod
    def failure(cls, error_type: str, message: str, *, retry_after: float | None = None) -> Outcome:
        return cls(False, None, error_type, message, retry_after)

    @classmethod
    def from_exception(cls, exc: BaseException) -> Outcome:
        """The failure a caller should see for ``exc`` raised by a behaviour or a check."""
        if isinstance(exc, Unauthorized):
            return cls.failure("Unauthorized", str(exc))
        if isinstance(exc, Busy):
            return cls.failure("Busy", str(exc), retry_after=exc.retry_after)
        if isinstance(exc, RemoteError):
            return cls.failure(exc.type, exc.message)
        return cls.failure(type(exc).__name__, str(exc))

    def to_body(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": self.value}
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"error": error}

    @classmethod
    def from_body(cls, body: Any) -> Outcome:
        """Read a reply body; a body of the wrong shape is itself a failure, never a crash."""
        if isinstance(body, dict):
            if "ok" in body:
                return cls.success(body["ok"])
            error = body.get("error")
            if isinstance(error, dict):
                error_type, message = error.get("type"), error.get("message")
                retry_after = error.get("retry_after")
                if isinstance(error_type, str) and isinstance(message, str):
                    if not isinstance(retry_after, int | float) or isinstance(retry_after, bool):
                        retry_after = None
                    return cls.failure(error_type, message, retry_after=retry_after)
        return cls.failure(
            "MalformedReply", "the reply body is not {ok} or {error: {type, message}}"
        )

    def unwrap(self) -> Any:
        """The value, or the matching exception raised."""
        if self.ok:
            return self.value
        if self.error_type == "Unauthorized":
            raise Unauthorized(self.message)
        if self.error_type == "Busy":
            raise Busy(self.message, retry_after=self.retry_after)
        raise RemoteError(self.error_type, self.message)
