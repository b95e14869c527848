"""The `sms` channel: a webhook shaped for an SMS provider (or a gateway in front of one).

Options: `url` (required), `secret_env` and `timeout`, as for `webhook`. Each message is a POST
of `{"to": PHONE, "text": BODY}`, signed and with an `Idempotency-Key` header like a webhook's.
A customer without a phone number is a permanent failure.
"""

from __future__ import annotations

from engine.channels.base import PermanentFailure, RenderedMessage
from engine.channels.webhook import WebhookChannel


class SmsChannel(WebhookChannel):
    """Configured like a webhook; sends only the phone number and the rendered text."""

    def send(self, message: RenderedMessage) -> None:
        phone = message.customer.get("phone")
        if not phone:
            raise PermanentFailure(f"customer {message.customer_id} has no phone number")
        if message.body is None:
            raise PermanentFailure("a text message needs a template; this message has none")
        if not message.body.strip():
            # A template of a `Subject:` line alone, for an email: a text sends only the body.
            template = message.payload.get("template")
            raise PermanentFailure(
                f"template {template!r} gives a text message nothing to say: its text is all"
                " in its `Subject:` line, which a text message does not send (write the text"
                " after the subject line, then `nudge outbox --retry"
                f" {message.outbox_id}`)"
            )
        document = {"to": str(phone), "text": message.body}
        self._poster.post(document, message.idempotency_key, message.sending_us)
