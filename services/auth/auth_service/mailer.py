"""Outgoing mail: SMTP when configured, otherwise files in a folder plus a log line."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

log = logging.getLogger("auth.mailer")


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


def _message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    msg["Message-ID"] = f"<{uuid.uuid4()}@unpuzzle>"
    msg.set_content(body)
    return msg


class FolderMailer:
    """Development mailer: each mail becomes an ``.eml`` file in ``folder``."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    async def send(self, to: str, subject: str, body: str) -> None:
        msg = _message(self.sender, to, subject, body)
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        await asyncio.to_thread(path.write_bytes, bytes(msg))
        log.info("mail written to %s", path, extra={"mail_to": to, "mail_subject": subject})


class SmtpMailer:
    """Sends through an SMTP server (STARTTLS by default), in a worker thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        username: str | None,
        password: str | None,
        starttls: bool,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = (
            username,
            password,
            starttls,
            timeout,
        )

    def _send_blocking(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)

    async def send(self, to: str, subject: str, body: str) -> None:
        await asyncio.to_thread(self._send_blocking, _message(self.sender, to, subject, body))
        log.info("mail sent", extra={"mail_to": to, "mail_subject": subject})
