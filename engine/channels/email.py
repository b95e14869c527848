"""The `email` channel: SMTP with STARTTLS, implicit TLS or (for a local relay) neither.

Options: `host` (required), `port` (default 587 for `starttls`, 465 for `tls`, 25 for `none`),
`security` (`starttls` default, `tls`, `none`), `from` (required, `Shop <shop@example.com>`),
`username_env` and `password_env` (names of environment variables holding the login; the
credentials themselves never appear in configuration or rules), `ca_file` (a CA bundle for a
server with a private certificate), `timeout` (seconds, default 30).

The message's `Message-ID` is derived from its idempotency key, so a message sent twice after a
crash is recognisably the same message. An address's domain with letters beyond ASCII
(`user@exämple.de`) is written in IDNA's ASCII form (`user@xn--exmple-cua.de`), which every mail
server takes; letters beyond ASCII before the `@` (`jörg@example.de`) only a server offering
SMTPUTF8 takes: to one that does not, such a message is a dead letter saying so. SMTP's own
reply codes decide the failure: 4xx is temporary, 5xx permanent. A server that offers no
STARTTLS, or no login, where the settings ask for one fails the channel for now (its messages
wait for the settings to be mended).
"""

from __future__ import annotations

import os
import smtplib
import ssl
import unicodedata
from collections.abc import Mapping
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

import idna

from engine.channels.base import (
    Channel,
    DeliveryFailure,
    Options,
    PermanentFailure,
    RenderedMessage,
    TemporaryFailure,
)
from engine.errors import ConfigError
from engine.timeutil import from_us

_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_KNOWN = {"host", "port", "security", "from", "username_env", "password_env", "ca_file", "timeout"}


class EmailChannel(Channel):
    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        security: str,
        sender: str,
        login: tuple[str, str] | None = None,
        ca_file: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(name)
        self.host = host
        self.port = port
        self.security = security
        self.sender = sender
        self.login = login
        self.ca_file = ca_file
        self.timeout = timeout
        display, address = parseaddr(sender)
        local, _, domain = address.rpartition("@")
        if not local or not domain:
            raise ConfigError(
                f"channels.{name}: `from` must hold an email address; got {sender!r}",
                ("channels", name, "from"),
            )
        if not local.isascii():
            raise ConfigError(
                f"channels.{name}: `from` has letters beyond ASCII before the `@` ({address!r}),"
                " which not every mail server takes: give an address without them",
                ("channels", name, "from"),
            )
        try:
            # Its domain as every mail server takes it, and as its Message-IDs end.
            self.domain = _ascii_domain(domain)
            self.sender = str(Address(display_name=display, addr_spec=f"{local}@{self.domain}"))
        except (ValueError, HeaderParseError, IndexError, AttributeError) as exc:
            raise ConfigError(
                f"channels.{name}: `from` does not hold an email address mail can be sent from"
                f" ({address!r}: {exc})",
                ("channels", name, "from"),
            ) from None
        self._smtp: smtplib.SMTP | None = None

    @classmethod
    def from_options(
        cls,
        name: str,
        options: dict[str, Any],
        base_dir: Path,
        environ: Mapping[str, str] = os.environ,
    ) -> EmailChannel:
        read = Options(name, options, _KNOWN)
        security = read.choice("security", tuple(_DEFAULT_PORTS), "starttls")
        username = read.secret("username_env", environ)
        password = read.secret("password_env", environ)
        if (username is None) != (password is None):
            raise ConfigError(
                f"channels.{name}: give both `username_env` and `password_env`",
                read.setting("username_env" if username is None else "password_env"),
            )
        ca_file = read.optional_text("ca_file")
        return cls(
            name,
            host=read.text("host"),
            port=read.port("port", _DEFAULT_PORTS[security]),
            security=security,
            sender=read.text("from"),
            login=(username, password) if username and password else None,
            ca_file=base_dir / ca_file if ca_file else None,
            timeout=read.seconds("timeout", 30.0),
        )

    def send(self, message: RenderedMessage) -> None:
        email, international = self._build(message)
        try:
            smtp = self._connection()
            if international:  # asked of the server once it has said what it offers
                smtp.ehlo_or_helo_if_needed()
                if not smtp.has_extn("smtputf8"):
                    raise _no_smtputf8(message)
            smtp.send_message(email)
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise _failure(exc) from exc

    def close(self) -> None:
        if self._smtp is None:
            return
        smtp, self._smtp = self._smtp, None
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def _build(self, message: RenderedMessage) -> tuple[EmailMessage, bool]:
        """The email, and whether its address needs a server offering SMTPUTF8 (letters beyond
        ASCII before the `@`)."""
        customer = message.customer
        address = customer.get("email")
        if not address:
            raise PermanentFailure(f"customer {message.customer_id} has no email address")
        if message.body is None:
            raise PermanentFailure("an email needs a template; this message has none")
        email = EmailMessage()
        to = _recipient(message, str(customer.get("name") or ""), str(address).strip())
        try:
            email["From"] = self.sender
            email["To"] = to
            if message.subject:
                email["Subject"] = message.subject
            email["Date"] = format_datetime(from_us(message.sending_us))
            email["Message-ID"] = f"<{message.idempotency_key}@{self.domain}>"
            email.set_content(message.body, subtype="html" if message.html else "plain")
        except (ValueError, HeaderParseError) as exc:
            raise PermanentFailure(f"cannot build the email: {exc}") from exc
        return email, isinstance(to, str)

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        context = ssl.create_default_context(cafile=self.ca_file)
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.login is not None:
                smtp.login(*self.login)
        except (smtplib.SMTPException, OSError):
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None


def _ascii_domain(domain: str) -> str:
    """`domain` as mail servers take it: one with letters beyond ASCII in IDNA's form
    (`exämple.de` → `xn--exmple-cua.de`, as browsers write it: IDNA 2008 with UTS 46, so
    `straße.de` is not `strasse.de`); a UnicodeError (`idna.IDNAError`) says why there is no
    such form."""
    if domain.isascii():
        return domain
    return idna.encode(domain, uts46=True).decode("ascii")


def _recipient(message: RenderedMessage, name: str, address: str) -> Address | str:
    """The customer as the `To` of an email, its domain as every mail server takes it
    (`_ascii_domain`); a PermanentFailure, in the shop's words, when their address is not one
    an email can be sent to.

    An Address, not formataddr's text: a name with a comma and a letter beyond ASCII
    ("O'Brien, Seán") came out as two recipients once the header was encoded. Text for an
    address with letters beyond ASCII before the `@`, which Python's Address refuses (found
    well formed with ASCII letters in their place, `_lettered`): only a server offering
    SMTPUTF8 takes it, and it writes the header as it is."""
    local, at, domain = address.rpartition("@")
    try:
        if at and domain:
            address = f"{local}@{_ascii_domain(domain)}"
        if local.isascii():
            return Address(display_name=name, addr_spec=address)
        Address(display_name=name, addr_spec=_lettered(address))
        return f"{_phrase(name)} <{address}>" if name else address
    except (ValueError, HeaderParseError, IndexError, AttributeError) as exc:
        # IndexError, AttributeError: how the parser fails on `a@`
        address = f"{local}{at}{domain}"
        odd = next((char for char in local if not char.isascii() and not _letter(char)), "")
        if any(mark in address for mark in _BETWEEN_ADDRESSES):
            why = "it holds more than one address: keep one"
        elif "<" in address or ">" in address:
            why = "it holds more than the address: keep `name@example.com` alone"
        elif "@" not in address or not address.rpartition("@")[2]:
            why = "it lacks an `@` with a domain after it"
        elif any(char.isspace() for char in address):
            why = "it has a blank in it"
        elif odd:  # a zero-width space copied with the address, a full-width `（` typed in it
            why = (
                f"it holds {odd!r} (U+{ord(odd):04X} {unicodedata.name(odd, 'a character')}),"
                " which is no letter and no part of an address"
            )
        elif isinstance(exc, UnicodeError):  # `idna.IDNAError`
            why = f"its domain after the `@` is not one mail can be sent to ({exc})"
        else:
            why = "it is not written as an address is (`name@example.com`)"
        raise PermanentFailure(
            f"customer {message.customer_id}'s email address {address!r} cannot be sent to: {why}"
            f"; mend it in the shop's data and import the customer again, then"
            f" `nudge outbox --retry {message.outbox_id}`"
        ) from exc


# What separates addresses in a list, as typed in English and in Chinese (`a@x.cn，b@x.cn`).
_BETWEEN_ADDRESSES = ",;，；、"


def _letter(char: str) -> bool:
    """Whether `char` is a letter or a digit (with its accents: `ö`, `张`, `٣`), as an address
    may hold beyond ASCII."""
    return char.isalnum() or unicodedata.category(char).startswith("M")


def _lettered(address: str) -> str:
    """`address` with each letter and digit beyond ASCII as the ASCII letter `a`, to be found
    well formed or not as an ASCII address is: any other character beyond ASCII (a full-width
    blank or comma, a zero-width space) is left, which no address holds."""
    return "".join("a" if not char.isascii() and _letter(char) else char for char in address)


# What a name in a header is quoted for (RFC 5322's specials), as Python's Address quotes it.
_SPECIALS = frozenset('()<>@,:;.\\"[]')


def _phrase(name: str) -> str:
    """`name` as the display name of an address written out: quoted when it holds a special
    (`"O'Brien, Seán"`)."""
    if _SPECIALS.isdisjoint(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _no_smtputf8(message: RenderedMessage) -> PermanentFailure:
    address = message.customer.get("email")
    return PermanentFailure(
        f"customer {message.customer_id}'s email address {address!r} has letters beyond ASCII"
        " before the `@`, which this mail server does not take (it offers no SMTPUTF8); mend"
        " it in the shop's data if the customer has another, or send through a mail server"
        f" that takes such addresses, then `nudge outbox --retry {message.outbox_id}`"
    )


def _failure(exc: smtplib.SMTPException | OSError) -> DeliveryFailure:
    """SMTP's verdict as ours: reply codes 5xx to a message are permanent, everything else is
    temporary. What fails the connection itself (no server, no greeting, a refused login, 421
    "service not available", a dropped connection) is the channel's failure, not the message's.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = exc.recipients.items()
        codes = [code for _, (code, _) in refused]
        text = "; ".join(f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in refused)
        if codes and all(500 <= code < 600 for code in codes):
            return PermanentFailure(f"recipient refused: {text}")
        # 421 is the server closing the session, whichever command it answers
        down = bool(codes) and all(code == 421 for code in codes)
        return TemporaryFailure(f"recipient refused for now: {text}", channel_down=down)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        reply = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        return TemporaryFailure(
            f"the mail server refused the login: {reply} (mend the credentials and restart the"
            " daemon)",
            channel_down=True,
        )
    if isinstance(exc, smtplib.SMTPConnectError):
        reply = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        return TemporaryFailure(
            f"the mail server refused the connection: {reply}", channel_down=True
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        if 500 <= exc.smtp_code < 600:
            return PermanentFailure(f"mail server refused: {reply}")
        return TemporaryFailure(f"mail server: {reply}", channel_down=exc.smtp_code == 421)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        said = str(exc)
        if "STARTTLS" in said or "AUTH" in said:
            # The channel's settings, not the message: every message would meet it. Mended
            # and restarted within `retry_for`, the daemon sends them by itself.
            mend = (
                "the server offers no STARTTLS on this port: give the port your provider gives"
                " for it (587), or `security: tls` with its TLS port (465); `security: none`"
                " only for a relay on this machine"
                if "STARTTLS" in said
                else "the server takes no login on this port: give the port your provider"
                " gives for a login (587), or leave out `username_env` and `password_env`"
            )
            return TemporaryFailure(
                f"mail server: {said} ({mend}, in nudge.yaml, and restart the daemon)",
                channel_down=True,
            )
        return PermanentFailure(f"mail server does not support what is needed: {said}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TemporaryFailure(f"mail server: {exc}", channel_down=True)
    if isinstance(exc, smtplib.SMTPException):
        return TemporaryFailure(f"mail server: {exc}")
    return TemporaryFailure(f"cannot reach the mail server: {exc}", channel_down=True)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
