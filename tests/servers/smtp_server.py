"""aiosmtpd-based SMTP servers for tests (written by the SMTP transport work)."""
