"""The sender: transports for SMTP, Microsoft Graph and Gmail API, and the email backend."""
